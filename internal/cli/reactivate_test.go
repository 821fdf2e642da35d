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
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
)

func getWebhook(t *testing.T, namespace, name string) *hooklinev1.Webhook {
	t.Helper()
	var wh hooklinev1.Webhook
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: namespace, Name: name}, &wh); err != nil {
		t.Fatalf("reading webhook: %v", err)
	}
	return &wh
}

func patchAnnotation(t *testing.T, namespace, name, value string) {
	t.Helper()
	wh := &hooklinev1.Webhook{}
	wh.Namespace, wh.Name = namespace, name
	patch := []byte(`{"metadata":{"annotations":{"` + hooklinev1.ReactivateAnnotation + `":"` + value + `"}}}`)
	if err := k8s.Patch(context.Background(), wh, client.RawPatch(types.MergePatchType, patch)); err != nil {
		t.Fatalf("annotating webhook: %v", err)
	}
}

func TestReactivateSetsTheAnnotation(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, "acc-1")
	newWebhook(t, ns, "agreements", hooklinev1.StateInactive)
	applyStatus(t, ns, "agreements", disabledStatus())

	r := run(append([]string{"reactivate"}, kubeArgs("-n", ns, "agreements")...)...)
	g.Expect(r.code).To(Equal(ExitOK), r.stderr)
	g.Expect(r.stdout).To(Equal("webhook " + ns + "/agreements: set hookline.io/reactivate=2026-11-25T12:00:00Z (state was Disabled)\n"))
	g.Expect(r.stderr).To(ContainSubstring("The declarative equivalent is committing this annotation to the Webhook's manifest in Git:\n" +
		"  metadata:\n    annotations:\n      hookline.io/reactivate: \"2026-11-25T12:00:00Z\"\n"))
	g.Expect(r.stderr).To(ContainSubstring("spec.state is INACTIVE"))
	wh := getWebhook(t, ns, "agreements")
	g.Expect(wh.Annotations).To(HaveKeyWithValue(hooklinev1.ReactivateAnnotation, "2026-11-25T12:00:00Z"))
	g.Expect(wh.Spec.URL).To(Equal("https://receiver.example.com/hooks/agreements"), "the merge patch touches nothing else")

	// Within the same second the value still changes, so the dispatcher sees a new request.
	r = run(append([]string{"reactivate"}, kubeArgs(ns+"/agreements")...)...)
	g.Expect(r.code).To(Equal(ExitOK), r.stderr)
	g.Expect(getWebhook(t, ns, "agreements").Annotations).To(HaveKeyWithValue(hooklinev1.ReactivateAnnotation, "2026-11-25T12:00:00.000000000Z"))

	r = run(append([]string{"reactivate"}, kubeArgs("agreements", "-n", ns, "--value", "INC-4711")...)...)
	g.Expect(r.code).To(Equal(ExitOK), r.stderr)
	g.Expect(getWebhook(t, ns, "agreements").Annotations).To(HaveKeyWithValue(hooklinev1.ReactivateAnnotation, "INC-4711"))
}

func TestReactivateWaitsUntilActive(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, "acc-1")
	// ACTIVE, as reactivation needs; with no manager running, nothing verifies it.
	newWebhook(t, ns, "agreements", hooklinev1.StateActive)
	applyStatus(t, ns, "agreements", disabledStatus())

	app := newApp(nil)
	app.Now = time.Now
	done := make(chan result, 1)
	go func() {
		done <- runApp(app, append([]string{"reactivate"}, kubeArgs("-n", ns, "agreements", "--wait", "--timeout", "1m")...)...)
	}()

	// Play the dispatcher and the manager: once the annotation appears, report it handled and Active.
	var value string
	g.Eventually(func() string {
		value = getWebhook(t, ns, "agreements").Annotations[hooklinev1.ReactivateAnnotation]
		return value
	}, 30*time.Second, 20*time.Millisecond).ShouldNot(BeEmpty())
	_, err := time.Parse(time.RFC3339, value)
	g.Expect(err).NotTo(HaveOccurred(), "the value is an RFC 3339 time")
	g.Consistently(done, 100*time.Millisecond).ShouldNot(Receive(), "still Disabled: the wait goes on")

	applyStatus(t, ns, "agreements", map[string]any{
		"state":                   "Active",
		"lastHandledReactivation": value,
		"conditions": []any{
			condition("Ready", "True", "Active", "webhook is verified and receives notifications", time.Now()),
			condition("AutoDisabled", "False", "Enabled", "the webhook is not auto-disabled", time.Now()),
		},
	})
	var r result
	g.Eventually(done, 30*time.Second).Should(Receive(&r))
	g.Expect(r.code).To(Equal(ExitOK), r.stderr)
	g.Expect(r.stdout).To(ContainSubstring("set hookline.io/reactivate=" + value + " (state was Disabled)"))
	g.Expect(r.stdout).To(HaveSuffix("webhook " + ns + "/agreements is Active: the dispatcher handled the reactivation and deliveries resume\n"))
	g.Expect(r.stderr).To(ContainSubstring("waiting up to 1m0s for " + ns + "/agreements to become Active\n"))
	g.Expect(r.stderr).To(ContainSubstring("  state Disabled, Ready False (AutoDisabled), reactivation not handled yet\n"))
}

func TestReactivateWaitTimesOut(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, "acc-1")
	newWebhook(t, ns, "agreements", hooklinev1.StateActive)
	applyStatus(t, ns, "agreements", disabledStatus())

	r := run(append([]string{"reactivate"}, kubeArgs("-n", ns, "agreements", "--wait", "--timeout", "300ms")...)...)
	g.Expect(r.code).To(Equal(ExitFailure))
	g.Expect(r.stderr).To(ContainSubstring("error: timed out after 300ms waiting for " + ns + "/agreements to become Active: " +
		"state Disabled, Ready False (AutoDisabled), reactivation not handled yet\n" +
		"  Ready: notification dropped after 72h with no successful delivery in 7 days\n" +
		"  the dispatcher has not handled the reactivation: is it running?\n"))
}

func TestReactivateErrors(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, "acc-1")
	newWebhook(t, ns, "inactive", hooklinev1.StateInactive)

	r := run(append([]string{"reactivate"}, kubeArgs("-n", ns, "inactive", "--wait")...)...)
	g.Expect(r.code).To(Equal(ExitFailure))
	g.Expect(r.stderr).To(ContainSubstring("has spec.state INACTIVE: it will not become Active"))
	g.Expect(getWebhook(t, ns, "inactive").Annotations).NotTo(HaveKey(hooklinev1.ReactivateAnnotation))

	r = run(append([]string{"reactivate"}, kubeArgs("-n", ns, "nope")...)...)
	g.Expect(r.code).To(Equal(ExitFailure))
	g.Expect(r.stderr).To(ContainSubstring("webhook " + ns + "/nope not found"))

	for _, args := range [][]string{{}, {"a", "b"}, {"a", "--timeout", "0s"}, {"a", "--value", ""}, {"a", "--wiat"}} {
		r := run(append([]string{"reactivate"}, kubeArgs(args...)...)...)
		g.Expect(r.code).To(Equal(ExitUsage), "reactivate %v: %s", args, r.stderr)
	}
}
