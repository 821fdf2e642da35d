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
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/hookline/hookline/internal/tenancy"
	"github.com/hookline/hookline/internal/testcerts"
)

// The tenants of these tests, impersonated with kubectl --as.
const (
	tenantUser    = "tenant-alice"      // "*" on "*" in its own namespace
	platformUser  = "platform-bob"      // may patch every namespace (a ClusterRole), in adminGroup
	adminGroup    = "platform-admins"   // the configured binding administrators
	provisioner   = "ns-provisioner"    // may create namespaces (a self-service tool)
	webhookDev    = "webhook-dev"       // may manage Webhooks, may not read Secrets
	secretDev     = "secret-dev"        // may manage Webhooks and get the Secret client-tls
	statusWriter  = "status-writer"     // may patch webhooks/status only (as the dispatcher does)
	bindingPolicy = "namespace-binding" // name suffix of the policy
	// argoCD is a binding administrator named as a user: a GitOps controller that binds namespaces.
	argoCD = "system:serviceaccount:argocd:argocd-application-controller"
)

// kubectlAs runs kubectl as user (in groups) through impersonation.
func kubectlAs(t *testing.T, user string, groups []string, args ...string) (string, error) {
	t.Helper()
	args = append(args, "--as", user)
	for _, g := range groups {
		args = append(args, "--as-group", g)
	}
	return kubectl(t, args...)
}

// writeManifest writes yaml to a temporary file for kubectl -f.
func writeManifest(t *testing.T, yaml string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "manifest.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// installConfigPolicies applies config/policies as `kubectl apply -k config/default` does, and
// removes them when the test ends.
func installConfigPolicies(t *testing.T) {
	t.Helper()
	out, err := kubectl(t, "apply", "-k", "config/policies")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	t.Cleanup(func() { _, _ = kubectl(t, "delete", "-k", "config/policies", "--ignore-not-found") })
}

// withoutPolicies waits until no hookline ValidatingAdmissionPolicy is in force (a release of an
// earlier test may just have been uninstalled, and the API server unloads its policies a moment
// later), so that the test can show the attack without one: probe, a dry run of the attack, must
// be admitted.
func withoutPolicies(t *testing.T, probe func() (string, error)) {
	t.Helper()
	NewWithT(t).Eventually(func(g Gomega) {
		list := &admissionregistrationv1.ValidatingAdmissionPolicyList{}
		g.Expect(k8s.List(context.Background(), list)).To(Succeed())
		for _, p := range list.Items {
			g.Expect(p.Name).NotTo(ContainSubstring("hookline"), "an earlier test left a policy")
		}
		out, err := probe()
		g.Expect(err).NotTo(HaveOccurred(), out)
	}).WithTimeout(30 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())
}

// create creates obj as the administrator and deletes it when the test ends.
func create(t *testing.T, obj client.Object) {
	t.Helper()
	if err := k8s.Create(context.Background(), obj); err != nil {
		t.Fatalf("creating %T %s: %v", obj, obj.GetName(), err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), obj) })
}

// boundNamespace creates a namespace bound to account, with a Role that grants user "*" on "*" in
// it: everything a namespace admin gets, and what the attacker had.
func boundNamespace(t *testing.T, prefix, account, user string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix,
		Labels: map[string]string{tenancy.AccountLabel: account}}}
	create(t, ns)
	create(t, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "namespace-admin", Namespace: ns.Name},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: []string{"*"}}}})
	create(t, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "namespace-admin", Namespace: ns.Name},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "namespace-admin"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, Name: user}}})
	return ns.Name
}

func namespaceLabels(t *testing.T, name string) map[string]string {
	t.Helper()
	ns := &corev1.Namespace{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Name: name}, ns); err != nil {
		t.Fatal(err)
	}
	return ns.Labels
}

