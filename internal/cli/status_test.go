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
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
)

func TestStatusOfDisabledWebhook(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, "acc-1")
	newWebhook(t, ns, "agreements", hooklinev1.StateInactive)
	applyStatus(t, ns, "agreements", disabledStatus())

	r := run(append([]string{"status"}, kubeArgs("-n", ns, "agreements")...)...)
	g.Expect(r.code).To(Equal(ExitOK), r.stderr)
	out := r.stdout
	g.Expect(out).To(MatchRegexp(`(?m)^Webhook:\s+%s/agreements$`, ns))
	g.Expect(out).To(MatchRegexp(`(?m)^State:\s+Disabled$`))
	g.Expect(out).To(MatchRegexp(`(?m)^URL:\s+https://receiver\.example\.com/hooks/agreements$`))
	g.Expect(out).To(MatchRegexp(`(?m)^Scope:\s+ACCOUNT$`))
	g.Expect(out).To(MatchRegexp(`(?m)^  Ready\s+False\s+AutoDisabled\s+5h ago\s+notification dropped after 72h with no successful delivery in 7 days$`))
	g.Expect(out).To(MatchRegexp(`(?m)^  Verified\s+Unknown\s+AutoDisabled\s+5h ago\s+webhook was auto-disabled by the dispatcher$`))
	g.Expect(out).To(MatchRegexp(`(?m)^  Delivering\s+False\s+AutoDisabled\s+5h ago\s+auto-disabled: nothing is queued`))
	g.Expect(out).To(MatchRegexp(`(?m)^  AutoDisabled\s+True\s+NoRecentSuccess\s+5h ago\s+notification dropped after 72h$`))
	g.Expect(out).To(MatchRegexp(`(?m)^lastVerifiedTime:\s+2026-11-17T12:00:00Z \(8d ago\)$`))
	g.Expect(out).To(MatchRegexp(`(?m)^lastAttemptTime:\s+2026-11-25T09:00:00Z \(3h ago\)$`))
	g.Expect(out).To(MatchRegexp(`(?m)^lastSuccessTime:\s+2026-11-17T12:00:00Z \(8d ago\)$`))
	g.Expect(out).To(MatchRegexp(`(?m)^failingSince:\s+2026-11-18T12:00:00Z \(7d ago\)$`))
	g.Expect(out).To(MatchRegexp(`(?m)^consecutiveFailures:\s+42$`))
	g.Expect(out).To(MatchRegexp(`(?m)^pendingNotifications:\s+0$`))
	g.Expect(out).To(MatchRegexp(`(?m)^deliveredTotal:\s+1200$`))
	g.Expect(out).To(MatchRegexp(`(?m)^droppedTotal:\s+3$`))
	g.Expect(out).To(ContainSubstring("Hint: the dispatcher auto-disabled this webhook"))
	g.Expect(out).To(ContainSubstring("  hookline reactivate -n " + ns + " agreements --wait\n"))
	g.Expect(out).To(ContainSubstring("set the annotation hookline.io/reactivate to a new value (a date, a ticket\nnumber) in the Webhook's manifest in Git"))

	// NAMESPACE/NAME, and -n after the name, read the same webhook.
	g.Expect(run(append([]string{"status"}, kubeArgs(ns+"/agreements")...)...).stdout).To(Equal(out))
	g.Expect(run(append([]string{"status", "agreements", "-n", ns}, kubeArgs()...)...).stdout).To(Equal(out))

	// A requested but unhandled reactivation is pointed out instead.
	patchAnnotation(t, ns, "agreements", "2026-11-25T11:59:00Z")
	r = run(append([]string{"status"}, kubeArgs("-n", ns, "agreements")...)...)
	g.Expect(r.stdout).To(ContainSubstring("A reactivation (hookline.io/reactivate=2026-11-25T11:59:00Z) is requested but not yet handled"))
	g.Expect(r.stdout).To(MatchRegexp(`(?m)^reactivation:\s+requested 2026-11-25T11:59:00Z, handled -$`))
}

