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

// WebhookState is the desired state of a Webhook, as in Acrobat Sign's WebhookInfo.state.
// +kubebuilder:validation:Enum=ACTIVE;INACTIVE
type WebhookState string

// Desired states.
const (
	StateActive   WebhookState = "ACTIVE"
	StateInactive WebhookState = "INACTIVE"
)

// Scope selects which events of the account a Webhook receives.
// +kubebuilder:validation:Enum=ACCOUNT;GROUP;USER;RESOURCE
type Scope string

// Scopes.
const (
	ScopeAccount  Scope = "ACCOUNT"
	ScopeGroup    Scope = "GROUP"
	ScopeUser     Scope = "USER"
	ScopeResource Scope = "RESOURCE"
)

// ResourceType is the type of the single resource a RESOURCE-scope Webhook follows.
// +kubebuilder:validation:Enum=AGREEMENT;WIDGET;MEGASIGN;LIBRARY_DOCUMENT;ENVELOPE
type ResourceType string

// Resource types.
const (
	ResourceAgreement       ResourceType = "AGREEMENT"
	ResourceWidget          ResourceType = "WIDGET"
	ResourceMegaSign        ResourceType = "MEGASIGN"
	ResourceLibraryDocument ResourceType = "LIBRARY_DOCUMENT"
	ResourceEnvelope        ResourceType = "ENVELOPE"
)

// EventName is a subscription event: an Acrobat Sign event name, a family wildcard
// (AGREEMENT_ALL, WIDGET_ALL, MEGASIGN_ALL, LIBRARY_DOCUMENT_ALL, ENVELOPE_ALL) or an envelope-family
// name such as envelopeExpired. At most 64 characters: the ingest API refuses longer event names
// (ingest.MaxEnvelopeEventLength), so a subscription to one could never receive anything.
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=64
// +kubebuilder:validation:XValidation:rule="self in ['AGREEMENT_ALL', 'AGREEMENT_CREATED', 'AGREEMENT_RESTARTED', 'AGREEMENT_SHARED', 'AGREEMENT_UNSHARED', 'AGREEMENT_UNSHARED_AUTO', 'AGREEMENT_MODIFIED', 'AGREEMENT_USER_ACK_AGREEMENT_MODIFIED', 'AGREEMENT_PARTICIPANT_COMPLETED', 'AGREEMENT_PARTICIPANT_REPLACED', 'AGREEMENT_ACTION_REPLACED_SIGNER', 'AGREEMENT_ACTION_DELEGATED', 'AGREEMENT_ACTION_REQUESTED', 'AGREEMENT_ACTION_COMPLETED', 'AGREEMENT_WORKFLOW_COMPLETED', 'AGREEMENT_AUTO_CANCELLED_CONVERSION_PROBLEM', 'AGREEMENT_DOCUMENTS_DELETED', 'AGREEMENT_DELETED', 'AGREEMENT_EMAIL_BOUNCED', 'AGREEMENT_EMAIL_VIEWED', 'AGREEMENT_EMAIL_OTP_AUTHENTICATED', 'AGREEMENT_RECALLED_MAX_SIGNING_EMAIL_OTP_ATTEMPTS', 'AGREEMENT_KBA_AUTHENTICATED', 'AGREEMENT_WEB_IDENTITY_AUTHENTICATED', 'AGREEMENT_REMINDER_SENT', 'AGREEMENT_REMINDER_INITIATED', 'AGREEMENT_OFFLINE_SYNC', 'AGREEMENT_READY_TO_NOTARIZE', 'AGREEMENT_READY_TO_VAULT', 'AGREEMENT_VAULTED', 'AGREEMENT_SIGNER_NAME_CHANGED_BY_SIGNER', 'AGREEMENT_RECALLED', 'AGREEMENT_REJECTED', 'AGREEMENT_EXPIRED', 'AGREEMENT_EXPIRATION_UPDATED', 'AGREEMENT_DOCUMENTS_VIEWED', 'AGREEMENT_DOCUMENTS_VIEWED_PASSWORD_PROTECTED', 'AGREEMENT_UPLOADED_BY_SENDER', 'MEGASIGN_ALL', 'MEGASIGN_CREATED', 'MEGASIGN_RECALLED', 'MEGASIGN_SHARED', 'MEGASIGN_REMINDER_SENT', 'MEGASIGN_REMINDER_INITIATED', 'WIDGET_ALL', 'WIDGET_CREATED', 'WIDGET_MODIFIED', 'WIDGET_SHARED', 'WIDGET_ENABLED', 'WIDGET_DISABLED', 'WIDGET_AUTO_CANCELLED_CONVERSION_PROBLEM', 'LIBRARY_DOCUMENT_ALL', 'LIBRARY_DOCUMENT_CREATED', 'LIBRARY_DOCUMENT_MODIFIED', 'LIBRARY_DOCUMENT_AUTO_CANCELLED_CONVERSION_PROBLEM', 'ENVELOPE_ALL'] || self.matches('^(envelope|participant|recipient)[A-Z][A-Za-z]*$')",messageExpression="'unknown event name' + (self.matches('^[ -~]*$') ? ' \"' + self + '\": ' : ': ') + 'use an Acrobat Sign event (e.g. AGREEMENT_ACTION_COMPLETED), a family wildcard (AGREEMENT_ALL, WIDGET_ALL, MEGASIGN_ALL, LIBRARY_DOCUMENT_ALL, ENVELOPE_ALL) or an envelope-family name (e.g. envelopeExpired) in spec.events'"
type EventName string

