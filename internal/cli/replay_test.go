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

package cli

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
)

const (
	nid1 = "0f1e2d3c-4b5a-5968-8776-a5b4c3d2e1f0"
	nid2 = "1f1e2d3c-4b5a-5968-8776-a5b4c3d2e1f0"
)

func listReplays(t *testing.T, ns string) []hooklinev1.WebhookReplay {
	t.Helper()
	l := &hooklinev1.WebhookReplayList{}
	if err := k8s.List(context.Background(), l, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	return l.Items
}

// applyReplayStatus plays the dispatcher: it writes a replay's status with server-side apply.
func applyReplayStatus(t *testing.T, ns, name string, status map[string]any) {
	t.Helper()
	raw, err := json.Marshal(map[string]any{
		"apiVersion": hooklinev1.GroupVersion.String(), "kind": "WebhookReplay",
		"metadata": map[string]any{"name": name, "namespace": ns}, "status": status,
	})
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(raw); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Status().Apply(context.Background(), client.ApplyConfigurationFromUnstructured(u),
		client.FieldOwner("test"), client.ForceOwnership); err != nil {
		t.Fatalf("applying replay status: %v", err)
	}
}

func TestReplayCreatesTheObject(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, "acc-1")
	newWebhook(t, ns, "orders", hooklinev1.StateActive)

	r := run(append([]string{"replay"}, kubeArgs("-n", ns, "orders", "--notification", nid1, "--notification", nid2+","+nid1)...)...)
	g.Expect(r.code).To(Equal(ExitOK), r.stderr)
	items := listReplays(t, ns)
	g.Expect(items).To(HaveLen(1))
	rp := items[0]
	g.Expect(rp.Name).To(HavePrefix("orders-replay-"))
	g.Expect(rp.Spec).To(Equal(hooklinev1.WebhookReplaySpec{WebhookName: "orders", NotificationIDs: []hooklinev1.NotificationID{nid1, nid2}}))
	g.Expect(r.stdout).To(Equal("webhookreplay " + ns + "/" + rp.Name + " created: replaying 2 notifications of webhook orders\n"))
	g.Expect(r.stderr).To(ContainSubstring("The declarative equivalent is applying this manifest"))
	g.Expect(r.stderr).To(ContainSubstring("    webhookName: orders\n"))
	g.Expect(r.stderr).To(ContainSubstring("kubectl get webhookreplay -n " + ns + " " + rp.Name + " -w"))

	// By time: a duration counts back from now; states are checked and lower-cased.
	r = run(append([]string{"replay"}, kubeArgs(ns+"/orders", "--since", "6h", "--until", "2026-11-25T11:00:00Z", "--state", "LOST,dropped", "--name", "recover-1")...)...)
	g.Expect(r.code).To(Equal(ExitOK), r.stderr)
	got := &hooklinev1.WebhookReplay{}
	g.Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "recover-1"}, got)).To(Succeed())
	g.Expect(got.Spec.Since.Time.UTC()).To(Equal(testNow.Add(-6 * time.Hour)))
	g.Expect(got.Spec.Until.Time.UTC()).To(Equal(time.Date(2026, 11, 25, 11, 0, 0, 0, time.UTC)))
	g.Expect(got.Spec.States).To(Equal([]hooklinev1.ReplayState{hooklinev1.ReplayLost, hooklinev1.ReplayDropped}))
	g.Expect(got.Spec.NotificationIDs).To(BeEmpty())
	g.Expect(r.stdout).To(ContainSubstring("replaying the lost/dropped notifications of events accepted since 2026-11-25T06:00:00Z until 2026-11-25T11:00:00Z of webhook orders"))

	// The same name again: a replay runs once.
	r = run(append([]string{"replay"}, kubeArgs(ns+"/orders", "--since", "6h", "--name", "recover-1")...)...)
	g.Expect(r.code).To(Equal(ExitFailure))
	g.Expect(r.stderr).To(ContainSubstring("webhookreplay " + ns + "/recover-1 exists already"))
}

