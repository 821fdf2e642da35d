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

// The status contract: the condition types, reasons and field managers of hookline's objects,
// defined once here so that the manager, the dispatcher, the CLI and the console cannot drift apart
// (renaming one breaks the build of every reader instead of silently breaking a predicate).

// Field managers of server-side-apply status writes. Each program owns its own fields of a
// Webhook's status, so that neither overwrites the other.
const (
	// FieldManagerManager owns the verification fields: state, observedGeneration,
	// lastVerifiedTime, attestation and the Ready, Verified, Reconciling and Stalled conditions.
	FieldManagerManager = "hookline-manager"
	// FieldManagerDispatcher owns the delivery fields (counters, times) and the Delivering and
	// AutoDisabled conditions of Webhooks, and the status of WebhookReplays.
	FieldManagerDispatcher = "hookline-dispatcher"
)

// Condition types. Reconciling and Stalled follow the kstatus convention that Argo CD and Flux
// health checks read: Reconciling=True means "in progress", Stalled=True means "failed until
// someone acts".
const (
	// ConditionReady summarises a Webhook (Active and verified, or INACTIVE as requested).
	ConditionReady = "Ready"
	// ConditionVerified is the outcome of the last intent verification.
	ConditionVerified = "Verified"
	// ConditionReconciling is True while a verification is pending or being retried.
	ConditionReconciling = "Reconciling"
	// ConditionStalled is True when nothing will change until someone acts (auto-disabled,
	// unbound namespace, a spec that can never verify).
	ConditionStalled = "Stalled"
	// ConditionDelivering is the dispatcher's view of deliveries (failing, held, rebound).
	ConditionDelivering = "Delivering"
	// ConditionAutoDisabled is True when a drop found no success within the disable period.
	ConditionAutoDisabled = "AutoDisabled"
)

// Reasons the manager sets, besides the verification failure reasons of internal/verify.
const (
	ReasonActive            = "Active"
	ReasonInactive          = "Inactive"
	ReasonNamespaceNotBound = "NamespaceNotBound"
	// ReasonGroupOutsideNamespace: a GROUP Webhook names another group than the one its namespace
	// is bound to (group administrators operate only within their group).
	ReasonGroupOutsideNamespace     = "GroupOutsideNamespace"
	ReasonVerificationThrottled     = "VerificationThrottled"
	ReasonClientIDMissing           = "ClientIdMissing"
	ReasonClientCertificateNotFound = "ClientCertificateNotFound"
	ReasonClientCertificateInvalid  = "ClientCertificateInvalid"
	// ReasonAutoDisabled: the dispatcher auto-disabled the webhook (Ready and Delivering both
	// carry it).
	ReasonAutoDisabled = "AutoDisabled"
	// ReasonDuplicateConfiguration: an older ACTIVE Webhook of the same account has the same
	// configuration (Acrobat Sign's DUPLICATE_WEBHOOK_CONFIGURATION); the message names it.
	ReasonDuplicateConfiguration = "DuplicateConfiguration"
	// ReasonStatusWriteFailed: the API server refused the status the manager computed, so it wrote
	// a minimal Inactive one instead.
	ReasonStatusWriteFailed = "StatusWriteFailed"
)

// Reasons the dispatcher sets.
const (
	ReasonNoFailures      = "NoFailures"
	ReasonNoRecentSuccess = "NoRecentSuccess"
	ReasonEnabled         = "Enabled"
	ReasonReactivated     = "Reactivated"
	// ReasonClientCertificateUnavailable and ReasonSigningSecretUnavailable hold deliveries of an
	// Active webhook until its Secret is fixed.
	ReasonClientCertificateUnavailable = "ClientCertificateUnavailable"
	ReasonSigningSecretUnavailable     = "SigningSecretUnavailable"
	// ReasonBindingChanged says that the namespace was bound to another account or group and
	// what was queued under the old binding was cancelled.
	ReasonBindingChanged = "BindingChanged"
)

// Reasons of WebhookReplay conditions (the dispatcher runs replays). Reconciling is True while a
// replay waits or runs, Ready is True once it completed, Stalled is True when it cannot finish.
const (
	// ReasonWebhookNotActive: the replay waits until its Webhook is Active (verified, not
	// INACTIVE, not auto-disabled).
	ReasonWebhookNotActive = "WebhookNotActive"
	// ReasonWebhookNotFound: the Webhook does not exist (yet); the replay waits for it.
	ReasonWebhookNotFound = "WebhookNotFound"
	// ReasonWebhookDeleted: the Webhook was deleted (or replaced by another of the same name)
	// after the replay started: it cannot finish (Stalled).
	ReasonWebhookDeleted = "WebhookDeleted"
	// ReasonDeliveryLogDisabled: the dispatcher runs without its delivery log, which replays
	// select from (Stalled).
	ReasonDeliveryLogDisabled = "DeliveryLogDisabled"
	// ReasonSelectionTooLarge: the replay's selection holds more notifications at once than one
	// replay may (--replay-max-selection); nothing was queued (Stalled).
	ReasonSelectionTooLarge = "SelectionTooLarge"
	// ReasonQueued: the replay waits for its turn: as many replays as the dispatcher runs at once
	// in one namespace (--replay-max-per-namespace) run there, or wait ahead of it.
	ReasonQueued = "Queued"
	// ReasonQueueing: the selection is being queued again.
	ReasonQueueing = "Queueing"
	// ReasonDelivering: everything selected is queued; the replay waits for the deliveries.
	ReasonDelivering = "Delivering"
	// ReasonCompleted: every queued notification was delivered or failed.
	ReasonCompleted = "Completed"
	// ReasonRunning is Stalled's reason (False) while the replay can finish.
	ReasonRunning = "Running"
)
