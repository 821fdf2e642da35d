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
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
)

// validSpec returns a spec the API server accepts; cases mutate a copy.
func validSpec() hooklinev1.WebhookSpec {
	return hooklinev1.WebhookSpec{
		URL:    "https://receiver.example.com/hooks",
		Scope:  hooklinev1.ScopeAccount,
		Events: []hooklinev1.EventName{"AGREEMENT_ALL"},
	}
}

func TestInvalidWebhooksAreRejectedWithFieldMessages(t *testing.T) {
	ns := newNamespace(t, "acc-validation", "")
	long := strings.Repeat("a", 2050)
	cases := []struct {
		name   string
		mutate func(*hooklinev1.WebhookSpec)
		want   string
	}{
		{"missing url", func(s *hooklinev1.WebhookSpec) { s.URL = "" }, "spec.url"},
		{"relative url", func(s *hooklinev1.WebhookSpec) { s.URL = "/hooks" }, "spec.url must be an absolute http(s) URL"},
		{"ftp scheme", func(s *hooklinev1.WebhookSpec) { s.URL = "ftp://receiver.example.com/x" }, "spec.url must be an absolute http(s) URL"},
		{"url without host", func(s *hooklinev1.WebhookSpec) { s.URL = "https:///path" }, "spec.url must name a host"},
		{"url with fragment", func(s *hooklinev1.WebhookSpec) { s.URL = "https://r.example.com/x#frag" }, "spec.url must not contain a fragment"},
		{"url with credentials", func(s *hooklinev1.WebhookSpec) { s.URL = "https://user:pw@r.example.com/x" }, "spec.url must not carry credentials"},
		{"url too long", func(s *hooklinev1.WebhookSpec) { s.URL = "https://r.example.com/" + long }, "spec.url: Too long"},
		{"unknown scope", func(s *hooklinev1.WebhookSpec) { s.Scope = "CHANNEL" }, `spec.scope: Unsupported value: "CHANNEL"`},
		{"unknown state", func(s *hooklinev1.WebhookSpec) { s.State = "DELETED" }, `spec.state: Unsupported value: "DELETED"`},
		{"group scope without groupId", func(s *hooklinev1.WebhookSpec) { s.Scope = hooklinev1.ScopeGroup }, "spec.groupId is required when scope is GROUP"},
		{"user scope without userId", func(s *hooklinev1.WebhookSpec) { s.Scope = hooklinev1.ScopeUser }, "spec.userId is required when scope is USER"},
		{"resource scope without resource", func(s *hooklinev1.WebhookSpec) { s.Scope = hooklinev1.ScopeResource }, "spec.resource is required when scope is RESOURCE"},
		{"groupId on account scope", func(s *hooklinev1.WebhookSpec) { s.GroupID = "g1" }, "spec.groupId is only allowed when scope is GROUP"},
		{"userId on group scope", func(s *hooklinev1.WebhookSpec) { s.Scope, s.GroupID, s.UserID = hooklinev1.ScopeGroup, "g1", "u1" }, "spec.userId is only allowed when scope is USER"},
		{"resource on user scope", func(s *hooklinev1.WebhookSpec) {
			s.Scope, s.UserID = hooklinev1.ScopeUser, "u1"
			s.Resource = &hooklinev1.WebhookResource{Type: hooklinev1.ResourceAgreement, ID: "a1"}
		}, "spec.resource is only allowed when scope is RESOURCE"},
		{"unknown resource type", func(s *hooklinev1.WebhookSpec) {
			s.Scope, s.Resource = hooklinev1.ScopeResource, &hooklinev1.WebhookResource{Type: "DOCUMENT", ID: "d1"}
		}, `spec.resource.type: Unsupported value: "DOCUMENT"`},
		{"resource without id", func(s *hooklinev1.WebhookSpec) {
			s.Scope, s.Resource = hooklinev1.ScopeResource, &hooklinev1.WebhookResource{Type: hooklinev1.ResourceAgreement}
		}, "spec.resource.id"},
		{"no events", func(s *hooklinev1.WebhookSpec) { s.Events = nil }, "spec.events"},
		{"unknown event", func(s *hooklinev1.WebhookSpec) {
			s.Events = []hooklinev1.EventName{"AGREEMENT_ACTION_COMPLETED", "AGREEMENT_EXPLODED"}
		}, `spec.events[1]: Invalid value: "AGREEMENT_EXPLODED": unknown event name "AGREEMENT_EXPLODED"`},
		{"lower-case acrobat event", func(s *hooklinev1.WebhookSpec) { s.Events = []hooklinev1.EventName{"agreement_all"} }, `unknown event name "agreement_all"`},
		{"envelope name without capital", func(s *hooklinev1.WebhookSpec) { s.Events = []hooklinev1.EventName{"envelopeexpired"} }, `unknown event name "envelopeexpired"`},
		{"LIBRARY_ALL alias", func(s *hooklinev1.WebhookSpec) { s.Events = []hooklinev1.EventName{"LIBRARY_ALL"} }, `unknown event name "LIBRARY_ALL"`},
		{"duplicate events", func(s *hooklinev1.WebhookSpec) { s.Events = []hooklinev1.EventName{"AGREEMENT_ALL", "AGREEMENT_ALL"} }, "spec.events[1]: Duplicate value"},
		{"agreement params without agreement events", func(s *hooklinev1.WebhookSpec) {
			s.Events = []hooklinev1.EventName{"WIDGET_ALL"}
			s.ConditionalParams = &hooklinev1.ConditionalParams{Agreement: &hooklinev1.AgreementConditionalParams{IncludeDetailedInfo: true}}
		}, "spec.conditionalParams.agreement needs an agreement event"},
		{"widget params without widget events", func(s *hooklinev1.WebhookSpec) {
			s.ConditionalParams = &hooklinev1.ConditionalParams{Widget: &hooklinev1.WidgetConditionalParams{IncludeDetailedInfo: true}}
		}, "spec.conditionalParams.widget needs a web form event"},
		{"megaSign params without megaSign events", func(s *hooklinev1.WebhookSpec) {
			s.ConditionalParams = &hooklinev1.ConditionalParams{MegaSign: &hooklinev1.MegaSignConditionalParams{IncludeDetailedInfo: true}}
		}, "spec.conditionalParams.megaSign needs a bulk-send event"},
		{"library params on envelope webhook", func(s *hooklinev1.WebhookSpec) {
			s.Events = []hooklinev1.EventName{"ENVELOPE_ALL"}
			s.ConditionalParams = &hooklinev1.ConditionalParams{LibraryDocument: &hooklinev1.LibraryDocumentConditionalParams{IncludeDocumentsInfo: true}}
		}, "spec.conditionalParams.libraryDocument needs a library document event"},
		{"client id with space", func(s *hooklinev1.WebhookSpec) { s.ClientID = "bad id" }, "spec.clientId"},
		{"bad problem e-mail", func(s *hooklinev1.WebhookSpec) {
			s.ProblemNotificationEmails = []hooklinev1.Email{"ops-at-example.com"}
		}, "spec.problemNotificationEmails[0]"},
		{"bad secret name", func(s *hooklinev1.WebhookSpec) {
			s.ClientCertificateSecretRef = &hooklinev1.SecretReference{Name: "Not_A_Name"}
		}, "spec.clientCertificateSecretRef.name"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			spec := validSpec()
			tc.mutate(&spec)
			wh := &hooklinev1.Webhook{ObjectMeta: metav1.ObjectMeta{GenerateName: "invalid-", Namespace: ns}, Spec: spec}
			err := k8s.Create(context.Background(), wh)
			g.Expect(err).To(HaveOccurred(), "the API server accepted an invalid Webhook")
			g.Expect(err.Error()).To(ContainSubstring(tc.want))
		})
	}
}

