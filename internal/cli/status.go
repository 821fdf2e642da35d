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
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/internal/tenancy"
)

// mainConditions are always shown, in this order; others follow as they come.
var mainConditions = []string{hooklinev1.ConditionReady, hooklinev1.ConditionVerified, hooklinev1.ConditionDelivering, hooklinev1.ConditionAutoDisabled}

func (a *App) status(ctx context.Context, args []string) error {
	var kf kubeFlags
	var allNamespaces bool
	var output string
	fs := newFlagSet("status")
	kf.bind(fs)
	fs.BoolVar(&allNamespaces, "A", false, "all namespaces")
	fs.BoolVar(&allNamespaces, "all-namespaces", false, "all namespaces")
	fs.StringVar(&output, "o", "", "output format")
	fs.StringVar(&output, "output", "", "output format")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	switch output {
	case "", "json", "yaml":
	default:
		return usagef("--output %q: use json or yaml", output)
	}
	if len(pos) > 1 {
		return usagef("status takes one NAME (or NAMESPACE/NAME), got %d arguments", len(pos))
	}
	if allNamespaces && len(pos) == 1 {
		return usagef("-A lists every webhook; leave it out to show %s", pos[0])
	}
	if allNamespaces && kf.namespace != "" {
		return usagef("use either -A or -n, not both")
	}
	k, err := a.connect(kf)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return a.listWebhooks(ctx, k, allNamespaces, output)
	}
	key, err := objectKey(pos[0], kf.namespace, k.namespace)
	if err != nil {
		return err
	}
	var wh hooklinev1.Webhook
	if err := k.client.Get(ctx, key, &wh); err != nil {
		return a.explain(k, err, key.Namespace, key.Name)
	}
	if output != "" {
		return writeStructured(a.Stdout, output, wh.Status)
	}
	a.describe(a.Stdout, &wh)
	if hint := a.statusHint(&wh); hint != "" {
		fmt.Fprintf(a.Stdout, "\n%s", hint)
	}
	return nil
}

func writeStructured(w io.Writer, format string, v any) error {
	var out []byte
	var err error
	if format == "yaml" {
		out, err = yaml.Marshal(v)
	} else {
		out, err = json.MarshalIndent(v, "", "  ")
		out = append(out, '\n')
	}
	if err != nil {
		return err
	}
	_, err = w.Write(out)
	return err
}

// describe prints one Webhook's status for people.
func (a *App) describe(out io.Writer, wh *hooklinev1.Webhook) {
	st := &wh.Status
	now := a.Now()
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "Webhook:\t%s/%s\n", wh.Namespace, wh.Name)
	fmt.Fprintf(w, "State:\t%s\n", orDash(string(st.State)))
	desired := wh.Spec.State
	if desired == "" {
		desired = hooklinev1.StateActive
	}
	fmt.Fprintf(w, "Desired state:\t%s\n", desired)
	fmt.Fprintf(w, "URL:\t%s\n", wh.Spec.URL)
	fmt.Fprintf(w, "Scope:\t%s\n", scopeString(&wh.Spec))
	_ = w.Flush()

	fmt.Fprintln(out, "Conditions:")
	w = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "  TYPE\tSTATUS\tREASON\tSINCE\tMESSAGE")
	shown := map[string]bool{}
	for _, t := range mainConditions {
		shown[t] = true
		if c := meta.FindStatusCondition(st.Conditions, t); c != nil {
			writeCondition(w, c, now)
		} else {
			fmt.Fprintf(w, "  %s\t-\t-\t-\tnot reported yet\n", t)
		}
	}
	for i := range st.Conditions {
		if c := &st.Conditions[i]; !shown[c.Type] {
			writeCondition(w, c, now)
		}
	}
	_ = w.Flush()

	w = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "lastVerifiedTime:\t%s\n", timeString(st.LastVerifiedTime, now, "never"))
	fmt.Fprintf(w, "lastAttemptTime:\t%s\n", timeString(st.LastAttemptTime, now, "never"))
	fmt.Fprintf(w, "lastSuccessTime:\t%s\n", timeString(st.LastSuccessTime, now, "never"))
	fmt.Fprintf(w, "failingSince:\t%s\n", timeString(st.FailingSince, now, "-"))
	fmt.Fprintf(w, "consecutiveFailures:\t%s\n", count(st.ConsecutiveFailures))
	fmt.Fprintf(w, "pendingNotifications:\t%s\n", count(st.PendingNotifications))
	fmt.Fprintf(w, "deliveredTotal:\t%s\n", count(st.DeliveredTotal))
	fmt.Fprintf(w, "droppedTotal:\t%s\n", count(st.DroppedTotal))
	fmt.Fprintf(w, "cancelledTotal:\t%s\n", count(st.CancelledTotal))
	if requested := wh.Annotations[reactivateAnnotation]; requested != "" || st.LastHandledReactivation != "" {
		// Both as the status records them: a long request is shown by its digest, as handled.
		fmt.Fprintf(w, "reactivation:\trequested %s, handled %s\n",
			terminalSafe(orDash(hooklinev1.ReactivationToken(requested))), terminalSafe(orDash(st.LastHandledReactivation)))
	}
	_ = w.Flush()
}

