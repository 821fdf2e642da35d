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
	"regexp"
	"strings"
)

// AcrobatEvents lists the Acrobat Sign subscription event names hookline accepts, wildcards included.
// The CEL rule on EventName carries the same list; TestEventListMatchesCRD keeps the two in step.
var AcrobatEvents = []string{
	"AGREEMENT_ALL",
	"AGREEMENT_CREATED", "AGREEMENT_RESTARTED", "AGREEMENT_SHARED", "AGREEMENT_UNSHARED",
	"AGREEMENT_UNSHARED_AUTO", "AGREEMENT_MODIFIED", "AGREEMENT_USER_ACK_AGREEMENT_MODIFIED",
	"AGREEMENT_PARTICIPANT_COMPLETED", "AGREEMENT_PARTICIPANT_REPLACED", "AGREEMENT_ACTION_REPLACED_SIGNER",
	"AGREEMENT_ACTION_DELEGATED", "AGREEMENT_ACTION_REQUESTED", "AGREEMENT_ACTION_COMPLETED",
	"AGREEMENT_WORKFLOW_COMPLETED", "AGREEMENT_AUTO_CANCELLED_CONVERSION_PROBLEM", "AGREEMENT_DOCUMENTS_DELETED",
	"AGREEMENT_DELETED", "AGREEMENT_EMAIL_BOUNCED", "AGREEMENT_EMAIL_VIEWED", "AGREEMENT_EMAIL_OTP_AUTHENTICATED",
	"AGREEMENT_RECALLED_MAX_SIGNING_EMAIL_OTP_ATTEMPTS", "AGREEMENT_KBA_AUTHENTICATED",
	"AGREEMENT_WEB_IDENTITY_AUTHENTICATED", "AGREEMENT_REMINDER_SENT", "AGREEMENT_REMINDER_INITIATED",
	"AGREEMENT_OFFLINE_SYNC", "AGREEMENT_READY_TO_NOTARIZE", "AGREEMENT_READY_TO_VAULT", "AGREEMENT_VAULTED",
	"AGREEMENT_SIGNER_NAME_CHANGED_BY_SIGNER", "AGREEMENT_RECALLED", "AGREEMENT_REJECTED", "AGREEMENT_EXPIRED",
	"AGREEMENT_EXPIRATION_UPDATED", "AGREEMENT_DOCUMENTS_VIEWED", "AGREEMENT_DOCUMENTS_VIEWED_PASSWORD_PROTECTED",
	"AGREEMENT_UPLOADED_BY_SENDER",
	"MEGASIGN_ALL",
	"MEGASIGN_CREATED", "MEGASIGN_RECALLED", "MEGASIGN_SHARED", "MEGASIGN_REMINDER_SENT",
	"MEGASIGN_REMINDER_INITIATED",
	"WIDGET_ALL",
	"WIDGET_CREATED", "WIDGET_MODIFIED", "WIDGET_SHARED", "WIDGET_ENABLED", "WIDGET_DISABLED",
	"WIDGET_AUTO_CANCELLED_CONVERSION_PROBLEM",
	"LIBRARY_DOCUMENT_ALL",
	"LIBRARY_DOCUMENT_CREATED", "LIBRARY_DOCUMENT_MODIFIED", "LIBRARY_DOCUMENT_AUTO_CANCELLED_CONVERSION_PROBLEM",
	"ENVELOPE_ALL",
}

// EnvelopeEventPattern matches the envelope-family event names ("envelopeExpired" and its kin).
var EnvelopeEventPattern = regexp.MustCompile(`^(envelope|participant|recipient)[A-Z][A-Za-z]*$`)

// Family is an event family: it decides the payload's resource object and which conditional
// parameters apply.
type Family string

// The event families.
const (
	FamilyAgreement       Family = "AGREEMENT"
	FamilyMegaSign        Family = "MEGASIGN"
	FamilyWidget          Family = "WIDGET"
	FamilyLibraryDocument Family = "LIBRARY_DOCUMENT"
	FamilyEnvelope        Family = "ENVELOPE"
)

var acrobatEventSet = func() map[string]bool {
	m := make(map[string]bool, len(AcrobatEvents))
	for _, e := range AcrobatEvents {
		m[e] = true
	}
	return m
}()

// IsKnownSubscriptionEvent reports whether name may appear in spec.events.
func IsKnownSubscriptionEvent(name string) bool {
	return acrobatEventSet[name] || EnvelopeEventPattern.MatchString(name)
}

// IsWildcard reports whether name is a family wildcard such as AGREEMENT_ALL.
func IsWildcard(name string) bool {
	return acrobatEventSet[name] && strings.HasSuffix(name, "_ALL")
}

// FamilyOf returns the family of an event or subscription name, and false when it belongs to none.
func FamilyOf(name string) (Family, bool) {
	if EnvelopeEventPattern.MatchString(name) || name == "ENVELOPE_ALL" {
		return FamilyEnvelope, true
	}
	for _, f := range []Family{FamilyLibraryDocument, FamilyAgreement, FamilyMegaSign, FamilyWidget} {
		if strings.HasPrefix(name, string(f)+"_") {
			return f, true
		}
	}
	return "", false
}

// SubscriptionMatches reports whether an event named event is selected by the subscription list subs,
// honouring the family wildcards.
func SubscriptionMatches(subs []EventName, event string) bool {
	fam, ok := FamilyOf(event)
	for _, s := range subs {
		if string(s) == event {
			return true
		}
		if ok && IsWildcard(string(s)) && strings.TrimSuffix(string(s), "_ALL") == string(fam) {
			return true
		}
	}
	return false
}
