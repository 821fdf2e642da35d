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

package tenancy

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/event"
)

func TestBindingChangedPassesOnlyBindingChanges(t *testing.T) {
	ns := func(labels map[string]string) *metav1.PartialObjectMetadata {
		return &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Name: "team-a", Labels: labels}}
	}
	bound := map[string]string{AccountLabel: "acc-1", "team": "blue"}
	for name, tc := range map[string]struct {
		old, new map[string]string
		want     bool
	}{
		"another label set":         {bound, map[string]string{AccountLabel: "acc-1", "team": "red"}, false},
		"another label removed":     {bound, map[string]string{AccountLabel: "acc-1"}, false},
		"an unbound one relabelled": {map[string]string{"team": "blue"}, map[string]string{"team": "red"}, false},
		"account changed":           {bound, map[string]string{AccountLabel: "acc-2", "team": "blue"}, true},
		"group set":                 {bound, map[string]string{AccountLabel: "acc-1", GroupLabel: "grp-1", "team": "blue"}, true},
		"unbound":                   {bound, map[string]string{"team": "blue"}, true},
		"bound":                     {map[string]string{"team": "blue"}, bound, true},
	} {
		t.Run(name, func(t *testing.T) {
			if got := (BindingChanged{}).Update(event.UpdateEvent{ObjectOld: ns(tc.old), ObjectNew: ns(tc.new)}); got != tc.want {
				t.Fatalf("Update = %v, want %v", got, tc.want)
			}
		})
	}
	if !(BindingChanged{}).Create(event.CreateEvent{Object: ns(bound)}) || !(BindingChanged{}).Delete(event.DeleteEvent{Object: ns(bound)}) {
		t.Fatal("creations and deletions must pass")
	}
}
