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

package controllers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"unicode"

	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
)

// hostileCase is one hostile Webhook. Either the API server refuses it with a message naming the
// field at fault, or it accepts it and stores the hostile value unchanged, as harmless data.
type hostileCase struct {
	name string
	edit func(*hooklinev1.Webhook)
	// reject is what the error must hold, starting with the field path it names; empty: the
	// Webhook must be accepted and read back byte for byte.
	reject string
	// stored, for accepted cases only, turns the sent Webhook into what must be read back when the
	// Go client itself changes the value on the way (it encodes invalid UTF-8 as U+FFFD).
	stored func(*hooklinev1.Webhook)
}

// spec returns an edit that applies f to the spec.
func spec(f func(*hooklinev1.WebhookSpec)) func(*hooklinev1.Webhook) {
	return func(wh *hooklinev1.Webhook) { f(&wh.Spec) }
}

// distinctEnvelopeEvents returns n different, well-formed envelope-family event names.
func distinctEnvelopeEvents(n int) []hooklinev1.EventName {
	out := make([]hooklinev1.EventName, n)
	for i := range out {
		var suffix []byte
		for v := i; ; v /= 26 {
			suffix = append(suffix, byte('a'+v%26))
			if v < 26 {
				break
			}
		}
		out[i] = hooklinev1.EventName("envelopeX" + string(suffix))
	}
	return out
}

// emails returns n different addresses.
func emails(n int) []hooklinev1.Email {
	out := make([]hooklinev1.Email, n)
	for i := range out {
		out[i] = hooklinev1.Email(fmt.Sprintf("ops-%d@example.com", i))
	}
	return out
}

