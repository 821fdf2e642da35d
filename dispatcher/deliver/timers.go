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
	"container/heap"
	"time"
)

// timerHeap orders queues waiting for a retry, or held back until their head expires, by when
// they are next looked at (queue.wakeAt).
type timerHeap []*queue

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].wakeAt().Before(h[j].wakeAt()) }
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].timerIdx, h[j].timerIdx = i, j
}

// Push implements heap.Interface.
func (h *timerHeap) Push(x any) {
	q := x.(*queue)
	q.timerIdx = len(*h)
	*h = append(*h, q)
}

// Pop implements heap.Interface.
func (h *timerHeap) Pop() any {
	old := *h
	q := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	q.timerIdx = -1
	return q
}

func (h *timerHeap) upsert(q *queue) {
	if q.timerIdx >= 0 {
		heap.Fix(h, q.timerIdx)
		return
	}
	heap.Push(h, q)
}

func (h *timerHeap) remove(q *queue) {
	if q.timerIdx >= 0 {
		heap.Remove(h, q.timerIdx)
	}
}

func (h timerHeap) peek() *queue { return h[0] }

// wakeAt is when q's head is next attempted, or, while its webhook is held back (not
// Deliverable), when it expires; zero when it waits for neither.
func (q *queue) wakeAt() time.Time {
	if !q.wh.Deliverable {
		return q.heldUntil
	}
	return q.head.Next
}