// TestNamespaceBindingPolicy performs the attack: a tenant with "*" on "*" in its own
// namespace relabels that namespace to another account. It succeeds without the policy (and
// `kubectl auth can-i` even says no), and is refused, with a message naming the label and who may
// change it, once config/policies is installed. Administrators still relabel and namespaces are
// still deleted.
func TestNamespaceBindingPolicy(t *testing.T) {
	g := NewWithT(t)
	ns := boundNamespace(t, "bind-", "acc-a", tenantUser)
	withoutPolicies(t, func() (string, error) {
		return kubectlAs(t, tenantUser, nil, "label", "ns", ns, tenancy.AccountLabel+"=acc-b", "--overwrite", "--dry-run=server")
	})

	// The hole: RBAC authorizes a request for namespace "ns" within "ns", so the tenant's Role
	// covers the namespace object itself, while can-i (asked cluster-wide) answers no.
	g.Expect(canI(t, tenantUser, "patch", "namespace/"+ns)).To(BeFalse())
	out, err := kubectlAs(t, tenantUser, nil, "label", "ns", ns, tenancy.AccountLabel+"=acc-b", "--overwrite")
	g.Expect(err).NotTo(HaveOccurred(), "without the policy the tenant rebinds its namespace: %s", out)
	g.Expect(namespaceLabels(t, ns)).To(HaveKeyWithValue(tenancy.AccountLabel, "acc-b"))
	out, err = kubectl(t, "label", "ns", ns, tenancy.AccountLabel+"=acc-a", "--overwrite")
	g.Expect(err).NotTo(HaveOccurred(), out)

	installConfigPolicies(t)
	checkBindingGuarded(t, "hookline-"+bindingPolicy, ns, func() {
		// Binding administrators are configured by replacing the adminGroups and adminUsers variables
		// (a kustomize patch in config/, admissionPolicies.bindingAdmins in the chart).
		out, err := kubectl(t, "patch", "validatingadmissionpolicy", "hookline-"+bindingPolicy, "--type=json", "-p",
			`[{"op":"replace","path":"/spec/variables/0/expression","value":"[\"system:masters\",\"`+adminGroup+`\"]"},`+
				`{"op":"replace","path":"/spec/variables/1/expression","value":"[\"`+argoCD+`\"]"}]`)
		g.Expect(err).NotTo(HaveOccurred(), out)
	})

	t.Run("the namespace controller still deletes a bound namespace", func(t *testing.T) {
		g := NewWithT(t)
		ctx := context.Background()
		out, err := kubectlAs(t, tenantUser, nil, "delete", "ns", ns, "--wait=false")
		g.Expect(err).NotTo(HaveOccurred(), "deleting is not a label change: %s", out)
		// No kube-controller-manager runs here: finalize as the namespace controller would, with
		// its own identity and RBAC (the API server's bootstrap policy).
		cfg := rest.CopyConfig(env.Config)
		cfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:kube-system:namespace-controller"}
		cs, err := kubernetes.NewForConfig(cfg)
		g.Expect(err).NotTo(HaveOccurred())
		obj, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(obj.DeletionTimestamp).NotTo(BeNil())
		obj.Spec.Finalizers = nil
		_, err = cs.CoreV1().Namespaces().Finalize(ctx, obj, metav1.UpdateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Eventually(func() bool {
			return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKey{Name: ns}, &corev1.Namespace{}))
		}).WithTimeout(10 * time.Second).Should(BeTrue())
	})
}

