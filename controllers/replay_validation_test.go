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
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
)

const someNotificationID = "0f1e2d3c-4b5a-5968-8776-a5b4c3d2e1f0"

func validReplaySpec() hooklinev1.WebhookReplaySpec {
	return hooklinev1.WebhookReplaySpec{WebhookName: "orders", NotificationIDs: []hooklinev1.NotificationID{someNotificationID}}
}

func TestInvalidWebhookReplaysAreRejectedWithFieldMessages(t *testing.T) {
	ns := newNamespace(t, "", "")
	since := metav1.NewTime(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC))
	before := metav1.NewTime(since.Add(-time.Hour))
	many := make([]hooklinev1.NotificationID, 1001)
	for i := range many {
		many[i] = hooklinev1.NotificationID(fmt.Sprintf("%08x-0000-5000-8000-000000000000", i))
	}
	cases := []struct {
		name   string
		mutate func(*hooklinev1.WebhookReplaySpec)
		want   string
	}{
		{"neither ids nor since", func(s *hooklinev1.WebhookReplaySpec) { s.NotificationIDs = nil }, "spec.notificationIds or spec.since is required"},
		{"both ids and since", func(s *hooklinev1.WebhookReplaySpec) { s.Since = &since }, "spec.notificationIds and spec.since are mutually exclusive"},
		{"until without since", func(s *hooklinev1.WebhookReplaySpec) { s.Until = &since }, "spec.until needs spec.since"},
		{"states without since", func(s *hooklinev1.WebhookReplaySpec) { s.States = []hooklinev1.ReplayState{hooklinev1.ReplayLost} }, "spec.states selects by time"},
		{"until before since", func(s *hooklinev1.WebhookReplaySpec) { s.NotificationIDs, s.Since, s.Until = nil, &since, &before }, "spec.until must be after spec.since"},
		{"until equal to since", func(s *hooklinev1.WebhookReplaySpec) { s.NotificationIDs, s.Since, s.Until = nil, &since, &since }, "spec.until must be after spec.since"},
		{"unknown state", func(s *hooklinev1.WebhookReplaySpec) {
			s.NotificationIDs, s.Since, s.States = nil, &since, []hooklinev1.ReplayState{"retrying"}
		}, `spec.states[0]: Unsupported value: "retrying"`},
		{"empty ids", func(s *hooklinev1.WebhookReplaySpec) { s.NotificationIDs = []hooklinev1.NotificationID{} }, "spec.notificationIds"},
		{"not an id", func(s *hooklinev1.WebhookReplaySpec) {
			s.NotificationIDs = []hooklinev1.NotificationID{someNotificationID, "../../etc/passwd"}
		}, "spec.notificationIds[1]"},
		{"duplicate ids", func(s *hooklinev1.WebhookReplaySpec) {
			s.NotificationIDs = []hooklinev1.NotificationID{someNotificationID, someNotificationID}
		}, "spec.notificationIds[1]: Duplicate value"},
		{"too many ids", func(s *hooklinev1.WebhookReplaySpec) { s.NotificationIDs = many }, "spec.notificationIds: Too many"},
		{"no webhook", func(s *hooklinev1.WebhookReplaySpec) { s.WebhookName = "" }, "spec.webhookName"},
		// The name is a plain object name: no way to reach another namespace through it.
		{"another namespace's webhook", func(s *hooklinev1.WebhookReplaySpec) { s.WebhookName = "other-ns/orders" }, "spec.webhookName"},
		{"upper-case name", func(s *hooklinev1.WebhookReplaySpec) { s.WebhookName = "Orders" }, "spec.webhookName"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			spec := validReplaySpec()
			tc.mutate(&spec)
			r := &hooklinev1.WebhookReplay{ObjectMeta: metav1.ObjectMeta{GenerateName: "invalid-", Namespace: ns}, Spec: spec}
			err := k8s.Create(context.Background(), r)
			g.Expect(err).To(HaveOccurred(), "the API server accepted an invalid WebhookReplay")
			g.Expect(err.Error()).To(ContainSubstring(tc.want))
		})
	}

	t.Run("valid selections are accepted", func(t *testing.T) {
		g := NewWithT(t)
		for _, spec := range []hooklinev1.WebhookReplaySpec{
			validReplaySpec(),
			{WebhookName: "orders", Since: &before},
			{WebhookName: "orders.v2", Since: &before, Until: &since, States: []hooklinev1.ReplayState{hooklinev1.ReplayLost, hooklinev1.ReplayDelivered}},
		} {
			r := &hooklinev1.WebhookReplay{ObjectMeta: metav1.ObjectMeta{GenerateName: "valid-", Namespace: ns}, Spec: spec}
			g.Expect(k8s.Create(context.Background(), r)).To(Succeed())
		}
	})
}

