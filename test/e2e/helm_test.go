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
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/dispatcher/ingest"
	"github.com/hookline/hookline/internal/attest"
	"github.com/hookline/hookline/internal/controlplane"
	"github.com/hookline/hookline/internal/netguard"
	"github.com/hookline/hookline/internal/tenancy"
	"github.com/hookline/hookline/internal/verify"
)

// The release every test renders or installs: named like the chart, so objects are named like
// config/ (hookline-manager, hookline-dispatcher, ...).
const (
	release   = "hookline"
	namespace = "hookline-system"
	// tenantNS stands for a namespace whose Webhooks the components read (RBAC checks).
	tenantNS = "team-a"
	crdName  = "webhooks.hookline.io"
)

// inlineTokens is the smallest valid ingestTokens: the chart creates <release>-ingest-tokens.
const inlineTokens = `
ingestTokens:
  tokens:
  - name: esign-platform
    token: e2e-token-0123456789abcdef
    accounts: [acc-1, acc-2]
`

// externalNATS runs the dispatcher as a Deployment of 3 on an external NATS cluster.
const externalNATS = inlineTokens + `
nats:
  url: nats://nats.nats.svc:4222
  replicas: 3
dispatcher:
  replicas: 3
`

var (
	env      *controlplane.Env
	k8s      client.Client
	helmBin  string
	chartDir string
	// kubeVersion is the control plane's Kubernetes version (hack/controlplane/versions.env). helm
	// template and lint need it: the helm built by hack/controlplane defaults to v1.20, below the
	// chart's kubeVersion (>=1.30.0-0).
	kubeVersion string
	helmEnv     []string
)

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	ctrl.SetLogger(zap.New(zap.WriteTo(io.Discard)))
	var err error
	env, err = controlplane.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	utilruntime.Must(apiextensionsv1.AddToScheme(env.Scheme))
	if k8s, err = client.New(env.Config, client.Options{Scheme: env.Scheme}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	helmBin = filepath.Join(env.Bin, "helm")
	if _, err := os.Stat(helmBin); err != nil {
		fmt.Fprintf(os.Stderr, "helm not found in %s: run 'make controlplane' (make test does it for you)\n", env.Bin)
		return 1
	}
	chartDir = filepath.Join(env.Root, "charts", "hookline")
	if kubeVersion, err = pinnedKubeVersion(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// Keep helm away from the user's ~/.config/helm, ~/.cache/helm and repositories.
	home, err := os.MkdirTemp("", "hookline-helm-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = os.RemoveAll(home) }()
	helmEnv = append(os.Environ(),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
		"KUBECONFIG="+env.Kubeconfig,
	)
	return m.Run()
}

func pinnedKubeVersion() (string, error) {
	f, err := os.Open(filepath.Join(env.Root, "hack", "controlplane", "versions.env"))
	if err != nil {
		return "", err
	}
	defer func() { _ = f.Close() }()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(strings.TrimSpace(s.Text()), "KUBE_VERSION="); ok {
			return v, nil
		}
	}
	return "", errors.New("KUBE_VERSION not found in hack/controlplane/versions.env")
}

// --- helpers ---------------------------------------------------------------------------------

// run runs a binary of bin/ against the test API server and returns its combined output.
func run(t *testing.T, bin string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(env.Bin, bin), append([]string{"--kubeconfig", env.Kubeconfig}, args...)...)
	cmd.Dir = env.Root
	cmd.Env = helmEnv
	out, err := cmd.CombinedOutput()
	if err != nil {
		// A plain error: gomega would print an *exec.ExitError field by field.
		err = fmt.Errorf("%s %s: %s", bin, args[0], err.Error())
	}
	return string(out), err
}

func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return run(t, "helm", args...)
}

func kubectl(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return run(t, "kubectl", args...)
}

// valuesFile writes values (YAML) to a temporary file for -f. Not in t.TempDir: helm splits -f at
// commas, which test names may contain.
func valuesFile(t *testing.T, values string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "hookline-values-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	p := filepath.Join(dir, "values.yaml")
	if err := os.WriteFile(p, []byte(values), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// render runs helm template with values and extra flags and decodes the objects.
func render(t *testing.T, values string, flags ...string) ([]*unstructured.Unstructured, string, error) {
	t.Helper()
	args := append([]string{"template", release, chartDir, "-n", namespace, "--kube-version", kubeVersion,
		"-f", valuesFile(t, values)}, flags...)
	out, err := helm(t, args...)
	if err != nil {
		return nil, out, err
	}
	objs, err := decode([]byte(out))
	return objs, out, err
}

func mustRender(t *testing.T, values string, flags ...string) []*unstructured.Unstructured {
	t.Helper()
	objs, out, err := render(t, values, flags...)
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, out)
	}
	return objs
}

// decode splits a multi-document YAML stream into objects, skipping empty documents.
func decode(data []byte) ([]*unstructured.Unstructured, error) {
	d := k8syaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var objs []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := d.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return objs, nil
			}
			return nil, err
		}
		if len(m) > 0 {
			objs = append(objs, &unstructured.Unstructured{Object: m})
		}
	}
}

// decodeFile decodes the objects of a file; relative paths are relative to the repository root.
func decodeFile(t *testing.T, path string) []*unstructured.Unstructured {
	t.Helper()
	if !filepath.IsAbs(path) {
		path = filepath.Join(env.Root, path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decode(data)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return objs
}

// find returns the object of kind and name, or nil.
func find(objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	return nil
}

func ofKind(objs []*unstructured.Unstructured, kind string) []*unstructured.Unstructured {
	var r []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind {
			r = append(r, o)
		}
	}
	return r
}

// typed converts a rendered object into a typed one, failing the test when it is missing.
func typed[T any](t *testing.T, objs []*unstructured.Unstructured, kind, name string) *T {
	t.Helper()
	u := find(objs, kind, name)
	if u == nil {
		t.Fatalf("no %s %q rendered", kind, name)
	}
	obj := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, obj); err != nil {
		t.Fatalf("%s %q: %v", kind, name, err)
	}
	return obj
}

func container(t *testing.T, spec corev1.PodSpec, name string) corev1.Container {
	t.Helper()
	for _, c := range spec.Containers {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no container %q", name)
	return corev1.Container{}
}

func volumeNames(spec corev1.PodSpec) []string {
	var names []string
	for _, v := range spec.Volumes {
		names = append(names, v.Name)
	}
	return names
}

func withPrefix(args []string, prefix string) []string {
	var r []string
	for _, a := range args {
		if strings.HasPrefix(a, prefix) {
			r = append(r, a)
		}
	}
	return r
}

// testCAPEM is a real certificate, so that the rendered bundle is checked with the same loader the
// components use.
func testCAPEM(t *testing.T) string {
	t.Helper()
	srv := httptest.NewTLSServer(nil)
	defer srv.Close()
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))
}

// --- helm lint -------------------------------------------------------------------------------

func TestHelmLintStrict(t *testing.T) {
	cases := map[string]string{
		"ci/lint-values.yaml": mustRead(t, filepath.Join(chartDir, "ci", "lint-values.yaml")),
		"external NATS, ServiceMonitors, CA bundle, existing Secret, SSRF ranges": `
nats: {url: "nats://nats.nats.svc:4222", replicas: 3}
dispatcher:
  replicas: 1
  persistence: {storageClass: fast}
  extraArgs: ["--delivery-timeout=10s", "--max-retries=10"]
  tolerations: [{key: dedicated, operator: Exists}]
ingestTokens: {existingSecret: producer-tokens}
serviceMonitor: {enabled: true, interval: 15s, labels: {release: prometheus}}
allowHTTP: true
ssrf: {allowedCIDRs: ["10.96.45.12/32"], blockedCIDRs: ["198.18.0.0/15", "2001:db8::/32"]}
extraCABundle: |
` + indent(testCAPEM(t), "  "),
		"insecure metrics, no leader election, CRDs elsewhere": inlineTokens + `
crds: {enabled: false}
manager: {leaderElect: false, metrics: {secure: false}, nodeSelector: {kubernetes.io/os: linux}}
`,
	}
	for name, values := range cases {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			out, err := helm(t, "lint", "--strict", chartDir, "--kube-version", kubeVersion, "-f", valuesFile(t, values))
			g.Expect(err).NotTo(HaveOccurred(), out)
			g.Expect(out).To(ContainSubstring("1 chart(s) linted, 0 chart(s) failed"))
			g.Expect(out).NotTo(ContainSubstring("[WARNING]"))
			g.Expect(out).NotTo(ContainSubstring("[ERROR]"))
		})
	}

	t.Run("bad values fail the lint", func(t *testing.T) {
		g := NewWithT(t)
		out, err := helm(t, "lint", "--strict", chartDir, "--kube-version", kubeVersion,
			"-f", valuesFile(t, inlineTokens+"allowHTTP: \"yes\"\n"))
		g.Expect(err).To(HaveOccurred())
		g.Expect(out).To(ContainSubstring("at '/allowHTTP': got string, want boolean"))
	})
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = prefix + l
	}
	return strings.Join(lines, "\n") + "\n"
}

// --- helm template ---------------------------------------------------------------------------

func TestHelmTemplateEmbeddedJetStream(t *testing.T) {
	g := NewWithT(t)
	objs := mustRender(t, inlineTokens)

	sts := typed[appsv1.StatefulSet](t, objs, "StatefulSet", "hookline-dispatcher")
	g.Expect(*sts.Spec.Replicas).To(BeEquivalentTo(1))
	g.Expect(sts.Spec.VolumeClaimTemplates).To(HaveLen(1))
	vct := sts.Spec.VolumeClaimTemplates[0]
	g.Expect(vct.Name).To(Equal("data"))
	g.Expect(vct.Spec.Resources.Requests.Storage().String()).To(Equal("10Gi"))
	g.Expect(vct.Spec.StorageClassName).To(BeNil(), "the cluster's default StorageClass")
	g.Expect(sts.Spec.Template.Spec.ServiceAccountName).To(Equal("hookline-dispatcher"))
	d := container(t, sts.Spec.Template.Spec, "dispatcher")
	g.Expect(d.Image).To(Equal("ghcr.io/hookline/hookline:0.1.0"), "image.tag defaults to appVersion")
	g.Expect(d.Command).To(Equal([]string{"/dispatcher"}))
	g.Expect(d.Args).To(ContainElements("--data-dir=/data", "--tokens-file=/etc/hookline/tokens/tokens.yaml",
		"--listen-address=:8090", "--metrics-bind-address=:8091", "--health-probe-bind-address=:8092",
		"--default-client-id=hookline", "--attestation-key-file=/etc/hookline/attestation/key"))
	g.Expect(withPrefix(d.Args, "--nats-")).To(BeEmpty())
	g.Expect(withPrefix(d.Args, "--allow-http")).To(BeEmpty())
	g.Expect(d.VolumeMounts).To(ContainElement(corev1.VolumeMount{Name: "data", MountPath: "/data"}))
	g.Expect(find(objs, "Deployment", "hookline-dispatcher")).To(BeNil(), "no dispatcher Deployment with embedded JetStream")
	for class, want := range map[string]*string{"fast": ptr.To("fast"), "-": ptr.To("")} {
		objs := mustRender(t, inlineTokens+fmt.Sprintf("dispatcher: {persistence: {storageClass: %q, size: 50Gi}}\n", class))
		vct := typed[appsv1.StatefulSet](t, objs, "StatefulSet", "hookline-dispatcher").Spec.VolumeClaimTemplates[0]
		g.Expect(vct.Spec.StorageClassName).To(Equal(want), "storageClass %q", class)
		g.Expect(vct.Spec.Resources.Requests.Storage().String()).To(Equal("50Gi"))
	}

	mgr := typed[appsv1.Deployment](t, objs, "Deployment", "hookline-manager")
	m := container(t, mgr.Spec.Template.Spec, "manager")
	g.Expect(m.Command).To(Equal([]string{"/manager"}))
	g.Expect(m.Args).To(ConsistOf("--leader-elect", "--metrics-bind-address=:8443", "--metrics-secure",
		"--health-probe-bind-address=:8081", "--default-client-id=hookline", "--attestation-key-file=/etc/hookline/attestation/key"))
	g.Expect(mgr.Spec.Template.Spec.ServiceAccountName).To(Equal("hookline-manager"))

	g.Expect(ofKind(objs, "ServiceMonitor")).To(BeEmpty())
	g.Expect(ofKind(objs, "ConfigMap")).To(BeEmpty())
	g.Expect(ofKind(objs, "PersistentVolumeClaim")).To(BeEmpty())

	// Services: the manager's metrics, the dispatcher's ingest API and metrics, each selecting its
	// component's pods.
	for name, sel := range map[string]map[string]string{
		"hookline-manager-metrics":    mgr.Spec.Template.Labels,
		"hookline-dispatcher":         sts.Spec.Template.Labels,
		"hookline-dispatcher-metrics": sts.Spec.Template.Labels,
	} {
		svc := typed[corev1.Service](t, objs, "Service", name)
		g.Expect(labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(sel))).To(BeTrue(), name)
	}
	g.Expect(typed[corev1.Service](t, objs, "Service", "hookline-dispatcher").Spec.Ports).To(
		ConsistOf(HaveField("Name", "ingest")), "metrics are not exposed with the ingest API")

	// Every object carries the recommended labels.
	for _, o := range objs {
		l := o.GetLabels()
		for _, k := range []string{"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component",
			"app.kubernetes.io/version", "app.kubernetes.io/managed-by", "helm.sh/chart"} {
			g.Expect(l).To(HaveKey(k), "%s %s", o.GetKind(), o.GetName())
		}
		g.Expect(l["app.kubernetes.io/instance"]).To(Equal(release))
		g.Expect(l["helm.sh/chart"]).To(Equal("hookline-0.1.0"))
	}
	// Each component's selector matches its own pods only.
	mgrSel, err := metav1.LabelSelectorAsSelector(mgr.Spec.Selector)
	g.Expect(err).NotTo(HaveOccurred())
	stsSel, err := metav1.LabelSelectorAsSelector(sts.Spec.Selector)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(mgrSel.Matches(labels.Set(mgr.Spec.Template.Labels))).To(BeTrue())
	g.Expect(mgrSel.Matches(labels.Set(sts.Spec.Template.Labels))).To(BeFalse())
	g.Expect(stsSel.Matches(labels.Set(sts.Spec.Template.Labels))).To(BeTrue())
	g.Expect(stsSel.Matches(labels.Set(mgr.Spec.Template.Labels))).To(BeFalse())
}