// checkBindingGuarded runs the attacks against the installed policy named policy. allowAdminGroup
// makes adminGroup and the user argoCD binding administrators (nil when they already are).
func checkBindingGuarded(t *testing.T, policy, ns string, allowAdminGroup func()) {
	t.Helper()
	g := NewWithT(t)
	labeller := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{GenerateName: "namespace-labeller-"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get", "patch", "create"}}}}
	create(t, labeller)
	create(t, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{GenerateName: "namespace-labeller-"},
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: labeller.Name},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.GroupKind, Name: adminGroup}, {Kind: rbacv1.UserKind, Name: provisioner},
			{Kind: rbacv1.UserKind, Name: "outsider"}}})

	refused := func(g Gomega, out string, err error, labels string) {
		g.Expect(err).To(HaveOccurred(), out)
		g.Expect(out).To(ContainSubstring("ValidatingAdmissionPolicy '%s'", policy))
		g.Expect(out).To(ContainSubstring("%s: the hookline.io/ labels of namespace %s bind it to an account; only the binding administrators may set, change or remove them (groups: system:masters",
			labels, ns))
	}
	// The policy takes effect once the API server has loaded it.
	g.Eventually(func(g Gomega) {
		out, err := kubectlAs(t, tenantUser, nil, "label", "ns", ns, tenancy.AccountLabel+"=acc-b", "--overwrite", "--dry-run=server")
		refused(g, out, err, tenancy.AccountLabel)
	}).WithTimeout(30 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())

	t.Run("the tenant may not set, change or remove a binding label", func(t *testing.T) {
		g := NewWithT(t)
		for _, c := range []struct {
			args   []string
			labels string
		}{
			{[]string{tenancy.AccountLabel + "=acc-b", "--overwrite"}, tenancy.AccountLabel},
			{[]string{tenancy.AccountLabel + "-"}, tenancy.AccountLabel},
			{[]string{tenancy.GroupLabel + "=grp-of-b"}, tenancy.GroupLabel},
			{[]string{"hookline.io/anything-else=x"}, "hookline.io/anything-else"},
			{[]string{"team=blue", tenancy.GroupLabel + "=grp-of-b"}, tenancy.GroupLabel},
		} {
			out, err := kubectlAs(t, tenantUser, nil, append([]string{"label", "ns", ns}, c.args...)...)
			refused(g, out, err, c.labels)
		}
		// Two binding labels at once are both named.
		out, err := kubectlAs(t, tenantUser, nil, "label", "ns", ns, tenancy.AccountLabel+"=acc-b", tenancy.GroupLabel+"=g", "--overwrite")
		g.Expect(err).To(HaveOccurred(), out)
		g.Expect(out).To(Or(ContainSubstring(tenancy.AccountLabel+", "+tenancy.GroupLabel+": the hookline.io/ labels"),
			ContainSubstring(tenancy.GroupLabel+", "+tenancy.AccountLabel+": the hookline.io/ labels")))
		// A user who is not an administrator, with a ClusterRole to patch namespaces, neither.
		out, err = kubectlAs(t, "outsider", nil, "label", "ns", ns, tenancy.AccountLabel+"=acc-b", "--overwrite")
		refused(g, out, err, tenancy.AccountLabel)
		// Nor through the namespace's status or finalize subresource: RBAC authorizes both within
		// the namespace as it does the namespace itself, and the API server keeps the labels a
		// write to either carries (a policy that matched "namespaces" alone let both through).
		out, err = kubectlAs(t, tenantUser, nil, "patch", "ns", ns, "--subresource=status", "--type=merge",
			"-p", `{"metadata":{"labels":{"`+tenancy.AccountLabel+`":"acc-b"}}}`)
		refused(g, out, err, tenancy.AccountLabel)
		cfg := rest.CopyConfig(env.Config)
		cfg.Impersonate = rest.ImpersonationConfig{UserName: tenantUser}
		cs, err := kubernetes.NewForConfig(cfg)
		g.Expect(err).NotTo(HaveOccurred())
		obj, err := cs.CoreV1().Namespaces().Get(context.Background(), ns, metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		obj.Labels[tenancy.AccountLabel] = "acc-b"
		_, err = cs.CoreV1().Namespaces().Finalize(context.Background(), obj, metav1.UpdateOptions{})
		g.Expect(err).To(HaveOccurred(), "finalize relabelled the namespace")
		refused(g, err.Error(), err, tenancy.AccountLabel)
		g.Expect(namespaceLabels(t, ns)).To(HaveKeyWithValue(tenancy.AccountLabel, "acc-a"))
		g.Expect(namespaceLabels(t, ns)).NotTo(HaveKey(tenancy.GroupLabel))
	})

	t.Run("the tenant may change other labels", func(t *testing.T) {
		g := NewWithT(t)
		out, err := kubectlAs(t, tenantUser, nil, "label", "ns", ns, "team=blue", "--overwrite")
		g.Expect(err).NotTo(HaveOccurred(), out)
		out, err = kubectlAs(t, tenantUser, nil, "annotate", "ns", ns, "owner=alice", "--overwrite")
		g.Expect(err).NotTo(HaveOccurred(), out)
		g.Expect(namespaceLabels(t, ns)).To(And(HaveKeyWithValue("team", "blue"), HaveKeyWithValue(tenancy.AccountLabel, "acc-a")))
	})

	t.Run("a self-service tool may not create a bound namespace", func(t *testing.T) {
		g := NewWithT(t)
		name := ns + "-sibling"
		out, err := kubectlAs(t, provisioner, nil, "create", "-f", writeManifest(t, fmt.Sprintf(
			"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n  labels: {%s: acc-b}\n", name, tenancy.AccountLabel)))
		g.Expect(err).To(HaveOccurred(), out)
		g.Expect(out).To(ContainSubstring("%s: the hookline.io/ labels of namespace %s bind it", tenancy.AccountLabel, name))
		out, err = kubectlAs(t, provisioner, nil, "create", "ns", name, "--dry-run=server")
		g.Expect(err).NotTo(HaveOccurred(), "an unbound namespace is fine: %s", out)
	})

	t.Run("binding administrators may rebind", func(t *testing.T) {
		g := NewWithT(t)
		out, err := kubectl(t, "label", "ns", ns, tenancy.AccountLabel+"=acc-c", "--overwrite")
		g.Expect(err).NotTo(HaveOccurred(), "system:masters always may: %s", out)
		if allowAdminGroup != nil {
			out, err = kubectlAs(t, platformUser, []string{adminGroup}, "label", "ns", ns, tenancy.GroupLabel+"=grp-1")
			refused(g, out, err, tenancy.GroupLabel)
			allowAdminGroup()
		}
		g.Eventually(func(g Gomega) {
			out, err := kubectlAs(t, platformUser, []string{adminGroup}, "label", "ns", ns, tenancy.GroupLabel+"=grp-1", "--dry-run=server")
			g.Expect(err).NotTo(HaveOccurred(), out)
		}).WithTimeout(30 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())
		out, err = kubectlAs(t, platformUser, []string{adminGroup}, "label", "ns", ns, tenancy.GroupLabel+"=grp-1", tenancy.AccountLabel+"=acc-a", "--overwrite")
		g.Expect(err).NotTo(HaveOccurred(), out)
		g.Expect(namespaceLabels(t, ns)).To(And(HaveKeyWithValue(tenancy.AccountLabel, "acc-a"), HaveKeyWithValue(tenancy.GroupLabel, "grp-1")))
		out, err = kubectlAs(t, platformUser, []string{adminGroup}, "label", "ns", ns, tenancy.GroupLabel+"-")
		g.Expect(err).NotTo(HaveOccurred(), out)
	})

	t.Run("the administrators named as users may rebind", func(t *testing.T) {
		g := NewWithT(t)
		argo := argoCD
		create(t, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "argocd", Namespace: ns},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "namespace-admin"},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, Name: argo}}})
		out, err := kubectlAs(t, argo, nil, "label", "ns", ns, tenancy.GroupLabel+"=grp-2")
		g.Expect(err).NotTo(HaveOccurred(), out)
		out, err = kubectlAs(t, tenantUser, nil, "label", "ns", ns, tenancy.GroupLabel+"-")
		g.Expect(err).To(HaveOccurred(), out)
		g.Expect(out).To(ContainSubstring("(groups: system:masters, %s; users: %s)", adminGroup, argo))
		out, err = kubectlAs(t, argo, nil, "label", "ns", ns, tenancy.GroupLabel+"-")
		g.Expect(err).NotTo(HaveOccurred(), out)
	})
}