func TestStatusStructuredOutput(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, "acc-1")
	newWebhook(t, ns, "agreements", hooklinev1.StateInactive)
	applyStatus(t, ns, "agreements", disabledStatus())

	r := run(append([]string{"status"}, kubeArgs("-n", ns, "agreements", "-o", "json")...)...)
	g.Expect(r.code).To(Equal(ExitOK), r.stderr)
	var st hooklinev1.WebhookStatus
	g.Expect(json.Unmarshal([]byte(r.stdout), &st)).To(Succeed())
	g.Expect(st.State).To(Equal(hooklinev1.ObservedDisabled))
	g.Expect(st.Conditions).To(HaveLen(4))
	g.Expect(*st.DeliveredTotal).To(Equal(int64(1200)))
	g.Expect(*st.ConsecutiveFailures).To(Equal(int64(42)))
	g.Expect(st.FailingSince.Time).To(BeTemporally("==", testNow.Add(-7*24*time.Hour)))

	r = run(append([]string{"status"}, kubeArgs("--namespace", ns, "agreements", "--output", "yaml")...)...)
	g.Expect(r.code).To(Equal(ExitOK), r.stderr)
	g.Expect(r.stdout).To(MatchRegexp(`(?m)^state: Disabled$`))
	g.Expect(r.stdout).To(MatchRegexp(`(?m)^droppedTotal: 3$`))
	var fromYAML hooklinev1.WebhookStatus
	g.Expect(yaml.Unmarshal([]byte(r.stdout), &fromYAML)).To(Succeed())
	g.Expect(fromYAML).To(Equal(st))

	r = run(append([]string{"status"}, kubeArgs("-n", ns, "-o", "json")...)...)
	g.Expect(r.code).To(Equal(ExitOK), r.stderr)
	var list []struct {
		Namespace, Name string
		Status          hooklinev1.WebhookStatus
	}
	g.Expect(json.Unmarshal([]byte(r.stdout), &list)).To(Succeed())
	g.Expect(list).To(HaveLen(1))
	g.Expect(list[0].Name).To(Equal("agreements"))
	g.Expect(list[0].Status.State).To(Equal(hooklinev1.ObservedDisabled))
}

func TestStatusOfUnboundNamespace(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, "")
	newWebhook(t, ns, "orphan", hooklinev1.StateActive)
	applyStatus(t, ns, "orphan", map[string]any{
		"state": "Inactive",
		"conditions": []any{
			condition("Ready", "False", "NamespaceNotBound", "namespace "+ns+" has no hookline.io/account label; its webhooks receive nothing", testNow.Add(-time.Minute)),
			condition("Verified", "Unknown", "NamespaceNotBound", "namespace "+ns+" has no hookline.io/account label; its webhooks receive nothing", testNow.Add(-time.Minute)),
		},
	})

	r := run(append([]string{"status"}, kubeArgs("-n", ns, "orphan")...)...)
	g.Expect(r.code).To(Equal(ExitOK), r.stderr)
	g.Expect(r.stdout).To(MatchRegexp(`(?m)^State:\s+Inactive$`))
	g.Expect(r.stdout).To(MatchRegexp(`(?m)^  Ready\s+False\s+NamespaceNotBound\s+60s ago\s+namespace`))
	g.Expect(r.stdout).To(MatchRegexp(`(?m)^  Delivering\s+-\s+-\s+-\s+not reported yet$`))
	g.Expect(r.stdout).To(MatchRegexp(`(?m)^deliveredTotal:\s+-$`))
	g.Expect(r.stdout).To(MatchRegexp(`(?m)^lastSuccessTime:\s+never$`))
	g.Expect(r.stdout).To(ContainSubstring("Hint: namespace " + ns + " is not bound to an Acrobat Sign account"))
	g.Expect(r.stdout).To(ContainSubstring("  kubectl label namespace " + ns + " hookline.io/account=<accountId>\n"))
	g.Expect(r.stdout).NotTo(ContainSubstring("reactivate"))
}

