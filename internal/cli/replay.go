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
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
)

var (
	notificationIDPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	replayStates          = []string{"failed", "dropped", "lost", "cancelled", "delivered"}
)

func (a *App) replay(ctx context.Context, args []string) error {
	var kf kubeFlags
	var ids stringList
	var since, until, states, name string
	var wait bool
	var timeout time.Duration
	fs := newFlagSet("replay")
	kf.bind(fs)
	fs.Var(&ids, "notification", "webhookNotificationId to replay (repeatable)")
	fs.StringVar(&since, "since", "", "replay notifications of events accepted since this time")
	fs.StringVar(&until, "until", "", "and before this time")
	fs.StringVar(&states, "state", "", "states to replay")
	fs.StringVar(&name, "name", "", "name of the WebhookReplay")
	fs.BoolVar(&wait, "wait", false, "wait until the replay completed")
	fs.DurationVar(&timeout, "timeout", 10*time.Minute, "how long --wait waits")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("replay takes one webhook NAME (or NAMESPACE/NAME)")
	}
	if timeout <= 0 {
		return usagef("--timeout must be positive")
	}
	spec, err := a.replaySpec(ids, since, until, states)
	if err != nil {
		return err
	}
	if isSet(fs, "name") && !dnsName.MatchString(name) {
		return usagef("--name %q is not a valid object name (lower-case letters, digits, '-' and '.')", name)
	}
	k, err := a.connect(kf)
	if err != nil {
		return err
	}
	key, err := objectKey(pos[0], kf.namespace, k.namespace)
	if err != nil {
		return err
	}
	spec.WebhookName = key.Name
	// Name a missing webhook now rather than leave a replay waiting for it; a caller allowed to
	// create replays but not to read webhooks goes ahead.
	var wh hooklinev1.Webhook
	if err := k.client.Get(ctx, key, &wh); err != nil && !apierrors.IsForbidden(err) {
		return a.explain(k, err, key.Namespace, key.Name)
	}
	rp := &hooklinev1.WebhookReplay{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: name}, Spec: spec}
	if name == "" {
		rp.GenerateName = generateName(key.Name)
	}
	if err := k.client.Create(ctx, rp); err != nil {
		if meta.IsNoMatchError(err) || (apierrors.IsNotFound(err) && !apierrors.IsAlreadyExists(err)) {
			return fmt.Errorf("the WebhookReplay resource (webhookreplays.%s) is not installed in the cluster at %s: upgrade hookline's CRDs",
				hooklinev1.GroupVersion.Group, k.host)
		}
		if apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("webhookreplay %s/%s exists already: a replay runs once; choose another --name, or leave it out", key.Namespace, name)
		}
		return a.explain(k, err, "", "")
	}
	fmt.Fprintf(a.Stdout, "webhookreplay %s/%s created: replaying %s of webhook %s\n", rp.Namespace, rp.Name, describeSelection(spec), key.Name)
	if manifest, err := replayManifest(rp); err == nil {
		fmt.Fprintf(a.Stderr, "The declarative equivalent is applying this manifest (kubectl, Argo CD, Flux):\n%s", manifest)
	}
	if !wait {
		fmt.Fprintf(a.Stderr, "Follow it with: kubectl get webhookreplay -n %s %s -w\n", rp.Namespace, rp.Name)
		return nil
	}
	return a.waitReplay(ctx, k, client.ObjectKeyFromObject(rp), timeout)
}

// dnsName is an object name (RFC 1123 subdomain).
var dnsName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)

// generateName is the prefix of a replay's generated name: the webhook's name, shortened so that
// the API server's random suffix fits.
func generateName(webhook string) string {
	const max = 253 - 5 - len("-replay-")
	if len(webhook) > max {
		webhook = strings.TrimRight(webhook[:max], "-.")
	}
	return webhook + "-replay-"
}