func TestHelmTemplateExternalNATS(t *testing.T) {
	g := NewWithT(t)
	objs := mustRender(t, externalNATS)

	dep := typed[appsv1.Deployment](t, objs, "Deployment", "hookline-dispatcher")
	g.Expect(*dep.Spec.Replicas).To(BeEquivalentTo(3))
	d := container(t, dep.Spec.Template.Spec, "dispatcher")
	g.Expect(d.Args).To(ContainElements("--nats-url=nats://nats.nats.svc:4222", "--nats-replicas=3"))
	g.Expect(withPrefix(d.Args, "--data-dir")).To(BeEmpty())
	g.Expect(volumeNames(dep.Spec.Template.Spec)).NotTo(ContainElement("data"))
	for _, vm := range d.VolumeMounts {
		g.Expect(vm.Name).NotTo(Equal("data"))
	}
	g.Expect(ofKind(objs, "StatefulSet")).To(BeEmpty())
	g.Expect(ofKind(objs, "PersistentVolumeClaim")).To(BeEmpty())
	g.Expect(typed[appsv1.Deployment](t, objs, "Deployment", "hookline-manager").Spec.Replicas).To(
		HaveValue(BeEquivalentTo(1)))
}

func TestHelmTemplateServiceMonitors(t *testing.T) {
	for _, secure := range []bool{true, false} {
		t.Run(fmt.Sprintf("metrics.secure=%v", secure), func(t *testing.T) {
			g := NewWithT(t)
			objs := mustRender(t, inlineTokens+fmt.Sprintf(`
serviceMonitor: {enabled: true, interval: 15s, labels: {release: prometheus}}
manager: {metrics: {secure: %v}}
dispatcher: {metrics: {secure: %v}}
`, secure, secure))
			sms := ofKind(objs, "ServiceMonitor")
			g.Expect(sms).To(HaveLen(2))
			for _, name := range []string{"hookline-manager", "hookline-dispatcher"} {
				sm := find(objs, "ServiceMonitor", name)
				g.Expect(sm).NotTo(BeNil(), name)
				g.Expect(sm.GetAPIVersion()).To(Equal("monitoring.coreos.com/v1"))
				g.Expect(sm.GetLabels()).To(HaveKeyWithValue("release", "prometheus"))
				eps, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
				g.Expect(eps).To(HaveLen(1))
				ep := eps[0].(map[string]any)
				g.Expect(ep).To(HaveKeyWithValue("interval", "15s"))
				wantScheme := "http"
				if secure {
					wantScheme = "https"
				}
				g.Expect(ep).To(HaveKeyWithValue("scheme", wantScheme))
				// Exactly one Service matches the selector and has the endpoint's port.
				sel, _, _ := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
				var targets []string
				for _, s := range ofKind(objs, "Service") {
					svc := typed[corev1.Service](t, objs, "Service", s.GetName())
					if !labels.SelectorFromSet(sel).Matches(labels.Set(svc.Labels)) {
						continue
					}
					for _, p := range svc.Spec.Ports {
						if p.Name == ep["port"] {
							targets = append(targets, svc.Name)
						}
					}
				}
				g.Expect(targets).To(Equal([]string{name + "-metrics"}), name)
			}

			m := container(t, typed[appsv1.Deployment](t, objs, "Deployment", "hookline-manager").Spec.Template.Spec, "manager")
			svc := typed[corev1.Service](t, objs, "Service", "hookline-manager-metrics")
			d := container(t, typed[appsv1.StatefulSet](t, objs, "StatefulSet", "hookline-dispatcher").Spec.Template.Spec, "dispatcher")
			if secure {
				g.Expect(d.Args).To(ContainElement("--metrics-secure"))
				g.Expect(find(objs, "ClusterRole", "hookline-dispatcher-metrics-auth")).NotTo(BeNil())
			} else {
				g.Expect(d.Args).NotTo(ContainElement("--metrics-secure"))
				g.Expect(find(objs, "ClusterRole", "hookline-dispatcher-metrics-auth")).To(BeNil())
				g.Expect(find(objs, "ClusterRole", "hookline-metrics-reader")).To(BeNil())
			}
			if secure {
				g.Expect(m.Args).To(ContainElements("--metrics-secure", "--metrics-bind-address=:8443"))
				g.Expect(svc.Spec.Ports[0].Port).To(BeEquivalentTo(8443))
				g.Expect(find(objs, "ClusterRole", "hookline-manager-metrics-auth")).NotTo(BeNil())
				g.Expect(find(objs, "ClusterRole", "hookline-metrics-reader")).NotTo(BeNil())
			} else {
				g.Expect(m.Args).NotTo(ContainElement("--metrics-secure"))
				g.Expect(m.Args).To(ContainElement("--metrics-bind-address=:8080"))
				g.Expect(svc.Spec.Ports[0].Port).To(BeEquivalentTo(8080))
				g.Expect(find(objs, "ClusterRole", "hookline-manager-metrics-auth")).To(BeNil())
				g.Expect(find(objs, "ClusterRoleBinding", "hookline-manager-metrics-auth")).To(BeNil())
			}
		})
	}
}

func TestHelmTemplateIngestTokens(t *testing.T) {
	t.Run("inline tokens become a Secret the dispatcher loads", func(t *testing.T) {
		g := NewWithT(t)
		objs := mustRender(t, inlineTokens)
		secret := find(objs, "Secret", release+"-ingest-tokens")
		g.Expect(secret).NotTo(BeNil())
		enc, _, _ := unstructured.NestedString(secret.Object, "data", "tokens.yaml")
		raw, err := base64.StdEncoding.DecodeString(enc)
		g.Expect(err).NotTo(HaveOccurred())
		// The dispatcher's own loader (strict YAML, token length, accounts) accepts it.
		path := filepath.Join(t.TempDir(), "tokens.yaml")
		g.Expect(os.WriteFile(path, raw, 0o600)).To(Succeed())
		tokens, err := ingest.LoadTokens(path)
		g.Expect(err).NotTo(HaveOccurred(), string(raw))
		p := tokens.Authenticate("e2e-token-0123456789abcdef")
		g.Expect(p).NotTo(BeNil())
		g.Expect(p.Name).To(Equal("esign-platform"))
		g.Expect(p.MayPost("acc-2")).To(BeTrue())
		g.Expect(p.MayPost("acc-3")).To(BeFalse())

		sts := typed[appsv1.StatefulSet](t, objs, "StatefulSet", "hookline-dispatcher")
		g.Expect(sts.Spec.Template.Spec.Volumes).To(ContainElement(And(HaveField("Name", "tokens"),
			HaveField("Secret.SecretName", release+"-ingest-tokens"))))
	})
	t.Run("existingSecret is mounted and no Secret is made", func(t *testing.T) {
		g := NewWithT(t)
		objs := mustRender(t, "ingestTokens: {existingSecret: producer-tokens}\n")
		g.Expect(find(objs, "Secret", release+"-ingest-tokens")).To(BeNil())
		sts := typed[appsv1.StatefulSet](t, objs, "StatefulSet", "hookline-dispatcher")
		g.Expect(sts.Spec.Template.Spec.Volumes).To(ContainElement(And(HaveField("Name", "tokens"),
			HaveField("Secret.SecretName", "producer-tokens"))))
	})
	t.Run("neither fails with a message saying what to set", func(t *testing.T) {
		g := NewWithT(t)
		_, out, err := render(t, "{}\n")
		g.Expect(err).To(HaveOccurred())
		g.Expect(out).To(ContainSubstring("ingestTokens: the dispatcher needs ingest tokens; set ingestTokens.existingSecret"))
	})
	t.Run("both fail", func(t *testing.T) {
		g := NewWithT(t)
		_, out, err := render(t, inlineTokens+"  existingSecret: producer-tokens\n")
		g.Expect(err).To(HaveOccurred())
		g.Expect(out).To(ContainSubstring("set either ingestTokens.existingSecret or ingestTokens.tokens, not both"))
	})
}

