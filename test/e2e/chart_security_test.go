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

package e2e

import (
	"context"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	appsv1 "k8s.io/api/apps/v1"
)

// networkPolicies renders values and returns the manager's and the dispatcher's NetworkPolicy.
func networkPolicies(t *testing.T, values string) (manager, dispatcher *networkingv1.NetworkPolicy) {
	t.Helper()
	objs := mustRender(t, values)
	return typed[networkingv1.NetworkPolicy](t, objs, "NetworkPolicy", "hookline-manager"),
		typed[networkingv1.NetworkPolicy](t, objs, "NetworkPolicy", "hookline-dispatcher")
}

// ingressPorts returns, per port name or number, the peers a policy admits on it.
func ingressPorts(np *networkingv1.NetworkPolicy) map[string][]networkingv1.NetworkPolicyPeer {
	out := map[string][]networkingv1.NetworkPolicyPeer{}
	for _, r := range np.Spec.Ingress {
		for _, p := range r.Ports {
			out[p.Port.String()] = append(out[p.Port.String()], r.From...)
		}
	}
	return out
}

// egressTo returns the egress rules of np that allow port (0: rules without ports, any port).
func egressTo(np *networkingv1.NetworkPolicy, port int) []networkingv1.NetworkPolicyEgressRule {
	var out []networkingv1.NetworkPolicyEgressRule
	for _, r := range np.Spec.Egress {
		if port == 0 && len(r.Ports) == 0 {
			out = append(out, r)
		}
		for _, p := range r.Ports {
			if port != 0 && p.Port.IntValue() == port {
				out = append(out, r)
				break
			}
		}
	}
	return out
}

// The chart's NetworkPolicies are optional; enabled, they admit ingest and metrics only from the
// configured peers and allow egress to DNS, the API server, NATS (external), SMTP and receivers
// (anywhere by default, which the values document). The API server accepts them.
func TestChartNetworkPolicies(t *testing.T) {
	g := NewWithT(t)
	g.Expect(find(mustRender(t, inlineTokens), "NetworkPolicy", "hookline-dispatcher")).To(BeNil(), "off by default")

	mgr, disp := networkPolicies(t, inlineTokens+"networkPolicy: {enabled: true}\n")
	for _, np := range []*networkingv1.NetworkPolicy{mgr, disp} {
		g.Expect(np.Spec.PolicyTypes).To(ConsistOf(networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress))
		g.Expect(egressTo(np, 53)).To(HaveLen(1), "DNS")
		g.Expect(egressTo(np, 6443)).To(HaveLen(1), "API server")
		receivers := egressTo(np, 0)
		g.Expect(receivers).To(HaveLen(1), "receivers")
		g.Expect(receivers[0].To).To(ConsistOf(
			HaveField("IPBlock.CIDR", "0.0.0.0/0"), HaveField("IPBlock.CIDR", "::/0")), "receivers are anywhere")
		g.Expect(ingressPorts(np)).NotTo(HaveKey("metrics"), "metrics are closed without peers")
	}
	g.Expect(mgr.Spec.Ingress).To(BeEmpty())
	g.Expect(ingressPorts(disp)).To(HaveKeyWithValue("ingest", ConsistOf(HaveField("NamespaceSelector.MatchLabels", BeEmpty()))))
	g.Expect(egressTo(disp, 4222)).To(BeEmpty(), "no NATS rule for the embedded JetStream")
	g.Expect(egressTo(disp, 587)).To(BeEmpty(), "no SMTP rule without smtp.address")
	g.Expect(mgr.Spec.PodSelector.MatchLabels).To(HaveKeyWithValue("app.kubernetes.io/component", "manager"))
	g.Expect(disp.Spec.PodSelector.MatchLabels).To(HaveKeyWithValue("app.kubernetes.io/component", "dispatcher"))

	values := externalNATS + `
smtp: {address: "smtp.example.com:2525", from: "hookline@example.com"}
networkPolicy:
  enabled: true
  ingest:
    from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: producers}}}]
  metrics:
    from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}}]
  egress:
    receivers:
      to: [{ipBlock: {cidr: 203.0.113.0/24}}]
`
	mgr, disp = networkPolicies(t, values)
	monitoring := ConsistOf(HaveField("NamespaceSelector.MatchLabels", HaveKeyWithValue("kubernetes.io/metadata.name", "monitoring")))
	g.Expect(ingressPorts(mgr)).To(HaveKeyWithValue("metrics", monitoring))
	g.Expect(ingressPorts(disp)).To(HaveKeyWithValue("metrics", monitoring))
	g.Expect(ingressPorts(disp)).To(HaveKeyWithValue("ingest",
		ConsistOf(HaveField("NamespaceSelector.MatchLabels", HaveKeyWithValue("kubernetes.io/metadata.name", "producers")))))
	g.Expect(egressTo(disp, 4222)).To(HaveLen(1), "external NATS")
	g.Expect(egressTo(disp, 2525)).To(HaveLen(1), "the SMTP server's port")
	g.Expect(egressTo(disp, 0)[0].To).To(ConsistOf(HaveField("IPBlock.CIDR", "203.0.113.0/24")))

	// The API server validates them (server-side dry run, in a namespace of this test's: the
	// release namespace is created by the install test with its Pod Security labels).
	createNamespace(t, "networkpolicy-dry-run", nil)
	for _, np := range []*networkingv1.NetworkPolicy{mgr, disp} {
		np.Namespace = "networkpolicy-dry-run"
		g.Expect(k8s.Create(context.Background(), np, client.DryRunAll)).To(Succeed(), np.Name)
	}
}