// webhookManifest is a Webhook named name in ns with extra spec lines.
func webhookManifest(ns, name, extra string) string {
	return fmt.Sprintf(`apiVersion: hookline.io/v1alpha1
kind: Webhook
metadata:
  name: %s
  namespace: %s
spec:
  url: https://receiver.example.com/%s
  scope: ACCOUNT
  events: [AGREEMENT_ALL]
%s`, name, ns, name, extra)
}

// TestWebhookSecretReferencePolicy performs the confused-deputy attack of the issue: a user who may
// manage Webhooks but not read Secrets names the namespace's kubernetes.io/tls Secret as its
// client certificate, which hookline would then present to the user's endpoint. It is accepted
// without the policy and refused, naming the field, once config/policies is installed.
func TestWebhookSecretReferencePolicy(t *testing.T) {
	g := NewWithT(t)
	ns := secretsNamespace(t)
	g.Expect(canI(t, webhookDev, "get", "secret/client-tls", "-n", ns)).To(BeFalse())

	// The hole: without the policy, nothing stops the reference.
	borrowed := writeManifest(t, webhookManifest(ns, "borrowed", "  clientCertificateSecretRef: {name: client-tls}\n"))
	withoutPolicies(t, func() (string, error) {
		return kubectlAs(t, webhookDev, nil, "create", "--dry-run=server", "-f", borrowed)
	})
	out, err := kubectlAs(t, webhookDev, nil, "create", "-f", borrowed)
	g.Expect(err).NotTo(HaveOccurred(), "without the policy the reference is accepted: %s", out)
	out, err = kubectl(t, "delete", "webhook", "borrowed", "-n", ns)
	g.Expect(err).NotTo(HaveOccurred(), out)

	installConfigPolicies(t)
	checkSecretReferencesGuarded(t, "hookline-webhook-secret-access", ns)
}