// replaySpec builds the selection from the flags, checking what the API server would refuse so that
// the error names the flag.
func (a *App) replaySpec(ids []string, since, until, states string) (hooklinev1.WebhookReplaySpec, error) {
	var spec hooklinev1.WebhookReplaySpec
	switch {
	case len(ids) == 0 && since == "":
		return spec, usagef("select what to replay: --notification ID (repeatable) or --since TIME")
	case len(ids) > 0 && since != "":
		return spec, usagef("--notification and --since are mutually exclusive")
	case len(ids) > 0 && (until != "" || states != ""):
		return spec, usagef("--until and --state select by time: use them with --since, not --notification")
	case len(ids) > 1000:
		return spec, usagef("at most 1000 --notification ids per replay (got %d)", len(ids))
	}
	for _, id := range ids {
		for _, one := range strings.Split(id, ",") {
			if !notificationIDPattern.MatchString(one) {
				return spec, usagef("--notification %q is not a webhookNotificationId (8-4-4-4-12 hexadecimal digits)", one)
			}
			if !slices.Contains(spec.NotificationIDs, hooklinev1.NotificationID(one)) {
				spec.NotificationIDs = append(spec.NotificationIDs, hooklinev1.NotificationID(one))
			}
		}
	}
	if since == "" {
		return spec, nil
	}
	now := a.Now()
	t, err := parseTime(since, now)
	if err != nil {
		return spec, usagef("--since: %v", err)
	}
	spec.Since = &metav1.Time{Time: t}
	if until != "" {
		u, err := parseTime(until, now)
		if err != nil {
			return spec, usagef("--until: %v", err)
		}
		if !u.After(t) {
			return spec, usagef("--until (%s) must be after --since (%s)", u.Format(time.RFC3339), t.Format(time.RFC3339))
		}
		spec.Until = &metav1.Time{Time: u}
	}
	if states != "" {
		for _, s := range strings.Split(states, ",") {
			s = strings.ToLower(strings.TrimSpace(s))
			if !slices.Contains(replayStates, s) {
				return spec, usagef("--state %q is not one of %s", s, strings.Join(replayStates, ", "))
			}
			if !slices.Contains(spec.States, hooklinev1.ReplayState(s)) {
				spec.States = append(spec.States, hooklinev1.ReplayState(s))
			}
		}
	}
	return spec, nil
}

// parseTime reads an RFC 3339 time, or a duration meaning that long before now ("2h", "90m").
func parseTime(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC().Truncate(time.Second), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time (2026-11-25T10:00:00Z) nor a positive duration (2h, 90m) before now", s)
	}
	// Whole seconds: metav1.Time is serialised to the second, and the API server compares those.
	return now.Add(-d).UTC().Truncate(time.Second), nil
}

func describeSelection(s hooklinev1.WebhookReplaySpec) string {
	if len(s.NotificationIDs) > 0 {
		if len(s.NotificationIDs) == 1 {
			return "notification " + string(s.NotificationIDs[0])
		}
		return fmt.Sprintf("%d notifications", len(s.NotificationIDs))
	}
	states := "failed"
	if len(s.States) > 0 {
		var ss []string
		for _, st := range s.States {
			ss = append(ss, string(st))
		}
		states = strings.Join(ss, "/")
	}
	out := fmt.Sprintf("the %s notifications of events accepted since %s", states, s.Since.UTC().Format(time.RFC3339))
	if s.Until != nil {
		out += " until " + s.Until.UTC().Format(time.RFC3339)
	}
	return out
}

// replayManifest renders rp as the YAML one would apply instead.
func replayManifest(rp *hooklinev1.WebhookReplay) (string, error) {
	m := map[string]any{
		"apiVersion": hooklinev1.GroupVersion.String(),
		"kind":       "WebhookReplay",
		"metadata":   map[string]any{"name": rp.Name, "namespace": rp.Namespace},
		"spec":       rp.Spec,
	}
	b, err := yaml.Marshal(m)
	if err != nil {
		return "", err
	}
	var out strings.Builder
	for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		out.WriteString("  " + l + "\n")
	}
	return out.String(), nil
}

