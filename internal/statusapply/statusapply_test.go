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

package statusapply

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestConditionsMoveTransitionTimeOnlyWithStatus(t *testing.T) {
	then := metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	now := metav1.NewTime(then.Add(time.Hour))
	old := []metav1.Condition{
		{Type: "Ready", Status: metav1.ConditionTrue, Reason: "Active", LastTransitionTime: then},
		{Type: "Delivering", Status: metav1.ConditionTrue, Reason: "NoFailures", LastTransitionTime: then},
	}
	got := Conditions(old, 7, now,
		metav1.Condition{Type: "Ready", Status: metav1.ConditionTrue, Reason: "Other", Message: "reason changed"},
		metav1.Condition{Type: "Delivering", Status: metav1.ConditionFalse, Reason: "Timeout"},
		metav1.Condition{Type: "AutoDisabled", Status: metav1.ConditionFalse, Reason: "Enabled"},
	)
	want := []metav1.Time{then, now, now}
	for i, c := range got {
		if !c.LastTransitionTime.Equal(&want[i]) || c.ObservedGeneration != 7 {
			t.Errorf("%s: lastTransitionTime %v generation %d, want %v and 7", c.Type, c.LastTransitionTime, c.ObservedGeneration, want[i])
		}
	}
	if got[0].Reason != "Other" || got[0].Message != "reason changed" {
		t.Errorf("reason and message must be the new ones: %+v", got[0])
	}
}
