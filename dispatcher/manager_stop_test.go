/*
Copyright 2026 The hookline Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package dispatcher_test

import (
	"context"
	"errors"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// A controller manager that stops on its own after the start (one of its runnables failed) is
// reported, so that the process stops instead of delivering blind to every change of a Webhook;
// and the dispatcher then stops as usual when its context ends.
func TestAManagerThatStopsOnItsOwnIsReported(t *testing.T) {
	g := NewWithT(t)
	s := startStack(t, stackOptions{})
	select {
	case err := <-s.app.ManagerStopped():
		t.Fatalf("reported before anything failed: %v", err)
	default:
	}
	boom := errors.New("a runnable failed")
	g.Expect(s.app.Manager.Add(manager.RunnableFunc(func(context.Context) error { return boom }))).To(Succeed())
	var got error
	g.Eventually(s.app.ManagerStopped()).WithTimeout(30 * time.Second).Should(Receive(&got))
	g.Expect(got).To(MatchError(boom))
	s.cancel()
	var done error
	g.Eventually(s.done).WithTimeout(30 * time.Second).Should(Receive(&done))
	g.Expect(done).To(MatchError(boom))
	s.srv.Close()
	s.cancel = nil // stopped: the cleanup has nothing left to do
}
