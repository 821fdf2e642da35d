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
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
)

func (a *App) reactivate(ctx context.Context, args []string) error {
	var kf kubeFlags
	var wait bool
	var timeout time.Duration
	var value string
	fs := newFlagSet("reactivate")
	kf.bind(fs)
	fs.BoolVar(&wait, "wait", false, "wait until Active")
	fs.DurationVar(&timeout, "timeout", 2*time.Minute, "how long --wait waits")
	fs.StringVar(&value, "value", "", "annotation value")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("reactivate takes one NAME (or NAMESPACE/NAME)")
	}
	if timeout <= 0 {
		return usagef("--timeout must be positive")
	}
	if isSet(fs, "value") && value == "" {
		return usagef("--value must not be empty")
	}
	k, err := a.connect(kf)
	if err != nil {
		return err
	}
	key, err := objectKey(pos[0], kf.namespace, k.namespace)
	if err != nil {
		return err
	}
	var wh hooklinev1.Webhook
	if err := k.client.Get(ctx, key, &wh); err != nil {
		return a.explain(k, err, key.Namespace, key.Name)
	}
	if wait && wh.Spec.State == hooklinev1.StateInactive {
		return fmt.Errorf("webhook %s/%s has spec.state INACTIVE: it will not become Active and the dispatcher ignores %s until spec.state is ACTIVE",
			key.Namespace, key.Name, reactivateAnnotation)
	}
	if value == "" {
		value = a.reactivationValue(&wh)
	}
	patch, err := json.Marshal(map[string]any{
		"metadata": map[string]any{"annotations": map[string]string{reactivateAnnotation: value}},
	})
	if err != nil {
		return err
	}
	before := wh.Status.State
	if err := k.client.Patch(ctx, &wh, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return a.explain(k, err, key.Namespace, key.Name)
	}
	fmt.Fprintf(a.Stdout, "webhook %s/%s: set %s=%s (state was %s)\n", key.Namespace, key.Name, reactivateAnnotation, value, orDash(string(before)))
	switch {
	case wh.Spec.State == hooklinev1.StateInactive:
		fmt.Fprintf(a.Stderr, "note: spec.state is INACTIVE: the dispatcher acts on %s only once spec.state is ACTIVE\n", reactivateAnnotation)
	case before != hooklinev1.ObservedDisabled:
		fmt.Fprintf(a.Stderr, "note: the webhook is %s, not Disabled: the dispatcher records the value, nothing else changes\n", orDash(string(before)))
	}
	fmt.Fprintf(a.Stderr, "The declarative equivalent is committing this annotation to the Webhook's manifest in Git:\n"+
		"  metadata:\n    annotations:\n      %s: %q\n", reactivateAnnotation, value)
	if !wait {
		return nil
	}
	return a.waitReactivated(ctx, k, key, value, timeout)
}

// reactivationValue is the current time in RFC 3339, with sub-second digits only when the second
// was used already (a value the dispatcher handled once does nothing the second time).
func (a *App) reactivationValue(wh *hooklinev1.Webhook) string {
	now := a.Now().UTC()
	v := now.Format(time.RFC3339)
	if v == wh.Annotations[reactivateAnnotation] || hooklinev1.ReactivationHandled(v, wh.Status.LastHandledReactivation) {
		v = now.Format("2006-01-02T15:04:05.000000000Z07:00")
	}
	return v
}

// waitReactivated polls the Webhook until status.state is Active and the dispatcher has handled
// value.
func (a *App) waitReactivated(ctx context.Context, k *kube, key client.ObjectKey, value string, timeout time.Duration) error {
	wh := &hooklinev1.Webhook{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
	return a.waitFor(ctx, k, timeout, waiter{
		obj: wh, noun: "webhook", what: key.String(), goal: "to become Active", timeoutGoal: " to become Active",
		done: func() (bool, error) {
			if wh.Status.State != hooklinev1.ObservedActive || !hooklinev1.ReactivationHandled(value, wh.Status.LastHandledReactivation) {
				return false, nil
			}
			fmt.Fprintf(a.Stdout, "webhook %s is Active: the dispatcher handled the reactivation and deliveries resume\n", key)
			return true, nil
		},
		progress: func() string { return observed(wh, value) },
		timedOut: func() string {
			var msg string
			if c := meta.FindStatusCondition(wh.Status.Conditions, hooklinev1.ConditionReady); c != nil && c.Message != "" {
				msg += "\n  Ready: " + oneLine(c.Message)
			}
			if !hooklinev1.ReactivationHandled(value, wh.Status.LastHandledReactivation) {
				msg += "\n  the dispatcher has not handled the reactivation: is it running?"
			}
			return msg
		},
	})
}

// observed summarises what the wait is waiting for: state, Ready and the reactivation.
func observed(wh *hooklinev1.Webhook, value string) string {
	s := "state " + orDash(string(wh.Status.State))
	if c := meta.FindStatusCondition(wh.Status.Conditions, hooklinev1.ConditionReady); c != nil {
		s += fmt.Sprintf(", Ready %s (%s)", c.Status, orDash(c.Reason))
	} else {
		s += ", Ready not reported"
	}
	if hooklinev1.ReactivationHandled(value, wh.Status.LastHandledReactivation) {
		s += ", reactivation handled"
	} else {
		s += ", reactivation not handled yet"
	}
	return s
}

func reactivateUsage(a *App) string {
	return fmt.Sprintf(`Reactivate an auto-disabled Webhook: set its annotation %[2]s to the current
time (RFC 3339) with a merge patch. The dispatcher lifts the auto-disable, the manager verifies the
endpoint again, and deliveries resume once the Webhook is Active. Events between the auto-disable
and now are lost.

The declarative equivalent is committing a new value of the annotation to the Webhook's manifest in
Git (any value not yet handled: a date, a ticket number).

Usage:
  %[1]s reactivate [flags] NAME|NAMESPACE/NAME

Flags:
      --wait             wait until status.state is Active and status.lastHandledReactivation is the
                         new value; print progress on stderr; on timeout, report the Ready condition
      --timeout DURATION how long --wait waits (default 2m)
      --value VALUE      the annotation's value (default: the current time, RFC 3339)
%[3]s
Exit status: 0 when the annotation was set (and, with --wait, the Webhook is Active), 1 on failure
or timeout, 2 on usage errors.

Examples:
  %[1]s reactivate -n team-a account-agreements --wait
  %[1]s reactivate team-a/account-agreements --value INC-4711
`, a.Name, reactivateAnnotation, kubeFlagsUsage)
}
