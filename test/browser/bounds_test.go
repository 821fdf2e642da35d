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

package browser

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
)

// A tenant holding every right in its namespace creates core/v1 Events about its Webhook whose
// messages are 1.4 MB of quotes each (core/v1 takes messages of any length; html/template writes
// each quote as five bytes): the Webhook's page read them all and built them into one page of about
// 7 MB per Event, so that a handful of Events made the console, one pod with 128 Mi whose sessions
// live in memory, run out of memory at every opening of the page (by the tenant or by an
// administrator looking into it), signing every user out. Now a message is shown cut to 2 KiB, and
// lists are read a page at a time, each page's items trimmed as it is read; an answer larger than
// 4 MiB is read again in smaller pages. The same for Webhooks grown to the API server's limit.
func TestATenantsGrownEventsCannotBlowUpTheConsole(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	base := startConsole(t)
	tn := newTenant(t, "acc-console-grown")
	// Every right in its namespace, Events included.
	g.Expect(k8s.Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: tn.ns, Name: "all"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: []string{"*"}}}})).To(Succeed())
	g.Expect(k8s.Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: tn.ns, Name: "all"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "all"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: tn.ns, Name: "admin"}}})).To(Succeed())
	cfg := rest.AnonymousClientConfig(env.Config)
	cfg.BearerToken = tn.token
	as, err := kubernetes.NewForConfig(cfg)
	g.Expect(err).NotTo(HaveOccurred())

	wh := &hooklinev1.Webhook{ObjectMeta: metav1.ObjectMeta{Namespace: tn.ns, Name: "grown"},
		Spec: hooklinev1.WebhookSpec{URL: "https://hooks.example.com/h", Scope: hooklinev1.ScopeAccount, Events: []hooklinev1.EventName{"AGREEMENT_ALL"}}}
	g.Expect(k8s.Create(ctx, wh)).To(Succeed())
	huge := strings.Repeat("'", 1400<<10)
	grow := func(i int) {
		_, err := as.CoreV1().Events(tn.ns).Create(ctx, &corev1.Event{
			ObjectMeta:     metav1.ObjectMeta{Name: fmt.Sprintf("grown.%d", i)},
			InvolvedObject: corev1.ObjectReference{Kind: "Webhook", APIVersion: hooklinev1.GroupVersion.String(), Namespace: tn.ns, Name: wh.Name, UID: wh.UID},
			Reason:         "Filler", Message: huge, Type: corev1.EventTypeNormal,
		}, metav1.CreateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
	}
	session := signInHTTP(t, base, tn.token)
	open := func(path string) (int, string) {
		req, err := http.NewRequest(http.MethodGet, base+path, nil)
		g.Expect(err).NotTo(HaveOccurred())
		req.AddCookie(&http.Cookie{Name: "hookline-session", Value: session})
		resp, err := noRedirects.Do(req)
		g.Expect(err).NotTo(HaveOccurred())
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		g.Expect(err).NotTo(HaveOccurred())
		return resp.StatusCode, string(body)
	}

	grow(0)
	code, page := open("/webhooks/" + tn.ns + "/" + wh.Name)
	t.Logf("one grown Event: %d, a page of %d bytes", code, len(page))
	g.Expect(code).To(Equal(http.StatusOK))
	g.Expect(len(page)).To(BeNumerically("<", 256<<10), "the message is shown cut")
	g.Expect(page).To(ContainSubstring("&#39;&#39;&#39;…"))

	for i := 1; i < 4; i++ {
		grow(i)
	}
	code, page = open("/webhooks/" + tn.ns + "/" + wh.Name)
	t.Logf("four grown Events (5.6 MB, more than one answer may bring): %d, a page of %d bytes", code, len(page))
	g.Expect(code).To(Equal(http.StatusOK), "read in smaller pages")
	g.Expect(len(page)).To(BeNumerically("<", 256<<10))
	g.Expect(strings.Count(page, "&#39;…")).To(Equal(4))

	// Webhooks grown with labels to about 1.2 MB each: the list is read in smaller pages too, and
	// shows them.
	for i := range 4 {
		grown := &hooklinev1.Webhook{ObjectMeta: metav1.ObjectMeta{Namespace: tn.ns, Name: fmt.Sprintf("grown-%d", i), Labels: map[string]string{}},
			Spec: wh.Spec}
		for j := range 9000 {
			grown.Labels[fmt.Sprintf("filler.example.com/l-%05d", j)] = strings.Repeat("v", 63)
		}
		g.Expect(k8s.Create(ctx, grown)).To(Succeed())
	}
	code, page = open("/webhooks?namespace=" + tn.ns)
	t.Logf("four grown Webhooks (4.8 MB): %d, a page of %d bytes", code, len(page))
	g.Expect(code).To(Equal(http.StatusOK))
	g.Expect(len(page)).To(BeNumerically("<", 256<<10))
	for i := range 4 {
		g.Expect(page).To(ContainSubstring(fmt.Sprintf(`href="/webhooks/%s/grown-%d"`, tn.ns, i)))
	}
	g.Expect(signedIn(t, base, session)).To(BeTrue(), "the session lives on")
}
