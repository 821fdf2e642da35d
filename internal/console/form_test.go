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

package console

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	"golang.org/x/net/html"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/rest"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
)

// vapDenial is the API server's 403 for a write that a ValidatingAdmissionPolicy denied, as
// config/policies/webhook_secret_access.yaml's messages make it.
func vapDenial(fieldMessage string) metav1.Status {
	return metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: metav1.StatusFailure,
		Reason: metav1.StatusReasonForbidden, Code: http.StatusForbidden,
		Details: &metav1.StatusDetails{Group: "hookline.io", Kind: "webhooks", Name: "hook"},
		Message: `webhooks.hookline.io "hook" is forbidden: ValidatingAdmissionPolicy 'hookline-webhook-secret-access' ` +
			`with binding 'hookline-webhook-secret-access' denied request: ` + fieldMessage}
}

// policyAPI stands in for an API server whose admission policy refuses every write of team-a's
// Webhooks with answer; team-a/hook (signed with Secret sig) may be read.
func policyAPI(t *testing.T, answer metav1.Status) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.Method == http.MethodGet && r.URL.Path == "/apis/hookline.io/v1alpha1/namespaces/team-a/webhooks/hook" {
			_ = json.NewEncoder(w).Encode(hooklinev1.Webhook{TypeMeta: metav1.TypeMeta{Kind: "Webhook", APIVersion: hooklinev1.GroupVersion.String()},
				ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "hook", UID: "uid-1", ResourceVersion: "7"},
				Spec: hooklinev1.WebhookSpec{URL: "https://old.example/h", State: hooklinev1.StateActive, Scope: hooklinev1.ScopeAccount,
					Events: []hooklinev1.EventName{"AGREEMENT_ALL"}, Signing: &hooklinev1.WebhookSigning{SecretRef: hooklinev1.SecretReference{Name: "sig"}}}})
			return
		}
		w.WriteHeader(int(answer.Code))
		_ = json.NewEncoder(w).Encode(answer)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// postForm posts a form as a signed-in user and returns the answer.
func postForm(t *testing.T, s *Server, path string, form url.Values) *httptest.ResponseRecorder {
	t.Helper()
	sess, err := s.Sessions().Create("token-a", "system:serviceaccount:team-a:alice")
	if err != nil {
		t.Fatal(err)
	}
	form.Set("csrf", sess.CSRF)
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: s.sessionCookie, Value: sess.ID})
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	return rec
}

// elementText is the text of the element with id in an HTML page, "" when there is none.
func elementText(t *testing.T, body, id string) string {
	t.Helper()
	n := elementByID(t, body, id)
	if n == nil {
		return ""
	}
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return b.String()
}

// elementByID finds the element with id in an HTML page.
func elementByID(t *testing.T, body, id string) *html.Node {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var found *html.Node
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && attrOf(n, "id") == id && found == nil {
			found = n
		}
		for c := n.FirstChild; c != nil && found == nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	return found
}

