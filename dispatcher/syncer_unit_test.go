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

package dispatcher

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
)

// syncAllWith runs syncAll over keys in the background, reconciling with fails (how many more
// times each key fails; -1: always), and moves clk on whenever syncAll waits. It returns syncAll's
// result and the reconciles per key. The clock moves a second at a time, so that a pause ends
// at the next whole second.
func syncAllWith(ctx context.Context, t *testing.T, keys []types.NamespacedName, fails map[types.NamespacedName]int, patience time.Duration) (map[types.NamespacedName]int, error) {
	t.Helper()
	clk := clocktesting.NewFakeClock(time.Now())
	var mu sync.Mutex
	calls := map[types.NamespacedName]int{}
	done := make(chan error, 1)
	go func() {
		done <- syncAll(ctx, keys, func(key types.NamespacedName) error {
			mu.Lock()
			defer mu.Unlock()
			calls[key]++
			if n := fails[key]; n != 0 {
				fails[key] = n - 1
				return errors.New("JetStream not available")
			}
			return nil
		}, clk, patience)
	}()
	for {
		select {
		case err := <-done:
			mu.Lock()
			defer mu.Unlock()
			return calls, err
		case <-time.After(time.Millisecond):
			if clk.HasWaiters() {
				clk.Step(time.Second)
			}
		}
	}
}

func TestSyncAllRetriesOnlyTheWebhooksThatFailed(t *testing.T) {
	g := NewWithT(t)
	a, b, c := types.NamespacedName{Namespace: "ns", Name: "a"}, types.NamespacedName{Namespace: "ns", Name: "b"}, types.NamespacedName{Namespace: "ns", Name: "c"}
	calls, err := syncAllWith(context.Background(), t, []types.NamespacedName{a, b, c}, map[types.NamespacedName]int{b: 2}, time.Minute)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(calls).To(Equal(map[types.NamespacedName]int{a: 1, b: 3, c: 1}), "the others are synced once, the failing one until it works")
}

func TestSyncAllGivesUpAfterItsPatience(t *testing.T) {
	g := NewWithT(t)
	a, b := types.NamespacedName{Namespace: "ns", Name: "a"}, types.NamespacedName{Namespace: "ns", Name: "b"}
	calls, err := syncAllWith(context.Background(), t, []types.NamespacedName{a, b}, map[types.NamespacedName]int{b: -1}, 10*time.Second)
	g.Expect(err).To(MatchError(ContainSubstring("webhook ns/b: JetStream not available")))
	g.Expect(calls[a]).To(Equal(1))
	// Pauses of 0.1, 0.2, 0.4, 0.8, 1.6 and 3.2 s, each ending at a whole second of the clock:
	// the seventh try is at 10 s.
	g.Expect(calls[b]).To(Equal(7), "tried again, pausing longer each time, until 10 s had passed")

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = syncAllWith(ctx, t, []types.NamespacedName{a, b}, map[types.NamespacedName]int{b: -1}, time.Hour)
	g.Expect(err).To(MatchError(context.Canceled))
}

// Failing reconciles may each take long (a timeout): the patience holds within a pass, so that
// thousands of failing webhooks do not hold the start for hours.
func TestSyncAllsPatienceHoldsWithinAPass(t *testing.T) {
	g := NewWithT(t)
	clk := clocktesting.NewFakeClock(time.Now())
	var keys []types.NamespacedName
	for _, name := range []string{"a", "b", "c", "d", "e"} {
		keys = append(keys, types.NamespacedName{Namespace: "ns", Name: name})
	}
	tried := 0
	err := syncAll(context.Background(), keys, func(types.NamespacedName) error {
		tried++
		clk.Step(time.Minute) // a timeout
		return errors.New("JetStream not available")
	}, clk, 2*time.Minute)
	g.Expect(err).To(MatchError(ContainSubstring("syncing 2 webhooks, 3 not tried")))
	g.Expect(tried).To(Equal(2))
}
