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
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
)

func TestSummarize(t *testing.T) {
	active := &hooklinev1.Webhook{Spec: hooklinev1.WebhookSpec{State: hooklinev1.StateActive}}
	disabled := active.DeepCopy()
	disabled.Status.Conditions = []metav1.Condition{{Type: hooklinev1.ConditionAutoDisabled, Status: metav1.ConditionTrue, Reason: "NoSuccessIn7Days", Message: "dropped"}}
	cases := []struct {
		name       string
		wh         *hooklinev1.Webhook
		verified   metav1.ConditionStatus
		reason     string
		wantState  hooklinev1.ObservedState
		wantReady  metav1.ConditionStatus
		wantReason string
	}{
		{"verified", active, metav1.ConditionTrue, "Verified", hooklinev1.ObservedActive, metav1.ConditionTrue, hooklinev1.ReasonActive},
		{"failed", active, metav1.ConditionFalse, "EndpointTimeout", hooklinev1.ObservedInactive, metav1.ConditionFalse, "EndpointTimeout"},
		{"throttled", active, metav1.ConditionUnknown, hooklinev1.ReasonVerificationThrottled, hooklinev1.ObservedInactive, metav1.ConditionUnknown, hooklinev1.ReasonVerificationThrottled},
		{"unbound", active, metav1.ConditionUnknown, hooklinev1.ReasonNamespaceNotBound, hooklinev1.ObservedInactive, metav1.ConditionFalse, hooklinev1.ReasonNamespaceNotBound},
		{"inactive", active, metav1.ConditionUnknown, hooklinev1.ReasonInactive, hooklinev1.ObservedInactive, metav1.ConditionTrue, hooklinev1.ReasonInactive},
		{"auto-disabled", disabled, metav1.ConditionTrue, "Verified", hooklinev1.ObservedDisabled, metav1.ConditionFalse, hooklinev1.ReasonAutoDisabled},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := &managerStatus{}
			m.setVerified(tc.verified, tc.reason, "")
			state, ready := summarize(tc.wh, m)
			if state != tc.wantState || ready.Status != tc.wantReady || ready.Reason != tc.wantReason {
				t.Fatalf("got %s, Ready %s/%s; want %s, Ready %s/%s", state, ready.Status, ready.Reason, tc.wantState, tc.wantReady, tc.wantReason)
			}
		})
	}
}

func TestDesiredStatusKeepsTransitionTimeAndSkipsNoOps(t *testing.T) {
	wh := &hooklinev1.Webhook{Spec: hooklinev1.WebhookSpec{State: hooklinev1.StateActive}}
	wh.Generation = 3
	m := &managerStatus{}
	m.setVerified(metav1.ConditionTrue, "Verified", "ok")
	t0 := metav1.NewTime(time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC))
	first := desiredStatus(wh, m, 3, t0)
	if statusUpToDate(wh, first) {
		t.Fatal("empty status reported up to date")
	}
	wh.Status = first
	later := desiredStatus(wh, m, 3, metav1.NewTime(t0.Add(time.Hour)))
	if !statusUpToDate(wh, later) {
		t.Fatal("an unchanged observation must not call for a write")
	}
	for _, c := range later.Conditions {
		if !c.LastTransitionTime.Equal(&t0) {
			t.Errorf("%s lastTransitionTime moved to %s without a status change", c.Type, c.LastTransitionTime)
		}
	}
	m.setVerified(metav1.ConditionFalse, "EndpointTimeout", "slow")
	changed := desiredStatus(wh, m, 3, metav1.NewTime(t0.Add(time.Hour)))
	if statusUpToDate(wh, changed) {
		t.Fatal("a changed condition reported up to date")
	}
}