func writeCondition(w io.Writer, c *metav1.Condition, now time.Time) {
	since := "-"
	if !c.LastTransitionTime.IsZero() {
		since = ago(c.LastTransitionTime.Time, now)
	}
	fmt.Fprintf(w, "  %s\t%s\t%s\t%s\t%s\n", c.Type, c.Status, orDash(c.Reason), since, oneLine(c.Message))
}

// statusHint says what to do about a Webhook that needs a person.
func (a *App) statusHint(wh *hooklinev1.Webhook) string {
	ready := meta.FindStatusCondition(wh.Status.Conditions, hooklinev1.ConditionReady)
	switch {
	case wh.Status.State == hooklinev1.ObservedDisabled:
		var b strings.Builder
		b.WriteString("Hint: the dispatcher auto-disabled this webhook: a notification was dropped and no delivery had\n" +
			"succeeded for 7 days. Nothing is queued or sent while it is Disabled; events in between are lost.\n")
		requested := wh.Annotations[reactivateAnnotation]
		if requested != "" && !hooklinev1.ReactivationHandled(requested, wh.Status.LastHandledReactivation) {
			// The annotation is the tenant's: as the status table shows it, never raw to a terminal.
			fmt.Fprintf(&b, "A reactivation (%s=%s) is requested but not yet handled: is the dispatcher running?\n",
				reactivateAnnotation, terminalSafe(hooklinev1.ReactivationToken(requested)))
			return b.String()
		}
		fmt.Fprintf(&b, "Fix the receiver, then reactivate it (the endpoint is verified again, then deliveries resume):\n"+
			"  %s reactivate -n %s %s --wait\n"+
			"or declaratively: set the annotation %s to a new value (a date, a ticket\n"+
			"number) in the Webhook's manifest in Git, or toggle spec.state to INACTIVE and back.\n",
			a.Name, wh.Namespace, wh.Name, reactivateAnnotation)
		return b.String()
	case ready != nil && ready.Status == metav1.ConditionFalse && ready.Reason == hooklinev1.ReasonNamespaceNotBound:
		return fmt.Sprintf("Hint: namespace %[1]s is not bound to an Acrobat Sign account, so its webhooks receive nothing.\n"+
			"A cluster administrator binds it with:\n"+
			"  kubectl label namespace %[1]s %[2]s=<accountId>\n"+
			"(and %[3]s=<groupId> to restrict it to one group).\n", wh.Namespace, tenancy.AccountLabel, tenancy.GroupLabel)
	case ready != nil && ready.Status == metav1.ConditionFalse && ready.Reason == hooklinev1.ReasonDuplicateConfiguration:
		return "Hint: an older ACTIVE Webhook of this account (in this namespace or another namespace bound to the\n" +
			"account) has the same configuration (events, url, scope, group, user, resource and client id); only the\n" +
			"oldest receives notifications. Delete this one, or change its configuration; it takes over, verified\n" +
			"again, when no older one with this configuration is left ACTIVE.\n"
	case wh.Spec.State == hooklinev1.StateInactive:
		return "Hint: spec.state is INACTIVE: nothing is delivered. Set it to ACTIVE to verify the endpoint and resume.\n"
	}
	return ""
}