// attrOf is n's attribute key, "" when unset.
func attrOf(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

// An edit hookline's own admission policy refuses (403) comes back as the form, with what the
// user typed and the policy's message under the field it names; it was a full error page that
// threw the edits away.
func TestAPolicysRefusalKeepsTheEditsAndGoesUnderItsField(t *testing.T) {
	g := NewWithT(t)
	api := policyAPI(t, vapDenial("spec.url: this Webhook signs with Secret team-a/sig (spec.signing.secretRef), which you may not get, "+
		"so you may not change where hookline sends what it signs"))
	s, err := New(Config{API: &rest.Config{Host: api.URL}, InsecureCookies: true})
	g.Expect(err).NotTo(HaveOccurred())
	rec := postForm(t, s, "/webhooks/team-a/hook/edit", url.Values{"url": {"https://new.example/typed"}, "state": {"ACTIVE"},
		"scope": {"ACCOUNT"}, "events": {"AGREEMENT_ALL"}, "signingSecret": {"sig"}, "resourceVersion": {"7"}})
	body := rec.Body.String()
	g.Expect(rec.Code).To(Equal(http.StatusForbidden))
	g.Expect(elementByID(t, body, "url")).NotTo(BeNil(), "the form is shown: %s", body)
	g.Expect(attrOf(elementByID(t, body, "url"), "value")).To(Equal("https://new.example/typed"))
	g.Expect(attrOf(elementByID(t, body, "url"), "aria-invalid")).To(Equal("true"))
	g.Expect(elementText(t, body, "url-error")).To(And(HavePrefix("The API server refused this: "),
		ContainSubstring("this Webhook signs with Secret team-a/sig"), Not(ContainSubstring("ValidatingAdmissionPolicy"))))
	g.Expect(body).NotTo(ContainSubstring("RBAC"))

	// On create, a refusal naming no field of the form is a general error, in the same words.
	api = policyAPI(t, vapDenial("something else entirely"))
	s, err = New(Config{API: &rest.Config{Host: api.URL}, InsecureCookies: true})
	g.Expect(err).NotTo(HaveOccurred())
	rec = postForm(t, s, "/webhooks/new", url.Values{"namespace": {"team-a"}, "name": {"new"}, "url": {"https://typed.example/"},
		"state": {"ACTIVE"}, "scope": {"ACCOUNT"}})
	body = rec.Body.String()
	g.Expect(rec.Code).To(Equal(http.StatusForbidden))
	g.Expect(attrOf(elementByID(t, body, "url"), "value")).To(Equal("https://typed.example/"))
	g.Expect(elementText(t, body, "general-errors")).To(And(HavePrefix("The API server refused this: "), ContainSubstring("something else entirely")))
	g.Expect(body).NotTo(ContainSubstring("RBAC"))

	// In Danish, the prefix is Danish.
	g.Expect(catalogs["da"]["form.refused"]).NotTo(Equal(catalogs["en"]["form.refused"]))
}

// Screen readers: each field the API server refuses is marked invalid and names its error, for
// every field of the form (a 422 with one cause per field).
func TestEveryRefusedFieldIsMarkedInvalidAndNamesItsError(t *testing.T) {
	g := NewWithT(t)
	causes := map[string]string{ // API field path -> the control that shows its error
		"metadata.namespace": "namespace", "metadata.name": "name", "spec.url": "url", "spec.state": "state-select",
		"spec.scope": "scope", "spec.groupId": "groupId", "spec.userId": "userId", "spec.resource.type": "resourceType",
		"spec.resource.id": "resourceId", "spec.events[0]": "extraEvents", "spec.clientId": "clientId",
		"spec.clientCertificateSecretRef.name": "clientCertificateSecret", "spec.signing.secretRef.name": "signingSecret",
		"spec.problemNotificationEmails[0]": "problemNotificationEmails",
	}
	var errs field.ErrorList
	for path := range causes {
		errs = append(errs, field.Invalid(field.NewPath(path), "x", "refused "+path))
	}
	errs = append(errs, field.Invalid(field.NewPath("spec.conditionalParams.agreement"), "x", "refused cp"))
	st := apierrors.NewInvalid(schema.GroupKind{Group: "hookline.io", Kind: "Webhook"}, "new", errs).ErrStatus
	st.Kind, st.APIVersion = "Status", "v1"
	s, err := New(Config{API: &rest.Config{Host: policyAPI(t, st).URL}, InsecureCookies: true})
	g.Expect(err).NotTo(HaveOccurred())
	rec := postForm(t, s, "/webhooks/new", url.Values{"namespace": {"team-a"}, "name": {"new"}, "url": {"https://r.example/"},
		"state": {"ACTIVE"}, "scope": {"RESOURCE"}, "extraEvents": {"envelopeNope"}})
	body := rec.Body.String()
	g.Expect(rec.Code).To(Equal(http.StatusUnprocessableEntity))
	for path, id := range causes {
		errorID := formFieldOf(path) + "-error"
		control := elementByID(t, body, id)
		g.Expect(control).NotTo(BeNil(), id)
		g.Expect(attrOf(control, "aria-invalid")).To(Equal("true"), "%s (%s) is not marked invalid", id, path)
		g.Expect(strings.Fields(attrOf(control, "aria-describedby"))).To(ContainElement(errorID), "%s does not name %s", id, errorID)
		g.Expect(elementText(t, body, errorID)).To(ContainSubstring("refused "+path), errorID)
	}
	cp := elementByID(t, body, "cp.agreement.includeDetailedInfo")
	g.Expect(cp).NotTo(BeNil())
	g.Expect(attrOf(cp, "aria-invalid")).To(Equal("true"))
	g.Expect(strings.Fields(attrOf(cp, "aria-describedby"))).To(ContainElement("conditionalParams-error"))
	g.Expect(elementText(t, body, "conditionalParams-error")).To(ContainSubstring("refused cp"))

	// Without errors, no control says it is invalid.
	rec = httptest.NewRecorder()
	sess, _ := s.Sessions().Create("token-a", "alice")
	s.showForm(rec, httptest.NewRequest(http.MethodGet, "/webhooks/new", nil), &reqCtx{sess: *sess, L: localizerFor("en")}, http.StatusOK,
		webhookForm{Namespace: "team-a", Events: map[string]bool{}, Params: map[string]bool{}}, false, formErrors{}, false)
	g.Expect(rec.Body.String()).NotTo(ContainSubstring("aria-invalid"))
}

// The immutable choices are read-only when editing: the select is disabled (so it is not sent)
// and a hidden input sends the value the webhook has, as for the scope.
func TestImmutableSelectsAreReadOnlyWhenEditing(t *testing.T) {
	g := NewWithT(t)
	s, _ := newTestServer(t, true)
	sess, _ := s.Sessions().Create("token-a", "alice")
	f := webhookForm{Namespace: "team-a", Name: "hook", Scope: "RESOURCE", ResourceType: "AGREEMENT", ResourceID: "CBJ1",
		State: "ACTIVE", Events: map[string]bool{}, Params: map[string]bool{}}
	for _, editing := range []bool{false, true} {
		rec := httptest.NewRecorder()
		s.showForm(rec, httptest.NewRequest(http.MethodGet, "/webhooks/team-a/hook/edit", nil), &reqCtx{sess: *sess, L: localizerFor("en")},
			http.StatusOK, f, editing, formErrors{}, false)
		doc, err := html.Parse(strings.NewReader(rec.Body.String()))
		g.Expect(err).NotTo(HaveOccurred())
		for name, want := range map[string]string{"scope": "RESOURCE", "resourceType": "AGREEMENT"} {
			var selects, hidden []*html.Node
			var walk func(*html.Node)
			walk = func(n *html.Node) {
				if n.Type == html.ElementNode && attrOf(n, "name") == name {
					switch {
					case n.Data == "select":
						selects = append(selects, n)
					case n.Data == "input" && attrOf(n, "type") == "hidden":
						hidden = append(hidden, n)
					}
				}
				for c := n.FirstChild; c != nil; c = c.NextSibling {
					walk(c)
				}
			}
			walk(doc)
			g.Expect(selects).To(HaveLen(1), name)
			_, disabled := attrKey(selects[0], "disabled")
			g.Expect(disabled).To(Equal(editing), "%s: disabled when editing only", name)
			if editing {
				g.Expect(hidden).To(HaveLen(1), "%s: the value is sent", name)
				g.Expect(attrOf(hidden[0], "value")).To(Equal(want), name)
			} else {
				g.Expect(hidden).To(BeEmpty(), name)
			}
		}
	}
}

// attrKey reports whether n has the attribute key, and its value.
func attrKey(n *html.Node, key string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val, true
		}
	}
	return "", false
}
