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

package dispatcher

import (
	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/dispatcher/deliver"
	"github.com/hookline/hookline/internal/attest"
	"github.com/hookline/hookline/internal/clientcert"
	"github.com/hookline/hookline/internal/webhookkey"
)

// Reasons of the Delivering condition when the manager's attestation does not cover what would be
// delivered.
const (
	// ReasonVerificationNotAttested: status says Active, but its attestation does not cover the
	// current url, client id and configuration (a status written by someone other than the
	// manager, or one left from before a spec change): nothing is queued or sent.
	ReasonVerificationNotAttested = "VerificationNotAttested"
	// ReasonClientCertificateNotVerified: the url and client id are verified, but not with the
	// client certificate now in the Secret (rotated): notifications are queued, and sent once the
	// manager has verified the endpoint with it.
	ReasonClientCertificateNotVerified = "ClientCertificateNotVerified"
)

// verifiedActive reports whether wh may be routed to: its status says Active and the manager's
// attestation covers cfg's uid, url and client id and the configuration key of wh's spec (the
// manager found no older Webhook of the account with the same configuration). The status alone
// proves nothing, since whoever may patch webhooks/status can write it; only the manager holds the
// key. A change of events, scope or resource voids the attestation until the manager has checked
// the new configuration for duplicates, so a webhook edited into a duplicate of an older one is
// not routed to from the moment the dispatcher sees the edit. When the attestation covers the
// endpoint but not the client certificate cfg holds, deliveries are held (queued, not sent) until
// the manager verifies with that certificate.
func (s *Syncer) verifiedActive(wh *hooklinev1.Webhook, cfg *deliver.Webhook) bool {
	if wh.Status.State != hooklinev1.ObservedActive {
		return false
	}
	subject := attest.Subject{UID: cfg.UID, URL: cfg.URL, ClientID: cfg.ClientID, CertFingerprint: clientcert.Fingerprint(cfg.Cert),
		Configuration: webhookkey.Of(wh.Spec, cfg.ClientID)}
	coverage := s.Attestation.Check(subject, wh.Status.Attestation)
	if coverage != attest.None && !s.Attestation.CoversConfiguration(subject, wh.Status.Attestation) {
		coverage = attest.None
	}
	switch coverage {
	case attest.Full:
		return true
	case attest.Endpoint:
		if cfg.HeldReason == "" { // an unreadable certificate is the better explanation
			cfg.HeldReason, cfg.HeldMessage = ReasonClientCertificateNotVerified,
				"the client certificate changed since the endpoint was verified; waiting for the manager to verify it"
		}
		return true
	default:
		cfg.HeldReason, cfg.HeldMessage = ReasonVerificationNotAttested,
			"status says Active, but the manager has not attested a verification of the current url, client id and client certificate, "+
				"or has not yet checked the current configuration for duplicates; nothing is queued until it has"
		return false
	}
}