func TestImmutableFieldsCannotChange(t *testing.T) {
	ns := newNamespace(t, "acc-immutable", "")
	ctx := context.Background()
	create := func(t *testing.T, spec hooklinev1.WebhookSpec) *hooklinev1.Webhook {
		spec.State = hooklinev1.StateInactive // keep the manager from verifying a fake URL
		wh := &hooklinev1.Webhook{ObjectMeta: metav1.ObjectMeta{GenerateName: "immutable-", Namespace: ns}, Spec: spec}
		NewWithT(t).Expect(k8s.Create(ctx, wh)).To(Succeed())
		return wh
	}
	group := validSpec()
	group.Scope, group.GroupID = hooklinev1.ScopeGroup, "g1"
	user := validSpec()
	user.Scope, user.UserID = hooklinev1.ScopeUser, "u1"
	res := validSpec()
	res.Scope, res.Resource = hooklinev1.ScopeResource, &hooklinev1.WebhookResource{Type: hooklinev1.ResourceAgreement, ID: "agr-1"}

	cases := []struct {
		name   string
		spec   hooklinev1.WebhookSpec
		mutate func(*hooklinev1.WebhookSpec)
		want   string
	}{
		{"scope", validSpec(), func(s *hooklinev1.WebhookSpec) { s.Scope, s.GroupID = hooklinev1.ScopeGroup, "g1" }, "spec.scope is immutable"},
		{"groupId", group, func(s *hooklinev1.WebhookSpec) { s.GroupID = "g2" }, "spec.groupId is immutable"},
		{"userId", user, func(s *hooklinev1.WebhookSpec) { s.UserID = "u2" }, "spec.userId is immutable"},
		{"resource id", res, func(s *hooklinev1.WebhookSpec) { s.Resource.ID = "agr-2" }, "spec.resource is immutable"},
		{"resource type", res, func(s *hooklinev1.WebhookSpec) { s.Resource.Type = hooklinev1.ResourceWidget }, "spec.resource is immutable"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			wh := create(t, tc.spec)
			base := wh.DeepCopy()
			tc.mutate(&wh.Spec)
			// A merge patch carries no resourceVersion, so the manager's status writes cannot make
			// it conflict: only validation can reject it.
			err := k8s.Patch(ctx, wh, client.MergeFrom(base))
			g.Expect(err).To(HaveOccurred())
			g.Expect(err.Error()).To(ContainSubstring(tc.want))
		})
	}

	t.Run("mutable fields still change", func(t *testing.T) {
		g := NewWithT(t)
		wh := create(t, group)
		base := wh.DeepCopy()
		wh.Spec.URL = "https://elsewhere.example.com/x"
		wh.Spec.Events = []hooklinev1.EventName{"WIDGET_ALL"}
		wh.Spec.ClientID = "another-client"
		g.Expect(k8s.Patch(ctx, wh, client.MergeFrom(base))).To(Succeed())
	})
}