// secretsNamespace creates a bound namespace with two kubernetes.io/tls Secrets (client-tls,
// other-tls) and the users webhookDev, secretDev (get on client-tls only) and statusWriter.
func secretsNamespace(t *testing.T) string {
	t.Helper()
	ns := boundNamespace(t, "secref-", "acc-a", "unused")
	ca, err := testcerts.NewCA("secref")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Client("secref-client")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"client-tls", "other-tls"} {
		create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{corev1.TLSCertKey: leaf.CertPEM, corev1.TLSPrivateKeyKey: leaf.KeyPEM}})
	}
	webhookRights := rbacv1.PolicyRule{APIGroups: []string{"hookline.io"}, Resources: []string{"webhooks"}, Verbs: []string{"*"}}
	for user, rules := range map[string][]rbacv1.PolicyRule{
		webhookDev: {webhookRights},
		secretDev: {webhookRights, {APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"},
			ResourceNames: []string{"client-tls"}}},
		statusWriter: {{APIGroups: []string{"hookline.io"}, Resources: []string{"webhooks/status"}, Verbs: []string{"get", "patch"}}},
	} {
		create(t, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: user, Namespace: ns}, Rules: rules})
		create(t, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: user, Namespace: ns},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: user},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, Name: user}}})
	}
	return ns
}

