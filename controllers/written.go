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

package controllers

import (
	"sync"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/resourceversion"
)

// writtenVersions remembers, per Webhook, the resourceVersion of the last status this manager
// wrote, until the cache has caught up with it. A reconcile queued while the one before was
// running starts as soon as that one returns, often before the watch brings its status write into
// the cache: read from there, the Webhook would look unverified and be verified a second time.
type writtenVersions struct {
	mu       sync.Mutex
	versions map[types.NamespacedName]string
}

// record notes that the status write of key produced resourceVersion rv.
func (w *writtenVersions) record(key types.NamespacedName, rv string) {
	if rv == "" {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.versions == nil {
		w.versions = map[types.NamespacedName]string{}
	}
	w.versions[key] = rv
}

// behind reports whether cached, the resourceVersion of key in the cache, is older than the last
// status write recorded for key. Once the cache has caught up (or the versions cannot be
// compared), the record is dropped: from then on the cache is the truth.
func (w *writtenVersions) behind(key types.NamespacedName, cached string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	rv, ok := w.versions[key]
	if !ok {
		return false
	}
	if c, err := resourceversion.CompareResourceVersion(cached, rv); err == nil && c < 0 {
		return true
	}
	delete(w.versions, key)
	return false
}

// forget drops the record of a Webhook that is gone.
func (w *writtenVersions) forget(key types.NamespacedName) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.versions, key)
}