func hostileCases() []hostileCase {
	setURL := func(u string) func(*hooklinev1.Webhook) {
		return spec(func(s *hooklinev1.WebhookSpec) { s.URL = u })
	}
	setClientID := func(id string) func(*hooklinev1.Webhook) {
		return spec(func(s *hooklinev1.WebhookSpec) { s.ClientID = id })
	}
	setGroupID := func(id string) func(*hooklinev1.Webhook) {
		return spec(func(s *hooklinev1.WebhookSpec) { s.Scope, s.GroupID = hooklinev1.ScopeGroup, id })
	}
	setUserID := func(id string) func(*hooklinev1.Webhook) {
		return spec(func(s *hooklinev1.WebhookSpec) { s.Scope, s.UserID = hooklinev1.ScopeUser, id })
	}
	setResourceID := func(id string) func(*hooklinev1.Webhook) {
		return spec(func(s *hooklinev1.WebhookSpec) {
			s.Scope, s.Resource = hooklinev1.ScopeResource, &hooklinev1.WebhookResource{Type: hooklinev1.ResourceAgreement, ID: id}
		})
	}
	setEmails := func(e ...hooklinev1.Email) func(*hooklinev1.Webhook) {
		return spec(func(s *hooklinev1.WebhookSpec) { s.ProblemNotificationEmails = e })
	}
	setEvents := func(e ...hooklinev1.EventName) func(*hooklinev1.Webhook) {
		return spec(func(s *hooklinev1.WebhookSpec) { s.Events = e })
	}
	setName := func(name string) func(*hooklinev1.Webhook) {
		return func(wh *hooklinev1.Webhook) { wh.GenerateName, wh.Name = "", name }
	}
	const rtl, zwj = "\u202e", "\u200d"
	const homoglyphHost = "https://rеceivеr.example.com/hooks" // Cyrillic е (U+0435) twice
	mib := strings.Repeat("a", 1<<20)

	return []hostileCase{
		// Huge and duplicated lists.
		{name: "10,000 distinct events", edit: setEvents(distinctEnvelopeEvents(10_000)...), reject: "spec.events"},
		{name: "101 events", edit: setEvents(distinctEnvelopeEvents(101)...), reject: "spec.events: Too many"},
		{name: "100 events, the limit", edit: setEvents(distinctEnvelopeEvents(100)...)},
		{name: "10,000 copies of one event", edit: func(wh *hooklinev1.Webhook) {
			wh.Spec.Events = make([]hooklinev1.EventName, 10_000)
			for i := range wh.Spec.Events {
				wh.Spec.Events[i] = "AGREEMENT_ALL"
			}
		}, reject: "spec.events"},
		{name: "1,000 problem e-mails", edit: setEmails(emails(1000)...), reject: "spec.problemNotificationEmails: Too many"},
		{name: "duplicate problem e-mail", edit: setEmails("ops@example.com", "ops@example.com"), reject: "spec.problemNotificationEmails[1]: Duplicate value"},
		{name: "e-mails differing only in case", edit: setEmails("ops@example.com", "OPS@example.com")},
		{name: "1 MiB client id", edit: setClientID(mib), reject: "spec.clientId: Too long"},
		{name: "1 MiB url", edit: setURL("https://r.example.com/" + mib), reject: "spec.url: Too long"},
		{name: "1 MiB resource id", edit: setResourceID(mib), reject: "spec.resource.id: Too long"},
		// MaxLength counts characters, not bytes.
		{name: "groupId of 256 two-byte characters", edit: setGroupID(strings.Repeat("é", 256))},

		// Header injection and control characters in what becomes an HTTP header or request line.
		{name: "CRLF in clientId", edit: setClientID("client\r\nX-Injected: 1"), reject: "spec.clientId"},
		{name: "trailing LF in clientId", edit: setClientID("client\n"), reject: "spec.clientId"},
		{name: "NUL in clientId", edit: setClientID("client\x00"), reject: "spec.clientId"},
		{name: "DEL in clientId", edit: setClientID("client\x7f"), reject: "spec.clientId"},
		{name: "RTL override in clientId", edit: setClientID("client" + rtl + "1"), reject: "spec.clientId"},
		{name: "zero-width joiner in clientId", edit: setClientID("cli" + zwj + "ent"), reject: "spec.clientId"},
		{name: "homoglyph clientId", edit: setClientID("сlient"), reject: "spec.clientId"}, // Cyrillic с
		{name: "invalid UTF-8 in clientId", edit: setClientID("client\xff"), reject: "spec.clientId"},
		{name: "shell substitution with spaces in clientId", edit: setClientID("$(rm -rf /)"), reject: "spec.clientId"},
		{name: "shell substitution in clientId", edit: setClientID("$(reboot)")},
		{name: "template in clientId", edit: setClientID("{{.}}")},
		{name: "SQL in clientId", edit: setClientID("'OR'1'='1'--")},
		{name: "CRLF in url", edit: setURL("https://r.example.com/x\r\nX-Injected: 1"), reject: "spec.url must not contain whitespace"},
		{name: "tab in url", edit: setURL("https://r.example.com/x\ty"), reject: "spec.url must not contain whitespace"},
		{name: "NUL in url", edit: setURL("https://r.example.com/x\x00"), reject: "spec.url must not contain whitespace"},
		{name: "vertical tab in url", edit: setURL("https://r.example.com/x\vy"), reject: "spec.url must not contain whitespace"},
		{name: "DEL in url", edit: setURL("https://r.example.com/x\x7f"), reject: "spec.url must not contain whitespace"},
		{name: "C1 NEL in url", edit: setURL("https://r.example.com/x\u0085y"), reject: "spec.url must not contain whitespace"},
		{name: "no-break space in url", edit: setURL("https://r.example.com/x\u00a0y"), reject: "spec.url must not contain whitespace"},
		{name: "line separator in url", edit: setURL("https://r.example.com/x\u2028y"), reject: "spec.url must not contain whitespace"},
		{name: "RTL override in url", edit: setURL("https://r.example.com/" + rtl + "fdp.exe"), reject: "spec.url must not contain whitespace"},
		{name: "zero-width joiner in url host", edit: setURL("https://r" + zwj + ".example.com/"), reject: "spec.url must not contain whitespace"},
		{name: "byte order mark in url", edit: setURL("\ufeffhttps://r.example.com/"), reject: "spec.url"},
		{name: "percent-encoded CRLF in url", edit: setURL("https://r.example.com/x%0d%0aX-Injected:%201")},
		{name: "homoglyph url host", edit: setURL(homoglyphHost)},
		{name: "punycode url host", edit: setURL("https://xn--rceivr-5gfc.example.com/hooks")},
		{name: "javascript url", edit: setURL("javascript:alert(document.cookie)"), reject: "spec.url must be an absolute http(s) URL"},
		{name: "data url", edit: setURL("data:text/html,<script>alert(1)</script>"), reject: "spec.url must be an absolute http(s) URL"},
		{name: "file url", edit: setURL("file:///etc/passwd"), reject: "spec.url must be an absolute http(s) URL"},
		{name: "backslash url", edit: setURL(`https:\\evil.example.com\hooks`), reject: "spec.url"},
		{name: "template and shell in url path", edit: setURL("https://r.example.com/{{.}}/$(reboot)?q='OR'1'='1")},
		{name: "invalid UTF-8 in url", edit: setURL("https://r.example.com/\xff"),
			stored: func(wh *hooklinev1.Webhook) { wh.Spec.URL = "https://r.example.com/\ufffd" }},

		// Ids are opaque data compared with the event's: any text is stored as sent.
		{name: "SQL in groupId", edit: setGroupID("' OR 1=1 --")},
		{name: "shell in userId", edit: setUserID("$(rm -rf /)")},
		{name: "template in resource id", edit: setResourceID("{{ .Values.secret }}")},
		{name: "RTL override in groupId", edit: setGroupID("grp" + rtl + "7")},
		{name: "zero-width joiner in userId", edit: setUserID("u" + zwj + "1")},
		{name: "NUL in userId", edit: setUserID("u\x001")},
		{name: "CRLF in resource id", edit: setResourceID("agr-1\r\nX-Injected: 1")},
		{name: "terminal escape in groupId", edit: setGroupID("\x1b[2Jgrp")},
		{name: "invalid UTF-8 in groupId", edit: setGroupID("grp\xff\xfe"),
			stored: func(wh *hooklinev1.Webhook) { wh.Spec.GroupID = "grp\ufffd\ufffd" }},
		{name: "whitespace-only userId", edit: setUserID("   ")},

		// Other fields with patterns.
		{name: "CRLF in problem e-mail", edit: setEmails("ops@example.com\r\nBcc: victim@example.com"), reject: "spec.problemNotificationEmails[0]"},
		{name: "NUL in problem e-mail", edit: setEmails("ops\x00@example.com"), reject: "spec.problemNotificationEmails[0]"},
		{name: "vertical tab in problem e-mail", edit: setEmails("ops@example.com\v"), reject: "spec.problemNotificationEmails[0]"},
		{name: "C1 NEL in problem e-mail", edit: setEmails("ops@example.com\u0085"), reject: "spec.problemNotificationEmails[0]"},
		{name: "SQL in problem e-mail", edit: setEmails("'OR'1'='1@example.com")},
		// A relay may route these past the domain allowlist; a display name is shown as the sender's words.
		{name: "percent hack in problem e-mail", edit: setEmails("victim%mallory.example@example.com"), reject: "spec.problemNotificationEmails[0]"},
		{name: "bang path in problem e-mail", edit: setEmails("mallory.example!victim@example.com"), reject: "spec.problemNotificationEmails[0]"},
		{name: "display name in problem e-mail", edit: setEmails("=?utf-8?q?IT_Security?=<alice@example.com>"), reject: "spec.problemNotificationEmails[0]"},
		{name: "comment in problem e-mail", edit: setEmails("alice@example.com(call+15550100)"), reject: "spec.problemNotificationEmails[0]"},
		{name: "path traversal secret name", edit: spec(func(s *hooklinev1.WebhookSpec) {
			s.ClientCertificateSecretRef = &hooklinev1.SecretReference{Name: "../../etc/passwd"}
		}), reject: "spec.clientCertificateSecretRef.name"},
		{name: "template event", edit: setEvents("envelope{{.}}"), reject: "spec.events[0]"},
		// The ingest API refuses event names beyond 64 characters: a subscription to one is refused too.
		{name: "envelope event of 64 characters", edit: setEvents(hooklinev1.EventName("envelope" + strings.Repeat("X", 56)))},
		{name: "envelope event of 65 characters", edit: setEvents(hooklinev1.EventName("envelope" + strings.Repeat("X", 57))), reject: "spec.events[0]: Too long"},
		// A YAML block scalar leaves a trailing newline; the message must still be the readable one.
		{name: "event with trailing LF", edit: setEvents("AGREEMENT_ALL\n"), reject: "spec.events[0]: Invalid value: \"AGREEMENT_ALL\\n\": unknown event name: use"},
		{name: "envelope event with trailing LF", edit: setEvents("envelopeExpired\n"), reject: "spec.events[0]"},
		{name: "event with NUL", edit: setEvents("AGREEMENT_ALL\x00"), reject: "spec.events[0]"},
		{name: "event with terminal escape", edit: setEvents("\x1b]0;pwned\x07AGREEMENT_ALL"), reject: "spec.events[0]"},

		// metadata.name is the API server's to validate.
		{name: "SQL name", edit: setName("x'; DROP TABLE webhooks; --"), reject: "metadata.name"},
		{name: "shell name", edit: setName("$(rm -rf /)"), reject: "metadata.name"},
		{name: "template name", edit: setName("{{.}}"), reject: "metadata.name"},
		{name: "CRLF name", edit: setName("a\r\nb"), reject: "metadata.name"},
		{name: "RTL override name", edit: setName("hook" + rtl + "lmth"), reject: "metadata.name"},
		{name: "path name", edit: setName("../hooks"), reject: "metadata.name"},
		{name: "254-character name", edit: setName(strings.Repeat("a", 254)), reject: "metadata.name"},
		{name: "hostile annotation value", edit: func(wh *hooklinev1.Webhook) {
			wh.Annotations = map[string]string{hooklinev1.ReactivateAnnotation: "{{.}}\r\n$(reboot)\x00" + rtl}
		}},
	}
}

