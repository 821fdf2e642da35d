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

package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/internal/echo"
	"github.com/hookline/hookline/internal/signing"
	"github.com/hookline/hookline/internal/testcerts"
	"github.com/hookline/hookline/internal/testsupport"
)

// kubeconfigAs writes a kubeconfig that reaches the test API server as the administrator
// impersonating user: the components run with exactly the RBAC the chart gives their
// ServiceAccounts.
func kubeconfigAs(t *testing.T, user string) string {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(env.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range cfg.AuthInfos {
		a.Impersonate = user
	}
	p := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, p); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSecretAccessIsPerNamespace installs the chart with secretAccess.namespaces naming one
// namespace, runs bin/manager and bin/dispatcher as the chart's ServiceAccounts, and checks that
// (1) Webhooks in that namespace use their Secrets; (2) Webhooks elsewhere cannot, and their
// status tells the operator which namespace lacks access and which value grants it; (3) a
// signing.secretRef naming a kubernetes.io/tls Secret holds deliveries without revealing the
// Secret's entry names in status or Events.
func TestSecretAccessIsPerNamespace(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	const rel, relNS = "sa", "sa-system"
	createNamespace(t, relNS, nil)
	granted, denied := boundNamespace(t, "sa-granted-", "acc-sa", "unused"), boundNamespace(t, "sa-denied-", "acc-sa", "unused")

	values := `clientId: hookline-e2e
allowHTTP: true
ssrf: {allowedCIDRs: ["127.0.0.0/8", "::1/128"]}
crds: {enabled: false}
admissionPolicies: {enabled: false}
secretAccess: {namespaces: [` + granted + `]}
ingestTokens:
  tokens:
  - {name: e2e, token: ` + e2eToken + `, accounts: ["acc-sa"]}
`
	out, err := helm(t, "install", rel, chartDir, "-n", relNS, "-f", valuesFile(t, values))
	g.Expect(err).NotTo(HaveOccurred(), out)
	t.Cleanup(func() { _, _ = helm(t, "uninstall", rel, "-n", relNS, "--ignore-not-found") })
	objs := mustRender(t, values)
	mgr := typed[appsv1.Deployment](t, objs, "Deployment", "hookline-manager")
	disp := typed[appsv1.StatefulSet](t, objs, "StatefulSet", "hookline-dispatcher")

	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(echo.Header, r.Header.Get(echo.Header))
	}))
	t.Cleanup(rc.Close)
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens.yaml")
	g.Expect(os.WriteFile(tokens, []byte("tokens:\n- {name: e2e, token: "+e2eToken+", accounts: [acc-sa]}\n"), 0o600)).To(Succeed())
	sa := "system:serviceaccount:" + relNS + ":" + rel + "-hookline-"
	attKey, err := testsupport.AttestationKeyFile(dir)
	g.Expect(err).NotTo(HaveOccurred())
	startProcess(t, "manager", localArgs(container(t, mgr.Spec.Template.Spec, "manager"), map[string]string{
		"--kubeconfig": kubeconfigAs(t, sa+"manager"), "--metrics-bind-address": "0", "--health-probe-bind-address": "0",
		"--attestation-key-file": attKey,
	})...)
	startProcess(t, "dispatcher", localArgs(container(t, disp.Spec.Template.Spec, "dispatcher"), map[string]string{
		"--kubeconfig": kubeconfigAs(t, sa+"dispatcher"), "--metrics-bind-address": "0", "--health-probe-bind-address": "0",
		"--listen-address": testsupport.FreeAddr(t), "--data-dir": filepath.Join(dir, "data"), "--tokens-file": tokens,
		"--attestation-key-file": attKey, "--status-interval": "500ms", "--secret-resync": "1s",
	})...)

	ca, err := testcerts.NewCA("sa")
	g.Expect(err).NotTo(HaveOccurred())
	leaf, err := ca.Client("sa-client")
	g.Expect(err).NotTo(HaveOccurred())
	key := signing.SecretPrefix + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	for _, ns := range []string{granted, denied} {
		create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "client-tls", Namespace: ns}, Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{corev1.TLSCertKey: leaf.CertPEM, corev1.TLSPrivateKeyKey: leaf.KeyPEM}})
		create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "signing-keys", Namespace: ns},
			Data: map[string][]byte{"current": []byte(key)}})
	}
	webhook := func(ns, name string, cert, sign string) *hooklinev1.Webhook {
		wh := &hooklinev1.Webhook{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: hooklinev1.WebhookSpec{
			URL: rc.URL + "/" + name, Scope: hooklinev1.ScopeAccount, Events: []hooklinev1.EventName{"AGREEMENT_ALL"}}}
		if cert != "" {
			wh.Spec.ClientCertificateSecretRef = &hooklinev1.SecretReference{Name: cert}
		}
		if sign != "" {
			wh.Spec.Signing = &hooklinev1.WebhookSigning{SecretRef: hooklinev1.SecretReference{Name: sign}}
		}
		create(t, wh)
		return wh
	}
	type want struct {
		state              hooklinev1.ObservedState
		cond, reason, text string
	}
	cases := map[*hooklinev1.Webhook]want{
		// With access: the certificate is read and the endpoint verified, signing keys load.
		webhook(granted, "cert-granted", "client-tls", ""):     {hooklinev1.ObservedActive, "Delivering", "NoFailures", ""},
		webhook(granted, "signed-granted", "", "signing-keys"): {hooklinev1.ObservedActive, "Delivering", "NoFailures", ""},
		// Without: the manager cannot verify with the certificate, the dispatcher holds deliveries,
		// and both say what to do.
		webhook(denied, "cert-denied", "client-tls", ""): {hooklinev1.ObservedInactive, "Verified", "ClientCertificateNotFound",
			"hookline may not read Secrets in namespace " + denied + ": grant it there with the Helm value secretAccess.namespaces"},
		webhook(denied, "signed-denied", "", "signing-keys"): {hooklinev1.ObservedActive, "Delivering", "SigningSecretUnavailable",
			"signing keys unavailable: hookline may not read Secrets in namespace " + denied + ": grant it there with the Helm value secretAccess.namespaces"},
		// A signing reference to a Secret that holds no signing keys.
		webhook(granted, "signed-by-tls", "", "client-tls"): {hooklinev1.ObservedActive, "Delivering", "SigningSecretUnavailable",
			"signing keys unavailable: invalid signing secret: secret " + granted + "/client-tls must hold 1 to 10 entries, each a \"whsec_<base64>\" key of 24 to 64 bytes, and does not"},
	}
	for wh, w := range cases {
		g.Eventually(func(g Gomega) {
			got := &hooklinev1.Webhook{}
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(wh), got)).To(Succeed())
			g.Expect(got.Status.State).To(Equal(w.state), wh.Name)
			c := meta.FindStatusCondition(got.Status.Conditions, w.cond)
			g.Expect(c).NotTo(BeNil(), "%s: no %s condition", wh.Name, w.cond)
			g.Expect(c.Reason).To(Equal(w.reason), "%s: %s", wh.Name, c.Message)
			g.Expect(c.Message).To(ContainSubstring(w.text), wh.Name)
		}).WithTimeout(60*time.Second).WithPolling(250*time.Millisecond).Should(Succeed(), wh.Name)
	}

	// Nothing the webhook's author can read names the Secret's entries.
	for _, ns := range []string{granted, denied} {
		list := &hooklinev1.WebhookList{}
		g.Expect(k8s.List(ctx, list, client.InNamespace(ns))).To(Succeed())
		events := &eventsv1.EventList{}
		g.Expect(k8s.List(ctx, events, client.InNamespace(ns))).To(Succeed())
		var texts []string
		for _, wh := range list.Items {
			for _, c := range wh.Status.Conditions {
				texts = append(texts, c.Message)
			}
		}
		for _, e := range events.Items {
			texts = append(texts, e.Note)
		}
		for _, s := range texts {
			g.Expect(strings.Contains(s, corev1.TLSCertKey) || strings.Contains(s, corev1.TLSPrivateKeyKey)).To(BeFalse(),
				"an entry name of client-tls leaked: %s", s)
		}
	}
}