func TestEveryKnownEventIsAccepted(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, "acc-events", "")
	events := make([]hooklinev1.EventName, 0, len(hooklinev1.AcrobatEvents)+5)
	for _, e := range hooklinev1.AcrobatEvents {
		events = append(events, hooklinev1.EventName(e))
	}
	events = append(events, "envelopeExpired", "envelopeStarted", "envelopeCompleted", "participantRejected", "recipientSigned")
	spec := validSpec()
	spec.State = hooklinev1.StateInactive
	spec.Events = events
	spec.ConditionalParams = &hooklinev1.ConditionalParams{
		Agreement:       &hooklinev1.AgreementConditionalParams{IncludeDetailedInfo: true, IncludeParticipantsInfo: true, IncludeDocumentsInfo: true, IncludeSignedDocuments: true},
		Widget:          &hooklinev1.WidgetConditionalParams{IncludeDetailedInfo: true, IncludeParticipantsInfo: true, IncludeDocumentsInfo: true},
		MegaSign:        &hooklinev1.MegaSignConditionalParams{IncludeDetailedInfo: true},
		LibraryDocument: &hooklinev1.LibraryDocumentConditionalParams{IncludeDetailedInfo: true, IncludeDocumentsInfo: true},
	}
	wh := &hooklinev1.Webhook{ObjectMeta: metav1.ObjectMeta{Name: "all-events", Namespace: ns}, Spec: spec}
	g.Expect(k8s.Create(context.Background(), wh)).To(Succeed())
	g.Expect(wh.Spec.State).To(Equal(hooklinev1.StateInactive))
}

// TestEventListMatchesCRD keeps the CEL rule's event list and hooklinev1.AcrobatEvents identical.
func TestEventListMatchesCRD(t *testing.T) {
	g := NewWithT(t)
	raw, err := os.ReadFile(filepath.Join(env.Root, "config", "crd", "bases", "hookline.io_webhooks.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	var crd map[string]any
	g.Expect(yaml.Unmarshal(raw, &crd)).To(Succeed())
	m := regexp.MustCompile(`self in \[([^\]]*)\]`).FindStringSubmatch(string(mustJSON(t, crd)))
	g.Expect(m).NotTo(BeNil(), "the events rule was not found in the CRD")
	quoted := strings.Split(m[1], ",")
	inCRD := make([]string, 0, len(quoted))
	for _, q := range quoted {
		inCRD = append(inCRD, strings.Trim(strings.TrimSpace(q), "'"))
	}
	want := slices.Clone(hooklinev1.AcrobatEvents)
	slices.Sort(want)
	slices.Sort(inCRD)
	g.Expect(inCRD).To(Equal(want))
}

func TestDefaultStateIsActive(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, "", "")
	wh := &hooklinev1.Webhook{ObjectMeta: metav1.ObjectMeta{Name: "defaulted", Namespace: ns}, Spec: validSpec()}
	g.Expect(k8s.Create(context.Background(), wh)).To(Succeed())
	g.Expect(wh.Spec.State).To(Equal(hooklinev1.StateActive))
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
