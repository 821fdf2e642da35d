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

package clusterranges_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/hookline/hookline/internal/clusterranges"
	"github.com/hookline/hookline/internal/controlplane"
	"github.com/hookline/hookline/internal/netguard"
	"github.com/hookline/hookline/internal/testlog"
)

// listOnlyUser may list ServiceCIDRs and Nodes and nothing else, like the components'
// ServiceAccounts: discovery must work with that (no get, no watch).
const listOnlyUser = "hookline-test-cluster-ranges"

var (
	env *controlplane.Env
	k8s client.Client
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	if env, err = controlplane.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	if k8s, err = client.New(env.Config, client.Options{Scheme: env.Scheme}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := grantListOnly(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

func grantListOnly(ctx context.Context) error {
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: listOnlyUser},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"servicecidrs"}, Verbs: []string{"list"}},
			{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"list"}},
		},
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: listOnlyUser},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: listOnlyUser},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: listOnlyUser}},
	}
	if err := k8s.Create(ctx, role); err != nil {
		return err
	}
	return k8s.Create(ctx, binding)
}

// configAs returns a rest.Config that acts as user.
func configAs(user string) *rest.Config {
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
	return cfg
}

func newNode(t *testing.T, name string, podCIDRs ...string) *corev1.Node {
	t.Helper()
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.NodeSpec{PodCIDRs: podCIDRs}}
	if len(podCIDRs) > 0 {
		n.Spec.PodCIDR = podCIDRs[0]
	}
	if err := k8s.Create(context.Background(), n); err != nil {
		t.Fatalf("creating Node %s: %v", name, err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), n) })
	return n
}

// refusal returns how guard refuses ip, or "allowed".
func refusal(guard *netguard.Guard, ip string) string {
	var be *netguard.BlockedError
	if err := guard.Check(netip.MustParseAddr(ip)); !errors.As(err, &be) {
		return fmt.Sprintf("allowed (%v)", err)
	}
	return fmt.Sprintf("%s (%s)", be.Reason, be.Range)
}

// TestDiscoveryBlocksTheClusterRanges runs discovery in a manager as a user that may only list,
// against kube-apiserver's own ServiceCIDR (from --service-cluster-ip-range, 10.0.0.0/24 under
// envtest), a second ServiceCIDR and Nodes' podCIDRs.
func TestDiscoveryBlocksTheClusterRanges(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()

	extra := &networkingv1.ServiceCIDR{
		ObjectMeta: metav1.ObjectMeta{Name: "hookline-test-extra"},
		Spec:       networkingv1.ServiceCIDRSpec{CIDRs: []string{"198.51.100.0/24"}},
	}
	g.Expect(k8s.Create(ctx, extra)).To(Succeed())
	t.Cleanup(func() { deleteServiceCIDR(t, extra) })
	newNode(t, "hookline-test-node-a", "203.0.113.0/24", "2001:db8:a::/64")

	mgr, err := ctrl.NewManager(configAs(listOnlyUser), ctrl.Options{
		Scheme:                 env.Scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
	})
	g.Expect(err).NotTo(HaveOccurred())
	// An in-cluster receiver's ClusterIP is allowed: the allow-list wins over the cluster's ranges.
	guard := netguard.New(netguard.Policy{Allowed: []netip.Prefix{netip.MustParsePrefix("198.51.100.10/32")}})
	logs := &testlog.Buffer{}
	g.Expect(clusterranges.Setup(logr.NewContext(ctx, logs.Logger()), mgr, guard, 100*time.Millisecond)).To(Succeed())
	done := make(chan error, 1)
	mgrCtx, stop := context.WithCancel(ctx)
	go func() { done <- mgr.Start(mgrCtx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})

	service, pod := netguard.ReasonClusterService, netguard.ReasonClusterPod
	g.Eventually(func(g Gomega) {
		// The default ServiceCIDR is more specific than the private 10.0.0.0/8, so it names 10.0.0.1.
		g.Expect(refusal(guard, "10.0.0.1")).To(Equal(service + " (10.0.0.0/24)"))
		g.Expect(refusal(guard, "198.51.100.7")).To(Equal(service + " (198.51.100.0/24)"))
		g.Expect(refusal(guard, "203.0.113.9")).To(Equal(pod + " (203.0.113.0/24)"))
		g.Expect(refusal(guard, "2001:db8:a::1")).To(Equal(pod + " (2001:db8:a::/64)"))
	}).WithTimeout(10 * time.Second).WithPolling(50 * time.Millisecond).Should(Succeed())
	g.Expect(refusal(guard, "198.51.100.10")).To(HavePrefix("allowed"), "the allow-list overrides the cluster's ranges")
	g.Expect(refusal(guard, "203.0.114.9")).To(HavePrefix("allowed"), "no Node has 203.0.114.0/24 yet")

	// Connect-time check through the guard's dialer, as verification and delivery dial.
	var be *netguard.BlockedError
	err = guard.Control("tcp4", "203.0.113.9:443", nil)
	g.Expect(errors.As(err, &be)).To(BeTrue(), "Control: %v", err)
	g.Expect(be.Error()).To(Equal("refusing to connect to 203.0.113.9:443: cluster Pod range (203.0.113.0/24)"))

	// The set follows the cluster: a new Node's range is blocked, a deleted Node's released.
	nodeB := newNode(t, "hookline-test-node-b", "203.0.114.0/24")
	g.Eventually(func() string { return refusal(guard, "203.0.114.9") }).
		WithTimeout(10 * time.Second).WithPolling(50 * time.Millisecond).Should(Equal(pod + " (203.0.114.0/24)"))
	g.Expect(k8s.Delete(ctx, nodeB)).To(Succeed())
	g.Eventually(func() string { return refusal(guard, "203.0.114.9") }).
		WithTimeout(10 * time.Second).WithPolling(50 * time.Millisecond).Should(HavePrefix("allowed"))
	g.Expect(refusal(guard, "203.0.113.9")).To(Equal(pod+" (203.0.113.0/24)"), "node-a's range stays")

	g.Expect(logs.String()).To(ContainSubstring("Blocking the cluster's Service and Pod ranges"))
	g.Expect(logs.String()).NotTo(ContainSubstring(`"error"`), "a user with list only must be enough")
}