// TestHostileWebhookValues sends each hostile case to the API server and checks that it is refused
// with the field named, or stored exactly as sent.
func TestHostileWebhookValues(t *testing.T) {
	ns := newNamespace(t, "", "")
	ctx := context.Background()
	for _, tc := range hostileCases() {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			s := validSpec()
			// Inactive in an unbound namespace: the manager leaves the endpoint alone.
			s.State = hooklinev1.StateInactive
			wh := &hooklinev1.Webhook{ObjectMeta: metav1.ObjectMeta{GenerateName: "hostile-", Namespace: ns}, Spec: s}
			tc.edit(wh)
			want := wh.DeepCopy()
			err := k8s.Create(ctx, wh)
			if tc.reject != "" {
				g.Expect(err).To(HaveOccurred(), "the API server accepted it")
				g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "not a validation error: %v", err)
				g.Expect(err.Error()).To(ContainSubstring(tc.reject))
				// The message reaches terminals and GitOps UIs: hostile text must come back quoted,
				// never as raw control or bidi characters.
				g.Expect(strings.IndexFunc(err.Error(), func(r rune) bool { return unicode.In(r, unicode.Cc, unicode.Cf) })).
					To(Equal(-1), "raw control or formatting character in %q", err.Error())
				t.Logf("refused: %.300s", err)
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			if tc.stored != nil {
				tc.stored(want)
			}
			got := &hooklinev1.Webhook{}
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(wh), got)).To(Succeed())
			g.Expect(got.Spec).To(Equal(want.Spec))
			g.Expect(got.Annotations).To(Equal(want.Annotations))
			if want.Name != "" {
				g.Expect(got.Name).To(Equal(want.Name))
			}
		})
	}
}