// WebhookResource names the one resource a RESOURCE-scope Webhook follows.
type WebhookResource struct {
	// type is the resource's type.
	// +required
	Type ResourceType `json:"type,omitempty"`

	// id is the resource's id (agreementId, widgetId, megaSignId, libraryDocumentId or envelopeId).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	ID string `json:"id,omitempty"`
}

// AgreementConditionalParams selects the optional sections of agreement notifications.
type AgreementConditionalParams struct {
	// includeDetailedInfo adds the agreement's details (signatureType, ccs, createdDate, locale, ...).
	// +optional
	IncludeDetailedInfo bool `json:"includeDetailedInfo,omitempty"`
	// includeParticipantsInfo adds participantSetsInfo.
	// +optional
	IncludeParticipantsInfo bool `json:"includeParticipantsInfo,omitempty"`
	// includeDocumentsInfo adds documentsInfo.
	// +optional
	IncludeDocumentsInfo bool `json:"includeDocumentsInfo,omitempty"`
	// includeSignedDocuments adds the signed PDF (AGREEMENT_WORKFLOW_COMPLETED only).
	// +optional
	IncludeSignedDocuments bool `json:"includeSignedDocuments,omitempty"`
}

// WidgetConditionalParams selects the optional sections of web form (widget) notifications.
type WidgetConditionalParams struct {
	// includeDetailedInfo adds the web form's details.
	// +optional
	IncludeDetailedInfo bool `json:"includeDetailedInfo,omitempty"`
	// includeParticipantsInfo adds participantSetsInfo.
	// +optional
	IncludeParticipantsInfo bool `json:"includeParticipantsInfo,omitempty"`
	// includeDocumentsInfo adds documentsInfo.
	// +optional
	IncludeDocumentsInfo bool `json:"includeDocumentsInfo,omitempty"`
}

// MegaSignConditionalParams selects the optional sections of bulk-send (megaSign) notifications.
type MegaSignConditionalParams struct {
	// includeDetailedInfo adds the bulk send's details.
	// +optional
	IncludeDetailedInfo bool `json:"includeDetailedInfo,omitempty"`
}

// LibraryDocumentConditionalParams selects the optional sections of library document notifications.
type LibraryDocumentConditionalParams struct {
	// includeDetailedInfo adds the library document's details.
	// +optional
	IncludeDetailedInfo bool `json:"includeDetailedInfo,omitempty"`
	// includeDocumentsInfo adds documentsInfo.
	// +optional
	IncludeDocumentsInfo bool `json:"includeDocumentsInfo,omitempty"`
}