func TestWebhookReplaySpecIsImmutable(t *testing.T) {
	ns := newNamespace(t, "", "")
	ctx := context.Background()
	since := metav1.NewTime(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC))
	later := metav1.NewTime(since.Add(time.Hour))
	cases := []struct {
		name   string
		spec   hooklinev1.WebhookReplaySpec
		mutate func(*hooklinev1.WebhookReplaySpec)
	}{
		{"webhook", validReplaySpec(), func(s *hooklinev1.WebhookReplaySpec) { s.WebhookName = "another" }},
		{"ids", validReplaySpec(), func(s *hooklinev1.WebhookReplaySpec) {
			s.NotificationIDs = append(s.NotificationIDs, "00000000-0000-5000-8000-000000000000")
		}},
		{"until", hooklinev1.WebhookReplaySpec{WebhookName: "orders", Since: &since}, func(s *hooklinev1.WebhookReplaySpec) { s.Until = &later }},
		{"states", hooklinev1.WebhookReplaySpec{WebhookName: "orders", Since: &since}, func(s *hooklinev1.WebhookReplaySpec) {
			s.States = []hooklinev1.ReplayState{hooklinev1.ReplayDelivered}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			r := &hooklinev1.WebhookReplay{ObjectMeta: metav1.ObjectMeta{GenerateName: "immutable-", Namespace: ns}, Spec: tc.spec}
			g.Expect(k8s.Create(ctx, r)).To(Succeed())
			base := r.DeepCopy()
			tc.mutate(&r.Spec)
			err := k8s.Patch(ctx, r, client.MergeFrom(base))
			g.Expect(err).To(HaveOccurred())
			g.Expect(err.Error()).To(ContainSubstring("spec is immutable"))
		})
	}

	t.Run("metadata still changes", func(t *testing.T) {
		g := NewWithT(t)
		r := &hooklinev1.WebhookReplay{ObjectMeta: metav1.ObjectMeta{GenerateName: "labels-", Namespace: ns}, Spec: validReplaySpec()}
		g.Expect(k8s.Create(ctx, r)).To(Succeed())
		base := r.DeepCopy()
		r.Labels = map[string]string{"ticket": "ops-42"}
		g.Expect(k8s.Patch(ctx, r, client.MergeFrom(base))).To(Succeed())
	})
}