func TestStatusOfDuplicate(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, "acc-1")
	newWebhook(t, ns, "copy", hooklinev1.StateActive)
	message := "an older ACTIVE webhook of account acc-1 (by creation time, then uid; in this namespace or another namespace bound to the account) has the same configuration"
	applyStatus(t, ns, "copy", map[string]any{
		"state": "Inactive",
		"conditions": []any{
			condition("Ready", "False", "DuplicateConfiguration", message, testNow.Add(-time.Minute)),
			condition("Verified", "False", "DuplicateConfiguration", message, testNow.Add(-time.Minute)),
		},
	})

	r := run(append([]string{"status"}, kubeArgs("-n", ns, "copy")...)...)
	g.Expect(r.code).To(Equal(ExitOK), r.stderr)
	g.Expect(r.stdout).To(MatchRegexp(`(?m)^  Ready\s+False\s+DuplicateConfiguration\s+60s ago\s+an older ACTIVE webhook of account acc-1 `))
	g.Expect(r.stdout).To(ContainSubstring("Hint: an older ACTIVE Webhook of this account (in this namespace or another namespace bound to the\naccount) has the same configuration"))
}

func TestStatusListsWebhooks(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, "acc-1")
	other := newNamespace(t, "acc-2")
	newWebhook(t, ns, "disabled", hooklinev1.StateInactive)
	applyStatus(t, ns, "disabled", disabledStatus())
	newWebhook(t, ns, "fresh", hooklinev1.StateInactive)
	newWebhook(t, other, "elsewhere", hooklinev1.StateInactive)
	applyStatus(t, other, "elsewhere", map[string]any{
		"state":                "Active",
		"conditions":           []any{condition("Ready", "True", "Active", "webhook is verified and receives notifications", testNow.Add(-time.Hour))},
		"lastSuccessTime":      ts(testNow.Add(-5 * time.Minute)),
		"pendingNotifications": 7, "deliveredTotal": 99, "droppedTotal": 0,
	})

	header := `(?m)^NAMESPACE\s+NAME\s+STATE\s+READY\s+PENDING\s+DELIVERED\s+DROPPED\s+LAST-SUCCESS$`
	disabledRow := `(?m)^` + ns + `\s+disabled\s+Disabled\s+False\s+0\s+1200\s+3\s+8d$`
	freshRow := `(?m)^` + ns + `\s+fresh\s+-\s+-\s+-\s+-\s+-\s+<none>$`
	otherRow := `(?m)^` + other + `\s+elsewhere\s+Active\s+True\s+7\s+99\s+0\s+5m$`

	r := run(append([]string{"status"}, kubeArgs("-n", ns)...)...)
	g.Expect(r.code).To(Equal(ExitOK), r.stderr)
	g.Expect(r.stdout).To(MatchRegexp(header))
	g.Expect(r.stdout).To(MatchRegexp(disabledRow))
	g.Expect(r.stdout).To(MatchRegexp(freshRow))
	g.Expect(r.stdout).NotTo(ContainSubstring("elsewhere"))
	g.Expect(lines(r.stdout)).To(HaveLen(3))

	for _, flag := range []string{"-A", "--all-namespaces"} {
		r = run(append([]string{"status", flag}, kubeArgs()...)...)
		g.Expect(r.code).To(Equal(ExitOK), r.stderr)
		g.Expect(r.stdout).To(MatchRegexp(header))
		g.Expect(r.stdout).To(MatchRegexp(disabledRow))
		g.Expect(r.stdout).To(MatchRegexp(otherRow))
	}

	empty := newNamespace(t, "")
	r = run(append([]string{"status"}, kubeArgs("-n", empty)...)...)
	g.Expect(r.code).To(Equal(ExitOK))
	g.Expect(r.stdout).To(BeEmpty())
	g.Expect(r.stderr).To(Equal("No webhooks found in namespace " + empty + ".\n"))
}

func TestStatusUsesKubeconfigFromEnvironmentAndContextNamespace(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, "acc-1")
	newWebhook(t, ns, "agreements", hooklinev1.StateInactive)
	applyStatus(t, ns, "agreements", disabledStatus())

	// A kubeconfig whose current context names ns, reached through $KUBECONFIG.
	cfg, err := clientcmd.LoadFromFile(env.Kubeconfig)
	g.Expect(err).NotTo(HaveOccurred())
	cfg.Contexts[cfg.CurrentContext].Namespace = ns
	path := filepath.Join(t.TempDir(), "kubeconfig")
	g.Expect(clientcmd.WriteToFile(*cfg, path)).To(Succeed())

	app := newApp(map[string]string{"KUBECONFIG": path})
	r := runApp(app, "status", "agreements")
	g.Expect(r.code).To(Equal(ExitOK), r.stderr)
	g.Expect(r.stdout).To(MatchRegexp(`(?m)^Webhook:\s+%s/agreements$`, ns))

	// --kubeconfig wins over $KUBECONFIG.
	app = newApp(map[string]string{"KUBECONFIG": filepath.Join(t.TempDir(), "missing")})
	r = runApp(app, "status", "--kubeconfig", path, "agreements")
	g.Expect(r.code).To(Equal(ExitOK), r.stderr)
}

