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
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/hookline/hookline/internal/secretaccess"
)

// secretReader reads Secrets through an uncached reader (the dispatcher may only get them), but
// answers repeated reads of one Secret within maxAge from the last answer: webhooks that share a
// client certificate or signing Secret then cost one GET per resync, not one each. Other kinds of
// objects pass through.
type secretReader struct {
	client.Reader
	clock  clock.PassiveClock
	maxAge time.Duration

	mu    sync.Mutex
	last  map[types.NamespacedName]secretAnswer
	swept time.Time
}

type secretAnswer struct {
	at     time.Time
	secret *corev1.Secret
	err    error
}

// Get implements client.Reader.
func (r *secretReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	out, ok := obj.(*corev1.Secret)
	if !ok || r.maxAge <= 0 {
		return r.Reader.Get(ctx, key, obj, opts...)
	}
	now := r.clock.Now()
	r.mu.Lock()
	a, hit := r.last[key]
	r.mu.Unlock()
	if !hit || now.Sub(a.at) >= r.maxAge {
		fresh := &corev1.Secret{}
		a = secretAnswer{at: now, err: r.Reader.Get(ctx, key, fresh, opts...)}
		if a.err == nil {
			// One that is too large is kept as its error only (secretaccess.Get would refuse it):
			// a tenant's Secrets of 1 MiB each, kept here for maxAge, would add up.
			a.err = secretaccess.CheckSize(fresh)
		}
		if a.err == nil {
			a.secret = fresh
		}
		r.mu.Lock()
		if r.last == nil {
			r.last = map[types.NamespacedName]secretAnswer{}
		}
		r.last[key] = a
		r.forgetOldLocked(now)
		r.mu.Unlock()
	}
	if a.err != nil {
		return a.err
	}
	a.secret.DeepCopyInto(out)
	return nil
}

// forgetOldLocked drops answers too old to be used, so that deleted Secrets do not pile up; at
// most once per maxAge, so that a miss costs no sweep of every Secret.
func (r *secretReader) forgetOldLocked(now time.Time) {
	if now.Sub(r.swept) < r.maxAge {
		return
	}
	r.swept = now
	for k, a := range r.last {
		if now.Sub(a.at) >= r.maxAge {
			delete(r.last, k)
		}
	}
}
