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

// Package controllers holds the manager's reconcilers.
package controllers

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/internal/attest"
	"github.com/hookline/hookline/internal/cachetrim"
	"github.com/hookline/hookline/internal/clientcert"
	"github.com/hookline/hookline/internal/secretaccess"
	"github.com/hookline/hookline/internal/statusapply"
	"github.com/hookline/hookline/internal/tenancy"
	"github.com/hookline/hookline/internal/verify"
)

// Options tunes a WebhookReconciler.
type Options struct {
	// DefaultClientID is used for webhooks without spec.clientId.
	DefaultClientID string
	// VerificationsPerAccount caps concurrent verifications per account (Acrobat Sign: 10).
	VerificationsPerAccount int
	// RetryBase and RetryMax bound the doubling delay between failed verifications.
	RetryBase, RetryMax time.Duration
	// ThrottleRetry is how soon a webhook throttled by VerificationsPerAccount is tried again.
	ThrottleRetry time.Duration
	// MaxConcurrentReconciles is the number of workers; keep it above VerificationsPerAccount so one
	// slow account cannot hold every worker.
	MaxConcurrentReconciles int
	// CertificateResync is how often a webhook's client-certificate Secret is read again, so that a
	// rotated certificate is verified (the dispatcher sends only with a verified certificate; until
	// then it keeps queueing). Secrets are not watched: that would need list and watch on every
	// Secret in the cluster. 0 means 5 minutes.
	CertificateResync time.Duration
}

// WebhookReconciler verifies each Webhook's endpoint intent and reports its state.
type WebhookReconciler struct {
	client.Client
	// APIReader reads Secrets straight from the API server so that no Secret is cached.
	APIReader client.Reader
	Recorder  events.EventRecorder
	Verifier  *verify.Verifier
	// Attestation signs what a successful verification covered (status.attestation); the
	// dispatcher holds the same key and delivers only to what it covers.
	Attestation *attest.Key
	Clock       clock.PassiveClock
	Options     Options

	slots   *accountSlots
	backoff *backoff
	claims  configurationClaims
	written writtenVersions
	// boundTo holds, by uid, the binding (tenancy.Binding) each Webhook was last reconciled in
	// (until it is deleted): a change of one whose namespace has since lost its binding wakes that
	// binding's oldest of its configuration, and one never bound wakes nobody.
	boundTo sync.Map
	// rotated holds, by uid, the verified Webhooks found with a client certificate their
	// attestation does not cover that had no slot to verify it: their next reconciles take a slot
	// before reading the Secret again, as any Webhook needing a verification does.
	rotated sync.Map
	// certRead holds, by uid, what the last read of a verified Webhook's client-certificate Secret
	// found (certReading): a reconcile soon after, for the same spec and wake annotations, keeps the
	// verification on it rather than read the Secret again.
	certRead sync.Map
}

// certReading is a read of a verified Webhook's client-certificate Secret: for which generation
// and reactivation value, when, and the certificate's fingerprint.
type certReading struct {
	generation  int64
	asked       string // the annotations that ask for a look (wakeAnnotations)
	at          time.Time
	fingerprint string
}

// wakeAnnotations are the values of the annotations a Webhook's owner changes to have it looked at
// again (a reactivation; verify-at, after rotating its certificate): a change always reads the
// Secret.
func wakeAnnotations(wh *hooklinev1.Webhook) string {
	var b strings.Builder
	for _, k := range cachetrim.Annotations {
		b.WriteString(wh.Annotations[k])
		b.WriteByte(0)
	}
	return b.String()
}

// maxCertRereads bounds how often a verified Webhook's Secret is read for reconciles that its own
// spec or wake annotations (reactivate, verify-at) did not cause (at most every half CertificateResync, so that the resync
// still reads). Another tenant of the binding flipping its Webhook into and out of this one's
// configuration woke it at each write, and each reconcile read its Secret from the API server:
// another namespace's Secret read at that tenant's will.
const maxCertRereads = 30 * time.Second