func TestStatusErrors(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, "acc-1")

	r := run(append([]string{"status"}, kubeArgs("-n", ns, "nope")...)...)
	g.Expect(r.code).To(Equal(ExitFailure))
	g.Expect(r.stderr).To(Equal("error: webhook " + ns + "/nope not found (list the namespace's webhooks with: hookline status -n " + ns + ")\n"))

	r = run("status", "--kubeconfig", filepath.Join(t.TempDir(), "missing"), "x")
	g.Expect(r.code).To(Equal(ExitFailure))
	g.Expect(r.stderr).To(ContainSubstring("loading kubeconfig"))

	empty := filepath.Join(t.TempDir(), "empty")
	g.Expect(os.WriteFile(empty, nil, 0o600)).To(Succeed())
	app := newApp(map[string]string{"KUBECONFIG": empty})
	r = runApp(app, "status", "x")
	g.Expect(r.code).To(Equal(ExitFailure))
	g.Expect(r.stderr).To(ContainSubstring("no Kubernetes configuration found"))

	for _, args := range [][]string{
		{"a", "b"},
		{"-A", "name"},
		{"-A", "-n", ns},
		{"-o", "xml", "name"},
		{"other/name", "-n", ns},
		{"/name"},
	} {
		r := run(append([]string{"status"}, kubeArgs(args...)...)...)
		g.Expect(r.code).To(Equal(ExitUsage), "status %v: %s", args, r.stderr)
		g.Expect(r.stderr).To(ContainSubstring("Run 'hookline status -h' for usage."))
	}
}

// Free-text ids and annotation values reach the terminal escaped, never as escape sequences.
func TestStatusEscapesControlCharacters(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, "acc-1")
	wh := &hooklinev1.Webhook{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hostile",
			Annotations: map[string]string{hooklinev1.ReactivateAnnotation: "now\x1b]0;pwned\x07"}},
		Spec: hooklinev1.WebhookSpec{URL: "https://receiver.example.com/hooks/x", Scope: hooklinev1.ScopeGroup,
			GroupID: "grp\x1b[31m\u202eevil", Events: []hooklinev1.EventName{"AGREEMENT_ALL"}},
	}
	g.Expect(k8s.Create(context.Background(), wh)).To(Succeed())
	r := run(append([]string{"status"}, kubeArgs("-n", ns, "hostile")...)...)
	g.Expect(r.code).To(Equal(ExitOK), r.stderr)
	g.Expect(r.stdout).NotTo(ContainSubstring("\x1b"))
	g.Expect(r.stdout).NotTo(ContainSubstring("\u202e"))
	g.Expect(r.stdout).To(ContainSubstring(`GROUP (groupId "grp\x1b[31m\u202eevil")`))
	g.Expect(r.stdout).To(ContainSubstring(`requested "now\x1b]0;pwned\a"`))

	// The hint of a disabled Webhook quotes the annotation too: its status is the tenant's to
	// write (or its receiver's failures make it so).
	wh.Status.State = hooklinev1.ObservedDisabled
	g.Expect(k8s.Status().Update(context.Background(), wh)).To(Succeed())
	r = run(append([]string{"status"}, kubeArgs("-n", ns, "hostile")...)...)
	g.Expect(r.code).To(Equal(ExitOK), r.stderr)
	g.Expect(r.stdout + r.stderr).To(ContainSubstring("is requested but not yet handled"))
	g.Expect(r.stdout + r.stderr).NotTo(ContainSubstring("\x1b"))
	g.Expect(r.stdout + r.stderr).NotTo(ContainSubstring("\a"))
}