// The attestation key: a Secret with a random key of 32 bytes (which the binaries accept), mounted
// into both components and named by their --attestation-key-file; or attestation.existingSecret.
func TestHelmTemplateAttestationKey(t *testing.T) {
	const arg = "--attestation-key-file=/etc/hookline/attestation/key"
	mounted := func(g Gomega, objs []*unstructured.Unstructured, secret string) {
		for _, spec := range []corev1.PodSpec{
			typed[appsv1.Deployment](t, objs, "Deployment", "hookline-manager").Spec.Template.Spec,
			typed[appsv1.StatefulSet](t, objs, "StatefulSet", "hookline-dispatcher").Spec.Template.Spec,
		} {
			c := spec.Containers[0]
			g.Expect(c.Args).To(ContainElement(arg), c.Name)
			g.Expect(c.VolumeMounts).To(ContainElement(corev1.VolumeMount{Name: "attestation", MountPath: "/etc/hookline/attestation", ReadOnly: true}), c.Name)
			g.Expect(spec.Volumes).To(ContainElement(And(HaveField("Name", "attestation"),
				HaveField("Secret.SecretName", secret), HaveField("Secret.Items", ConsistOf(HaveField("Key", "key"))))), c.Name)
		}
	}
	t.Run("a random key in a Secret of the chart", func(t *testing.T) {
		g := NewWithT(t)
		objs := mustRender(t, inlineTokens)
		secret := find(objs, "Secret", release+"-attestation")
		g.Expect(secret).NotTo(BeNil())
		enc, _, _ := unstructured.NestedString(secret.Object, "data", "key")
		key, err := base64.StdEncoding.DecodeString(enc)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(key).To(HaveLen(32))
		_, err = attest.New(key)
		g.Expect(err).NotTo(HaveOccurred())
		mounted(g, objs, release+"-attestation")
	})
	t.Run("kept on uninstall with the CRD, for Helm and Argo CD", func(t *testing.T) {
		// The Webhooks outlive an uninstall with the CRD (crds.keep): a reinstall that made a new
		// key would leave every one of them unroutable until verified again. Argo CD prunes what
		// leaves its rendered output whatever helm.sh/resource-policy says (argoproj/argo-cd#17819).
		g := NewWithT(t)
		kept := map[string]string{"helm.sh/resource-policy": "keep", "argocd.argoproj.io/sync-options": "Prune=false,Delete=false"}
		for values, want := range map[string]map[string]string{
			"":                                      kept,
			"crds: {enabled: false}\n":              kept,
			"crds: {keep: false}\n":                 nil,
			"crds: {enabled: false, keep: false}\n": nil,
		} {
			secret := find(mustRender(t, inlineTokens+values), "Secret", release+"-attestation")
			g.Expect(secret).NotTo(BeNil(), values)
			if want == nil {
				g.Expect(secret.GetAnnotations()).To(BeEmpty(), values)
			} else {
				g.Expect(secret.GetAnnotations()).To(Equal(want), values)
			}
		}
	})
	t.Run("existingSecret is mounted and no Secret is made", func(t *testing.T) {
		g := NewWithT(t)
		objs := mustRender(t, inlineTokens+"attestation: {existingSecret: my-attestation-key}\n")
		g.Expect(find(objs, "Secret", release+"-attestation")).To(BeNil())
		mounted(g, objs, "my-attestation-key")
	})
}

func TestHelmTemplateAllowHTTPAndExtraCABundle(t *testing.T) {
	g := NewWithT(t)
	ca := testCAPEM(t)
	objs := mustRender(t, inlineTokens+"allowHTTP: true\nextraCABundle: |\n"+indent(ca, "  "))

	cm := typed[corev1.ConfigMap](t, objs, "ConfigMap", "hookline-extra-ca")
	path := filepath.Join(t.TempDir(), "ca.crt")
	g.Expect(os.WriteFile(path, []byte(cm.Data["ca.crt"]), 0o600)).To(Succeed())
	_, err := verify.LoadRootCAs(path)
	g.Expect(err).NotTo(HaveOccurred(), "the components load the rendered bundle")

	mgr := typed[appsv1.Deployment](t, objs, "Deployment", "hookline-manager").Spec.Template
	sts := typed[appsv1.StatefulSet](t, objs, "StatefulSet", "hookline-dispatcher").Spec.Template
	for name, tpl := range map[string]corev1.PodTemplateSpec{"manager": mgr, "dispatcher": sts} {
		c := container(t, tpl.Spec, name)
		g.Expect(c.Args).To(ContainElements("--allow-http", "--extra-ca-bundle=/etc/hookline/ca/ca.crt"), name)
		g.Expect(c.VolumeMounts).To(ContainElement(HaveField("MountPath", "/etc/hookline/ca")), name)
		g.Expect(tpl.Spec.Volumes).To(ContainElement(HaveField("ConfigMap.Name", "hookline-extra-ca")), name)
		g.Expect(tpl.Annotations).To(HaveKey("checksum/extra-ca"), "%s restarts when the bundle changes", name)
	}
}

func TestHelmTemplateSSRFGuard(t *testing.T) {
	g := NewWithT(t)
	objs := mustRender(t, inlineTokens+`ssrf: {allowedCIDRs: ["10.96.45.12/32", "fd00:abcd::/64"], blockedCIDRs: ["198.18.0.0/15"]}`+"\n")
	mgr := typed[appsv1.Deployment](t, objs, "Deployment", "hookline-manager").Spec.Template
	sts := typed[appsv1.StatefulSet](t, objs, "StatefulSet", "hookline-dispatcher").Spec.Template
	for name, tpl := range map[string]corev1.PodTemplateSpec{"manager": mgr, "dispatcher": sts} {
		c := container(t, tpl.Spec, name)
		g.Expect(c.Args).To(ContainElements("--allowed-cidrs=10.96.45.12/32,fd00:abcd::/64", "--blocked-cidrs=198.18.0.0/15"), name)
		// The binaries parse them as netguard does.
		for _, a := range append(withPrefix(c.Args, "--allowed-cidrs="), withPrefix(c.Args, "--blocked-cidrs=")...) {
			var l netguard.CIDRList
			g.Expect(l.Set(a[strings.Index(a, "=")+1:])).To(Succeed(), a)
		}
	}
	// The defaults add no flag: the binaries' built-in block list applies.
	objs = mustRender(t, inlineTokens)
	for name, tpl := range map[string]corev1.PodTemplateSpec{
		"manager":    typed[appsv1.Deployment](t, objs, "Deployment", "hookline-manager").Spec.Template,
		"dispatcher": typed[appsv1.StatefulSet](t, objs, "StatefulSet", "hookline-dispatcher").Spec.Template,
	} {
		args := container(t, tpl.Spec, name).Args
		g.Expect(withPrefix(args, "--allowed-cidrs")).To(BeEmpty(), name)
		g.Expect(withPrefix(args, "--blocked-cidrs")).To(BeEmpty(), name)
	}
}

// With external NATS the dispatchers are active-active by default: each is started with the
// group's partitions, rolls over by surging (a new replica takes its share before an old one
// leaves), and is ready by /readyz on the ingest port (NATS reachable, a current member).
func TestHelmTemplateActiveActiveReplicas(t *testing.T) {
	g := NewWithT(t)
	objs := mustRender(t, inlineTokens+`nats: {url: "nats://nats.nats:4222", replicas: 3}
dispatcher: {replicas: 3}
`)
	dep := typed[appsv1.Deployment](t, objs, "Deployment", "hookline-dispatcher")
	g.Expect(*dep.Spec.Replicas).To(BeEquivalentTo(3))
	g.Expect(dep.Spec.Strategy.RollingUpdate.MaxSurge.IntValue()).To(Equal(1))
	g.Expect(dep.Spec.Strategy.RollingUpdate.MaxUnavailable.IntValue()).To(BeZero(), "capacity kept during a rollout")
	c := container(t, dep.Spec.Template.Spec, "dispatcher")
	g.Expect(c.Args).To(ContainElements("--partitions=32", "--lease-ttl=15s"))
	g.Expect(c.ReadinessProbe.HTTPGet.Path).To(Equal("/readyz"))
	g.Expect(c.ReadinessProbe.HTTPGet.Port.String()).To(Equal("ingest"))
	g.Expect(typed[policyv1.PodDisruptionBudget](t, objs, "PodDisruptionBudget", "hookline-dispatcher").Spec.MaxUnavailable.IntValue()).To(Equal(1))
	g.Expect(dep.Spec.Template.Spec.TopologySpreadConstraints).To(HaveLen(1))
	// The embedded JetStream runs one dispatcher, with no partitions.
	sts := typed[appsv1.StatefulSet](t, mustRender(t, inlineTokens), "StatefulSet", "hookline-dispatcher")
	g.Expect(withPrefix(container(t, sts.Spec.Template.Spec, "dispatcher").Args, "--partitions")).To(BeEmpty())
}

// With external NATS, partitions 0 and two replicas the dispatchers share one delivery lease; SMTP
// values turn on problem e-mails with the password mounted from a Secret, never in the arguments.
func TestHelmTemplateStandbyReplicasAndProblemEmails(t *testing.T) {
	g := NewWithT(t)
	objs := mustRender(t, inlineTokens+`nats: {url: "nats://nats.nats:4222", replicas: 3}
dispatcher: {replicas: 2, leaseTTL: 20s, partitions: 0}
smtp: {address: "smtp.example.com:587", from: "hookline@example.com", username: hookline, existingSecret: smtp-credentials, starttls: always}
problemEmails: {after: 30m, interval: 2h}
`)
	dep := typed[appsv1.Deployment](t, objs, "Deployment", "hookline-dispatcher")
	g.Expect(*dep.Spec.Replicas).To(BeEquivalentTo(2))
	g.Expect(dep.Spec.Strategy.RollingUpdate).NotTo(BeNil())
	g.Expect(dep.Spec.Strategy.RollingUpdate.MaxSurge.IntValue()).To(BeZero(), "a surging pod would stand by unready forever")
	c := container(t, dep.Spec.Template.Spec, "dispatcher")
	g.Expect(withPrefix(c.Args, "--partitions")).To(BeEmpty())
	g.Expect(c.Args).To(ContainElements("--lease-ttl=20s", "--smtp-address=smtp.example.com:587", "--smtp-from=hookline@example.com",
		"--smtp-starttls=always", "--smtp-username=hookline", "--smtp-password-file=/etc/hookline/smtp/password",
		"--problem-email-after=30m", "--problem-email-interval=2h"))
	g.Expect(c.VolumeMounts).To(ContainElement(HaveField("MountPath", "/etc/hookline/smtp")))
	g.Expect(dep.Spec.Template.Spec.Volumes).To(ContainElement(HaveField("Secret.SecretName", "smtp-credentials")))
	// Without smtp.address nothing about e-mail is rendered.
	objs = mustRender(t, inlineTokens)
	sts := typed[appsv1.StatefulSet](t, objs, "StatefulSet", "hookline-dispatcher")
	g.Expect(withPrefix(container(t, sts.Spec.Template.Spec, "dispatcher").Args, "--smtp")).To(BeEmpty())
	g.Expect(withPrefix(container(t, sts.Spec.Template.Spec, "dispatcher").Args, "--lease-ttl")).To(BeEmpty(), "the embedded store needs no lease")
}

