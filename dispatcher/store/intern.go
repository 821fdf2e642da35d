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

package store

import (
	"maps"
	"sync"
	"sync/atomic"
)

// maxInterned bounds the strings an internTable keeps: event names come from a list of about
// fifty, so a table that fills up is being handed something else, which is then copied as usual.
const maxInterned = 1024

// internTable hands out one copy of each string it is given, so that the event names of the
// notes held in memory (a drain's read-ahead and sweep lists hold a few hundred thousand) share
// their bytes instead of holding one copy per note. Reads take no lock and allocate nothing; a new
// string copies the table (rare: the names are few).
type internTable struct {
	mu sync.Mutex
	m  atomic.Pointer[map[string]string]
}

// get returns b as a string, the table's copy when it holds one.
func (t *internTable) get(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if m := t.m.Load(); m != nil {
		if s, ok := (*m)[string(b)]; ok {
			return s
		}
	}
	s := string(b)
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.m.Load()
	if old != nil {
		if held, ok := (*old)[s]; ok {
			return held
		}
		if len(*old) >= maxInterned {
			return s
		}
	}
	m := map[string]string{}
	if old != nil {
		m = maps.Clone(*old)
	}
	m[s] = s
	t.m.Store(&m)
	return s
}