// ConditionalParams holds one block per event family that has optional payload sections, as in
// Acrobat Sign's webhookConditionalParams. The envelope family has none: its body is passed through.
type ConditionalParams struct {
	// agreement applies to AGREEMENT_* events.
	// +optional
	Agreement *AgreementConditionalParams `json:"agreement,omitempty"`
	// widget applies to WIDGET_* events.
	// +optional
	Widget *WidgetConditionalParams `json:"widget,omitempty"`
	// megaSign applies to MEGASIGN_* events.
	// +optional
	MegaSign *MegaSignConditionalParams `json:"megaSign,omitempty"`
	// libraryDocument applies to LIBRARY_DOCUMENT_* events.
	// +optional
	LibraryDocument *LibraryDocumentConditionalParams `json:"libraryDocument,omitempty"`
}

// SecretReference names a Secret in the Webhook's own namespace.
type SecretReference struct {
	// name of the Secret.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Name string `json:"name,omitempty"`
}

// WebhookSpec is the subscription a customer declares.
// +kubebuilder:validation:XValidation:rule="self.scope != 'GROUP' || has(self.groupId)",message="spec.groupId is required when scope is GROUP",fieldPath=".groupId"
// +kubebuilder:validation:XValidation:rule="self.scope == 'GROUP' || !has(self.groupId)",message="spec.groupId is only allowed when scope is GROUP",fieldPath=".groupId"
// +kubebuilder:validation:XValidation:rule="self.scope != 'USER' || has(self.userId)",message="spec.userId is required when scope is USER",fieldPath=".userId"
// +kubebuilder:validation:XValidation:rule="self.scope == 'USER' || !has(self.userId)",message="spec.userId is only allowed when scope is USER",fieldPath=".userId"
// +kubebuilder:validation:XValidation:rule="self.scope != 'RESOURCE' || has(self.resource)",message="spec.resource is required when scope is RESOURCE",fieldPath=".resource"
// +kubebuilder:validation:XValidation:rule="self.scope == 'RESOURCE' || !has(self.resource)",message="spec.resource is only allowed when scope is RESOURCE",fieldPath=".resource"
// +kubebuilder:validation:XValidation:rule="self.scope == oldSelf.scope",message="spec.scope is immutable",fieldPath=".scope"
// +kubebuilder:validation:XValidation:rule="has(self.groupId) == has(oldSelf.groupId) && (!has(self.groupId) || self.groupId == oldSelf.groupId)",message="spec.groupId is immutable",fieldPath=".groupId"
// +kubebuilder:validation:XValidation:rule="has(self.userId) == has(oldSelf.userId) && (!has(self.userId) || self.userId == oldSelf.userId)",message="spec.userId is immutable",fieldPath=".userId"
// +kubebuilder:validation:XValidation:rule="has(self.resource) == has(oldSelf.resource) && (!has(self.resource) || self.resource == oldSelf.resource)",message="spec.resource is immutable",fieldPath=".resource"
// +kubebuilder:validation:XValidation:rule="!has(self.conditionalParams) || !has(self.conditionalParams.agreement) || self.events.exists(e, e.startsWith('AGREEMENT_'))",message="spec.conditionalParams.agreement needs an agreement event (AGREEMENT_*) in spec.events",fieldPath=".conditionalParams.agreement"
// +kubebuilder:validation:XValidation:rule="!has(self.conditionalParams) || !has(self.conditionalParams.widget) || self.events.exists(e, e.startsWith('WIDGET_'))",message="spec.conditionalParams.widget needs a web form event (WIDGET_*) in spec.events",fieldPath=".conditionalParams.widget"
// +kubebuilder:validation:XValidation:rule="!has(self.conditionalParams) || !has(self.conditionalParams.megaSign) || self.events.exists(e, e.startsWith('MEGASIGN_'))",message="spec.conditionalParams.megaSign needs a bulk-send event (MEGASIGN_*) in spec.events",fieldPath=".conditionalParams.megaSign"
// +kubebuilder:validation:XValidation:rule="!has(self.conditionalParams) || !has(self.conditionalParams.libraryDocument) || self.events.exists(e, e.startsWith('LIBRARY_DOCUMENT_'))",message="spec.conditionalParams.libraryDocument needs a library document event (LIBRARY_DOCUMENT_*) in spec.events",fieldPath=".conditionalParams.libraryDocument"
type WebhookSpec struct {
	// url is the endpoint notifications are POSTed to and the intent-verification GET is sent to.
	// It must be https; http is accepted only when the operator allows it (in-cluster receivers).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() in ['https', 'http']",message="spec.url must be an absolute http(s) URL, e.g. https://receiver.example.com/hooks"
	// +kubebuilder:validation:XValidation:rule="!isURL(self) || url(self).getHostname() != ''",message="spec.url must name a host"
	// +kubebuilder:validation:XValidation:rule="!self.contains('#')",message="spec.url must not contain a fragment (#...)"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^[a-zA-Z]+://[^/?#]*@')",message="spec.url must not carry credentials (user:password@); use clientCertificateSecretRef for authentication"
	// +kubebuilder:validation:XValidation:rule="!self.matches('[\\\\p{Cc}\\\\p{Cf}\\\\p{Z}]')",message="spec.url must not contain whitespace, control or invisible formatting characters (percent-encode them)"
	URL string `json:"url,omitempty"`

	// state is the desired state: ACTIVE (verify and deliver) or INACTIVE (deliver nothing).
	// +optional
	// +kubebuilder:default=ACTIVE
	State WebhookState `json:"state,omitempty"`

	// scope selects which of the account's events this webhook receives. Immutable.
	// +required
	Scope Scope `json:"scope,omitempty"`

	// groupId is the group whose events a GROUP-scope webhook receives. Immutable.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	GroupID string `json:"groupId,omitempty"`

	// userId is the user whose resources' events a USER-scope webhook receives: those of the
	// agreements (and other resources) this user sent, whoever acted (an event's initiator, as
	// Acrobat Sign's USER level has it); a signer's own USER webhook gets nothing of an agreement
	// another user sent. Immutable.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	UserID string `json:"userId,omitempty"`

	// resource is the one resource a RESOURCE-scope webhook follows. Immutable.
	// +optional
	Resource *WebhookResource `json:"resource,omitempty,omitzero"` //nolint:kubeapilinter // nil is how the code tells "not set"

	// events lists the subscribed events.
	// +required
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=100
	Events []EventName `json:"events,omitempty"`

	// conditionalParams selects optional payload sections per event family.
	// +optional
	ConditionalParams *ConditionalParams `json:"conditionalParams,omitempty"`

	// clientId is the application client id sent as X-AdobeSign-ClientId and expected back as the echo.
	// Defaults to the operator's configured client id.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^[!-~]+$`
	ClientID string `json:"clientId,omitempty"`

	// clientCertificateSecretRef names a kubernetes.io/tls Secret in this namespace whose certificate
	// is presented for two-way TLS on verification and delivery (64 KiB at most in all, the chain
	// with its key).
	// +optional
	ClientCertificateSecretRef *SecretReference `json:"clientCertificateSecretRef,omitempty,omitzero"` //nolint:kubeapilinter // nil is how the code tells "not set"

	// signing adds Standard Webhooks signatures (webhook-id, webhook-timestamp, webhook-signature)
	// to every notification, beyond what Acrobat Sign sends.
	// +optional
	Signing *WebhookSigning `json:"signing,omitempty,omitzero"` //nolint:kubeapilinter // nil is how the code tells "not set"

	// problemNotificationEmails are told about sustained failures and auto-disable.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=10
	ProblemNotificationEmails []Email `json:"problemNotificationEmails,omitempty"`
}