func (a *App) listWebhooks(ctx context.Context, k *kube, all bool, output string) error {
	var list hooklinev1.WebhookList
	var opts []client.ListOption
	where := "namespace " + k.namespace
	if !all {
		opts = append(opts, client.InNamespace(k.namespace))
	} else {
		where = "any namespace"
	}
	if err := k.client.List(ctx, &list, opts...); err != nil {
		return a.explain(k, err, k.namespace, "")
	}
	if output != "" {
		type item struct {
			Namespace string                   `json:"namespace"`
			Name      string                   `json:"name"`
			Status    hooklinev1.WebhookStatus `json:"status"`
		}
		items := make([]item, 0, len(list.Items))
		for _, wh := range list.Items {
			items = append(items, item{wh.Namespace, wh.Name, wh.Status})
		}
		return writeStructured(a.Stdout, output, items)
	}
	if len(list.Items) == 0 {
		fmt.Fprintf(a.Stderr, "No webhooks found in %s.\n", where)
		return nil
	}
	now := a.Now()
	w := tabwriter.NewWriter(a.Stdout, 0, 4, 3, ' ', 0)
	fmt.Fprintln(w, "NAMESPACE\tNAME\tSTATE\tREADY\tPENDING\tDELIVERED\tDROPPED\tLAST-SUCCESS")
	for i := range list.Items {
		wh := &list.Items[i]
		ready := "-"
		if c := meta.FindStatusCondition(wh.Status.Conditions, hooklinev1.ConditionReady); c != nil {
			ready = string(c.Status)
		}
		lastSuccess := "<none>"
		if t := wh.Status.LastSuccessTime; t != nil {
			lastSuccess = duration.HumanDuration(now.Sub(t.Time))
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", wh.Namespace, wh.Name, orDash(string(wh.Status.State)), ready,
			count(wh.Status.PendingNotifications), count(wh.Status.DeliveredTotal), count(wh.Status.DroppedTotal), lastSuccess)
	}
	return w.Flush()
}

func scopeString(s *hooklinev1.WebhookSpec) string {
	switch {
	case s.Scope == hooklinev1.ScopeGroup && s.GroupID != "":
		return fmt.Sprintf("%s (groupId %s)", s.Scope, terminalSafe(s.GroupID))
	case s.Scope == hooklinev1.ScopeUser && s.UserID != "":
		return fmt.Sprintf("%s (userId %s)", s.Scope, terminalSafe(s.UserID))
	case s.Scope == hooklinev1.ScopeResource && s.Resource != nil:
		return fmt.Sprintf("%s (%s %s)", s.Scope, s.Resource.Type, terminalSafe(s.Resource.ID))
	}
	return string(s.Scope)
}

func timeString(t *metav1.Time, now time.Time, none string) string {
	if t == nil || t.IsZero() {
		return none
	}
	return t.UTC().Format(time.RFC3339) + " (" + ago(t.Time, now) + ")"
}

func ago(t, now time.Time) string {
	d := now.Sub(t)
	if d < 0 {
		return "in " + duration.HumanDuration(-d)
	}
	return duration.HumanDuration(d) + " ago"
}

func count(n *int64) string {
	if n == nil {
		return "-"
	}
	return strconv.FormatInt(*n, 10)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func oneLine(s string) string {
	return terminalSafe(strings.Join(strings.Fields(s), " "))
}

// terminalSafe quotes s, escaping what is not printable, when it holds control, format (bidi
// overrides, zero-width) or other non-graphic characters: ids and annotation values are free text
// in the API, and an escape sequence must not reach the operator's terminal as one.
// terminalSafeLines is terminalSafe for each line of s: a message of several lines keeps them.
func terminalSafeLines(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = terminalSafe(l)
	}
	return strings.Join(lines, "\n")
}

func terminalSafe(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return !unicode.IsGraphic(r) }) < 0 {
		return s
	}
	return strconv.QuoteToGraphic(s)
}

func statusUsage(a *App) string {
	return fmt.Sprintf(`Show a Webhook's state, conditions, verification and delivery record, with a hint when it needs
action (Disabled: how to reactivate; namespace not bound: how to label it); or list Webhooks.

Usage:
  %[1]s status [flags] NAME|NAMESPACE/NAME   one Webhook
  %[1]s status [flags]                       the Webhooks of the namespace, as a table
  %[1]s status -A [flags]                    the Webhooks of every namespace

Flags:
  -A, --all-namespaces   list the Webhooks of every namespace
  -o, --output FORMAT    json or yaml: print the Webhook's status object (for a list: the namespace,
                         name and status of each Webhook)
%[2]s
Examples:
  %[1]s status -n team-a account-agreements
  %[1]s status team-a/account-agreements -o yaml
  %[1]s status -A
`, a.Name, kubeFlagsUsage)
}