// Active-active replicas spread over nodes and are evicted one at a time: a node lost or drained
// never takes every dispatcher. One replica, or the embedded JetStream, gets neither. Standby
// replicas (partitions 0) spread too but get no budget: standbys are never ready, so a budget would
// never allow the lease holder's eviction and every drain of its node would hang.
func TestHelmTemplateDispatcherSpreadAndDisruptionBudget(t *testing.T) {
	g := NewWithT(t)
	const external = `nats: {url: "nats://nats.nats:4222"}
`
	objs := mustRender(t, inlineTokens+external+"dispatcher: {replicas: 3}\n")
	dep := typed[appsv1.Deployment](t, objs, "Deployment", "hookline-dispatcher")
	pdb := typed[policyv1.PodDisruptionBudget](t, objs, "PodDisruptionBudget", "hookline-dispatcher")
	g.Expect(pdb.Spec.MaxUnavailable.IntValue()).To(Equal(1))
	g.Expect(pdb.Spec.Selector.MatchLabels).To(Equal(dep.Spec.Selector.MatchLabels), "the budget covers the dispatcher's pods")
	spread := dep.Spec.Template.Spec.TopologySpreadConstraints
	g.Expect(spread).To(HaveLen(1))
	g.Expect(spread[0].TopologyKey).To(Equal("kubernetes.io/hostname"))
	g.Expect(spread[0].WhenUnsatisfiable).To(Equal(corev1.ScheduleAnyway), "a one-node cluster still runs every replica")
	g.Expect(spread[0].LabelSelector.MatchLabels).To(Equal(dep.Spec.Selector.MatchLabels))

	// Values replace the constraint and turn the budget off.
	objs = mustRender(t, inlineTokens+external+`dispatcher:
  replicas: 2
  podDisruptionBudget: {enabled: false}
  topologySpreadConstraints: [{maxSkew: 1, topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: DoNotSchedule,
    labelSelector: {matchLabels: {app.kubernetes.io/component: dispatcher}}}]
`)
	g.Expect(ofKind(objs, "PodDisruptionBudget")).To(BeEmpty())
	spread = typed[appsv1.Deployment](t, objs, "Deployment", "hookline-dispatcher").Spec.Template.Spec.TopologySpreadConstraints
	g.Expect(spread).To(HaveLen(1))
	g.Expect(spread[0].TopologyKey).To(Equal("topology.kubernetes.io/zone"))

	objs = mustRender(t, inlineTokens+external+"dispatcher: {replicas: 3, partitions: 0}\n")
	g.Expect(ofKind(objs, "PodDisruptionBudget")).To(BeEmpty(), "standby mode")
	g.Expect(typed[appsv1.Deployment](t, objs, "Deployment", "hookline-dispatcher").Spec.Template.Spec.TopologySpreadConstraints).To(HaveLen(1), "standby mode")

	for name, values := range map[string]string{"one replica": external, "embedded JetStream": "dispatcher: {replicas: 3}\n"} {
		objs := mustRender(t, inlineTokens+values)
		g.Expect(ofKind(objs, "PodDisruptionBudget")).To(BeEmpty(), name)
		for _, kind := range []string{"Deployment", "StatefulSet"} {
			if find(objs, kind, "hookline-dispatcher") == nil {
				continue
			}
			u := find(objs, kind, "hookline-dispatcher")
			_, found, _ := unstructured.NestedSlice(u.Object, "spec", "template", "spec", "topologySpreadConstraints")
			g.Expect(found).To(BeFalse(), name)
		}
	}
	_, out, err := render(t, inlineTokens+external+"dispatcher: {replicas: 2, podDisruptionBudget: {maxUnavailable: 0}}\n")
	g.Expect(err).To(HaveOccurred(), "a budget that allows no eviction would block every drain")
	g.Expect(out).To(ContainSubstring("maxUnavailable"))
}

// The delivery log is on by default with its retention flags; values change them or turn it off.
func TestHelmTemplateDeliveryLog(t *testing.T) {
	g := NewWithT(t)
	args := func(values string) []string {
		sts := typed[appsv1.StatefulSet](t, mustRender(t, inlineTokens+values), "StatefulSet", "hookline-dispatcher")
		return withPrefix(container(t, sts.Spec.Template.Spec, "dispatcher").Args, "--delivery-log")
	}
	g.Expect(args("")).To(ConsistOf("--delivery-log=true", "--delivery-log-max-age=168h", "--delivery-log-max-bytes=1073741824", "--delivery-log-gather=200ms"))
	g.Expect(args("dispatcher: {deliveryLog: {maxAge: 72h, maxBytes: 5368709120, gather: \"0\"}}\n")).To(
		ConsistOf("--delivery-log=true", "--delivery-log-max-age=72h", "--delivery-log-max-bytes=5368709120", "--delivery-log-gather=0"))
	g.Expect(args("dispatcher: {deliveryLog: {enabled: false}}\n")).To(ConsistOf("--delivery-log=false"))
}

// The dispatcher's probe server starts only once its store is open, which may take minutes after
// an unclean stop: a startup probe holds the liveness probe off for up to 5 minutes, in both forms.
func TestHelmTemplateDispatcherStartupProbe(t *testing.T) {
	g := NewWithT(t)
	for name, spec := range map[string]corev1.PodSpec{
		"embedded JetStream": typed[appsv1.StatefulSet](t, mustRender(t, inlineTokens), "StatefulSet", "hookline-dispatcher").Spec.Template.Spec,
		"external NATS":      typed[appsv1.Deployment](t, mustRender(t, externalNATS), "Deployment", "hookline-dispatcher").Spec.Template.Spec,
	} {
		c := container(t, spec, "dispatcher")
		g.Expect(c.StartupProbe).NotTo(BeNil(), name)
		g.Expect(c.StartupProbe.HTTPGet.Path).To(Equal("/healthz"), name)
		g.Expect(c.StartupProbe.HTTPGet.Port.String()).To(Equal("probes"), name)
		g.Expect(c.StartupProbe.PeriodSeconds*c.StartupProbe.FailureThreshold).To(BeEquivalentTo(300), name)
		g.Expect(c.LivenessProbe.HTTPGet.Path).To(Equal("/healthz"), name)
		g.Expect(c.LivenessProbe.HTTPGet.Port.String()).To(Equal("probes"), name)
		g.Expect(c.LivenessProbe.PeriodSeconds).To(BeEquivalentTo(20), name)
	}
}

// The ingest API serves TLS from a Secret, and the readiness probe follows.
func TestHelmTemplateIngestTLS(t *testing.T) {
	g := NewWithT(t)
	objs := mustRender(t, inlineTokens+"dispatcher: {tls: {existingSecret: ingest-tls}}\n")
	spec := typed[appsv1.StatefulSet](t, objs, "StatefulSet", "hookline-dispatcher").Spec.Template.Spec
	c := container(t, spec, "dispatcher")
	g.Expect(c.Args).To(ContainElements("--tls-cert-file=/etc/hookline/ingest-tls/tls.crt", "--tls-key-file=/etc/hookline/ingest-tls/tls.key"))
	g.Expect(c.ReadinessProbe.HTTPGet.Scheme).To(BeEquivalentTo("HTTPS"))
	g.Expect(spec.Volumes).To(ContainElement(HaveField("Secret.SecretName", "ingest-tls")))
	objs = mustRender(t, inlineTokens)
	c = container(t, typed[appsv1.StatefulSet](t, objs, "StatefulSet", "hookline-dispatcher").Spec.Template.Spec, "dispatcher")
	g.Expect(withPrefix(c.Args, "--tls-")).To(BeEmpty())
	g.Expect(c.ReadinessProbe.HTTPGet.Scheme).To(BeEmpty())
}

// NATS credentials and TLS come from Secrets mounted as files, never from the URL.
func TestHelmTemplateNATSCredentials(t *testing.T) {
	g := NewWithT(t)
	objs := mustRender(t, inlineTokens+`nats: {url: "tls://nats.nats:4222", replicas: 3, auth: {existingSecret: nats-user, type: nkey}, tlsSecret: nats-client-tls, tlsClientCert: true}
`)
	dep := typed[appsv1.Deployment](t, objs, "Deployment", "hookline-dispatcher")
	c := container(t, dep.Spec.Template.Spec, "dispatcher")
	g.Expect(c.Args).To(ContainElements("--nats-nkey-seed-file=/etc/hookline/nats-auth/nkey.seed",
		"--nats-ca-file=/etc/hookline/nats-tls/ca.crt", "--nats-cert-file=/etc/hookline/nats-tls/tls.crt",
		"--nats-key-file=/etc/hookline/nats-tls/tls.key"))
	g.Expect(withPrefix(c.Args, "--nats-creds-file")).To(BeEmpty())
	g.Expect(c.VolumeMounts).To(ContainElements(HaveField("MountPath", "/etc/hookline/nats-auth"), HaveField("MountPath", "/etc/hookline/nats-tls")))
	g.Expect(dep.Spec.Template.Spec.Volumes).To(ContainElements(HaveField("Secret.SecretName", "nats-user"), HaveField("Secret.SecretName", "nats-client-tls")))

	// The default type is a JWT credentials file; TLS without a client certificate sends only the CA.
	objs = mustRender(t, inlineTokens+`nats: {url: "tls://nats.nats:4222", auth: {existingSecret: nats-user}, tlsSecret: nats-ca}
`)
	c = container(t, typed[appsv1.Deployment](t, objs, "Deployment", "hookline-dispatcher").Spec.Template.Spec, "dispatcher")
	g.Expect(c.Args).To(ContainElements("--nats-creds-file=/etc/hookline/nats-auth/user.creds", "--nats-ca-file=/etc/hookline/nats-tls/ca.crt"))
	g.Expect(withPrefix(c.Args, "--nats-cert-file")).To(BeEmpty())
}

func TestHelmSchemaRejectsBadValues(t *testing.T) {
	cases := []struct {
		name, values, want string
	}{
		{"allowHTTP as a string", inlineTokens + "allowHTTP: \"yes\"\n", "at '/allowHTTP': got string, want boolean"},
		{"clientId missing", inlineTokens + "clientId: null\n", "missing property 'clientId'"},
		{"clientId empty", inlineTokens + "clientId: \"\"\n", "at '/clientId': minLength: got 0, want 1"},
		{"short token", "ingestTokens: {tokens: [{name: a, token: short, accounts: [acc-1]}]}\n",
			"at '/ingestTokens/tokens/0/token': minLength: got 5, want 16"},
		{"token without accounts", "ingestTokens: {tokens: [{name: a, token: e2e-token-0123456789abcdef}]}\n",
			"missing property 'accounts'"},
		{"unknown pull policy", inlineTokens + "image: {pullPolicy: Sometimes}\n", "at '/image/pullPolicy': value must be one of"},
		{"misspelt key", inlineTokens + "dispatcher: {replica: 2}\n", "additional properties 'replica' not allowed"},
		{"unknown NATS auth type", inlineTokens + "nats: {auth: {type: password}}\n", "at '/nats/auth/type'"},
		{"SMTP address without port", inlineTokens + "smtp: {address: smtp.example.com}\n", "at '/smtp/address'"},
		{"unknown STARTTLS mode", inlineTokens + "smtp: {starttls: sometimes}\n", "at '/smtp/starttls'"},
		{"lease TTL without unit", inlineTokens + "dispatcher: {leaseTTL: \"15\"}\n", "at '/dispatcher/leaseTTL'"},
		{"delivery log age in days", inlineTokens + "dispatcher: {deliveryLog: {maxAge: 7d}}\n", "at '/dispatcher/deliveryLog/maxAge'"},
		{"delivery log bytes as a quantity", inlineTokens + "dispatcher: {deliveryLog: {maxBytes: 1Gi}}\n", "at '/dispatcher/deliveryLog/maxBytes'"},
		{"NATS URL without scheme", inlineTokens + "nats: {url: \"nats.nats.svc:4222\"}\n", "at '/nats/url'"},
		{"replicas as a string", inlineTokens + "dispatcher: {replicas: \"3\"}\n", "at '/dispatcher/replicas': got string, want integer"},
		{"extraArgs not a flag", inlineTokens + "manager: {extraArgs: [\"verification-timeout=1s\"]}\n", "at '/manager/extraArgs/0'"},
		{"allowed CIDR without a prefix length", inlineTokens + "ssrf: {allowedCIDRs: [\"10.1.2.3\"]}\n", "at '/ssrf/allowedCIDRs/0'"},
		{"blocked CIDRs as a string", inlineTokens + "ssrf: {blockedCIDRs: \"10.0.0.0/8\"}\n", "at '/ssrf/blockedCIDRs': got string, want array"},
		{"misspelt ssrf key", inlineTokens + "ssrf: {allowedCidrs: []}\n", "additional properties 'allowedCidrs' not allowed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := NewWithT(t)
			_, out, err := render(t, c.values)
			g.Expect(err).To(HaveOccurred())
			g.Expect(out).To(ContainSubstring("values don't meet the specifications of the schema"))
			g.Expect(out).To(ContainSubstring(c.want))
		})
	}
	t.Run("more than one manager needs leader election", func(t *testing.T) {
		g := NewWithT(t)
		_, out, err := render(t, inlineTokens+"manager: {replicas: 2, leaderElect: false}\n")
		g.Expect(err).To(HaveOccurred())
		g.Expect(out).To(ContainSubstring("manager.replicas > 1 needs manager.leaderElect=true"))
	})
}