func TestReplayWaitsForCompletion(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, "acc-1")
	newWebhook(t, ns, "orders", hooklinev1.StateActive)
	done := make(chan result, 1)
	go func() {
		done <- run(append([]string{"replay"}, kubeArgs("-n", ns, "orders", "--since", "1h", "--name", "r", "--wait", "--timeout", "1m")...)...)
	}()
	g.Eventually(func() []hooklinev1.WebhookReplay { return listReplays(t, ns) }, 30*time.Second, 20*time.Millisecond).Should(HaveLen(1))
	now := time.Now()
	applyReplayStatus(t, ns, "r", map[string]any{"observedGeneration": 1, "matched": 0, "queued": 0, "delivered": 0, "failed": 0,
		"conditions": []any{
			condition("Ready", "False", "WebhookNotActive", "webhook orders is Disabled; the replay starts once it is Active", now),
			condition("Reconciling", "True", "WebhookNotActive", "webhook orders is Disabled; the replay starts once it is Active", now),
		}})
	g.Eventually(func() bool { return len(listReplays(t, ns)[0].Status.Conditions) > 0 }, 10*time.Second, 20*time.Millisecond).Should(BeTrue())
	g.Consistently(done, 200*time.Millisecond).ShouldNot(Receive(), "waiting: the wait goes on")
	applyReplayStatus(t, ns, "r", map[string]any{"observedGeneration": 1, "matched": 3, "queued": 3, "delivered": 0, "failed": 0,
		"conditions": []any{
			condition("Ready", "False", "Delivering", "3 notifications queued again", now),
			condition("Reconciling", "True", "Delivering", "3 notifications queued again", now),
		}})
	g.Consistently(done, 200*time.Millisecond).ShouldNot(Receive(), "delivering: the wait goes on")
	applyReplayStatus(t, ns, "r", map[string]any{"observedGeneration": 1, "matched": 4, "queued": 3, "delivered": 2, "failed": 1,
		"unavailable": []string{"1 notifications not replayed: their events are beyond the event log's retention"},
		"conditions": []any{
			map[string]any{"type": "Ready", "status": "True", "reason": "Completed", "message": "done", "observedGeneration": 1, "lastTransitionTime": ts(now)},
			condition("Reconciling", "False", "Completed", "done", now),
		}})
	var r result
	g.Eventually(done, 30*time.Second).Should(Receive(&r))
	g.Expect(r.code).To(Equal(ExitOK), r.stderr)
	g.Expect(r.stdout).To(HaveSuffix("webhookreplay " + ns + "/r completed: matched 4, queued 3, delivered 2, failed 1\n" +
		"  not replayed: 1 notifications not replayed: their events are beyond the event log's retention\n"))
	g.Expect(r.stderr).To(ContainSubstring("waiting up to 1m0s for webhookreplay " + ns + "/r to complete\n"))
	g.Expect(r.stderr).To(ContainSubstring("  WebhookNotActive: matched 0, queued 0, delivered 0, failed 0 (webhook orders is Disabled; the replay starts once it is Active)\n"))
	g.Expect(r.stderr).To(ContainSubstring("  Delivering: matched 3, queued 3, delivered 0, failed 0"))
}

func TestReplayWaitEndsOnStalledAndTimeout(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, "acc-1")
	newWebhook(t, ns, "orders", hooklinev1.StateActive)

	r := run(append([]string{"replay"}, kubeArgs("-n", ns, "orders", "--notification", nid1, "--name", "slow", "--wait", "--timeout", "300ms")...)...)
	g.Expect(r.code).To(Equal(ExitFailure))
	g.Expect(r.stderr).To(ContainSubstring("error: timed out after 300ms waiting for webhookreplay " + ns + "/slow (the replay goes on): not started"))
	g.Expect(r.stderr).To(ContainSubstring("the dispatcher has not reported on the replay: is it running"))

	done := make(chan result, 1)
	go func() {
		done <- run(append([]string{"replay"}, kubeArgs("-n", ns, "orders", "--notification", nid1, "--name", "stalled", "--wait", "--timeout", "1m")...)...)
	}()
	g.Eventually(func() int { return len(listReplays(t, ns)) }, 30*time.Second, 20*time.Millisecond).Should(Equal(2))
	applyReplayStatus(t, ns, "stalled", map[string]any{"conditions": []any{
		condition("Stalled", "True", "WebhookDeleted", "webhook orders was deleted while the replay ran", time.Now()),
	}})
	g.Eventually(done, 30*time.Second).Should(Receive(&r))
	g.Expect(r.code).To(Equal(ExitFailure))
	g.Expect(r.stderr).To(ContainSubstring("error: webhookreplay " + ns + "/stalled cannot finish: WebhookDeleted: webhook orders was deleted while the replay ran\n"))
}

func TestReplayErrors(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, "acc-1")
	r := run(append([]string{"replay"}, kubeArgs("-n", ns, "nope", "--notification", nid1)...)...)
	g.Expect(r.code).To(Equal(ExitFailure))
	g.Expect(r.stderr).To(ContainSubstring("webhook " + ns + "/nope not found"))
	g.Expect(listReplays(t, ns)).To(BeEmpty())

	cases := []struct {
		args []string
		want string
	}{
		{[]string{"orders"}, "select what to replay: --notification ID (repeatable) or --since TIME"},
		{[]string{"orders", "--notification", nid1, "--since", "1h"}, "--notification and --since are mutually exclusive"},
		{[]string{"orders", "--notification", nid1, "--state", "lost"}, "--until and --state select by time"},
		{[]string{"orders", "--notification", "not-an-id"}, `--notification "not-an-id" is not a webhookNotificationId`},
		{[]string{"orders", "--since", "yesterday"}, `--since: "yesterday" is neither an RFC 3339 time`},
		{[]string{"orders", "--since", "1h", "--until", "2h"}, "--until ("},
		{[]string{"orders", "--since", "1h", "--state", "retrying"}, `--state "retrying" is not one of failed, dropped, lost, cancelled, delivered`},
		{[]string{"orders", "--since", "1h", "--name", "Bad_Name"}, `--name "Bad_Name" is not a valid object name`},
		{[]string{"orders", "--since", "1h", "--timeout", "0s"}, "--timeout must be positive"},
		{[]string{"a", "b", "--since", "1h"}, "replay takes one webhook NAME"},
	}
	for _, tc := range cases {
		r := run(append([]string{"replay"}, kubeArgs(append([]string{"-n", ns}, tc.args...)...)...)...)
		g.Expect(r.code).To(Equal(ExitUsage), "replay %v: %s", tc.args, r.stderr)
		g.Expect(r.stderr).To(ContainSubstring(tc.want), "replay %v", tc.args)
	}

	r = run("replay", "-h")
	g.Expect(r.code).To(Equal(ExitOK))
	g.Expect(strings.Contains(r.stdout, "hookline replay [flags] NAME|NAMESPACE/NAME")).To(BeTrue(), r.stdout)
}
