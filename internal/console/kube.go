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
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
)

// Token pass-through: every request to the API server carries the signed-in user's own bearer
// token, so the API server authenticates the user and RBAC alone decides what the user may see and
// change, with the user's name in the audit log. The alternative, a TokenReview followed by
// impersonation, would need the console's ServiceAccount to hold the impersonate right on users and
// groups, which lets whoever controls the console act as anyone; with pass-through the console holds
// no rights at all and a compromised console can do no more than the tokens it is handed.

var (
	scheme = func() *runtime.Scheme {
		s := runtime.NewScheme()
		utilruntime.Must(clientgoscheme.AddToScheme(s))
		utilruntime.Must(hooklinev1.AddToScheme(s))
		return s
	}()
	// mapper is static: the console uses a handful of kinds, and a discovery round trip per request (each
	// request builds its own client) would double the API traffic for nothing.
	mapper = func() meta.RESTMapper {
		m := meta.NewDefaultRESTMapper(nil)
		m.Add(hooklinev1.GroupVersion.WithKind("Webhook"), meta.RESTScopeNamespace)
		m.Add(hooklinev1.GroupVersion.WithKind("WebhookList"), meta.RESTScopeNamespace)
		// The default pluralization would say "webhookreplaies".
		replays := hooklinev1.GroupVersion.WithResource("webhookreplays")
		m.AddSpecific(hooklinev1.GroupVersion.WithKind("WebhookReplay"), replays, hooklinev1.GroupVersion.WithResource("webhookreplay"), meta.RESTScopeNamespace)
		m.AddSpecific(hooklinev1.GroupVersion.WithKind("WebhookReplayList"), replays, hooklinev1.GroupVersion.WithResource("webhookreplay"), meta.RESTScopeNamespace)
		m.Add(corev1.SchemeGroupVersion.WithKind("Event"), meta.RESTScopeNamespace)
		m.Add(corev1.SchemeGroupVersion.WithKind("EventList"), meta.RESTScopeNamespace)
		m.Add(authenticationv1.SchemeGroupVersion.WithKind("SelfSubjectReview"), meta.RESTScopeRoot)
		return m
	}()
)

// userClient returns a client that acts as the holder of token. base has the API server's address
// and CA and no credentials of its own (rest.AnonymousClientConfig).
func userClient(base *rest.Config, token string) (client.Client, error) {
	cfg := rest.AnonymousClientConfig(base)
	cfg.BearerToken = token
	cfg.UserAgent = "hookline-console"
	// No client-side rate limit (as ctrl.GetConfig): each request builds its own client, whose
	// default 5 requests a second made a page of many list answers wait while holding its turn.
	// The turns bound what the console asks of the API server.
	cfg.QPS = -1
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { return cappedAnswers{next: rt} })
	return client.New(cfg, client.Options{Scheme: scheme, Mapper: mapper})
}

// whoAmI asks the API server who the token belongs to (SelfSubjectReview, allowed to every
// authenticated user by the built-in system:basic-user role). A token the API server rejects fails
// with 401.
func whoAmI(ctx context.Context, c client.Client) (string, error) {
	r := &authenticationv1.SelfSubjectReview{}
	if err := c.Create(ctx, r); err != nil {
		return "", err
	}
	return r.Status.UserInfo.Username, nil
}

// serviceAccountNamespace returns the namespace of a ServiceAccount user name
// (system:serviceaccount:NS:NAME), or "".
func serviceAccountNamespace(user string) string {
	parts := strings.Split(user, ":")
	if len(parts) == 4 && parts[0] == "system" && parts[1] == "serviceaccount" {
		return parts[2]
	}
	return ""
}

// visibleWebhooks lists the webhooks the user may list. A cluster-wide list is tried first; when
// RBAC forbids it (the usual case for a tenant, who has a RoleBinding in its own namespaces), every
// candidate namespace is listed on its own: the ServiceAccount's namespace, the operator's
// --namespaces and the namespaces the user added. Namespaces the user may not list are left out
// and returned in denied, so the page can say so; Kubernetes offers no way to ask "which
// namespaces may I list X in" that works with every authorizer, and trying is what RBAC answers
// exactly.
//
// The lists are read in pages (each answer at most maxAnswer), and at most maxListed webhooks in
// all: truncated says that there were more. only, when set, is the one namespace listed (the
// page's filter, asked of the API server: a cluster's first maxListed webhooks may not hold it).
func visibleWebhooks(ctx context.Context, c client.Client, candidates []string, only string) (items []hooklinev1.Webhook, denied []string, clusterWide, truncated bool, err error) {
	if only != "" {
		candidates = []string{only}
	} else {
		items, truncated, err = listWebhooks(ctx, c, nil)
		switch {
		case err == nil:
			sortWebhooks(items)
			return items, nil, true, truncated, nil
		case !apierrors.IsForbidden(err):
			return nil, nil, false, false, err
		}
		items, truncated = nil, false
	}
	for _, ns := range candidates {
		got, more, err := listWebhooks(ctx, c, items, client.InNamespace(ns))
		if err != nil {
			if apierrors.IsForbidden(err) {
				denied = append(denied, ns)
				continue
			}
			return nil, nil, false, false, err
		}
		if items = got; more {
			truncated = true
			break
		}
	}
	sortWebhooks(items)
	return items, denied, false, truncated, nil
}

