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

package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ReplayState is a notification state a WebhookReplay selects by.
// +kubebuilder:validation:Enum=dropped;lost;cancelled;delivered;failed
type ReplayState string

// Replay states. ReplayFailed stands for dropped, lost and cancelled together: every notification
// that was not delivered and will not be tried again.
const (
	ReplayDropped   ReplayState = "dropped"
	ReplayLost      ReplayState = "lost"
	ReplayCancelled ReplayState = "cancelled"
	ReplayDelivered ReplayState = "delivered"
	ReplayFailed    ReplayState = "failed"
)

// NotificationID is a webhookNotificationId, as receivers see it and the delivery log shows it.
// +kubebuilder:validation:Pattern=`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`
// +kubebuilder:validation:MaxLength=36
type NotificationID string

// WebhookReplaySpec selects the notifications of one Webhook to deliver again: by id, or by the
// state they ended in within a time range. The spec is immutable: a replay is a one-off job;
// create another to replay something else.
// +kubebuilder:validation:XValidation:rule="has(self.notificationIds) || has(self.since)",message="spec.notificationIds or spec.since is required: select notifications by id, or by state within a time range"
// +kubebuilder:validation:XValidation:rule="!(has(self.notificationIds) && has(self.since))",message="spec.notificationIds and spec.since are mutually exclusive: select by id or by time, not both"
// +kubebuilder:validation:XValidation:rule="!has(self.until) || has(self.since)",message="spec.until needs spec.since",fieldPath=".until"
// +kubebuilder:validation:XValidation:rule="!has(self.states) || has(self.since)",message="spec.states selects by time: it needs spec.since",fieldPath=".states"
// +kubebuilder:validation:XValidation:rule="!has(self.until) || !has(self.since) || self.until > self.since",message="spec.until must be after spec.since",fieldPath=".until"
// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec is immutable: create another WebhookReplay to replay something else"
type WebhookReplaySpec struct {
	// webhookName names the Webhook, in this WebhookReplay's namespace, whose notifications are
	// replayed. A replay can only name a Webhook of its own namespace.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	WebhookName string `json:"webhookName,omitempty"`

	// notificationIds selects notifications by their webhookNotificationId. Ids not found in the
	// delivery log, and notifications still queued, are listed in status.unavailable.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=1000
	NotificationIDs []NotificationID `json:"notificationIds,omitempty"`

	// since selects the notifications whose event was accepted at or after this time, with the
	// states in states.
	// +optional
	Since *metav1.Time `json:"since,omitempty"`

	// until (with since) selects only the notifications whose event was accepted before this time;
	// without it, up to the replay's start.
	// +optional
	Until *metav1.Time `json:"until,omitempty"`

	// states (with since) selects the notifications whose current state is one of these: dropped
	// (given up after 72 hours, or dropped with the queue of an auto-disabled webhook), lost
	// (never queued: the webhook was auto-disabled when the event came; replaying them recovers
	// every event still inside the event log's retention), cancelled (removed unsent: INACTIVE or
	// a change of the namespace's binding), delivered, or failed (dropped, lost and cancelled).
	// Defaults to [failed].
	// +optional
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=5
	States []ReplayState `json:"states,omitempty"`
}

// WebhookReplayStatus reports a replay's progress. The dispatcher writes it.
type WebhookReplayStatus struct {
	// conditions are Ready (True, reason Completed, once every queued notification is delivered or
	// failed), Reconciling (True while waiting for the Webhook or for the deliveries), Stalled
	// (True when the replay cannot finish: its Webhook was deleted; its selection holds more
	// notifications than one replay may, reason SelectionTooLarge, before anything was queued; or,
	// until a dispatcher with its delivery log runs it, reason DeliveryLogDisabled). kstatus, Argo
	// CD and Flux read them.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	// +kubebuilder:validation:MaxItems=8
	// +kubebuilder:validation:XValidation:rule="self.all(c, c.type in ['Ready', 'Reconciling', 'Stalled'])",message="status.conditions may hold only the condition types Ready, Reconciling and Stalled"
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`

	// observedGeneration is the generation this status describes.
	// +optional
	// +kubebuilder:validation:Minimum=1
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// webhookUID is the uid of the Webhook the replay runs for, fixed when it starts: a Webhook
	// deleted and created again under the same name is another webhook.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	WebhookUID string `json:"webhookUID,omitempty"`

	// matched counts the notifications the selection found.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Matched int64 `json:"matched"` //nolint:kubeapilinter // counters are always written, 0 included: progress starts at 0

	// queued counts the notifications queued again (at the tail of the webhook's queue, in their
	// original order).
	// +optional
	// +kubebuilder:validation:Minimum=0
	Queued int64 `json:"queued"` //nolint:kubeapilinter // counters are always written, 0 included: progress starts at 0

	// delivered counts the queued notifications delivered.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Delivered int64 `json:"delivered"` //nolint:kubeapilinter // counters are always written, 0 included: progress starts at 0

	// failed counts the queued notifications that were not delivered after all (dropped after 72
	// hours of failures, or cancelled).
	// +optional
	// +kubebuilder:validation:Minimum=0
	Failed int64 `json:"failed"` //nolint:kubeapilinter // counters are always written, 0 included: progress starts at 0

	// unavailable says which part of the selection could not be replayed and why: notification
	// ids not in the delivery log, events beyond the event log's retention, notifications still
	// queued.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=20
	// +kubebuilder:validation:items:MaxLength=1024
	Unavailable []string `json:"unavailable,omitempty"`

	// startedAt is when the replay started selecting (the Webhook was Active).
	// +optional
	StartedAt *metav1.Time `json:"startedAt,omitempty"`

	// completedAt is when every queued notification was delivered or failed.
	// +optional
	CompletedAt *metav1.Time `json:"completedAt,omitempty"`
}

// WebhookReplay delivers again notifications of one Webhook of its namespace, like a Job: chosen
// by id, or "every notification in state failed between T1 and T2" (recovering what was lost
// while the Webhook was disabled). Replayed notifications keep their webhookNotificationId (so
// receivers dedupe them), enter the Webhook's queue at its tail in their original order, and obey
// the per-account cap and the retry rules. A replay for a Webhook that is not Active waits for it.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=whr,categories=hookline;all
// +kubebuilder:selectablefield:JSONPath=`.spec.webhookName`
// +kubebuilder:printcolumn:name="Webhook",type=string,JSONPath=`.spec.webhookName`
// +kubebuilder:printcolumn:name="Matched",type=integer,JSONPath=`.status.matched`
// +kubebuilder:printcolumn:name="Delivered",type=integer,JSONPath=`.status.delivered`
// +kubebuilder:printcolumn:name="Failed",type=integer,JSONPath=`.status.failed`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Queued",type=integer,JSONPath=`.status.queued`,priority=1
type WebhookReplay struct {
	metav1.TypeMeta `json:",inline"`

	// metadata is the object's metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec selects what to replay. Immutable.
	// +required
	Spec WebhookReplaySpec `json:"spec,omitzero"`

	// status reports the progress.
	// +optional
	Status WebhookReplayStatus `json:"status,omitempty,omitzero"` //nolint:kubeapilinter // status is written only through the status subresource, never required
}

// WebhookReplayList is a list of WebhookReplays.
// +kubebuilder:object:root=true
type WebhookReplayList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []WebhookReplay `json:"items"`
}