// WebhookSigning configures Standard Webhooks signatures (https://www.standardwebhooks.com): an
// HMAC-SHA256 over "<webhook-id>.<webhook-timestamp>.<body>" with each key, all sent in one
// webhook-signature header so that keys can be rotated without downtime.
type WebhookSigning struct {
	// secretRef names a Secret in this namespace. Every value in it is a signing key in the
	// Standard Webhooks form "whsec_<base64 of 24 to 64 bytes>"; notifications carry one signature
	// per key, in the order of the Secret's keys. To rotate, add the new key, let receivers accept
	// it, then remove the old one. At most 10 keys, and 64 KiB in all. Deliveries are held while
	// the Secret is missing or invalid.
	// +required
	SecretRef SecretReference `json:"secretRef,omitzero"`
}

// Email is an e-mail address, the address alone: no display name or comment (shown to the
// recipient as the sender's words), and nothing in the part before the @ that a mail relay may
// route elsewhere (the percent hack, bang paths, quotes).
// +kubebuilder:validation:MaxLength=254
// +kubebuilder:validation:Pattern=`^[^@\s\x00-\x1f\x7f-\x9f%!/"\\<>(),;:\[\]]+@[^@\s\x00-\x1f\x7f-\x9f"\\<>(),;:\[\]]+\.[^@\s\x00-\x1f\x7f-\x9f"\\<>(),;:\[\]]+$`
type Email string

