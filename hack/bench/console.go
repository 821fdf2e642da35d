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

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/internal/tenancy"
)

// Issue 12's goals for the console, measured against bin/console as a process: a tenant's list of
// 1,000 webhooks renders in under 500 ms of server time (median of 10), and the console stays under
// 100 MB of RSS.
const (
	consoleListGoal = 500 * time.Millisecond
	consoleRSSGoal  = 100
)

// consoleList measures the web console's list page: n webhooks in one tenant's namespace, listed
// 10 times by that tenant (a ServiceAccount bound to a Role in the namespace), each page checked to
// hold every row.
func consoleList(ctx context.Context, s *stack, n int) (row, error) {
	token, ns, err := consoleTenant(ctx, s)
	if err != nil {
		return row{}, err
	}
	for i := range n {
		wh := &hooklinev1.Webhook{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("wh-%04d", i)},
			Spec: hooklinev1.WebhookSpec{URL: fmt.Sprintf("https://receiver-%d.example/hooks", i), State: hooklinev1.StateInactive,
				Scope: hooklinev1.ScopeAccount, Events: []hooklinev1.EventName{"AGREEMENT_ALL", "WIDGET_ALL", "MEGASIGN_ALL"}}}
		if err := s.c.Create(ctx, wh); err != nil {
			return row{}, err
		}
	}

	addr := freeAddr()
	cmd := exec.Command(filepath.Join(s.cp.Bin, "console"), "--kubeconfig", s.cp.Kubeconfig, "--listen-address", addr, "--insecure-dev-http")
	if err := start(s.dir, "console", cmd); err != nil {
		return row{}, err
	}
	defer func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait() }()
	base := "http://" + addr
	if err := waitServing(cmd, base+"/healthz", 0, 10*time.Second, s.dir); err != nil {
		return row{}, err
	}
	hc, err := consoleSignIn(base, token)
	if err != nil {
		return row{}, err
	}
	var times []time.Duration
	for range 10 {
		begin := time.Now()
		resp, err := hc.Get(base + "/webhooks")
		if err != nil {
			return row{}, err
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		times = append(times, time.Since(begin))
		if resp.StatusCode != http.StatusOK {
			return row{}, fmt.Errorf("list: HTTP %d", resp.StatusCode)
		}
		if rows := strings.Count(string(body), "<tr data-webhook="); rows != n {
			return row{}, fmt.Errorf("list: %d rows, want %d", rows, n)
		}
	}
	_, rss, _ := procStats(cmd.Process.Pid)
	// The API server's part: the same list, by the bench's own client, 10 times.
	var direct []time.Duration
	for range 10 {
		begin := time.Now()
		var l hooklinev1.WebhookList
		if err := s.c.List(ctx, &l, client.InNamespace(ns)); err != nil {
			return row{}, err
		}
		direct = append(direct, time.Since(begin))
	}
	slices.Sort(times)
	slices.Sort(direct)
	median := times[len(times)/2]
	return row{p50: median, p99: times[len(times)-1], peakRSS: rss,
		note: fmt.Sprintf("bin/console, one tenant listing %d webhooks 10 times: p50 is the median page time, p99 the slowest (the API server's list alone: median %v); peak RSS is the console's; goals (issue 12): median < %v %s, RSS < %d MB %s",
			n, direct[len(direct)/2].Round(time.Millisecond), consoleListGoal, metOrMissed(median < consoleListGoal), consoleRSSGoal, metOrMissed(rss < consoleRSSGoal))}, nil
}

func metOrMissed(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

// consoleTenant creates a tenant's namespace, a ServiceAccount with the rights of a webhook
// administrator there, and a token for it.
func consoleTenant(ctx context.Context, s *stack) (token, ns string, err error) {
	n := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "console-", Labels: map[string]string{tenancy.AccountLabel: "acc-console"}}}
	if err := s.c.Create(ctx, n); err != nil {
		return "", "", err
	}
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: n.Name, Name: "webhook-admin"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{hooklinev1.GroupVersion.Group}, Resources: []string{"webhooks"}, Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"}},
		{APIGroups: []string{hooklinev1.GroupVersion.Group}, Resources: []string{"webhooks/deliveries"}, Verbs: []string{"get"}},
		{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"get", "list", "watch"}},
	}}
	binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: n.Name, Name: "webhook-admin"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "webhook-admin"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: n.Name, Name: "admin"}}}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: n.Name, Name: "admin"}}
	if err := errors.Join(s.c.Create(ctx, sa), s.c.Create(ctx, role), s.c.Create(ctx, binding)); err != nil {
		return "", "", err
	}
	cs, err := kubernetes.NewForConfig(s.cp.Config)
	if err != nil {
		return "", "", err
	}
	tr, err := cs.CoreV1().ServiceAccounts(n.Name).CreateToken(ctx, "admin", &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		return "", "", err
	}
	return tr.Status.Token, n.Name, nil
}

// consoleSignIn signs in as a browser would, without one: the sign-in page's nonce cookie and
// field, then the token; it returns a client holding the session cookie.
func consoleSignIn(base, token string) (*http.Client, error) {
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	resp, err := hc.Get(base + "/signin")
	if err != nil {
		return nil, err
	}
	page, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	m := regexp.MustCompile(`name="nonce" value="([^"]+)"`).FindSubmatch(page)
	if m == nil {
		return nil, errors.New("console: no nonce on the sign-in page")
	}
	resp, err = hc.PostForm(base+"/signin", url.Values{"nonce": {string(m[1])}, "token": {token}})
	if err != nil {
		return nil, err
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/webhooks" {
		return nil, fmt.Errorf("console sign-in: HTTP %d at %s", resp.StatusCode, resp.Request.URL.Path)
	}
	return hc, nil
}
