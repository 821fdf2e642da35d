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
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// console.enabled adds the web console: a Deployment whose ServiceAccount is bound to nothing and
// mounts no token (the console passes its users' tokens through), meeting the restricted Pod
// Security Standard, with a NetworkPolicy that lets it reach the API server and DNS only.
func TestChartConsole(t *testing.T) {
	g := NewWithT(t)
	g.Expect(find(mustRender(t, inlineTokens), "Deployment", "hookline-console")).To(BeNil(), "off by default")

	objs := mustRender(t, inlineTokens+"console: {enabled: true, namespaces: [team-a, team-b], trustedProxies: [10.244.0.0/16, 192.0.2.7]}\nnetworkPolicy: {enabled: true}\n")
	dep := typed[appsv1.Deployment](t, objs, "Deployment", "hookline-console")
	pod := dep.Spec.Template.Spec
	g.Expect(pod.ServiceAccountName).To(Equal("hookline-console"))
	g.Expect(pod.AutomountServiceAccountToken).To(HaveValue(BeFalse()))
	sa := typed[corev1.ServiceAccount](t, objs, "ServiceAccount", "hookline-console")
	g.Expect(sa.AutomountServiceAccountToken).To(HaveValue(BeFalse()))
	c := container(t, pod, "console")
	g.Expect(c.Command).To(Equal([]string{"/console"}))
	g.Expect(c.Args).To(ContainElements("--api-ca-file=/var/run/hookline/kube-root-ca/ca.crt", "--behind-tls-proxy", "--namespaces=team-a,team-b",
		"--trusted-proxies=10.244.0.0/16,192.0.2.7"))
	g.Expect(pod.Volumes).To(ContainElement(HaveField("ConfigMap.Name", "kube-root-ca.crt")))
	g.Expect(c.ReadinessProbe.HTTPGet.Scheme).To(Equal(corev1.URISchemeHTTP))
	svc := typed[corev1.Service](t, objs, "Service", "hookline-console")
	g.Expect(svc.Spec.Ports).To(ConsistOf(HaveField("Port", BeEquivalentTo(443))))

	// No rights: nothing in the chart binds the console's ServiceAccount.
	for _, kind := range []string{"RoleBinding", "ClusterRoleBinding"} {
		for _, u := range ofKind(objs, kind) {
			var b rbacv1.RoleBinding
			g.Expect(runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &b)).To(Succeed())
			for _, s := range b.Subjects {
				g.Expect(s.Name).NotTo(Equal("hookline-console"), "%s %s binds the console", kind, b.Name)
			}
		}
	}

	// Only the API server and DNS: no rule for receivers (any port).
	np := typed[networkingv1.NetworkPolicy](t, objs, "NetworkPolicy", "hookline-console")
	g.Expect(np.Spec.PodSelector.MatchLabels).To(HaveKeyWithValue("app.kubernetes.io/component", "console"))
	g.Expect(egressTo(np, 0)).To(BeEmpty())
	g.Expect(egressTo(np, 53)).To(HaveLen(1))
	g.Expect(egressTo(np, 6443)).To(HaveLen(1))
	g.Expect(np.Spec.Egress).To(HaveLen(2))
	g.Expect(ingressPorts(np)).To(HaveKeyWithValue("console", ConsistOf(HaveField("NamespaceSelector.MatchLabels", BeEmpty()))))

	// HTTPS with a certificate Secret.
	objs = mustRender(t, inlineTokens+"console: {enabled: true, tls: {existingSecret: console-tls}}\n")
	dep = typed[appsv1.Deployment](t, objs, "Deployment", "hookline-console")
	c = container(t, dep.Spec.Template.Spec, "console")
	g.Expect(c.Args).To(ContainElements("--tls-cert-file=/var/run/hookline/tls/tls.crt", "--tls-key-file=/var/run/hookline/tls/tls.key"))
	g.Expect(c.Args).NotTo(ContainElement("--behind-tls-proxy"))
	g.Expect(c.ReadinessProbe.HTTPGet.Scheme).To(Equal(corev1.URISchemeHTTPS))
	g.Expect(dep.Spec.Template.Spec.Volumes).To(ContainElement(HaveField("Secret.SecretName", "console-tls")))

	g.Expect(c.Args).NotTo(ContainElement(HavePrefix("--dispatcher-api-url")), "no read API over TLS: no delivery log")

	// The delivery log: with the dispatcher's read API on TLS, the console calls it by the
	// Service's name, trusting only the CA key of the dispatcher's Secret (never its private key),
	// and its NetworkPolicy lets it reach the dispatcher's api port and nothing more.
	objs = mustRender(t, inlineTokens+"console: {enabled: true}\ndispatcher: {tls: {existingSecret: disp-tls}}\nnetworkPolicy: {enabled: true}\n")
	dep = typed[appsv1.Deployment](t, objs, "Deployment", "hookline-console")
	c = container(t, dep.Spec.Template.Spec, "console")
	g.Expect(c.Args).To(ContainElements(HavePrefix("--dispatcher-api-url=https://hookline-dispatcher."), "--dispatcher-api-ca-file=/var/run/hookline/dispatcher-ca/ca.crt"))
	g.Expect(dep.Spec.Template.Spec.Volumes).To(ContainElement(And(HaveField("Secret.SecretName", "disp-tls"),
		HaveField("Secret.Items", ConsistOf(HaveField("Key", "ca.crt"))))))
	np = typed[networkingv1.NetworkPolicy](t, objs, "NetworkPolicy", "hookline-console")
	g.Expect(np.Spec.Egress).To(HaveLen(3))
	g.Expect(egressTo(np, 8444)).To(ConsistOf(HaveField("To", ConsistOf(HaveField("PodSelector.MatchLabels", HaveKeyWithValue("app.kubernetes.io/component", "dispatcher"))))))
	objs = mustRender(t, inlineTokens+"console: {enabled: true, deliveryLog: {enabled: false}}\ndispatcher: {tls: {existingSecret: disp-tls}}\n")
	c = container(t, typed[appsv1.Deployment](t, objs, "Deployment", "hookline-console").Spec.Template.Spec, "console")
	g.Expect(c.Args).NotTo(ContainElement(HavePrefix("--dispatcher-api-url")))
	dep = typed[appsv1.Deployment](t, mustRender(t, inlineTokens+"console: {enabled: true, tls: {existingSecret: console-tls}}\n"), "Deployment", "hookline-console")

	// The API server's Pod Security admission accepts its pod in a restricted namespace, and the
	// NetworkPolicy is valid (server-side dry runs).
	ctx := context.Background()
	createNamespace(t, "console-restricted", map[string]string{"pod-security.kubernetes.io/enforce": "restricted"})
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "console-restricted", Name: "console"}, Spec: dep.Spec.Template.Spec}
	p.Spec.ServiceAccountName = "default"
	g.Expect(k8s.Create(ctx, p, client.DryRunAll)).To(Succeed())
	np.Namespace = "console-restricted"
	g.Expect(k8s.Create(ctx, np, client.DryRunAll)).To(Succeed())
}