// TestHelmTemplateCRDsMatchConfig is the drift check: the chart's CRDs are config/crd/bases, plus
// the chart's labels and the keep policy (make helm-sync; make verify fails on drift too).
func TestHelmTemplateCRDsMatchConfig(t *testing.T) {
	g := NewWithT(t)
	bases, err := filepath.Glob(filepath.Join(env.Root, "config", "crd", "bases", "*.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(bases).NotTo(BeEmpty())

	objs := mustRender(t, inlineTokens)
	rendered := ofKind(objs, "CustomResourceDefinition")
	g.Expect(rendered).To(HaveLen(len(bases)))
	for _, b := range bases {
		want := decodeFile(t, b)
		g.Expect(want).To(HaveLen(1))
		got := find(objs, "CustomResourceDefinition", want[0].GetName())
		g.Expect(got).NotTo(BeNil(), b)
		got = got.DeepCopy()
		g.Expect(got.GetAnnotations()).To(HaveKeyWithValue("helm.sh/resource-policy", "keep"))
		g.Expect(got.GetLabels()).To(HaveKeyWithValue("app.kubernetes.io/managed-by", "Helm"))
		ann := got.GetAnnotations()
		delete(ann, "helm.sh/resource-policy")
		delete(ann, "argocd.argoproj.io/sync-options") // TestHelmTemplateKeptObjectsAreKeptFromArgoCD
		got.SetAnnotations(ann)
		got.SetLabels(nil)
		g.Expect(got.Object).To(Equal(want[0].Object), "%s drifted from %s: run make helm-sync", got.GetName(), b)
	}

	objs = mustRender(t, inlineTokens+"crds: {keep: false}\n")
	g.Expect(find(objs, "CustomResourceDefinition", crdName).GetAnnotations()).NotTo(HaveKey("helm.sh/resource-policy"))
	objs = mustRender(t, inlineTokens+"crds: {enabled: false}\n")
	g.Expect(ofKind(objs, "CustomResourceDefinition")).To(BeEmpty())
}

// TestHelmTemplateRBACMatchesConfig: the ClusterRoles' rules are the generated ones, and the
// hand-written roles match config/rbac.
func TestHelmTemplateRBACMatchesConfig(t *testing.T) {
	g := NewWithT(t)
	objs := mustRender(t, inlineTokens)
	rules := func(objs []*unstructured.Unstructured, kind, name string) []rbacv1.PolicyRule {
		t.Helper()
		switch kind {
		case "ClusterRole":
			r := typed[rbacv1.ClusterRole](t, objs, kind, name).Rules
			g.Expect(r).NotTo(BeEmpty(), name)
			return r
		default:
			r := typed[rbacv1.Role](t, objs, kind, name).Rules
			g.Expect(r).NotTo(BeEmpty(), name)
			return r
		}
	}
	for _, c := range []struct{ file, kind, configName, chartName string }{
		{"config/rbac/role.yaml", "ClusterRole", "hookline-manager", "hookline-manager"},
		{"config/rbac/dispatcher/role.yaml", "ClusterRole", "hookline-dispatcher", "hookline-dispatcher"},
		{"config/rbac/leader_election_role.yaml", "Role", "hookline-manager-leader-election", "hookline-manager-leader-election"},
		{"config/rbac/metrics_auth_role.yaml", "ClusterRole", "hookline-manager-metrics-auth", "hookline-manager-metrics-auth"},
		{"config/rbac/metrics_auth_role.yaml", "ClusterRole", "hookline-metrics-reader", "hookline-metrics-reader"},
		{"config/rbac/secret_reader_role.yaml", "ClusterRole", "hookline-secret-reader", "hookline-secret-reader"},
		{"config/rbac/deliveries_roles.yaml", "ClusterRole", "hookline-deliveries-viewer", "hookline-deliveries-viewer"},
		{"config/rbac/deliveries_roles.yaml", "ClusterRole", "hookline-replay-editor", "hookline-replay-editor"},
	} {
		want := rules(decodeFile(t, c.file), c.kind, c.configName)
		g.Expect(rules(objs, c.kind, c.chartName)).To(Equal(want), "%s %s differs from %s", c.kind, c.chartName, c.file)
	}
	// Both components write status by server-side apply (a patch) and update nothing cluster-wide.
	for _, name := range []string{"hookline-manager", "hookline-dispatcher"} {
		for _, r := range rules(objs, "ClusterRole", name) {
			g.Expect(r.Verbs).NotTo(ContainElement("update"), "%s grants update on %v", name, r.Resources)
		}
	}
	// The tenants' roles aggregate into the built-in ones, as in config/rbac (kube-controller-manager
	// does the aggregation; the integration tests' API server runs without it, so this is checked
	// here, statically).
	aggregation := func(o *unstructured.Unstructured) map[string]string {
		out := map[string]string{}
		for k, v := range o.GetLabels() {
			if strings.HasPrefix(k, "rbac.authorization.k8s.io/aggregate-to-") {
				out[k] = v
			}
		}
		return out
	}
	for name, want := range map[string][]string{
		"hookline-deliveries-viewer": {"view", "edit", "admin"},
		"hookline-replay-editor":     {"edit", "admin"},
	} {
		wantLabels := map[string]string{}
		for _, role := range want {
			wantLabels["rbac.authorization.k8s.io/aggregate-to-"+role] = "true"
		}
		g.Expect(aggregation(find(objs, "ClusterRole", name))).To(Equal(wantLabels), name)
		g.Expect(aggregation(find(decodeFile(t, "config/rbac/deliveries_roles.yaml"), "ClusterRole", name))).To(Equal(wantLabels), name)
	}
	off := mustRender(t, inlineTokens+"deliveriesRBAC: {aggregateToDefaultRoles: false}\n")
	g.Expect(aggregation(find(off, "ClusterRole", "hookline-deliveries-viewer"))).To(BeEmpty())
	// Bindings name the component's own ServiceAccount in the release namespace.
	for _, name := range []string{"hookline-manager", "hookline-dispatcher", "hookline-manager-metrics-auth"} {
		crb := typed[rbacv1.ClusterRoleBinding](t, objs, "ClusterRoleBinding", name)
		g.Expect(crb.RoleRef.Name).To(Equal(name))
		g.Expect(crb.Subjects).To(ConsistOf(rbacv1.Subject{Kind: "ServiceAccount",
			Name: strings.TrimSuffix(name, "-metrics-auth"), Namespace: namespace}))
	}
}

// TestHelmTemplateSecretAccess: the secret reader is bound only where secretAccess says, to both
// ServiceAccounts.
func TestHelmTemplateSecretAccess(t *testing.T) {
	g := NewWithT(t)
	both := []rbacv1.Subject{{Kind: "ServiceAccount", Name: "hookline-manager", Namespace: namespace},
		{Kind: "ServiceAccount", Name: "hookline-dispatcher", Namespace: namespace}}
	ref := rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "hookline-secret-reader"}

	objs := mustRender(t, inlineTokens)
	g.Expect(find(objs, "ClusterRole", "hookline-secret-reader")).NotTo(BeNil(), "for operators to bind")
	g.Expect(find(objs, "ClusterRoleBinding", "hookline-secret-reader")).To(BeNil(), "not cluster-wide by default")
	for _, rb := range ofKind(objs, "RoleBinding") {
		g.Expect(rb.GetName()).NotTo(Equal("hookline-secret-reader"), "no Secret access anywhere by default")
	}
	for _, name := range []string{"hookline-manager", "hookline-dispatcher"} {
		for _, r := range typed[rbacv1.ClusterRole](t, objs, "ClusterRole", name).Rules {
			g.Expect(r.Resources).NotTo(ContainElement("secrets"), name)
		}
	}

	objs = mustRender(t, inlineTokens+"secretAccess: {namespaces: [team-a, team-b, team-a]}\n")
	var got []string
	for _, o := range ofKind(objs, "RoleBinding") {
		if o.GetName() != "hookline-secret-reader" {
			continue
		}
		rb := &rbacv1.RoleBinding{}
		g.Expect(runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, rb)).To(Succeed())
		g.Expect(rb.RoleRef).To(Equal(ref))
		g.Expect(rb.Subjects).To(Equal(both))
		got = append(got, rb.Namespace)
	}
	g.Expect(got).To(ConsistOf("team-a", "team-b"))
	g.Expect(find(objs, "ClusterRoleBinding", "hookline-secret-reader")).To(BeNil())

	objs = mustRender(t, inlineTokens+"secretAccess: {clusterWide: true}\n")
	crb := typed[rbacv1.ClusterRoleBinding](t, objs, "ClusterRoleBinding", "hookline-secret-reader")
	g.Expect(crb.RoleRef).To(Equal(ref))
	g.Expect(crb.Subjects).To(Equal(both))

	_, out, err := render(t, inlineTokens+"secretAccess: {namespaces: [Team_A]}\n")
	g.Expect(err).To(HaveOccurred())
	g.Expect(out).To(ContainSubstring("at '/secretAccess/namespaces/0'"))
}

