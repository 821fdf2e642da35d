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
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/internal/statusapply"
)

// managerStatus is the part of WebhookStatus the manager owns, rebuilt on every reconcile.
type managerStatus struct {
	verified         metav1.Condition
	lastVerifiedTime *metav1.Time
	// attestation is set only when a verification covers the current endpoint (see package attest).
	attestation string
	// permanent marks a verification outcome that retrying cannot change.
	permanent bool
}

func (m *managerStatus) setVerified(status metav1.ConditionStatus, reason, message string) {
	m.verified = metav1.Condition{Type: hooklinev1.ConditionVerified, Status: status, Reason: reason, Message: message}
	m.permanent = false
}

// setPermanentFailure records a verification failure that needs a change of spec or settings.
func (m *managerStatus) setPermanentFailure(reason, message string) {
	m.setVerified(metav1.ConditionFalse, reason, message)
	m.permanent = true
}

// progress derives the kstatus conditions from the summary: Stalled when only a person can move the
// webhook on, Reconciling while hookline is still working towards Active.
func progress(state hooklinev1.ObservedState, ready metav1.Condition, m *managerStatus) (reconciling, stalled metav1.Condition) {
	reconciling = metav1.Condition{Type: hooklinev1.ConditionReconciling, Status: metav1.ConditionFalse, Reason: ready.Reason}
	stalled = metav1.Condition{Type: hooklinev1.ConditionStalled, Status: metav1.ConditionFalse, Reason: ready.Reason}
	switch {
	case ready.Status == metav1.ConditionTrue:
		// Active, or INACTIVE as desired: nothing to do.
	case state == hooklinev1.ObservedDisabled, ready.Reason == hooklinev1.ReasonNamespaceNotBound, m.permanent:
		stalled.Status, stalled.Message = metav1.ConditionTrue, ready.Message
	default:
		reconciling.Status, reconciling.Message = metav1.ConditionTrue, ready.Message
	}
	return reconciling, stalled
}

// summarize derives the observed state and the Ready condition from the verification outcome and
// the dispatcher's AutoDisabled condition.
func summarize(wh *hooklinev1.Webhook, m *managerStatus) (hooklinev1.ObservedState, metav1.Condition) {
	ready := metav1.Condition{Type: hooklinev1.ConditionReady}
	if disabled := meta.FindStatusCondition(wh.Status.Conditions, hooklinev1.ConditionAutoDisabled); disabled != nil &&
		disabled.Status == metav1.ConditionTrue && wh.Spec.State == hooklinev1.StateActive {
		ready.Status, ready.Reason, ready.Message = metav1.ConditionFalse, hooklinev1.ReasonAutoDisabled, disabled.Message
		return hooklinev1.ObservedDisabled, ready
	}
	if m.verified.Reason == hooklinev1.ReasonInactive {
		// INACTIVE is a desired state: reached, so Ready (GitOps tools then report it healthy); the
		// State column says Inactive.
		ready.Status, ready.Reason, ready.Message = metav1.ConditionTrue, hooklinev1.ReasonInactive, "webhook is INACTIVE as requested and receives nothing"
		return hooklinev1.ObservedInactive, ready
	}
	switch m.verified.Status {
	case metav1.ConditionTrue:
		ready.Status, ready.Reason, ready.Message = metav1.ConditionTrue, hooklinev1.ReasonActive, "webhook is verified and receives notifications"
		return hooklinev1.ObservedActive, ready
	case metav1.ConditionFalse:
		ready.Status = metav1.ConditionFalse
	default:
		ready.Status = metav1.ConditionUnknown
	}
	if m.verified.Reason == hooklinev1.ReasonNamespaceNotBound {
		ready.Status = metav1.ConditionFalse
	}
	ready.Reason, ready.Message = m.verified.Reason, m.verified.Message
	return hooklinev1.ObservedInactive, ready
}

// desiredStatus returns the manager-owned status fields of wh as they should be written, keeping
// lastTransitionTime of conditions whose status did not change.
func desiredStatus(wh *hooklinev1.Webhook, m *managerStatus, observedGeneration int64, now metav1.Time) hooklinev1.WebhookStatus {
	state, ready := summarize(wh, m)
	reconciling, stalled := progress(state, ready, m)
	out := hooklinev1.WebhookStatus{
		State:              state,
		ObservedGeneration: observedGeneration,
		LastVerifiedTime:   m.lastVerifiedTime,
		Attestation:        m.attestation,
	}
	out.Conditions = statusapply.Conditions(wh.Status.Conditions, wh.Generation, now, m.verified, ready, reconciling, stalled)
	return out
}

// fallbackStatus is the manager's status of wh when the API server refused the one it computed:
// Inactive for the current generation, not verified, with fixed texts (the refused status may have
// been refused for a receiver's text) and no attestation, so that nothing is delivered to a spec the
// manager could not report on.
func fallbackStatus(wh *hooklinev1.Webhook, now metav1.Time) hooklinev1.WebhookStatus {
	const message = "the manager could not write the outcome of this webhook's verification to its status " +
		"(see the manager's log); it receives nothing until a status write succeeds"
	m := &managerStatus{lastVerifiedTime: wh.Status.LastVerifiedTime}
	m.setVerified(metav1.ConditionFalse, hooklinev1.ReasonStatusWriteFailed, message)
	return desiredStatus(wh, m, wh.Generation, now)
}

// statusUpToDate reports whether wh already carries want's manager-owned fields, so that an
// unchanged observation costs no write.
func statusUpToDate(wh *hooklinev1.Webhook, want hooklinev1.WebhookStatus) bool {
	have := wh.Status
	if have.State != want.State || have.ObservedGeneration != want.ObservedGeneration ||
		have.Attestation != want.Attestation || !timesEqual(have.LastVerifiedTime, want.LastVerifiedTime) {
		return false
	}
	for _, c := range want.Conditions {
		old := meta.FindStatusCondition(have.Conditions, c.Type)
		if old == nil || !equality.Semantic.DeepEqual(*old, c) {
			return false
		}
	}
	return true
}

func timesEqual(a, b *metav1.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Unix() == b.Unix()
}