func TestKubectlWebhookReplay(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, "", "")
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		g.Expect(os.WriteFile(p, []byte(body), 0o600)).To(Succeed())
		return p
	}

	// A namespace field in the spec is unknown: the API server's strict field validation refuses
	// it rather than dropping it, so nobody believes they replayed another namespace's webhook.
	out, err := kubectl(t, "apply", "-n", ns, "-f", write("cross.yaml", `apiVersion: hookline.io/v1alpha1
kind: WebhookReplay
metadata:
  name: cross
spec:
  webhookName: orders
  namespace: someone-else
  notificationIds: [`+someNotificationID+`]
`))
	g.Expect(err).To(HaveOccurred(), out)
	g.Expect(out).To(ContainSubstring(`unknown field "spec.namespace"`))

	out, err = kubectl(t, "create", "-n", ns, "-f", write("both.yaml", `apiVersion: hookline.io/v1alpha1
kind: WebhookReplay
metadata:
  name: both
spec:
  webhookName: orders
  notificationIds: [`+someNotificationID+`]
  since: "2026-11-01T00:00:00Z"
`))
	g.Expect(err).To(HaveOccurred(), out)
	g.Expect(out).To(ContainSubstring("spec.notificationIds and spec.since are mutually exclusive"))

	out, err = kubectl(t, "apply", "-n", ns, "-f", write("ok.yaml", `apiVersion: hookline.io/v1alpha1
kind: WebhookReplay
metadata:
  name: recover-outage
spec:
  webhookName: orders
  since: "2026-11-01T00:00:00Z"
  until: "2026-11-01T06:00:00Z"
  states: [lost, dropped]
`))
	g.Expect(err).NotTo(HaveOccurred(), out)

	out, err = kubectl(t, "get", "whr", "-n", ns)
	g.Expect(err).NotTo(HaveOccurred(), out)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	g.Expect(strings.Fields(lines[0])).To(Equal([]string{"NAME", "WEBHOOK", "MATCHED", "DELIVERED", "FAILED", "READY", "AGE"}))
	g.Expect(lines[1]).To(HavePrefix("recover-outage"))
	g.Expect(strings.Fields(lines[1])[1]).To(Equal("orders"))

	out, err = kubectl(t, "get", "webhookreplays", "-n", ns, "-o", "wide")
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Expect(strings.Fields(strings.SplitN(out, "\n", 2)[0])).To(Equal(
		[]string{"NAME", "WEBHOOK", "MATCHED", "DELIVERED", "FAILED", "READY", "AGE", "REASON", "QUEUED"}))

	// Changing the selection of an applied replay is refused, naming the rule.
	out, err = kubectl(t, "patch", "whr", "recover-outage", "-n", ns, "--type=merge", "-p", `{"spec":{"states":["delivered"]}}`)
	g.Expect(err).To(HaveOccurred(), out)
	g.Expect(out).To(ContainSubstring("spec is immutable"))
}

// A tenant may write its replays' status (it holds every right in its namespace), but not
// conditions of types of its own: eight of them filled the list (MaxItems), so that the
// dispatcher's status writes were refused, and they kept up to 256 KiB of the tenant's text in
// every dispatcher's cache.
func TestATenantCannotAddConditionTypesToAReplay(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, "", "")
	tenant := impersonatedTenant(t, ns, "tenant-"+ns)
	r := &hooklinev1.WebhookReplay{ObjectMeta: metav1.ObjectMeta{Name: "forged", Namespace: ns}, Spec: validReplaySpec()}
	g.Expect(tenant.Create(ctx, r)).To(Succeed())
	base := r.DeepCopy()
	r.Status.Conditions = []metav1.Condition{{Type: hooklinev1.ConditionReconciling, Status: metav1.ConditionTrue, Reason: "Forged", LastTransitionTime: metav1.Now()}}
	g.Expect(tenant.Status().Patch(ctx, r, client.MergeFrom(base))).To(Succeed(), "its own status, of the known types")
	base = r.DeepCopy()
	r.Status.Conditions = append(r.Status.Conditions, metav1.Condition{Type: "Filler", Status: metav1.ConditionTrue, Reason: "Forged",
		Message: strings.Repeat("x", 32<<10), LastTransitionTime: metav1.Now()})
	err := tenant.Status().Patch(ctx, r, client.MergeFrom(base))
	g.Expect(err).To(HaveOccurred())
	g.Expect(err.Error()).To(And(ContainSubstring("status.conditions"), ContainSubstring("only the condition types Ready, Reconciling and Stalled")))
}