// ObservedState is the state a Webhook is observed to be in.
// +kubebuilder:validation:Enum=Active;Inactive;Disabled
type ObservedState string

// Observed states.
const (
	// ObservedActive: verified and receiving notifications.
	ObservedActive ObservedState = "Active"
	// ObservedInactive: not receiving notifications (desired INACTIVE, unverified or unbound).
	ObservedInactive ObservedState = "Inactive"
	// ObservedDisabled: auto-disabled by the dispatcher (a notification dropped after 72 h of
	// failures, and no success for 7 days); reactivate to resume.
	ObservedDisabled ObservedState = "Disabled"
)

// WebhookStatus is what hookline observes about a Webhook. The manager writes state,
// observedGeneration, the Ready and Verified conditions and the verification record; the dispatcher
// writes the delivery fields and the Delivering and AutoDisabled conditions.
type WebhookStatus struct {
	// conditions are Ready (the summary), Verified, Reconciling and Stalled (the manager's),
	// Delivering and AutoDisabled (the dispatcher's). No other type is accepted: whoever may write
	// the status (a tenant) could otherwise fill the list with its own, so that the manager's
	// conditions no longer fit and its every status write to the Webhook failed.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:XValidation:rule="self.all(c, c.type in ['Ready', 'Verified', 'Reconciling', 'Stalled', 'Delivering', 'AutoDisabled'])",message="status.conditions may hold only the condition types Ready, Verified, Reconciling, Stalled, Delivering and AutoDisabled"
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`

	// state is Active, Inactive or Disabled.
	// +optional
	State ObservedState `json:"state,omitempty"`

	// observedGeneration is the generation this status describes.
	// +optional
	// +kubebuilder:validation:Minimum=1
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// lastVerifiedTime is the time of the last successful intent verification.
	// +optional
	LastVerifiedTime *metav1.Time `json:"lastVerifiedTime,omitempty"`

	// attestation is the manager's proof of what its last successful verification covered: HMAC-SHA256
	// tags, keyed with the operator's attestation key, over this Webhook's uid, url, effective client id
	// and client certificate, and over its configuration (see spec), which the manager found to be
	// the oldest of its account. The dispatcher delivers only while it covers the current spec, so a
	// status written by anyone else (a forged "Active") or left from before a spec change delivers
	// nothing; a change of url, client id or certificate calls for a new verification, a change of
	// events, scope or resource only for the manager's duplicate check. It also covers
	// lastVerifiedTime (from which the dispatcher counts the auto-disable rule), so that a time
	// written by anyone else does not count.
	// +optional
	// +kubebuilder:validation:MaxLength=160
	Attestation string `json:"attestation,omitempty"` //nolint:kubeapilinter // the manager applies "" to own and clear the field: a pointer or a minimum length would forbid that

	// lastAttemptTime is the time of the last delivery attempt.
	// +optional
	LastAttemptTime *metav1.Time `json:"lastAttemptTime,omitempty"`

	// lastSuccessTime is the time of the last successful delivery.
	// +optional
	LastSuccessTime *metav1.Time `json:"lastSuccessTime,omitempty"`

	// failingSince is the time of the first failure of the current failing streak.
	// +optional
	FailingSince *metav1.Time `json:"failingSince,omitempty"`

	// consecutiveFailures counts failed attempts since the last success.
	// +optional
	ConsecutiveFailures *int64 `json:"consecutiveFailures,omitempty"`

	// pendingNotifications counts queued notifications, the failing head included.
	// +optional
	PendingNotifications *int64 `json:"pendingNotifications,omitempty"`

	// deliveredTotal counts successful deliveries since creation.
	// +optional
	DeliveredTotal *int64 `json:"deliveredTotal,omitempty"`

	// droppedTotal counts notifications dropped (72 h passed, or lost while disabled) since creation.
	// +optional
	DroppedTotal *int64 `json:"droppedTotal,omitempty"`

	// cancelledTotal counts queued notifications cancelled unsent since creation: the webhook went
	// INACTIVE, or its namespace was bound to another account or group, whose notifications are
	// never delivered under the new binding (the Delivering condition's reason BindingChanged
	// says so, until the next delivery attempt).
	// +optional
	CancelledTotal *int64 `json:"cancelledTotal,omitempty"`

	// lastHandledReactivation is the value of the hookline.io/reactivate annotation that the
	// dispatcher last acted on ("sha256:" and its hex SHA-256 digest for a value longer than 256
	// bytes); setting the annotation to a new value reactivates an auto-disabled webhook.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	LastHandledReactivation string `json:"lastHandledReactivation,omitempty"` //nolint:kubeapilinter // "" and unset both mean that no reactivation was handled
}

// ReactivateAnnotation requests the reactivation of an auto-disabled Webhook: set it to a new value
// (a timestamp, a ticket number) in Git or with `hookline reactivate`.
const ReactivateAnnotation = "hookline.io/reactivate"

// Webhook subscribes an HTTPS endpoint to an account's e-signature events, with Acrobat Sign's
// verification, retry, ordering and trimming rules.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=wh;whk,categories=hookline;all
// +kubebuilder:printcolumn:name="State",type=string,JSONPath=`.status.state`
// +kubebuilder:printcolumn:name="Scope",type=string,JSONPath=`.spec.scope`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Last-Success",type=date,JSONPath=`.status.lastSuccessTime`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="URL",type=string,JSONPath=`.spec.url`,priority=1
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Pending",type=integer,JSONPath=`.status.pendingNotifications`,priority=1
type Webhook struct {
	metav1.TypeMeta `json:",inline"`

	// metadata is the object's metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the subscription. Within an account (the namespaces labelled with one
	// hookline.io/account, whatever their group), Webhooks with the same configuration are
	// duplicates, as Acrobat Sign's DUPLICATE_WEBHOOK_CONFIGURATION has it: the same events compared
	// as a set, the same url after normalisation (scheme and host lower-cased, the scheme's default
	// port and a trailing dot of the host removed, an empty path read as "/"; path and query as
	// written), scope, groupId, userId, resource (type and id) and effective client id (clientId, or
	// the operator's default). Of the ACTIVE ones, the oldest (creationTimestamp, then uid) receives
	// notifications; every other one stays Inactive with Ready=False, reason DuplicateConfiguration
	// and a message naming the account (not the oldest, which may be in a namespace its readers
	// cannot see), is not verified and receives nothing. When the oldest is
	// deleted, set INACTIVE or changed so that it no longer matches, the next in line is verified as
	// on creation; an older one set ACTIVE again, or changed to match, takes over from a younger one.
	// +required
	Spec WebhookSpec `json:"spec,omitzero"`

	// status is what hookline observes.
	// +optional
	Status WebhookStatus `json:"status,omitempty,omitzero"` //nolint:kubeapilinter // status is written only through the status subresource, never required
}

// WebhookList is a list of Webhooks.
// +kubebuilder:object:root=true
type WebhookList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Webhook `json:"items"`
}