// TestHostileRawBodies bypasses the Go client, which never sends invalid UTF-8, and posts bytes
// as a hand-written client could: the API server must refuse them or store valid UTF-8.
func TestHostileRawBodies(t *testing.T) {
	ns := newNamespace(t, "", "")
	httpClient, err := rest.HTTPClientFor(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	url := strings.TrimSuffix(env.Config.Host, "/") + "/apis/" + hooklinev1.GroupVersion.String() + "/namespaces/" + ns + "/webhooks"
	post := func(t *testing.T, body []byte) (int, []byte) {
		t.Helper()
		resp, err := httpClient.Post(url, "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		out, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, out
	}
	webhook := func(name, specJSON string) []byte {
		return []byte(`{"apiVersion":"` + hooklinev1.GroupVersion.String() + `","kind":"Webhook","metadata":{"name":"` + name +
			`"},"spec":{"url":"https://r.example.com/hooks","scope":"GROUP","state":"INACTIVE","events":["AGREEMENT_ALL"],` + specJSON + `}}`)
	}

	t.Run("invalid UTF-8 in groupId", func(t *testing.T) {
		// The API server's JSON decoder replaces each invalid byte with U+FFFD: an id is data, so
		// it is stored, but never as bytes other components would have to cope with.
		g := NewWithT(t)
		code, out := post(t, webhook("raw-utf8-group", "\"groupId\":\"grp\xff\xfe\""))
		g.Expect(code).To(Equal(http.StatusCreated), "%s", out)
		got := &hooklinev1.Webhook{}
		g.Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "raw-utf8-group"}, got)).To(Succeed())
		g.Expect(got.Spec.GroupID).To(Equal("grp\ufffd\ufffd"))
	})
	t.Run("invalid UTF-8 in clientId", func(t *testing.T) {
		g := NewWithT(t)
		code, out := post(t, webhook("raw-utf8-client", "\"groupId\":\"g\",\"clientId\":\"client\xff\""))
		g.Expect(code).To(Equal(http.StatusUnprocessableEntity), "%s", out)
		g.Expect(string(out)).To(ContainSubstring("spec.clientId"))
	})
	t.Run("raw CR LF in the JSON string", func(t *testing.T) {
		// JSON forbids unescaped control characters in strings: the decoder refuses the body.
		g := NewWithT(t)
		code, out := post(t, webhook("raw-crlf", "\"groupId\":\"g\",\"clientId\":\"client\r\nX-Injected: 1\""))
		g.Expect(code).To(Equal(http.StatusBadRequest), "%s", out)
	})
	t.Run("duplicate clientId keys", func(t *testing.T) {
		// Without ?fieldValidation=Strict the API server keeps the last of duplicate keys (and
		// warns); what matters is that the value it keeps is the one validated.
		g := NewWithT(t)
		code, out := post(t, webhook("raw-dup", `"groupId":"g","clientId":"good-client","clientId":"evil\u000d\u000aX-Injected: 1"`))
		g.Expect(code).To(Equal(http.StatusUnprocessableEntity), "%s", out)
		var status metav1.Status
		g.Expect(json.Unmarshal(out, &status)).To(Succeed())
		g.Expect(status.Message).To(ContainSubstring(`spec.clientId: Invalid value: "evil\r\nX-Injected: 1"`))
	})
}
