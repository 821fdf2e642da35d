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
// all: truncated says that there were more.
func visibleWebhooks(ctx context.Context, c client.Client, candidates []string) (items []hooklinev1.Webhook, denied []string, clusterWide, truncated bool, err error) {
	items, truncated, err = listWebhooks(ctx, c, nil)
	switch {
	case err == nil:
		clusterWide = true
	case apierrors.IsForbidden(err):
		items = nil
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
	default:
		return nil, nil, false, false, err
	}
	sort.Slice(items, func(i, j int) bool {
		if items[i].Namespace != items[j].Namespace {
			return items[i].Namespace < items[j].Namespace
		}
		return items[i].Name < items[j].Name
	})
	return items, denied, clusterWide, truncated, nil
}

// maxListed bounds the webhooks the list page reads; listPage is how many one answer brings.
const (
	maxListed = 5000
	listPage  = 500
)

// listWebhooks appends the webhooks opts select to items, a page at a time, up to maxListed in
// all; more says that there were more.
func listWebhooks(ctx context.Context, c client.Client, items []hooklinev1.Webhook, opts ...client.ListOption) (_ []hooklinev1.Webhook, more bool, err error) {
	cont := ""
	for {
		var l hooklinev1.WebhookList
		if err := c.List(ctx, &l, append(opts, client.Limit(listPage), client.Continue(cont))...); err != nil {
			return items, false, err
		}
		room := maxListed - len(items)
		if len(l.Items) > room {
			return append(items, l.Items[:room]...), true, nil
		}
		items = append(items, l.Items...)
		if cont = l.Continue; cont == "" {
			return items, false, nil
		}
		if len(items) == maxListed {
			return items, true, nil
		}
	}
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

// webhookEvents lists the Kubernetes Events about wh, newest first; forbidden is reported as
// allowed=false rather than an error (a user may see webhooks but not Events).
func webhookEvents(ctx context.Context, c client.Client, wh *hooklinev1.Webhook) (events []corev1.Event, allowed bool, err error) {
	var l corev1.EventList
	err = c.List(ctx, &l, client.InNamespace(wh.Namespace), client.MatchingFields{"involvedObject.uid": string(wh.UID)})
	if apierrors.IsForbidden(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("listing events: %w", err)
	}
	sort.Slice(l.Items, func(i, j int) bool { return eventTime(&l.Items[i]).After(eventTime(&l.Items[j])) })
	return l.Items, true, nil
}
