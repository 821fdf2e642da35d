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

// Package cachetrim keeps what the manager's and the dispatcher's informers hold of the objects
// tenants write to what hookline reads of them. A tenant may grow each of its Webhooks, replays and
// its namespace to the API server's limit of about 1.5 MiB with labels or finalizers (no bound on
// their number), annotations and the managedFields recording them, while a ResourceQuota bounds only how many it
// has: a few hundred such objects filled the shared manager's memory, and every restart's first
// list filled it again. hookline reads only a few labels and annotations of its own, so the rest is
// dropped as objects enter the cache: every other one, of its prefix (hookline.io/) too, which a
// tenant may use as freely as any other.
package cachetrim

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/internal/safetext"
	"github.com/hookline/hookline/internal/tenancy"
)

// Labels and Annotations are the keys hookline reads: a namespace's binding to an account (and
// group), and a Webhook's requests to be reactivated or verified again (any change of verify-at
// wakes the manager).
var (
	Labels      = []string{tenancy.AccountLabel, tenancy.GroupLabel}
	Annotations = []string{hooklinev1.ReactivateAnnotation, VerifyAtAnnotation}
)

// VerifyAtAnnotation is the annotation whose change makes the manager verify a Webhook at once
// (docs/troubleshooting.md): its value is not read.
const VerifyAtAnnotation = "hookline.io/verify-at"

// Transform trims Webhooks, WebhookReplays and objects watched as metadata (namespaces, whose
// labels bind them to an account): managedFields, finalizers and ownerReferences go, every
// label and annotation but Labels and Annotations, and of conditions' messages all but MaxMessage
// bytes. An annotation value is kept as hooklinev1.ReactivationToken keeps it (256
// bytes at most; a longer one by its digest), which is all any reader of it compares. Other
// objects pass unchanged. It is a cache.TransformFunc for controller-runtime's cache.Options.
func Transform(obj any) (any, error) {
	switch o := obj.(type) {
	case *hooklinev1.Webhook:
		trim(o)
		clipMessages(o.Status.Conditions)
	case *hooklinev1.WebhookReplay:
		trim(o)
		clipMessages(o.Status.Conditions)
	case *metav1.PartialObjectMetadata:
		trim(o)
	}
	return obj, nil
}

// MaxMessage bounds a condition's message as cached: far beyond any hookline writes (a receiver's
// text is clipped to 256 bytes in them), far below the 32 KiB the API server accepts from whoever
// may write the status (a tenant).
const MaxMessage = 4 << 10

func clipMessages(cs []metav1.Condition) {
	for i := range cs {
		cs[i].Message = safetext.Clip(cs[i].Message, MaxMessage)
	}
}

var _ cache.TransformFunc = Transform

func trim(o metav1.Object) {
	o.SetManagedFields(nil)
	o.SetFinalizers(nil)      // no bound on their number either, and nothing of hookline reads them
	o.SetOwnerReferences(nil) // the same
	o.SetLabels(keep(o.GetLabels(), Labels, func(v string) string { return v }))
	o.SetAnnotations(keep(o.GetAnnotations(), Annotations, hooklinev1.ReactivationToken))
}

// keep returns the entries of m under keys, their values through value; nil when none.
func keep(m map[string]string, keys []string, value func(string) string) map[string]string {
	var out map[string]string
	for _, k := range keys {
		v, ok := m[k]
		if !ok {
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		out[k] = value(v)
	}
	return out
}