// sortWebhooks orders items by namespace, then name.
func sortWebhooks(items []hooklinev1.Webhook) {
	sort.Slice(items, func(i, j int) bool {
		if items[i].Namespace != items[j].Namespace {
			return items[i].Namespace < items[j].Namespace
		}
		return items[i].Name < items[j].Name
	})
}

// maxListed bounds the webhooks the list page reads; listPage is how many one answer brings.
const (
	maxListed = 5000
	listPage  = 500
)

// listWebhooks appends the webhooks opts select to items, up to maxListed in all, each trimmed to
// what the list page shows; more says that there were more.
func listWebhooks(ctx context.Context, c client.Client, items []hooklinev1.Webhook, opts ...client.ListOption) (_ []hooklinev1.Webhook, more bool, err error) {
	more, err = readPages(ctx, c, func() *hooklinev1.WebhookList { return &hooklinev1.WebhookList{} }, listPage, opts,
		func(l *hooklinev1.WebhookList) (stop, cut bool) {
			for i := range l.Items {
				if len(items) == maxListed {
					return true, true
				}
				items = append(items, listed(&l.Items[i]))
			}
			return len(items) == maxListed, false
		})
	return items, more, err
}

// listed is wh as the list page keeps it: without what it does not show (labels, annotations and
// managedFields a tenant may grow, the conditions' messages).
func listed(wh *hooklinev1.Webhook) hooklinev1.Webhook {
	out := hooklinev1.Webhook{TypeMeta: wh.TypeMeta, Spec: wh.Spec, Status: wh.Status}
	out.Namespace, out.Name, out.UID, out.CreationTimestamp = wh.Namespace, wh.Name, wh.UID, wh.CreationTimestamp
	out.Status.Conditions = nil
	for _, c := range wh.Status.Conditions {
		c.Message = ""
		out.Status.Conditions = append(out.Status.Conditions, c)
	}
	return out
}

// candidateNamespaces merges the namespaces worth trying, without duplicates, in a stable order.
func candidateNamespaces(user string, configured, added []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, list := range [][]string{{serviceAccountNamespace(user)}, configured, added} {
		for _, ns := range list {
			if ns != "" && !seen[ns] {
				seen[ns] = true
				out = append(out, ns)
			}
		}
	}
	return out
}

// errNotVisible stands for "not found or not allowed": the console answers both with 404 so that
// the existence of another tenant's webhook does not leak.
var errNotVisible = errors.New("not found")

// getWebhook reads one webhook as the user; forbidden and not found are both errNotVisible.
func getWebhook(ctx context.Context, c client.Client, ns, name string) (*hooklinev1.Webhook, error) {
	var wh hooklinev1.Webhook
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &wh); err != nil {
		if apierrors.IsNotFound(err) || apierrors.IsForbidden(err) {
			return nil, errNotVisible
		}
		return nil, err
	}
	return &wh, nil
}

// webhookEvents lists the Kubernetes Events about wh, newest first, at most maxEventsShown of
// them (more says there were more); forbidden is reported as allowed=false rather than an error (a
// user may see webhooks but not Events). Events created through core/v1 carry text of any length,
// in every field: only what the page shows of each is kept as it is read (shownEvent), and only the
// newest maxEventsShown of them.
func webhookEvents(ctx context.Context, c client.Client, wh *hooklinev1.Webhook) (events []corev1.Event, allowed, more bool, err error) {
	kept := newest[corev1.Event]{n: maxEventsShown, cmp: func(a, b corev1.Event) int { return eventTime(&b).Compare(eventTime(&a)) }}
	read, err := readPages(ctx, c, func() *corev1.EventList { return &corev1.EventList{} }, eventsPage,
		[]client.ListOption{client.InNamespace(wh.Namespace), client.MatchingFields{"involvedObject.uid": string(wh.UID)}},
		func(l *corev1.EventList) (stop, cut bool) {
			for i := range l.Items {
				kept.add(shownEvent(&l.Items[i]))
			}
			return false, false
		})
	if apierrors.IsForbidden(err) {
		return nil, false, false, nil
	}
	if err != nil {
		return nil, false, false, fmt.Errorf("listing events: %w", err)
	}
	events, dropped := kept.result()
	return events, true, read || dropped, nil
}

// shownEvent is e as the Webhook's page shows it (detail.html: its time, type, reason, message
// and count), in a fresh Event that holds nothing else. Trimming e itself left every other field
// at its full length (involvedObject.fieldPath, source, related, reportingController, action...,
// which core/v1 does not bound): 250 Events with a 16,000-character fieldPath make one answer,
// and a page kept twenty of them.
func shownEvent(e *corev1.Event) corev1.Event {
	out := corev1.Event{Type: clip(e.Type), Reason: clip(e.Reason), Message: clip(e.Message), Count: e.Count,
		FirstTimestamp: e.FirstTimestamp, LastTimestamp: e.LastTimestamp, EventTime: e.EventTime}
	out.CreationTimestamp = e.CreationTimestamp
	if e.Series != nil {
		out.Series = &corev1.EventSeries{Count: e.Series.Count, LastObservedTime: e.Series.LastObservedTime}
	}
	return out
}

// eventsPage is how many Events one answer brings, and maxEventsShown how many the page shows
// (the newest): the API server keeps Events an hour, and the recorder counts repeats in one.
const (
	eventsPage     = 250
	maxEventsShown = 100
)