// checkSecretReferencesGuarded runs the confused-deputy attacks against the installed policy.
func checkSecretReferencesGuarded(t *testing.T, policy, ns string) {
	t.Helper()
	g := NewWithT(t)
	withCert := "  clientCertificateSecretRef: {name: client-tls}\n"
	certMsg := fmt.Sprintf("spec.clientCertificateSecretRef: you may not get Secret %s/client-tls, so you may not make hookline present it", ns)
	signMsg := fmt.Sprintf("spec.signing.secretRef: you may not get Secret %s/client-tls, so you may not make hookline sign with it", ns)
	refused := func(g Gomega, out string, err error, msg string) {
		g.Expect(err).To(HaveOccurred(), out)
		g.Expect(out).To(ContainSubstring("ValidatingAdmissionPolicy '%s'", policy))
		g.Expect(out).To(ContainSubstring(msg))
	}
	g.Eventually(func(g Gomega) {
		out, err := kubectlAs(t, webhookDev, nil, "create", "--dry-run=server", "-f", writeManifest(t, webhookManifest(ns, "borrowed", withCert)))
		refused(g, out, err, certMsg)
	}).WithTimeout(30 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())

	t.Run("a user who may not get the Secret may not reference it", func(t *testing.T) {
		g := NewWithT(t)
		out, err := kubectlAs(t, webhookDev, nil, "create", "-f", writeManifest(t, webhookManifest(ns, "borrowed", withCert)))
		refused(g, out, err, certMsg)
		out, err = kubectlAs(t, webhookDev, nil, "create", "-f", writeManifest(t, webhookManifest(ns, "borrowed", "  signing: {secretRef: {name: client-tls}}\n")))
		refused(g, out, err, signMsg)
		// Nor by applying it server-side (GitOps tools do).
		out, err = kubectlAs(t, webhookDev, nil, "apply", "--server-side", "-f", writeManifest(t, webhookManifest(ns, "borrowed", withCert)))
		refused(g, out, err, certMsg)
		err = k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "borrowed"}, &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "hookline.io/v1alpha1", "kind": "Webhook"}})
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "%v", err)
	})

	t.Run("a user who may get the Secret may reference it", func(t *testing.T) {
		g := NewWithT(t)
		out, err := kubectlAs(t, secretDev, nil, "create", "-f", writeManifest(t, webhookManifest(ns, "owned", withCert)))
		g.Expect(err).NotTo(HaveOccurred(), out)
		// Only that Secret: get on client-tls does not cover other-tls.
		out, err = kubectlAs(t, secretDev, nil, "create", "-f", writeManifest(t, webhookManifest(ns, "owned-2", "  signing: {secretRef: {name: other-tls}}\n")))
		refused(g, out, err, fmt.Sprintf("spec.signing.secretRef: you may not get Secret %s/other-tls", ns))
	})

	t.Run("moving the url of a Webhook that uses a Secret is checked like setting the reference", func(t *testing.T) {
		g := NewWithT(t)
		moved := `{"spec":{"url":"https://receiver.example.com/moved"}}`
		out, err := kubectlAs(t, webhookDev, nil, "patch", "webhook", "owned", "-n", ns, "--type=merge", "-p", moved)
		refused(g, out, err, fmt.Sprintf("spec.url: this Webhook presents Secret %s/client-tls (spec.clientCertificateSecretRef), which you may not get", ns))
		out, err = kubectlAs(t, secretDev, nil, "patch", "webhook", "owned", "-n", ns, "--type=merge", "-p", moved)
		g.Expect(err).NotTo(HaveOccurred(), "who may get the Secret moves it: %s", out)
		out, err = kubectlAs(t, secretDev, nil, "patch", "webhook", "owned", "-n", ns, "--type=merge",
			"-p", `{"spec":{"url":"https://receiver.example.com/owned"}}`)
		g.Expect(err).NotTo(HaveOccurred(), "and back: %s", out)
	})

	t.Run("updates that keep the references and the url are not refused", func(t *testing.T) {
		g := NewWithT(t)
		// Someone who may not read the Secret edits the rest of the Webhook, and re-applies it
		// unchanged server-side.
		out, err := kubectlAs(t, webhookDev, nil, "patch", "webhook", "owned", "-n", ns, "--type=merge",
			"-p", `{"spec":{"events":["AGREEMENT_ALL","WIDGET_ALL"]},"metadata":{"labels":{"team":"blue"}}}`)
		g.Expect(err).NotTo(HaveOccurred(), out)
		out, err = kubectlAs(t, webhookDev, nil, "apply", "--server-side", "--force-conflicts", "-f", writeManifest(t, webhookManifest(ns, "owned", withCert)))
		g.Expect(err).NotTo(HaveOccurred(), out)
		// Status writes (the manager's and the dispatcher's) go through the status subresource.
		out, err = kubectlAs(t, statusWriter, nil, "patch", "webhook", "owned", "-n", ns, "--subresource=status", "--type=merge",
			"-p", `{"status":{"pendingNotifications":3}}`)
		g.Expect(err).NotTo(HaveOccurred(), out)
		// Removing a reference never lends anything.
		out, err = kubectlAs(t, webhookDev, nil, "patch", "webhook", "owned", "-n", ns, "--type=json",
			"-p", `[{"op":"remove","path":"/spec/clientCertificateSecretRef"}]`)
		g.Expect(err).NotTo(HaveOccurred(), out)
	})

	t.Run("changing a reference is checked like setting it", func(t *testing.T) {
		g := NewWithT(t)
		out, err := kubectlAs(t, webhookDev, nil, "patch", "webhook", "owned", "-n", ns, "--type=merge",
			"-p", `{"spec":{"clientCertificateSecretRef":{"name":"client-tls"}}}`)
		refused(g, out, err, certMsg)
		out, err = kubectlAs(t, webhookDev, nil, "patch", "webhook", "owned", "-n", ns, "--type=merge",
			"-p", `{"spec":{"signing":{"secretRef":{"name":"client-tls"}}}}`)
		refused(g, out, err, signMsg)
	})
}