// TestHelmTemplatePoliciesMatchConfig is the drift check of the admission policies: with default
// values the chart renders config/policies (plus the chart's labels), bindingAdmins fills the
// administrators, and admissionPolicies.enabled=false leaves them out.
func TestHelmTemplatePoliciesMatchConfig(t *testing.T) {
	g := NewWithT(t)
	files, err := filepath.Glob(filepath.Join(env.Root, "config", "policies", "*.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	var want []*unstructured.Unstructured
	for _, f := range files {
		if filepath.Base(f) != "kustomization.yaml" {
			want = append(want, decodeFile(t, f)...)
		}
	}
	g.Expect(want).To(HaveLen(4), "two policies and their bindings")

	objs := mustRender(t, inlineTokens)
	policies := append(ofKind(objs, "ValidatingAdmissionPolicy"), ofKind(objs, "ValidatingAdmissionPolicyBinding")...)
	g.Expect(policies).To(HaveLen(len(want)))
	for _, w := range want {
		got := find(objs, w.GetKind(), w.GetName())
		g.Expect(got).NotTo(BeNil(), "%s %s", w.GetKind(), w.GetName())
		got = got.DeepCopy()
		g.Expect(got.GetLabels()).To(HaveKeyWithValue("app.kubernetes.io/component", "admission"))
		got.SetLabels(nil)
		// Kept on uninstall, as the CRD and the Webhooks are (admissionPolicies.keep).
		g.Expect(got.GetAnnotations()).To(Equal(map[string]string{"helm.sh/resource-policy": "keep", "argocd.argoproj.io/sync-options": "Prune=false,Delete=false"}))
		got.SetAnnotations(nil)
		g.Expect(got.Object).To(Equal(w.Object), "%s drifted from config/policies: run make helm-sync", got.GetName())
	}
	for _, p := range ofKind(mustRender(t, inlineTokens+"admissionPolicies: {keep: false}\n"), "ValidatingAdmissionPolicy") {
		g.Expect(p.GetAnnotations()).NotTo(HaveKey("helm.sh/resource-policy"), "%s with keep: false", p.GetName())
	}
	// Values without the key (helm upgrade --reuse-values from a chart of before) keep them too.
	for _, p := range ofKind(mustRender(t, inlineTokens+"admissionPolicies: {keep: null}\n"), "ValidatingAdmissionPolicy") {
		g.Expect(p.GetAnnotations()).To(HaveKeyWithValue("helm.sh/resource-policy", "keep"), "%s without keep", p.GetName())
	}

	objs = mustRender(t, inlineTokens+`admissionPolicies:
  bindingAdmins:
    groups: [platform-admins, "o'brien \"quoted\""]
    users: ["system:serviceaccount:argocd:argocd-application-controller"]
`)
	vap := typed[admissionregistrationv1.ValidatingAdmissionPolicy](t, objs, "ValidatingAdmissionPolicy", "hookline-namespace-binding")
	g.Expect(vap.Spec.Variables[0]).To(Equal(admissionregistrationv1.Variable{Name: "adminGroups",
		Expression: `["system:masters","platform-admins","o'brien \"quoted\""]`}))
	g.Expect(vap.Spec.Variables[1]).To(Equal(admissionregistrationv1.Variable{Name: "adminUsers",
		Expression: `["system:serviceaccount:argocd:argocd-application-controller"]`}))

	objs = mustRender(t, inlineTokens+"admissionPolicies: {enabled: false}\n")
	g.Expect(ofKind(objs, "ValidatingAdmissionPolicy")).To(BeEmpty())
	g.Expect(ofKind(objs, "ValidatingAdmissionPolicyBinding")).To(BeEmpty())
}

// --- helm install against the API server -----------------------------------------------------

// TestHelmInstallUpgradeUninstall installs the chart with its CRDs into the test API server, which
// validates every object (schemas, RBAC, Pod Security admission on dry-run pods). The control plane
// already has the CRD (applied from config/crd/bases, as `kubectl apply -k config/default` would):
// --take-ownership (Helm 3.17+) adopts it into the release, the migration path from config/ to the
// chart. TestHelmInstallWithoutCRDs covers the other path, crds.enabled=false.
func TestHelmInstallUpgradeUninstall(t *testing.T) {
	ctx := context.Background()
	g := NewWithT(t)
	createNamespace(t, namespace, map[string]string{
		"pod-security.kubernetes.io/enforce": "restricted",
		"pod-security.kubernetes.io/warn":    "restricted",
	})
	createNamespace(t, tenantNS, map[string]string{"hookline.io/account": "acc-1"})

	createNamespace(t, "team-b", map[string]string{"hookline.io/account": "acc-2"})

	out, err := helm(t, "install", release, chartDir, "-n", namespace, "--take-ownership", "-f", valuesFile(t, inlineTokens+`
secretAccess: {namespaces: [`+tenantNS+`]}
admissionPolicies: {bindingAdmins: {groups: [`+adminGroup+`], users: [`+argoCD+`]}}
`))
	g.Expect(err).NotTo(HaveOccurred(), out)
	t.Cleanup(func() {
		_, _ = helm(t, "uninstall", release, "-n", namespace, "--ignore-not-found")
		dropKeptPolicies(t, release)
	})
	g.Expect(out).To(ContainSubstring("STATUS: deployed"))
	g.Expect(out).To(ContainSubstring("kubectl get webhooks -A"))
	g.Expect(out).To(ContainSubstring("/v1/events"))
	g.Expect(out).NotTo(ContainSubstring("would violate PodSecurity"))
	g.Expect(out).To(ContainSubstring("Only system:masters, the groups " + adminGroup + ", the users " + argoCD + "\n   may set the label:"))
	g.Expect(out).NotTo(ContainSubstring("need secretAccess.namespaces"), "set at install")

	t.Run("objects exist with the expected names", func(t *testing.T) {
		g := NewWithT(t)
		key := func(name string) client.ObjectKey { return client.ObjectKey{Namespace: namespace, Name: name} }
		cluster := func(name string) client.ObjectKey { return client.ObjectKey{Name: name} }
		for _, c := range []struct {
			obj client.Object
			key client.ObjectKey
		}{
			{&appsv1.Deployment{}, key("hookline-manager")},
			{&appsv1.StatefulSet{}, key("hookline-dispatcher")},
			{&corev1.ServiceAccount{}, key("hookline-manager")},
			{&corev1.ServiceAccount{}, key("hookline-dispatcher")},
			{&corev1.Secret{}, key("hookline-ingest-tokens")},
			{&corev1.Secret{}, key("hookline-attestation")},
			{&corev1.Service{}, key("hookline-manager-metrics")},
			{&corev1.Service{}, key("hookline-dispatcher")},
			{&corev1.Service{}, key("hookline-dispatcher-metrics")},
			{&rbacv1.Role{}, key("hookline-manager-leader-election")},
			{&rbacv1.RoleBinding{}, key("hookline-manager-leader-election")},
			{&rbacv1.ClusterRole{}, cluster("hookline-manager")},
			{&rbacv1.ClusterRole{}, cluster("hookline-dispatcher")},
			{&rbacv1.ClusterRole{}, cluster("hookline-manager-metrics-auth")},
			{&rbacv1.ClusterRole{}, cluster("hookline-metrics-reader")},
			{&rbacv1.ClusterRoleBinding{}, cluster("hookline-manager")},
			{&rbacv1.ClusterRoleBinding{}, cluster("hookline-dispatcher")},
			{&rbacv1.ClusterRoleBinding{}, cluster("hookline-manager-metrics-auth")},
			{&rbacv1.ClusterRole{}, cluster("hookline-secret-reader")},
			{&rbacv1.RoleBinding{}, client.ObjectKey{Namespace: tenantNS, Name: "hookline-secret-reader"}},
			{&admissionregistrationv1.ValidatingAdmissionPolicy{}, cluster("hookline-namespace-binding")},
			{&admissionregistrationv1.ValidatingAdmissionPolicyBinding{}, cluster("hookline-namespace-binding")},
			{&admissionregistrationv1.ValidatingAdmissionPolicy{}, cluster("hookline-webhook-secret-access")},
			{&admissionregistrationv1.ValidatingAdmissionPolicyBinding{}, cluster("hookline-webhook-secret-access")},
		} {
			g.Expect(k8s.Get(ctx, c.key, c.obj)).To(Succeed(), "%T %s", c.obj, c.key)
			g.Expect(c.obj.GetLabels()).To(HaveKeyWithValue("app.kubernetes.io/managed-by", "Helm"), "%T %s", c.obj, c.key)
		}
		sts := &appsv1.StatefulSet{}
		g.Expect(k8s.Get(ctx, key("hookline-dispatcher"), sts)).To(Succeed())
		g.Expect(sts.Spec.VolumeClaimTemplates).To(HaveLen(1))

		crd := &apiextensionsv1.CustomResourceDefinition{}
		g.Expect(k8s.Get(ctx, cluster(crdName), crd)).To(Succeed())
		g.Expect(crd.Annotations).To(HaveKeyWithValue("meta.helm.sh/release-name", release), "the release owns the CRD")
		g.Expect(crd.Annotations).To(HaveKeyWithValue("helm.sh/resource-policy", "keep"))
		g.Expect(crd.Labels).To(HaveKeyWithValue("app.kubernetes.io/managed-by", "Helm"))

		out, err := kubectl(t, "get", "webhooks", "-A")
		g.Expect(err).NotTo(HaveOccurred(), out)
	})

	t.Run("pods meet the restricted Pod Security Standard", func(t *testing.T) {
		g := NewWithT(t)
		mgr := &appsv1.Deployment{}
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: namespace, Name: "hookline-manager"}, mgr)).To(Succeed())
		sts := &appsv1.StatefulSet{}
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: namespace, Name: "hookline-dispatcher"}, sts)).To(Succeed())
		// The StatefulSet controller adds the claim as a volume; there is no controller here.
		dispatcherSpec := sts.Spec.Template.Spec.DeepCopy()
		dispatcherSpec.Volumes = append(dispatcherSpec.Volumes, corev1.Volume{Name: "data", VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data-hookline-dispatcher-0"}}})
		for name, spec := range map[string]*corev1.PodSpec{"manager": mgr.Spec.Template.Spec.DeepCopy(), "dispatcher": dispatcherSpec} {
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: name + "-", Namespace: namespace}, Spec: *spec}
			g.Expect(k8s.Create(ctx, pod, client.DryRunAll)).To(Succeed(), name)

			// Control: the same pod without its security contexts is refused, so admission is on.
			bare := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: name + "-", Namespace: namespace}, Spec: *spec.DeepCopy()}
			bare.Spec.SecurityContext = nil
			for i := range bare.Spec.Containers {
				bare.Spec.Containers[i].SecurityContext = nil
			}
			err := k8s.Create(ctx, bare, client.DryRunAll)
			g.Expect(err).To(HaveOccurred(), name)
			g.Expect(err.Error()).To(ContainSubstring("violates PodSecurity"))
		}
	})

	t.Run("RBAC is least privilege", func(t *testing.T) {
		mgrSA := "system:serviceaccount:" + namespace + ":hookline-manager"
		dispSA := "system:serviceaccount:" + namespace + ":hookline-dispatcher"
		inTenant := []string{"-n", tenantNS}
		for _, c := range []struct {
			as, verb, resource string
			flags              []string
			want               bool
		}{
			// The manager reads Webhooks everywhere and writes only their status.
			{mgrSA, "get", "webhooks.hookline.io", []string{"-A"}, true},
			{mgrSA, "list", "webhooks.hookline.io", []string{"-A"}, true},
			{mgrSA, "watch", "webhooks.hookline.io", []string{"-A"}, true},
			{mgrSA, "patch", "webhooks.hookline.io", []string{"-n", tenantNS, "--subresource=status"}, true},
			// Secrets only where secretAccess.namespaces grants them (team-a here).
			{mgrSA, "get", "secrets", inTenant, true},
			{mgrSA, "get", "secrets", []string{"-n", "team-b"}, false},
			{mgrSA, "get", "secrets", []string{"-n", namespace}, false},
			{mgrSA, "get", "secrets", []string{"-A"}, false},
			{mgrSA, "list", "namespaces", nil, true},
			{mgrSA, "create", "events.events.k8s.io", inTenant, true},
			{mgrSA, "create", "leases.coordination.k8s.io", []string{"-n", namespace}, true},
			{mgrSA, "create", "events", []string{"-n", namespace}, true},
			{mgrSA, "create", "tokenreviews.authentication.k8s.io", nil, true},
			{mgrSA, "create", "subjectaccessreviews.authorization.k8s.io", nil, true},
			{mgrSA, "update", "webhooks.hookline.io", inTenant, false},
			{mgrSA, "patch", "webhooks.hookline.io", inTenant, false},
			{mgrSA, "create", "webhooks.hookline.io", inTenant, false},
			{mgrSA, "delete", "webhooks.hookline.io", inTenant, false},
			{mgrSA, "update", "webhooks.hookline.io", []string{"-n", tenantNS, "--subresource=status"}, false},
			{mgrSA, "list", "secrets", inTenant, false},
			{mgrSA, "watch", "secrets", inTenant, false},
			{mgrSA, "create", "pods", inTenant, false},
			{mgrSA, "patch", "namespaces", nil, false},
			{mgrSA, "create", "leases.coordination.k8s.io", inTenant, false},
			{mgrSA, "create", "events", inTenant, false},
			// Both list the cluster's Service and Pod ranges for the SSRF guard, uncached: list only.
			{mgrSA, "list", "servicecidrs.networking.k8s.io", nil, true},
			{mgrSA, "list", "nodes", nil, true},
			{mgrSA, "get", "servicecidrs.networking.k8s.io", nil, false},
			{mgrSA, "watch", "servicecidrs.networking.k8s.io", nil, false},
			{mgrSA, "get", "nodes", nil, false},
			{mgrSA, "watch", "nodes", nil, false},
			{mgrSA, "patch", "nodes", nil, false},
			{dispSA, "list", "servicecidrs.networking.k8s.io", nil, true},
			{dispSA, "list", "nodes", nil, true},
			{dispSA, "get", "servicecidrs.networking.k8s.io", nil, false},
			{dispSA, "watch", "servicecidrs.networking.k8s.io", nil, false},
			{dispSA, "get", "nodes", nil, false},
			{dispSA, "watch", "nodes", nil, false},
			{dispSA, "patch", "nodes", nil, false},
			// The dispatcher reads Webhooks, namespaces and client-certificate Secrets, writes status.
			{dispSA, "patch", "webhooks.hookline.io", []string{"-n", tenantNS, "--subresource=status"}, true},
			{dispSA, "list", "webhooks.hookline.io", []string{"-A"}, true},
			{dispSA, "watch", "namespaces", nil, true},
			{dispSA, "get", "secrets", inTenant, true},
			{dispSA, "get", "secrets", []string{"-n", "team-b"}, false},
			{dispSA, "get", "secrets", []string{"-n", "kube-system"}, false},
			{dispSA, "get", "secrets", []string{"-A"}, false},
			{dispSA, "list", "secrets", inTenant, false},
			{dispSA, "delete", "webhooks.hookline.io", inTenant, false},
			{dispSA, "update", "webhooks.hookline.io", inTenant, false},
			{dispSA, "patch", "webhooks.hookline.io", inTenant, false},
			{dispSA, "create", "leases.coordination.k8s.io", []string{"-n", namespace}, false},
			// Only for its secure metrics endpoint (dispatcher.metrics.secure, the default).
			{dispSA, "create", "tokenreviews.authentication.k8s.io", nil, true},
			{dispSA, "create", "subjectaccessreviews.authorization.k8s.io", nil, true},
			{dispSA, "create", "pods", []string{"-n", namespace}, false},
			{dispSA, "watch", "secrets", inTenant, false},
			{dispSA, "get", "configmaps", inTenant, false},
			{dispSA, "create", "webhooks.hookline.io", inTenant, false},
			{dispSA, "patch", "namespaces", nil, false},
			{dispSA, "impersonate", "serviceaccounts", inTenant, false},
			{dispSA, "create", "clusterrolebindings.rbac.authorization.k8s.io", nil, false},
			{mgrSA, "get", "configmaps", inTenant, false},
			{mgrSA, "impersonate", "serviceaccounts", inTenant, false},
			{mgrSA, "create", "clusterrolebindings.rbac.authorization.k8s.io", nil, false},
			{mgrSA, "escalate", "clusterroles.rbac.authorization.k8s.io", nil, false},
		} {
			name := fmt.Sprintf("%s %s %s %s", c.as[strings.LastIndex(c.as, ":")+1:], c.verb, c.resource, strings.Join(c.flags, " "))
			t.Run(name, func(t *testing.T) {
				g := NewWithT(t)
				g.Expect(canI(t, c.as, c.verb, c.resource, c.flags...)).To(Equal(c.want))
			})
		}
	})

	t.Run("the admission policies guard namespace bindings and Secret references", func(t *testing.T) {
		// The chart's policies, with admissionPolicies.bindingAdmins.groups set at install.
		checkBindingGuarded(t, "hookline-namespace-binding", boundNamespace(t, "helm-bind-", "acc-a", tenantUser), nil)
		checkSecretReferencesGuarded(t, "hookline-webhook-secret-access", secretsNamespace(t))
	})

	t.Run("ServiceAccounts are refused what they need not do", func(t *testing.T) {
		// Not only what the authorizer says (can-i): real requests as each ServiceAccount.
		g := NewWithT(t)
		as := func(sa string) client.Client {
			cfg := rest.CopyConfig(env.Config)
			cfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + namespace + ":" + sa}
			c, err := client.New(cfg, client.Options{Scheme: env.Scheme})
			g.Expect(err).NotTo(HaveOccurred())
			return c
		}
		disp, mgr := as("hookline-dispatcher"), as("hookline-manager")
		for name, c := range map[string]client.Client{"dispatcher": disp, "manager": mgr} {
			err := c.List(ctx, &corev1.SecretList{}, client.InNamespace(tenantNS))
			g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%s listed secrets: %v", name, err)
			err = c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: "hookline-ingest-tokens"}, &corev1.Secret{})
			g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%s read a Secret outside secretAccess.namespaces: %v", name, err)
			err = c.Create(ctx, &hooklinev1.Webhook{ObjectMeta: metav1.ObjectMeta{Namespace: tenantNS, Name: "smuggled-" + name},
				Spec: hooklinev1.WebhookSpec{URL: "https://evil.example.com/x", Scope: hooklinev1.ScopeAccount, Events: []hooklinev1.EventName{"AGREEMENT_ALL"}}})
			g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%s created a webhook: %v", name, err)
			ns := &corev1.Namespace{}
			g.Expect(c.Get(ctx, client.ObjectKey{Name: tenantNS}, ns)).To(Succeed(), "%s reads namespace bindings", name)
			before := ns.DeepCopy()
			ns.Labels[tenancy.AccountLabel] = "stolen-account"
			err = c.Patch(ctx, ns, client.MergeFrom(before))
			g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%s rebound a namespace to another account: %v", name, err)
		}
	})

	t.Run("upgrade with changed values", func(t *testing.T) {
		g := NewWithT(t)
		// The attestation key survives upgrades: a new one would unverify every Webhook.
		attestationKey := func() []byte {
			s := &corev1.Secret{}
			g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: namespace, Name: "hookline-attestation"}, s)).To(Succeed())
			g.Expect(s.Data["key"]).To(HaveLen(32))
			return s.Data["key"]
		}
		installed := attestationKey()
		defer func() { g.Expect(attestationKey()).To(Equal(installed), "an upgrade replaced the attestation key") }()
		ca := testCAPEM(t)
		caFile := filepath.Join(t.TempDir(), "ca.pem")
		g.Expect(os.WriteFile(caFile, []byte(ca), 0o600)).To(Succeed())
		out, err := helm(t, "upgrade", release, chartDir, "-n", namespace, "--reuse-values",
			"--set", "allowHTTP=true", "--set-file", "extraCABundle="+caFile)
		g.Expect(err).NotTo(HaveOccurred(), out)
		g.Expect(out).To(ContainSubstring("REVISION: 2"))
		mgr := &appsv1.Deployment{}
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: namespace, Name: "hookline-manager"}, mgr)).To(Succeed())
		g.Expect(mgr.Spec.Template.Spec.Containers[0].Args).To(ContainElements("--allow-http", "--extra-ca-bundle=/etc/hookline/ca/ca.crt"))
		cm := &corev1.ConfigMap{}
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: namespace, Name: "hookline-extra-ca"}, cm)).To(Succeed())
		g.Expect(cm.Data["ca.crt"]).To(Equal(ca))

		// From embedded JetStream to an external NATS cluster: the StatefulSet makes way for a
		// Deployment.
		out, err = helm(t, "upgrade", release, chartDir, "-n", namespace, "--reuse-values",
			"--set", "nats.url=nats://nats.nats.svc:4222")
		g.Expect(err).NotTo(HaveOccurred(), out)
		g.Expect(out).To(ContainSubstring("REVISION: 3"))
		dep := &appsv1.Deployment{}
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: namespace, Name: "hookline-dispatcher"}, dep)).To(Succeed())
		g.Expect(dep.Spec.Template.Spec.Containers[0].Args).To(ContainElement("--nats-url=nats://nats.nats.svc:4222"))
		err = k8s.Get(ctx, client.ObjectKey{Namespace: namespace, Name: "hookline-dispatcher"}, &appsv1.StatefulSet{})
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "StatefulSet removed: %v", err)
	})

	t.Run("upgrade updates the CRD", func(t *testing.T) {
		// A later chart version whose CRD has one more short name stands for a changed API: the CRD
		// is a template, so helm upgrade applies it (Helm never upgrades CRDs kept in crds/).
		g := NewWithT(t)
		next := filepath.Join(t.TempDir(), "hookline")
		g.Expect(os.CopyFS(next, os.DirFS(chartDir))).To(Succeed())
		crdFile := filepath.Join(next, "templates", "crds", "webhooks.yaml")
		tpl, err := os.ReadFile(crdFile)
		g.Expect(err).NotTo(HaveOccurred())
		changed := strings.Replace(string(tpl), "    - whk\n", "    - whk\n    - whnext\n", 1)
		g.Expect(changed).NotTo(Equal(string(tpl)))
		g.Expect(os.WriteFile(crdFile, []byte(changed), 0o600)).To(Succeed())

		shortNames := func() []string {
			crd := &apiextensionsv1.CustomResourceDefinition{}
			g.Expect(k8s.Get(ctx, client.ObjectKey{Name: crdName}, crd)).To(Succeed())
			return crd.Spec.Names.ShortNames
		}
		out, err := helm(t, "upgrade", release, next, "-n", namespace, "--reuse-values")
		g.Expect(err).NotTo(HaveOccurred(), out)
		g.Expect(shortNames()).To(ContainElement("whnext"))
		out, err = helm(t, "upgrade", release, chartDir, "-n", namespace, "--reuse-values")
		g.Expect(err).NotTo(HaveOccurred(), out)
		g.Expect(shortNames()).NotTo(ContainElement("whnext"))
	})

	t.Run("uninstall keeps the CRD, the Webhooks and the admission policies", func(t *testing.T) {
		g := NewWithT(t)
		out, err := kubectl(t, "apply", "-n", tenantNS, "-f", "config/samples/webhook_account.yaml")
		g.Expect(err).NotTo(HaveOccurred(), out)
		victim := boundNamespace(t, "kept-", "acc-kept", tenantUser)

		out, err = helm(t, "uninstall", release, "-n", namespace)
		g.Expect(err).NotTo(HaveOccurred(), out)
		g.Expect(out).To(ContainSubstring("kept due to the resource policy"))
		g.Expect(out).To(ContainSubstring(crdName))
		t.Cleanup(func() { dropKeptPolicies(t, release) })
		// The Webhooks are kept, and so is what keeps a tenant from rebinding its namespace to
		// another account meanwhile: without it, the tenant's label would stay when hookline is
		// installed again, and its Webhooks receive that account's events.
		for _, obj := range []client.Object{&admissionregistrationv1.ValidatingAdmissionPolicy{}, &admissionregistrationv1.ValidatingAdmissionPolicyBinding{}} {
			g.Expect(k8s.Get(ctx, client.ObjectKey{Name: "hookline-namespace-binding"}, obj)).To(Succeed(), "%T kept", obj)
		}
		out, err = kubectlAs(t, tenantUser, nil, "label", "ns", victim, tenancy.AccountLabel+"=acc-other", "--overwrite")
		g.Expect(err).To(HaveOccurred(), "a tenant relabels its namespace after the uninstall: %s", out)
		g.Expect(namespaceLabels(t, victim)).To(HaveKeyWithValue(tenancy.AccountLabel, "acc-kept"))

		crd := &apiextensionsv1.CustomResourceDefinition{}
		g.Expect(k8s.Get(ctx, client.ObjectKey{Name: crdName}, crd)).To(Succeed())
		g.Expect(crd.DeletionTimestamp).To(BeNil())
		// And the attestation key the kept Webhooks were verified with: a reinstall finds it.
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: namespace, Name: "hookline-attestation"}, &corev1.Secret{})).To(Succeed())
		out, err = kubectl(t, "get", "webhook", "account-agreements", "-n", tenantNS)
		g.Expect(err).NotTo(HaveOccurred(), out)
		for _, c := range []struct {
			obj client.Object
			key client.ObjectKey
		}{
			{&appsv1.Deployment{}, client.ObjectKey{Namespace: namespace, Name: "hookline-manager"}},
			{&appsv1.Deployment{}, client.ObjectKey{Namespace: namespace, Name: "hookline-dispatcher"}},
			{&corev1.Secret{}, client.ObjectKey{Namespace: namespace, Name: "hookline-ingest-tokens"}},
			{&rbacv1.ClusterRole{}, client.ObjectKey{Name: "hookline-manager"}},
			{&rbacv1.ClusterRoleBinding{}, client.ObjectKey{Name: "hookline-dispatcher"}},
			{&rbacv1.RoleBinding{}, client.ObjectKey{Namespace: tenantNS, Name: "hookline-secret-reader"}},
		} {
			err := k8s.Get(ctx, c.key, c.obj)
			g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "%T %s: %v", c.obj, c.key, err)
		}
	})
}