// recentCertificate returns the fingerprint of wh's certificate read lately, for its current
// generation and wake annotations, if any.
func (r *WebhookReconciler) recentCertificate(wh *hooklinev1.Webhook) (string, bool) {
	v, ok := r.certRead.Load(wh.UID)
	if !ok {
		return "", false
	}
	c := v.(certReading)
	if r.Clock.Since(c.at) >= min(maxCertRereads, r.certificateResync()/2) {
		r.certRead.Delete(wh.UID)
		return "", false
	}
	if c.generation != wh.Generation || c.asked != wakeAnnotations(wh) {
		return "", false
	}
	return c.fingerprint, true
}

// cacheLagRetry is how soon a reconcile that found the cache behind this manager's own status
// write reads again; the watch brings the write within milliseconds.
const cacheLagRetry = 50 * time.Millisecond

// +kubebuilder:rbac:groups=hookline.io,resources=webhooks,verbs=get;list;watch
// +kubebuilder:rbac:groups=hookline.io,resources=webhooks/status,verbs=get;patch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// Secrets: get is granted per namespace (config/rbac/secret_reader_role.yaml), not cluster-wide.
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// The SSRF guard's discovery of the cluster's Service and Pod ranges (internal/clusterranges)
// lists these, uncached: no get, no watch.
// +kubebuilder:rbac:groups=networking.k8s.io,resources=servicecidrs,verbs=list
// +kubebuilder:rbac:groups="",resources=nodes,verbs=list