// waitReplay polls the replay until Ready or Stalled.
func (a *App) waitReplay(ctx context.Context, k *kube, key client.ObjectKey, timeout time.Duration) error {
	rp := &hooklinev1.WebhookReplay{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
	return a.waitFor(ctx, k, timeout, waiter{
		obj: rp, noun: "replay", what: "webhookreplay " + key.String(), goal: "to complete", goesOn: " (the replay goes on)",
		done: func() (bool, error) {
			if c := meta.FindStatusCondition(rp.Status.Conditions, hooklinev1.ConditionStalled); c != nil && c.Status == metav1.ConditionTrue {
				return false, fmt.Errorf("webhookreplay %s cannot finish: %s: %s", key, c.Reason, oneLine(c.Message))
			}
			c := meta.FindStatusCondition(rp.Status.Conditions, hooklinev1.ConditionReady)
			if c == nil || c.Status != metav1.ConditionTrue || c.ObservedGeneration != rp.Generation {
				return false, nil
			}
			fmt.Fprintf(a.Stdout, "webhookreplay %s completed: %s\n", key, counts(rp))
			for _, u := range rp.Status.Unavailable {
				fmt.Fprintf(a.Stdout, "  not replayed: %s\n", oneLine(u))
			}
			return true, nil
		},
		progress: func() string { return replayProgress(rp) },
		timedOut: func() string {
			if len(rp.Status.Conditions) == 0 {
				return "\n  the dispatcher has not reported on the replay: is it running, and does it know WebhookReplays?"
			}
			return ""
		},
	})
}

func counts(rp *hooklinev1.WebhookReplay) string {
	s := rp.Status
	return fmt.Sprintf("matched %d, queued %d, delivered %d, failed %d", s.Matched, s.Queued, s.Delivered, s.Failed)
}

// replayProgress summarises where a replay stands.
func replayProgress(rp *hooklinev1.WebhookReplay) string {
	c := meta.FindStatusCondition(rp.Status.Conditions, hooklinev1.ConditionReconciling)
	if c == nil {
		return "not started: the dispatcher has not reported on it yet"
	}
	return fmt.Sprintf("%s: %s (%s)", c.Reason, counts(rp), oneLine(c.Message))
}

func replayUsage(a *App) string {
	return fmt.Sprintf(`Replay notifications of a Webhook: create a WebhookReplay, which the dispatcher runs like a Job.
Replayed notifications keep their webhookNotificationId (receivers dedupe on it), are queued at the
tail of the webhook's queue in their original order, and obey the retry rules. A replay of a
Webhook that is not Active waits until it is. Select either notifications by id, or every
notification of events accepted in a time range whose state is one of --state: "--since 6h
--state lost" recovers the events that came while the webhook was auto-disabled (as far as the event
log still holds them).

Usage:
  %[1]s replay [flags] NAME|NAMESPACE/NAME (--notification ID ... | --since TIME [--until TIME] [--state S,...])

Flags:
      --notification ID  a webhookNotificationId to replay (repeatable, or comma-separated; at most 1000)
      --since TIME       events accepted at or after TIME: RFC 3339 (2026-11-25T10:00:00Z) or a
                         duration before now (2h, 90m)
      --until TIME       and before TIME (default: when the replay starts)
      --state S,...      failed (default: dropped, lost and cancelled), dropped, lost, cancelled, delivered
      --name NAME        the WebhookReplay's name (default: generated from the webhook's name)
      --wait             wait until every queued notification was delivered or failed; print
                         progress on stderr and the outcome on stdout
      --timeout DURATION how long --wait waits (default 10m); the replay goes on after it
%[2]s
Exit status: 0 when the replay was created (and, with --wait, completed, whatever the outcome of
each delivery), 1 on failure, timeout or when the replay cannot finish, 2 on usage errors.

Examples:
  %[1]s replay -n team-a orders --notification 0f1e2d3c-4b5a-5968-8776-a5b4c3d2e1f0 --wait
  %[1]s replay team-a/orders --since 2026-11-25T08:00:00Z --until 2026-11-25T14:00:00Z --state lost,dropped
`, a.Name, kubeFlagsUsage)
}