// TestHelmInstallWithoutCRDs installs a second release next to a CRD managed outside the chart
// (crds.enabled=false), on an external NATS cluster with several dispatchers and an existing
// tokens Secret: the release never touches the CRD, and NOTES describes the dispatchers'
// active-active mode.
func TestHelmInstallWithoutCRDs(t *testing.T) {
	ctx := context.Background()
	g := NewWithT(t)
	const ns, rel = "edge-system", "edge"
	createNamespace(t, ns, map[string]string{"pod-security.kubernetes.io/enforce": "restricted"})
	g.Expect(k8s.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "producer-tokens", Namespace: ns},
		StringData: map[string]string{"tokens.yaml": "tokens:\n- {name: p, token: e2e-token-0123456789abcdef, accounts: ['*']}\n"},
	})).To(Succeed())
	crd := &apiextensionsv1.CustomResourceDefinition{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Name: crdName}, crd)).To(Succeed())
	before := crd.ResourceVersion

	out, err := helm(t, "install", rel, chartDir, "-n", ns, "-f", valuesFile(t, `
crds: {enabled: false}
nats: {url: "nats://nats.nats.svc:4222", replicas: 3}
dispatcher: {replicas: 2}
ingestTokens: {existingSecret: producer-tokens}
`))
	g.Expect(err).NotTo(HaveOccurred(), out)
	t.Cleanup(func() {
		_, _ = helm(t, "uninstall", rel, "-n", ns, "--ignore-not-found")
		dropKeptPolicies(t, rel)
	})
	g.Expect(out).To(ContainSubstring("dispatcher.replicas is 2, active-active"))
	g.Expect(out).To(ContainSubstring("Webhooks that name Secrets (client certificates, signing keys) need secretAccess.namespaces"))

	manifest, err := helm(t, "get", "manifest", rel, "-n", ns)
	g.Expect(err).NotTo(HaveOccurred(), manifest)
	g.Expect(manifest).NotTo(ContainSubstring("kind: CustomResourceDefinition"))
	dep := &appsv1.Deployment{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "edge-hookline-dispatcher"}, dep)).To(Succeed())
	g.Expect(dep.Spec.Replicas).To(HaveValue(BeEquivalentTo(2)))
	pdb := &policyv1.PodDisruptionBudget{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "edge-hookline-dispatcher"}, pdb)).To(Succeed(), "the API server accepts the budget")
	g.Expect(dep.Spec.Template.Spec.Volumes).To(ContainElement(HaveField("Secret.SecretName", "producer-tokens")))
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "edge-hookline-manager"}, &appsv1.Deployment{})).To(Succeed())
	g.Expect(k8s.Get(ctx, client.ObjectKey{Name: "edge-hookline-manager"}, &rbacv1.ClusterRole{})).To(Succeed())
	err = k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "edge-hookline-dispatcher"}, &appsv1.StatefulSet{})
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "%v", err)

	out, err = helm(t, "uninstall", rel, "-n", ns)
	g.Expect(err).NotTo(HaveOccurred(), out)
	dropKeptPolicies(t, rel)
	g.Expect(k8s.Get(ctx, client.ObjectKey{Name: crdName}, crd)).To(Succeed())
	g.Expect(crd.ResourceVersion).To(Equal(before), "the release never touched the CRD")
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "producer-tokens"}, &corev1.Secret{})).To(Succeed(),
		"the existing Secret is not the release's")
}

