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

package dispatcher_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/internal/signing"
)

func whsec(fill byte) string {
	return signing.SecretPrefix + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{fill}, 32))
}

// verifies reports whether d's Standard Webhooks signature verifies with key, using the
// specification's reference library.
func verifies(d delivery, key string) error {
	wh, err := standardwebhooks.NewWebhook(key)
	if err != nil {
		return err
	}
	return wh.Verify(d.Body, d.Header)
}

// A signed webhook's notifications carry a signature per key of its Secret; a Secret rotation takes
// effect without touching the Webhook; while the Secret is missing, deliveries are held (and said
// so in the status) and nothing is lost.
func TestStandardWebhooksSignaturesAndRotation(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, "acc-sign", "")
	rc := newReceiver(t)
	s := startStack(t, stackOptions{namespaces: []string{ns}})
	oldKey, newKey, nextKey := whsec(1), whsec(2), whsec(3)
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "signing"},
		StringData: map[string]string{"a-current": newKey, "b-previous": oldKey}}
	g.Expect(k8s.Create(ctx, secret)).To(Succeed())
	spec := accountSpec(rc.URL + "/signed")
	spec.Signing = &hooklinev1.WebhookSigning{SecretRef: hooklinev1.SecretReference{Name: "signing"}}
	wh := s.activeWebhook(t, ns, "signed", spec)

	s.mustPost(t, event("s1", "acc-sign"))
	g.Eventually(func() int { return len(rc.got()) }).WithTimeout(10 * time.Second).Should(Equal(1))
	d := rc.got()[0]
	var body map[string]any
	g.Expect(json.Unmarshal(d.Body, &body)).To(Succeed())
	g.Expect(d.Header.Get(signing.HeaderID)).To(Equal(body["webhookNotificationId"]), "webhook-id is the notification id receivers dedupe on")
	g.Expect(verifies(d, oldKey)).To(Succeed(), "a receiver with the previous key accepts")
	g.Expect(verifies(d, newKey)).To(Succeed(), "a receiver with the current key accepts")
	g.Expect(verifies(d, nextKey)).To(MatchError(standardwebhooks.ErrNoMatchingSignature))

	// Rotation: the old key leaves, a new one arrives; only the Secret changes.
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(secret), secret)).To(Succeed())
	secret.Data = map[string][]byte{"a-current": []byte(nextKey), "b-previous": []byte(newKey)}
	g.Expect(k8s.Update(ctx, secret)).To(Succeed())
	n := 0
	g.Eventually(func(g Gomega) {
		n++
		s.mustPost(t, event(fmt.Sprintf("s-rot-%d", n), "acc-sign"))
		g.Eventually(func() int { return len(rc.got()) }).WithTimeout(5 * time.Second).Should(Equal(1 + n))
		got := rc.got()
		last := got[len(got)-1]
		g.Expect(verifies(last, nextKey)).To(Succeed())
		g.Expect(verifies(last, oldKey)).To(MatchError(standardwebhooks.ErrNoMatchingSignature))
	}).WithTimeout(15 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())

	// A missing Secret holds deliveries and says why; events keep queueing and go out once it is back.
	g.Expect(k8s.Delete(ctx, secret)).To(Succeed())
	g.Eventually(func(g Gomega) {
		got := getWebhook(g, wh)
		c := condition(got, hooklinev1.ConditionDelivering)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Reason).To(Equal(hooklinev1.ReasonSigningSecretUnavailable))
	}).WithTimeout(10 * time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())
	before := len(rc.got())
	s.mustPost(t, event("s-held-1", "acc-sign"))
	s.mustPost(t, event("s-held-2", "acc-sign"))
	g.Eventually(func(g Gomega) {
		g.Expect(deref(getWebhook(g, wh).Status.PendingNotifications)).To(BeEquivalentTo(2))
	}).WithTimeout(10 * time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())
	g.Expect(rc.got()).To(HaveLen(before), "nothing is sent unsigned")

	g.Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "signing"},
		StringData: map[string]string{"k": nextKey}})).To(Succeed())
	g.Eventually(func() int { return len(rc.got()) }).WithTimeout(10 * time.Second).Should(Equal(before + 2))
	for _, d := range rc.got()[before:] {
		g.Expect(verifies(d, nextKey)).To(Succeed())
	}
	g.Eventually(func(g Gomega) {
		g.Expect(condition(getWebhook(g, wh), hooklinev1.ConditionDelivering).Status).To(BeEquivalentTo("True"))
	}).WithTimeout(10 * time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())
}