// Reconcile verifies one Webhook when its endpoint needs (re)verification and writes its status
// once. A Webhook with the configuration of an older ACTIVE one of its account is a duplicate: it
// is neither verified nor attested, so the dispatcher routes nothing to it (duplicates.go).
func (r *WebhookReconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, retErr error) {
	wh := &hooklinev1.Webhook{}
	if err := r.Get(ctx, req.NamespacedName, wh); err != nil {
		if apierrors.IsNotFound(err) {
			r.backoff.forget(req.NamespacedName)
			r.written.forget(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if r.written.behind(req.NamespacedName, wh.ResourceVersion) {
		// Decided on this copy, the reconcile would undo or repeat what the last one wrote (a
		// verification request to the endpoint, among others).
		ctrl.LoggerFrom(ctx).V(1).Info("Cache has not yet seen this manager's last status write; reading again shortly")
		return ctrl.Result{RequeueAfter: cacheLagRetry}, nil
	}
	// controller-runtime's logger names the Webhook (namespace/name); the uid tells a recreated
	// Webhook from its predecessor.
	log := ctrl.LoggerFrom(ctx).WithValues("uid", wh.UID)
	ctx = ctrl.LoggerInto(ctx, log)
	st := &managerStatus{}
	var claim *configurationClaim // held from the duplicate check until the status is written
	defer func() {
		err := r.writeStatus(ctx, wh, st, retErr == nil)
		claim.release(st, err)
		if err != nil {
			// The error's backoff schedules the retry: a result beside it would be ignored.
			res, retErr = ctrl.Result{}, kerrors.NewAggregate([]error{retErr, err})
		}
	}()

	binding, bound, err := tenancy.Lookup(ctx, r.Client, wh.Namespace)
	if err != nil {
		return ctrl.Result{}, err
	}
	if bound {
		r.boundTo.Store(wh.UID, binding)
	}
	switch {
	case !bound:
		log.V(1).Info("Namespace is bound to no account; not verifying")
		st.setVerified(metav1.ConditionUnknown, hooklinev1.ReasonNamespaceNotBound,
			fmt.Sprintf("namespace %s has no %s label; its webhooks receive nothing", wh.Namespace, tenancy.AccountLabel))
		return ctrl.Result{}, nil
	case wh.Spec.State == hooklinev1.StateInactive:
		log.V(1).Info("Webhook is INACTIVE; not verifying")
		st.setVerified(metav1.ConditionUnknown, hooklinev1.ReasonInactive, "webhook is INACTIVE; it is verified again when set to ACTIVE")
		r.backoff.forget(client.ObjectKeyFromObject(wh))
		return ctrl.Result{}, nil
	case binding.GroupID != "" && wh.Spec.Scope == hooklinev1.ScopeGroup && wh.Spec.GroupID != binding.GroupID:
		// The seeds: group administrators create and control webhooks that operate only within
		// their group. The namespace's events are its group's alone, so such a webhook would
		// never receive one: said, rather than Active and silent.
		st.setPermanentFailure(hooklinev1.ReasonGroupOutsideNamespace, fmt.Sprintf(
			"namespace %s is bound to group %s of account %s, and its webhooks operate only within that group: spec.groupId %q names another group (use %q, or a namespace bound to that group)",
			wh.Namespace, binding.GroupID, binding.AccountID, wh.Spec.GroupID, binding.GroupID))
		r.backoff.forget(client.ObjectKeyFromObject(wh))
		return ctrl.Result{}, nil
	}
	var proceed bool
	if claim, proceed, res, err = r.claimConfiguration(ctx, wh, binding, st); !proceed {
		return res, err
	}
	if conditionStatus(wh, hooklinev1.ConditionAutoDisabled) == metav1.ConditionTrue {
		// Dropping the verification record makes reactivation verify the endpoint again.
		log.V(1).Info("Webhook is auto-disabled; waiting for reactivation")
		st.setVerified(metav1.ConditionUnknown, hooklinev1.ReasonAutoDisabled, fmt.Sprintf(
			"webhook was auto-disabled by the dispatcher; set the %s annotation to a new value (or toggle spec.state) to reactivate and verify it again",
			hooklinev1.ReactivateAnnotation))
		return ctrl.Result{}, nil
	}
	return r.reconcileVerification(ctx, wh, binding, st)
}

// reconcileVerification sets Verified: it keeps a verification whose attestation still covers the
// endpoint and otherwise verifies, within the account's concurrency cap, retrying failures with
// capped backoff. Only a successful verification, or one still covering the endpoint, yields an
// attestation.
func (r *WebhookReconciler) reconcileVerification(ctx context.Context, wh *hooklinev1.Webhook, b tenancy.Binding, st *managerStatus) (ctrl.Result, error) {
	log := ctrl.LoggerFrom(ctx)
	clientID := r.clientID(wh)
	if clientID == "" {
		st.setPermanentFailure(hooklinev1.ReasonClientIDMissing, "spec.clientId is empty and the operator has no default client id")
		return ctrl.Result{}, nil
	}
	if bad := r.Verifier.CheckURL(wh.Spec.URL); bad != nil {
		st.setPermanentFailure(bad.Reason, bad.Message)
		return ctrl.Result{}, nil
	}
	v := meta.FindStatusCondition(wh.Status.Conditions, hooklinev1.ConditionVerified)
	verified := v != nil && v.Status == metav1.ConditionTrue
	// A webhook that needs a verification takes one of its account's slots before it reads its
	// certificate Secret (from the API server, uncached): a tenant's thousands of webhooks waiting
	// for their account's slots cost no API reads while they wait, and a Secret is read only by a
	// webhook about to verify (checking for a free slot first still let several read per slot).
	// An attestation of before the verification's time was attested (v1, v2: an upgrade, or a
	// tenant that cut a v3 down to its first tags, which check as a v2) covers no time: the
	// endpoint is verified again, and the recorded verification stands meanwhile. Signing the
	// status's time instead let a tenant mint an attested time of its choosing, and postpone the
	// auto-disable for ever. That is known without the Secret, so such a webhook waits as an
	// unverified one does: reading its Secret at every retry let a tenant whose webhooks held
	// their account's slots have the manager read hundreds of Secrets a second.
	_, rotated := r.rotated.Load(wh.UID)
	needs := !verified || !attest.Timed(wh.Status.Attestation) || rotated
	slot := needs && r.slots.tryAcquire(b.AccountID, wh.Namespace, string(wh.UID))
	if needs && !slot {
		endpoint := attest.Subject{UID: string(wh.UID), URL: wh.Spec.URL, ClientID: clientID, Configuration: r.configuration(wh)}
		return r.waitForSlot(ctx, wh, v, endpoint, b, st), nil
	}
	if fp, ok := r.recentCertificate(wh); ok && !needs {
		subject := attest.Subject{UID: string(wh.UID), URL: wh.Spec.URL, ClientID: clientID, CertFingerprint: fp, Configuration: r.configuration(wh)}
		if r.Attestation.Check(subject, wh.Status.Attestation) == attest.Full {
			log.V(1).Info("Certificate read lately still covered; attesting the configuration again")
			r.keepVerification(wh, v, subject, st)
			return r.resync(wh), nil
		}
	}
	cert, reason, err := r.clientCertificate(ctx, wh)
	subject := attest.Subject{UID: string(wh.UID), URL: wh.Spec.URL, ClientID: clientID, CertFingerprint: clientcert.Fingerprint(cert),
		Configuration: r.configuration(wh)}
	if err == nil && cert != nil {
		r.certRead.Store(wh.UID, certReading{generation: wh.Generation, asked: wakeAnnotations(wh),
			at: r.Clock.Now(), fingerprint: subject.CertFingerprint})
	} else {
		r.certRead.Delete(wh.UID)
	}
	if err != nil {
		if slot {
			r.slots.release(b.AccountID, wh.Namespace)
		}
		log.V(1).Info("Client certificate unavailable", "reason", reason, "keepingVerification", verified)
		if verified && r.Attestation.Check(subject, wh.Status.Attestation) >= attest.Endpoint {
			// The Secret of a verified endpoint is gone or broken for now (being rotated, re-synced
			// by an external tool): keep the verification, so that events keep queueing; the
			// dispatcher holds them (ClientCertificateUnavailable) and sends only with a
			// certificate the attestation covers. The configuration, checked for duplicates
			// above, is attested anew: an events change meanwhile does not stop the queueing.
			r.keepVerification(wh, v, subject, st)
		} else {
			st.setVerified(metav1.ConditionFalse, reason, err.Error())
		}
		return ctrl.Result{RequeueAfter: r.backoff.next(client.ObjectKeyFromObject(wh))}, nil
	}

	// The recorded verification still covers this url, client id and certificate: only the key's
	// holders can have written an attestation that says so.
	covered := verified && r.Attestation.Check(subject, wh.Status.Attestation) == attest.Full
	if covered && attest.Timed(wh.Status.Attestation) {
		// Attesting again covers the current configuration, which the duplicate check has just
		// found the oldest: a change of events, scope or resource needs no new verification. The
		// verification's time is carried over as it was attested, whatever the status says.
		log.V(1).Info("Recorded verification still covers the endpoint; attesting the configuration again")
		if slot { // taken for a rotation that is no longer one (the certificate put back)
			r.slots.release(b.AccountID, wh.Namespace)
		}
		r.rotated.Delete(wh.UID)
		r.keepVerification(wh, v, subject, st)
		return r.resync(wh), nil
	}
	// Here without a slot: a verified endpoint whose certificate changed (a rotation).
	if !slot && !r.slots.tryAcquire(b.AccountID, wh.Namespace, string(wh.UID)) {
		r.rotated.Store(wh.UID, struct{}{})
		return r.waitForSlot(ctx, wh, v, subject, b, st), nil
	}
	r.rotated.Delete(wh.UID)
	verificationsInFlight.Inc()
	log.V(1).Info("Verifying endpoint intent", "url", wh.Spec.URL)
	start := r.Clock.Now()
	result := r.Verifier.Verify(ctx, wh.Spec.URL, clientID, cert)
	verificationDuration.Observe(r.Clock.Since(start).Seconds())
	verificationsInFlight.Dec()
	r.slots.release(b.AccountID, wh.Namespace)
	verificationsTotal.WithLabelValues(result.Reason).Inc()
	log.V(1).Info("Verification finished", "ok", result.OK, "reason", result.Reason, "permanent", result.Permanent)

	if result.OK {
		// To the second, as the status keeps it and the attestation covers it.
		now := metav1.NewTime(r.Clock.Now().Truncate(time.Second))
		subject.VerifiedAt = now.Time
		st.setVerified(metav1.ConditionTrue, result.Reason, result.Message)
		st.lastVerifiedTime, st.attestation = &now, r.Attestation.Sign(subject)
		r.backoff.forget(client.ObjectKeyFromObject(wh))
		return r.resync(wh), nil
	}
	if result.Permanent {
		st.setPermanentFailure(result.Reason, result.Message)
		return ctrl.Result{}, nil
	}
	st.setVerified(metav1.ConditionFalse, result.Reason, result.Message)
	return ctrl.Result{RequeueAfter: r.backoff.next(client.ObjectKeyFromObject(wh))}, nil
}

// keepVerification keeps wh's recorded verification v in st, its attestation carried over (its
// time tag, if any, as it was attested) and made to cover subject's configuration.
func (r *WebhookReconciler) keepVerification(wh *hooklinev1.Webhook, v *metav1.Condition, subject attest.Subject, st *managerStatus) {
	st.verified = *v
	st.lastVerifiedTime, st.attestation = wh.Status.LastVerifiedTime, r.Attestation.Reattest(wh.Status.Attestation, subject)
}

// waitForSlot answers a webhook that needs a verification while its account's slots are all in
// use. One whose recorded verification still covers its endpoint (subject; a rotated client
// certificate aside) stays routed on it meanwhile: the dispatcher keeps queueing its events and
// sends only with a certificate the attestation covers. Reporting it throttled instead dropped its
// attestation, and the events of the wait were never queued for it. Any other waits as throttled.
func (r *WebhookReconciler) waitForSlot(ctx context.Context, wh *hooklinev1.Webhook, v *metav1.Condition, subject attest.Subject, b tenancy.Binding, st *managerStatus) ctrl.Result {
	if v == nil || v.Status != metav1.ConditionTrue || r.Attestation.Check(subject, wh.Status.Attestation) < attest.Endpoint {
		return r.throttled(ctx, b, st)
	}
	ctrl.LoggerFrom(ctx).V(1).Info("Waiting for one of the account's verification slots; routed on the recorded verification meanwhile", "account", b.AccountID)
	r.keepVerification(wh, v, subject, st)
	verificationsThrottled.Inc()
	return ctrl.Result{RequeueAfter: wait.Jitter(r.Options.ThrottleRetry, 1)}
}

// throttled reports a webhook waiting for one of its account's verification slots. It tries again
// after ThrottleRetry, jittered up to twice it, so that many waiting webhooks do not all come back
// in the same instant.
func (r *WebhookReconciler) throttled(ctx context.Context, b tenancy.Binding, st *managerStatus) ctrl.Result {
	verificationsThrottled.Inc()
	ctrl.LoggerFrom(ctx).V(1).Info("No verification slot free for this namespace; retrying later", "account", b.AccountID)
	st.setVerified(metav1.ConditionUnknown, hooklinev1.ReasonVerificationThrottled, fmt.Sprintf(
		"waiting for one of account %s's %d verification slots (all in use, or this namespace holds its share while another namespace of the account waits)", b.AccountID, r.Options.VerificationsPerAccount))
	return ctrl.Result{RequeueAfter: wait.Jitter(r.Options.ThrottleRetry, 1)}
}

// resync schedules the next read of a verified webhook's client-certificate Secret, jittered so
// that many webhooks' reads spread out; webhooks without one need no visit.
func (r *WebhookReconciler) resync(wh *hooklinev1.Webhook) ctrl.Result {
	if wh.Spec.ClientCertificateSecretRef == nil {
		return ctrl.Result{}
	}
	return ctrl.Result{RequeueAfter: wait.Jitter(r.certificateResync(), 0.2)}
}

// certificateResync is Options.CertificateResync or its default.
func (r *WebhookReconciler) certificateResync() time.Duration {
	if r.Options.CertificateResync <= 0 {
		return 5 * time.Minute
	}
	return r.Options.CertificateResync
}

func (r *WebhookReconciler) clientID(wh *hooklinev1.Webhook) string {
	if wh.Spec.ClientID != "" {
		return wh.Spec.ClientID
	}
	return r.Options.DefaultClientID
}

// clientCertificate loads the webhook's client certificate, if it names one.
func (r *WebhookReconciler) clientCertificate(ctx context.Context, wh *hooklinev1.Webhook) (*tls.Certificate, string, error) {
	cert, err := clientcert.Load(ctx, r.APIReader, wh.Namespace, wh.Spec.ClientCertificateSecretRef)
	switch {
	case err == nil:
		return cert, "", nil
	case errors.Is(err, clientcert.ErrInvalid), errors.Is(err, secretaccess.ErrTooLarge):
		return nil, hooklinev1.ReasonClientCertificateInvalid, err
	case apierrors.IsNotFound(err):
		return nil, hooklinev1.ReasonClientCertificateNotFound, fmt.Errorf("client certificate secret %s not found", wh.Spec.ClientCertificateSecretRef.Name)
	default:
		return nil, hooklinev1.ReasonClientCertificateNotFound, fmt.Errorf("reading client certificate secret %s: %w", wh.Spec.ClientCertificateSecretRef.Name, err)
	}
}

// writeStatus applies the manager-owned status fields with server-side apply, once, and only when
// they differ from what the object carries. It records an Event when Ready changes. When the API
// server refuses the status (too large, invalid), it applies a minimal Inactive one instead, so that
// a webhook never stays Active for a spec it no longer describes, and returns the error, which
// retries the reconcile with backoff. Other errors (the server unavailable) are only returned.
func (r *WebhookReconciler) writeStatus(ctx context.Context, wh *hooklinev1.Webhook, st *managerStatus, success bool) error {
	if st.verified.Type == "" {
		return nil // nothing was observed (transient error before any step)
	}
	generation := wh.Status.ObservedGeneration
	if success {
		generation = wh.Generation
	}
	now := metav1.NewTime(r.Clock.Now())
	want := desiredStatus(wh, st, generation, now)
	if statusUpToDate(wh, want) {
		return nil
	}
	err := r.applyStatus(ctx, wh, want)
	switch {
	case err == nil:
		r.recordTransition(wh, want)
		return nil
	case apierrors.IsNotFound(err):
		return nil // deleted while it was being reconciled: nothing to report on
	case !refused(err):
		// Unavailable, timed out: the next try may write it. A fallback now would stop deliveries
		// to a webhook that may be fine.
		return fmt.Errorf("applying status of webhook %s/%s: %w", wh.Namespace, wh.Name, err)
	}
	fallback := fallbackStatus(wh, now)
	switch fbErr := r.applyStatus(ctx, wh, fallback); {
	case fbErr == nil:
		r.recordTransition(wh, fallback)
	case !apierrors.IsNotFound(fbErr):
		err = kerrors.NewAggregate([]error{err, fmt.Errorf("applying the fallback status: %w", fbErr)})
	}
	return fmt.Errorf("applying status of webhook %s/%s: %w", wh.Namespace, wh.Name, err)
}

// refused reports whether the API server refused a status for its content (invalid, too large,
// denied by admission), which trying the same again cannot change.
func refused(err error) bool {
	return apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) || apierrors.IsRequestEntityTooLargeError(err) ||
		apierrors.IsForbidden(err)
}

// appliedStatus is a WebhookStatus whose attestation is serialized even when empty.
type appliedStatus struct {
	hooklinev1.WebhookStatus
	Attestation string `json:"attestation"`
}

// applyStatus applies want as the manager's status fields of wh, and records the version written
// so that the next reconcile waits for the cache to hold it.
func (r *WebhookReconciler) applyStatus(ctx context.Context, wh *hooklinev1.Webhook, want hooklinev1.WebhookStatus) error {
	// attestation is applied even when empty: the manager then owns the field, and a value
	// someone else wrote into status is cleared instead of lingering beside the manager's.
	rv, err := statusapply.ApplyVersion(ctx, r.Client, hooklinev1.GroupVersion.WithKind("Webhook"), wh,
		appliedStatus{WebhookStatus: want, Attestation: want.Attestation}, hooklinev1.FieldManagerManager)
	if err == nil {
		r.written.record(client.ObjectKeyFromObject(wh), rv)
	}
	return err
}

// recordTransition emits an Event when the Ready condition changes status or reason.
func (r *WebhookReconciler) recordTransition(wh *hooklinev1.Webhook, want hooklinev1.WebhookStatus) {
	ready := meta.FindStatusCondition(want.Conditions, hooklinev1.ConditionReady)
	old := meta.FindStatusCondition(wh.Status.Conditions, hooklinev1.ConditionReady)
	if ready == nil || (old != nil && old.Status == ready.Status && old.Reason == ready.Reason) {
		return
	}
	switch {
	case ready.Status == metav1.ConditionTrue && ready.Reason == hooklinev1.ReasonActive:
		r.Recorder.Eventf(wh, nil, corev1.EventTypeNormal, "Verified", "Verify", "Endpoint verified; webhook is Active")
	case ready.Reason == hooklinev1.ReasonVerificationThrottled || ready.Reason == hooklinev1.ReasonInactive:
		r.Recorder.Eventf(wh, nil, corev1.EventTypeNormal, ready.Reason, "Verify", "%s", ready.Message)
	default:
		r.Recorder.Eventf(wh, nil, corev1.EventTypeWarning, ready.Reason, "Verify", "%s", ready.Message)
	}
}
