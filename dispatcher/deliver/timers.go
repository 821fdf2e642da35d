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

import "container/heap"

// timerHeap orders queues waiting for a retry by their head's next attempt time.
type timerHeap []*queue

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].head.Next.Before(h[j].head.Next) }
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