// A tenant's signing Secret cannot cost the shared dispatcher without bound: one of more than
// signing.MaxKeys keys (each attempt signs its whole body once per key) or of more than 64 KiB
// holds the Webhook's deliveries, saying why; and an INACTIVE Webhook's Secrets are not read or
// kept at all.
func TestOversizedSigningSecretsAreRefused(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, "acc-sign-big", "")
	rc := newReceiver(t)
	s := startStack(t, stackOptions{namespaces: []string{ns}})
	many := map[string]string{}
	for i := range signing.MaxKeys + 1 {
		many[fmt.Sprintf("k%02d", i)] = whsec(byte(i + 1))
	}
	large := map[string]string{"k": whsec(1), "padding": string(bytes.Repeat([]byte("x"), 64<<10))}
	for name, data := range map[string]map[string]string{"many": many, "large": large} {
		g.Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, StringData: data})).To(Succeed())
	}
	for name, want := range map[string]string{
		"many":  fmt.Sprintf("must hold 1 to %d entries", signing.MaxKeys),
		"large": "holds more than 64 KiB",
	} {
		spec := accountSpec(rc.URL + "/" + name)
		spec.Signing = &hooklinev1.WebhookSigning{SecretRef: hooklinev1.SecretReference{Name: name}}
		wh := s.activeWebhook(t, ns, name, spec)
		g.Eventually(func(g Gomega) {
			c := condition(getWebhook(g, wh), hooklinev1.ConditionDelivering)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Reason).To(Equal(hooklinev1.ReasonSigningSecretUnavailable))
			g.Expect(c.Message).To(ContainSubstring(want))
		}).WithTimeout(10*time.Second).WithPolling(100*time.Millisecond).Should(Succeed(), name)
	}

	spec := accountSpec(rc.URL + "/inactive")
	spec.State = hooklinev1.StateInactive
	spec.Signing = &hooklinev1.WebhookSigning{SecretRef: hooklinev1.SecretReference{Name: "fine"}}
	g.Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "fine"}, StringData: map[string]string{"k": whsec(7)}})).To(Succeed())
	inactive := &hooklinev1.Webhook{ObjectMeta: metav1.ObjectMeta{Name: "inactive", Namespace: ns}, Spec: spec}
	g.Expect(k8s.Create(ctx, inactive)).To(Succeed())
	// Once the dispatcher has taken its configuration in (Inactive is the syncer's).
	g.Eventually(func() bool { got, _ := s.app.Engine.Webhook(string(inactive.UID)); return got.Inactive }).WithTimeout(10 * time.Second).Should(BeTrue())
	got, _ := s.app.Engine.Webhook(string(inactive.UID))
	g.Expect(got.Signing).To(BeEmpty(), "an INACTIVE webhook's keys are not kept")
}

// An unsigned webhook (the Acrobat Sign default) carries no Standard Webhooks signature: only its
// webhook-id, which every notification carries.
func TestUnsignedWebhookHasNoSignatureHeaders(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, "acc-unsigned", "")
	rc := newReceiver(t)
	s := startStack(t, stackOptions{namespaces: []string{ns}})
	s.activeWebhook(t, ns, "plain", accountSpec(rc.URL+"/plain"))
	s.mustPost(t, event("u1", "acc-unsigned"))
	g.Eventually(func() int { return len(rc.got()) }).WithTimeout(10 * time.Second).Should(Equal(1))
	h := rc.got()[0].Header
	for _, name := range []string{signing.HeaderTimestamp, signing.HeaderSignature} {
		g.Expect(h.Get(name)).To(BeEmpty(), name)
	}
	// The id is there all the same (receivers of envelope bodies dedupe on it): the body's.
	var body struct{ WebhookNotificationID string }
	g.Expect(json.Unmarshal(rc.got()[0].Body, &body)).To(Succeed())
	g.Expect(h.Get(signing.HeaderID)).To(Equal(body.WebhookNotificationID))
}