// config/ (kustomize) serves the dispatcher's metrics like the chart: over HTTPS behind
// authentication and authorization, with the TokenReview/SubjectAccessReview rights that needs.
func TestKustomizeServesSecureDispatcherMetrics(t *testing.T) {
	g := NewWithT(t)
	out, err := kubectl(t, "kustomize", "config/default")
	g.Expect(err).NotTo(HaveOccurred(), out)
	objs, err := decode([]byte(out))
	g.Expect(err).NotTo(HaveOccurred())
	sts := typed[appsv1.StatefulSet](t, objs, "StatefulSet", "hookline-dispatcher")
	g.Expect(container(t, sts.Spec.Template.Spec, "dispatcher").Args).To(ContainElement("--metrics-secure"))
	dep := typed[appsv1.Deployment](t, objs, "Deployment", "hookline-manager")
	g.Expect(container(t, dep.Spec.Template.Spec, "manager").Args).To(ContainElement("--metrics-secure"))

	chart := mustRender(t, inlineTokens)
	want := typed[rbacv1.ClusterRole](t, chart, "ClusterRole", "hookline-dispatcher-metrics-auth").Rules
	g.Expect(typed[rbacv1.ClusterRole](t, objs, "ClusterRole", "hookline-dispatcher-metrics-auth").Rules).To(Equal(want))
	crb := typed[rbacv1.ClusterRoleBinding](t, objs, "ClusterRoleBinding", "hookline-dispatcher-metrics-auth")
	g.Expect(crb.RoleRef.Name).To(Equal("hookline-dispatcher-metrics-auth"))
	g.Expect(crb.Subjects).To(ConsistOf(rbacv1.Subject{Kind: "ServiceAccount", Name: "hookline-dispatcher", Namespace: namespace}))
}

// The chart's switches of the SSRF guard's allow-list mode, the problem e-mail allow-list and the
// embedded NATS listener reach both components' flags, and the unsafe combinations are refused.
func TestChartEgressModeProblemDomainsAndNATSListener(t *testing.T) {
	g := NewWithT(t)
	objs := mustRender(t, inlineTokens+`
ssrf: {mode: allowlist, allowedCIDRs: ["10.96.45.12/32"]}
smtp: {address: "smtp.example.com:587", from: "hookline@example.com"}
problemEmails: {allowedDomains: {"*": [ops.example.com], acc-1: [example.com, example.org]}}
nats: {listen: {address: "127.0.0.1:4222", tokenSecret: nats-listen}}
`)
	sts := typed[appsv1.StatefulSet](t, objs, "StatefulSet", "hookline-dispatcher")
	d := container(t, sts.Spec.Template.Spec, "dispatcher")
	g.Expect(d.Args).To(ContainElements("--egress-mode=allowlist",
		"--problem-email-allowed-domains=*=ops.example.com", "--problem-email-allowed-domains=acc-1=example.com,example.org",
		"--nats-listen-address=127.0.0.1:4222", "--nats-listen-token-file=/etc/hookline/nats-listen/token"))
	g.Expect(sts.Spec.Template.Spec.Volumes).To(ContainElement(HaveField("Secret.SecretName", "nats-listen")))
	m := typed[appsv1.Deployment](t, objs, "Deployment", "hookline-manager")
	g.Expect(container(t, m.Spec.Template.Spec, "manager").Args).To(ContainElement("--egress-mode=allowlist"))

	for values, msg := range map[string]string{
		"ssrf: {mode: allowlist}\n":                             "ssrf.mode allowlist needs ssrf.allowedCIDRs",
		"nats: {listen: {address: \"127.0.0.1:4222\"}}\n":       "nats.listen.address needs nats.listen.tokenSecret",
		"ssrf: {mode: open}\n":                                  "mode",
		"problemEmails: {allowedDomains: {acc-1: [\"a b\"]}}\n": "allowedDomains",
	} {
		_, out, err := render(t, inlineTokens+values)
		g.Expect(err).To(HaveOccurred(), values)
		g.Expect(out).To(ContainSubstring(msg), values)
	}
	g.Expect(strings.Join(container(t, typed[appsv1.StatefulSet](t, mustRender(t, inlineTokens), "StatefulSet", "hookline-dispatcher").Spec.Template.Spec, "dispatcher").Args, " ")).
		NotTo(ContainSubstring("--egress-mode"), "public is the default and needs no flag")
}
