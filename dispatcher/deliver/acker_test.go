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

package deliver

import (
	"context"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"

	"github.com/hookline/hookline/dispatcher/store"
)

// Settlements that follow a flush wait for the next one, at most every `every`, so that they are
// purged together; a partition given up (settle) and a stop do not wait.
func TestAckerGathersSettlements(t *testing.T) {
	g := NewWithT(t)
	st := newMemStore()
	for range 4 {
		st.enqueue("w", store.Note{})
	}
	st.enqueue("v", store.Note{})
	a := newAcker(st, nil, logr.Discard())
	a.every = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { a.run(ctx); close(stopped) }()

	a.remove("w", 1)
	g.Eventually(func() int { return st.queued("w") }).Should(Equal(3), "the first settlement is purged at once")
	a.remove("w", 2)
	g.Consistently(func() int { return st.queued("w") }, 50*time.Millisecond).Should(Equal(3),
		"a settlement right after a flush waits for the next one")
	a.remove("v", 5)
	a.settle(ctx, []string{"v"})
	g.Expect(st.queued("v")).To(Equal(0), "a partition given up is purged now")
	g.Expect(st.queued("w")).To(Equal(3))
	a.remove("w", 3)
	cancel()
	g.Eventually(stopped).Should(BeClosed())
	g.Expect(st.queued("w")).To(Equal(1), "a stop purges what was settled")
}
