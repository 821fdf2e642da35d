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
	"net/http"
	"net/url"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/hookline/hookline/internal/console"
)

// noRedirects is a client that shows redirects instead of following them.
var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// signInHTTP signs in with token as a script would, without a browser (the sign-in form's nonce is
// also its cookie's value), and returns the session cookie's value.
func signInHTTP(t *testing.T, base, token string) string {
	t.Helper()
	resp, err := noRedirects.Get(base + "/signin")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	var nonce string
	for _, c := range resp.Cookies() {
		if c.Name == "hookline-signin" {
			nonce = c.Value
		}
	}
	form := url.Values{"token": {token}, "nonce": {nonce}}
	req, err := http.NewRequest(http.MethodPost, base+"/signin", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: "hookline-signin", Value: nonce})
	resp, err = noRedirects.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/webhooks" {
		t.Fatalf("sign-in answered %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	for _, c := range resp.Cookies() {
		if c.Name == "hookline-session" && c.Value != "" {
			return c.Value
		}
	}
	t.Fatal("no session cookie")
	return ""
}

// signedIn reports whether the session still opens the list page (an ended session is sent to the
// sign-in page).
func signedIn(t *testing.T, base, session string) bool {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+"/webhooks", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.AddCookie(&http.Cookie{Name: "hookline-session", Value: session})
	resp, err := noRedirects.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusOK:
		return true
	case resp.StatusCode == http.StatusSeeOther && strings.HasPrefix(resp.Header.Get("Location"), "/signin"):
		return false
	}
	t.Fatalf("the list page answered %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	return false
}

// A tenant holding every right in its namespace floods the console with sign-ins, the API server
// checking each: its own token again and again (the form's nonce can be replayed), then tokens of
// ServiceAccounts it creates. Only its own sessions end, the oldest first; another tenant's session
// stays, and that tenant still signs in.
func TestSignInFloodEndsOnlyTheFloodersSessions(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	// Its sign-ins all come from 127.0.0.1: the bound per client address (5 a second, 60 at once)
	// is set aside here, so that the sessions' bounds are what is tested.
	base := startConsoleWithConfig(t, console.Config{SignInBurst: 1000})
	flooder, other := newTenant(t, "acc-flood"), newTenant(t, "acc-flood-other")
	otherSession := signInHTTP(t, base, other.token)

	var own []string
	for range 6 {
		own = append(own, signInHTTP(t, base, flooder.token))
	}
	g.Expect(signedIn(t, base, own[0])).To(BeFalse(), "the sixth sign-in of one user ends its first session")
	for _, s := range own[1:] {
		g.Expect(signedIn(t, base, s)).To(BeTrue())
	}

	// ServiceAccounts the tenant creates share one bound for their namespace.
	cs, err := kubernetes.NewForConfig(env.Config)
	g.Expect(err).NotTo(HaveOccurred())
	var accounts []string
	for i := range 55 {
		name := fmt.Sprintf("flood-%d", i)
		_, err := cs.CoreV1().ServiceAccounts(flooder.ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		tr, err := cs.CoreV1().ServiceAccounts(flooder.ns).CreateToken(ctx, name, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		accounts = append(accounts, signInHTTP(t, base, tr.Status.Token))
	}
	live := 0
	for _, s := range append(own[1:], accounts...) {
		if signedIn(t, base, s) {
			live++
		}
	}
	g.Expect(live).To(Equal(50), "the namespace's ServiceAccounts hold fifty sessions, its admin's included")
	g.Expect(signedIn(t, base, accounts[len(accounts)-1])).To(BeTrue(), "the newest stays")

	g.Expect(signedIn(t, base, otherSession)).To(BeTrue(), "another tenant's session is untouched")
	g.Expect(signedIn(t, base, signInHTTP(t, base, other.token))).To(BeTrue(), "and it signs in again")
}