// dropKeptPolicies deletes the admission policies that uninstalling release rel keeps
// (admissionPolicies.keep), as an operator removing hookline for good would with the CRD: the
// tests after it start without them.
func dropKeptPolicies(t *testing.T, rel string) {
	t.Helper()
	_, _ = kubectl(t, "delete", "validatingadmissionpolicybinding,validatingadmissionpolicy", "-l", "app.kubernetes.io/instance="+rel, "--ignore-not-found")
}

func createNamespace(t *testing.T, name string, l map[string]string) {
	t.Helper()
	err := k8s.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: l}})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// canI asks the API server whether user may verb resource, impersonating it with kubectl.
func canI(t *testing.T, user, verb, resource string, flags ...string) bool {
	t.Helper()
	out, err := kubectl(t, append([]string{"auth", "can-i", verb, resource, "--as", user}, flags...)...)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	switch answer := strings.TrimSpace(lines[len(lines)-1]); {
	case answer == "yes" && err == nil:
		return true
	case strings.HasPrefix(answer, "no"):
		return false
	default:
		t.Fatalf("kubectl auth can-i %s %s: %v\n%s", verb, resource, err, out)
		return false
	}
}

// TestHelmTemplateReadAPI: the delivery log's read API is served (flag, container port, Service
// port, NetworkPolicy rule) only over the ingest TLS certificate or when plain HTTP is allowed
// explicitly; otherwise the dispatcher is told to keep it off.
func TestHelmTemplateReadAPI(t *testing.T) {
	g := NewWithT(t)
	for _, c := range []struct {
		values     string
		served     bool
		plainFlag  bool
		policyPort bool
	}{
		{values: "", served: false},
		{values: "dispatcher: {tls: {existingSecret: ingest-tls}}\nnetworkPolicy: {enabled: true}\n", served: true, policyPort: true},
		{values: "dispatcher: {api: {allowPlainHTTP: true}}\n", served: true, plainFlag: true},
		{values: "dispatcher: {tls: {existingSecret: ingest-tls}, api: {enabled: false}}\nnetworkPolicy: {enabled: true}\n", served: false},
		{values: "dispatcher: {tls: {existingSecret: ingest-tls}}\nnetworkPolicy: {enabled: true, api: {from: []}}\n", served: true},
	} {
		objs := mustRender(t, inlineTokens+c.values)
		d := container(t, typed[appsv1.StatefulSet](t, objs, "StatefulSet", "hookline-dispatcher").Spec.Template.Spec, "dispatcher")
		var ports []string
		for _, p := range typed[corev1.Service](t, objs, "Service", "hookline-dispatcher").Spec.Ports {
			ports = append(ports, p.Name)
		}
		var containerPorts []string
		for _, p := range d.Ports {
			containerPorts = append(containerPorts, p.Name)
		}
		if c.served {
			g.Expect(d.Args).To(ContainElement("--api-bind-address=:8444"), c.values)
			g.Expect(ports).To(Equal([]string{"ingest", "api"}), c.values)
			g.Expect(containerPorts).To(ContainElement("api"), c.values)
		} else {
			g.Expect(d.Args).To(ContainElement("--api-bind-address=0"), c.values)
			g.Expect(ports).To(Equal([]string{"ingest"}), c.values)
			g.Expect(containerPorts).NotTo(ContainElement("api"), c.values)
		}
		g.Expect(d.Args).To(WithTransform(func(a []string) bool {
			for _, s := range a {
				if s == "--api-allow-plain-http" {
					return true
				}
			}
			return false
		}, Equal(c.plainFlag)), c.values)
		if np := find(objs, "NetworkPolicy", "hookline-dispatcher"); np != nil {
			rendered, _, _ := unstructured.NestedSlice(np.Object, "spec", "ingress")
			hasAPI := strings.Contains(fmt.Sprint(rendered), "port:api")
			g.Expect(hasAPI).To(Equal(c.policyPort), c.values)
		}
	}
}

// What the chart keeps on uninstall (the CRDs, with every tenant's Webhooks; the admission
// policies) it keeps from Argo CD too, which prunes what leaves its rendered output whatever
// helm.sh/resource-policy says (argoproj/argo-cd#17819): setting crds.enabled=false, as the README
// suggests when the CRD is managed elsewhere, deleted the CRD and every Webhook.
func TestHelmTemplateKeptObjectsAreKeptFromArgoCD(t *testing.T) {
	g := NewWithT(t)
	kept := map[string]string{"helm.sh/resource-policy": "keep", "argocd.argoproj.io/sync-options": "Prune=false,Delete=false"}
	kinds := []string{"CustomResourceDefinition", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}
	for values, want := range map[string]map[string][]string{
		"":                                   {"CustomResourceDefinition": {"keep"}, "ValidatingAdmissionPolicy": {"keep"}, "ValidatingAdmissionPolicyBinding": {"keep"}},
		"crds: {keep: false}\n":              {"CustomResourceDefinition": nil, "ValidatingAdmissionPolicy": {"keep"}, "ValidatingAdmissionPolicyBinding": {"keep"}},
		"admissionPolicies: {keep: false}\n": {"CustomResourceDefinition": {"keep"}, "ValidatingAdmissionPolicy": nil, "ValidatingAdmissionPolicyBinding": nil},
	} {
		objs := mustRender(t, inlineTokens+values)
		for _, kind := range kinds {
			list := ofKind(objs, kind)
			g.Expect(list).NotTo(BeEmpty(), "%s %q", kind, values)
			for _, o := range list {
				ann := map[string]string{}
				for k, v := range o.GetAnnotations() {
					if _, ok := kept[k]; ok {
						ann[k] = v
					}
				}
				if want[kind] == nil {
					g.Expect(ann).To(BeEmpty(), "%s %s with %q", kind, o.GetName(), values)
				} else {
					g.Expect(ann).To(Equal(kept), "%s %s with %q", kind, o.GetName(), values)
				}
			}
		}
	}
}

// With a metrics certificate of the operator's (manager/dispatcher.metrics.tls.existingSecret,
// e.g. cert-manager's), each component serves it (--metrics-cert-dir, mounted) and its
// ServiceMonitor verifies it against the Secret's ca.crt for the metrics Service's name; without
// one, the self-signed certificate is skipped, as before.
func TestHelmTemplateServiceMonitorsVerifyAGivenCertificate(t *testing.T) {
	g := NewWithT(t)
	tlsConfig := func(objs []*unstructured.Unstructured, name string) map[string]any {
		sm := find(objs, "ServiceMonitor", name)
		g.Expect(sm).NotTo(BeNil(), name)
		eps, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
		tc, _, _ := unstructured.NestedMap(eps[0].(map[string]any), "tlsConfig")
		return tc
	}
	objs := mustRender(t, inlineTokens+`
serviceMonitor: {enabled: true}
manager: {metrics: {secure: true, tls: {existingSecret: manager-metrics-cert}}}
dispatcher: {metrics: {secure: true, tls: {existingSecret: dispatcher-metrics-cert}}}
`)
	for name, secret := range map[string]string{"hookline-manager": "manager-metrics-cert", "hookline-dispatcher": "dispatcher-metrics-cert"} {
		g.Expect(tlsConfig(objs, name)).To(Equal(map[string]any{
			"ca":         map[string]any{"secret": map[string]any{"name": secret, "key": "ca.crt"}},
			"serverName": name + "-metrics.hookline-system.svc",
		}), name)
	}
	for _, c := range []struct {
		spec   corev1.PodSpec
		name   string
		secret string
	}{
		{typed[appsv1.Deployment](t, objs, "Deployment", "hookline-manager").Spec.Template.Spec, "manager", "manager-metrics-cert"},
		{typed[appsv1.StatefulSet](t, objs, "StatefulSet", "hookline-dispatcher").Spec.Template.Spec, "dispatcher", "dispatcher-metrics-cert"},
	} {
		ctr := container(t, c.spec, c.name)
		g.Expect(ctr.Args).To(ContainElement("--metrics-cert-dir=/etc/hookline/metrics-tls"), c.name)
		g.Expect(ctr.VolumeMounts).To(ContainElement(corev1.VolumeMount{Name: "metrics-tls", MountPath: "/etc/hookline/metrics-tls", ReadOnly: true}), c.name)
		g.Expect(c.spec.Volumes).To(ContainElement(And(HaveField("Name", "metrics-tls"), HaveField("Secret.SecretName", c.secret))), c.name)
	}

	objs = mustRender(t, inlineTokens+"serviceMonitor: {enabled: true}\n")
	for _, name := range []string{"hookline-manager", "hookline-dispatcher"} {
		g.Expect(tlsConfig(objs, name)).To(Equal(map[string]any{"insecureSkipVerify": true}), name)
	}
	m := container(t, typed[appsv1.Deployment](t, objs, "Deployment", "hookline-manager").Spec.Template.Spec, "manager")
	g.Expect(m.Args).NotTo(ContainElement(HavePrefix("--metrics-cert-dir")))
}