// TestErrorsKeepTheLastRanges: a failing list is logged once per distinct error, never fatal, and
// the ranges last read stay blocked.
func TestErrorsKeepTheLastRanges(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	newNode(t, "hookline-test-node-c", "192.0.2.0/24")

	listOnly, err := client.New(configAs(listOnlyUser), client.Options{Scheme: env.Scheme})
	g.Expect(err).NotTo(HaveOccurred())
	nobody, err := client.New(configAs("hookline-test-nobody"), client.Options{Scheme: env.Scheme})
	g.Expect(err).NotTo(HaveOccurred())
	logs := &testlog.Buffer{}
	guard := netguard.New(netguard.Policy{})
	d := &clusterranges.Discoverer{Reader: listOnly, Guard: guard, Interval: time.Hour, Log: logs.Logger()}

	g.Eventually(func(g Gomega) {
		g.Expect(d.Refresh(ctx)).To(Succeed())
		g.Expect(refusal(guard, "10.0.0.1")).To(Equal(netguard.ReasonClusterService + " (10.0.0.0/24)"))
	}).WithTimeout(10 * time.Second).WithPolling(50 * time.Millisecond).Should(Succeed())
	g.Expect(refusal(guard, "192.0.2.1")).To(Equal(netguard.ReasonClusterPod + " (192.0.2.0/24)"))
	before := guard.ClusterRanges()

	d.Reader = nobody
	for range 3 {
		err := d.Refresh(ctx)
		g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "Refresh as a user without rights: %v", err)
	}
	g.Expect(guard.ClusterRanges()).To(Equal(before), "the ranges last read stay")
	g.Expect(refusal(guard, "192.0.2.1")).To(Equal(netguard.ReasonClusterPod + " (192.0.2.0/24)"))
	g.Expect(strings.Count(logs.String(), "Not allowed to list")).To(Equal(2), "once per source:\n%s", logs)

	d.Reader = listOnly
	g.Expect(d.Refresh(ctx)).To(Succeed())
	g.Expect(strings.Count(logs.String(), "Listing works again")).To(Equal(2), logs.String())
}

func TestSetupChecksTheInterval(t *testing.T) {
	g := NewWithT(t)
	// No manager is needed for either: nothing is added.
	g.Expect(clusterranges.Setup(t.Context(), nil, netguard.New(netguard.Policy{}), 0)).To(Succeed())
	g.Expect(clusterranges.Setup(t.Context(), nil, netguard.New(netguard.Policy{}), -time.Second)).
		To(MatchError(ContainSubstring("must not be negative")))
	d := &clusterranges.Discoverer{Reader: k8s, Guard: netguard.Default(), Interval: time.Minute, Log: logr.Discard()}
	g.Expect(d.Refresh(t.Context())).To(MatchError(ContainSubstring("netguard.New")), "the shared default guard takes no ranges")
	g.Expect(d.NeedLeaderElection()).To(BeFalse(), "standbys dial too")
}

// deleteServiceCIDR deletes s. Its finalizer is removed by kube-controller-manager, which envtest
// does not run, so the test removes it.
func deleteServiceCIDR(t *testing.T, s *networkingv1.ServiceCIDR) {
	ctx := context.Background()
	if err := k8s.Delete(ctx, s); err != nil && !apierrors.IsNotFound(err) {
		t.Errorf("deleting ServiceCIDR %s: %v", s.Name, err)
		return
	}
	cur := &networkingv1.ServiceCIDR{}
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(s), cur); err != nil {
		return
	}
	cur.Finalizers = nil
	if err := k8s.Update(ctx, cur); err != nil && !apierrors.IsNotFound(err) {
		t.Errorf("removing the finalizers of ServiceCIDR %s: %v", s.Name, err)
	}
}
