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

// Package statusapply is how every hookline program writes status: conditions whose
// lastTransitionTime moves only when their status does, applied with server-side apply under the
// program's own field manager and pinned to the object's uid.
package statusapply

import (
	"context"
	"encoding/json"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Conditions stamps conds with generation and a transition time: now, or the time in old when the
// condition of that type already had the same status (a reason or message change is no
// transition).
func Conditions(old []metav1.Condition, generation int64, now metav1.Time, conds ...metav1.Condition) []metav1.Condition {
	out := make([]metav1.Condition, 0, len(conds))
	for _, c := range conds {
		c.ObservedGeneration = generation
		c.LastTransitionTime = now
		if prev := meta.FindStatusCondition(old, c.Type); prev != nil && prev.Status == c.Status {
			c.LastTransitionTime = prev.LastTransitionTime
		}
		out = append(out, c)
	}
	return out
}

// Apply applies status (any value that marshals to the status fields the caller owns) to obj's
// status subresource as fieldManager, forcing ownership of those fields. The apply names obj's
// uid, so that it fails instead of landing on a new object created under the same name.
func Apply(ctx context.Context, c client.Client, gvk schema.GroupVersionKind, obj client.Object, status any, fieldManager string) error {
	_, err := ApplyVersion(ctx, c, gvk, obj, status, fieldManager)
	return err
}

// ApplyVersion is Apply, and returns the resourceVersion the object has after the apply.
func ApplyVersion(ctx context.Context, c client.Client, gvk schema.GroupVersionKind, obj client.Object, status any, fieldManager string) (string, error) {
	raw, err := json.Marshal(map[string]any{
		"apiVersion": gvk.GroupVersion().String(),
		"kind":       gvk.Kind,
		"metadata":   map[string]any{"name": obj.GetName(), "namespace": obj.GetNamespace(), "uid": string(obj.GetUID())},
		"status":     status,
	})
	if err != nil {
		return "", err
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(raw); err != nil {
		return "", err
	}
	// The answer, the whole object as applied, is decoded into u.
	if err := c.Status().Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(fieldManager), client.ForceOwnership); err != nil {
		return "", err
	}
	return u.GetResourceVersion(), nil
}
