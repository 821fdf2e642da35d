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
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/internal/echo"
	"github.com/hookline/hookline/internal/tenancy"
	"github.com/hookline/hookline/internal/testsupport"
)

const e2eToken = "e2e-token-0123456789abcdef"

// localArgs turns a container's arguments from the rendered chart into a local process's: the
// chart's settings stay, what only makes sense in a pod (addresses, paths, leader election) is
// replaced.
func localArgs(c corev1.Container, replace map[string]string) []string {
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	expand := regexp.MustCompile(`\$\(([A-Z_]+)\)`)
	var out []string
	for _, a := range append(append([]string{}, c.Command[1:]...), c.Args...) {
		a = expand.ReplaceAllStringFunc(a, func(m string) string { return env[m[2:len(m)-1]] })
		name, _, _ := strings.Cut(a, "=")
		if _, drop := replace[name]; drop || name == "--leader-elect" || name == "--metrics-secure" {
			continue
		}
		out = append(out, a)
	}
	for k, v := range replace {
		if v != "" {
			out = append(out, k+"="+v)
		}
	}
	return out
}

func startProcess(t *testing.T, name string, args ...string) {
	t.Helper()
	log := filepath.Join(t.TempDir(), name+".log")
	f, err := os.Create(log)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(env.Bin, name), args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting bin/%s (make build): %v", name, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(log)
			t.Logf("%s log:\n%s", name, b)
		}
	})
}

// TestLocalStackWithTheChartsSettings runs bin/manager and bin/dispatcher as processes with the
// arguments the chart renders, applies config/samples with kubectl (URLs pointed at a local
// receiver), emits the samples with the CLI, and checks delivery, printer columns, and that a
// server-side re-apply changes nothing and causes no status churn.
func TestLocalStackWithTheChartsSettings(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	objs := mustRender(t, `clientId: hookline-e2e
allowHTTP: true
ssrf: {allowedCIDRs: ["127.0.0.0/8", "::1/128"]}
ingestTokens:
  tokens:
  - {name: e2e, token: `+e2eToken+`, accounts: ["acc-e2e"]}
`)
	mgr := typed[appsv1.Deployment](t, objs, "Deployment", "hookline-manager")
	disp := typed[appsv1.StatefulSet](t, objs, "StatefulSet", "hookline-dispatcher")

	var mu sync.Mutex
	posts := map[string]int{}
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			mu.Lock()
			posts[r.URL.Path]++
			mu.Unlock()
		}
		w.Header().Set(echo.Header, r.Header.Get(echo.Header))
	}))
	t.Cleanup(rc.Close)

	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens.yaml")
	g.Expect(os.WriteFile(tokens, []byte("tokens:\n- {name: e2e, token: "+e2eToken+", accounts: [acc-e2e]}\n"), 0o600)).To(Succeed())
	ingest := testsupport.FreeAddr(t)
	// The chart mounts the attestation key from its Secret; here both read the same file.
	key, err := testsupport.AttestationKeyFile(dir)
	g.Expect(err).NotTo(HaveOccurred())
	startProcess(t, "manager", localArgs(container(t, mgr.Spec.Template.Spec, "manager"), map[string]string{
		"--kubeconfig": env.Kubeconfig, "--metrics-bind-address": "0", "--health-probe-bind-address": "0",
		"--attestation-key-file": key,
	})...)
	startProcess(t, "dispatcher", localArgs(container(t, disp.Spec.Template.Spec, "dispatcher"), map[string]string{
		"--kubeconfig": env.Kubeconfig, "--metrics-bind-address": "0", "--health-probe-bind-address": "0",
		"--listen-address": ingest, "--data-dir": filepath.Join(dir, "data"), "--tokens-file": tokens,
		"--attestation-key-file": key, "--status-interval": "500ms",
	})...)

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-stack-", Labels: map[string]string{tenancy.AccountLabel: "acc-e2e"}}}
	g.Expect(k8s.Create(ctx, ns)).To(Succeed())
	samples := filepath.Join(dir, "samples")
	g.Expect(os.MkdirAll(samples, 0o755)).To(Succeed())
	files, err := filepath.Glob(filepath.Join(env.Root, "config", "samples", "*.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	for _, f := range files {
		b, err := os.ReadFile(f)
		g.Expect(err).NotTo(HaveOccurred())
		b = []byte(strings.ReplaceAll(string(b), "https://receiver.example.com", rc.URL))
		g.Expect(os.WriteFile(filepath.Join(samples, filepath.Base(f)), b, 0o600)).To(Succeed())
	}
	out, err := kubectl(t, "apply", "--server-side", "-n", ns.Name, "-f", samples)
	g.Expect(err).NotTo(HaveOccurred(), out)

	// Every sample reaches its desired state: ACTIVE ones Active, the INACTIVE one Inactive and Ready.
	list := &hooklinev1.WebhookList{}
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.List(ctx, list, client.InNamespace(ns.Name))).To(Succeed())
		g.Expect(list.Items).To(HaveLen(len(files)))
		for _, wh := range list.Items {
			want := hooklinev1.ObservedActive
			if wh.Spec.State == hooklinev1.StateInactive {
				want = hooklinev1.ObservedInactive
			}
			g.Expect(wh.Status.State).To(Equal(want), wh.Name)
		}
	}).WithTimeout(30 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())

	// Events emitted with the CLI reach the receiver: the agreement samples go to the ACCOUNT webhook.
	g.Eventually(func(g Gomega) {
		cmd := exec.Command(filepath.Join(env.Bin, "hookline"), "emit", "--all-samples", "--account", "acc-e2e",
			"--url", "http://"+ingest, "--token", e2eToken)
		out, err := cmd.CombinedOutput()
		g.Expect(err).NotTo(HaveOccurred(), string(out))
		mu.Lock()
		defer mu.Unlock()
		g.Expect(posts["/hooks/agreements"]).To(BeNumerically(">=", 2), string(out))
	}).WithTimeout(30 * time.Second).WithPolling(time.Second).Should(Succeed())

	out, err = kubectl(t, "get", "webhooks", "-n", ns.Name)
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Expect(strings.Fields(strings.SplitN(out, "\n", 2)[0])).To(Equal([]string{"NAME", "STATE", "SCOPE", "READY", "LAST-SUCCESS", "AGE"}))

	// Once settled, a server-side re-apply of the same manifests changes nothing, and nothing keeps
	// rewriting the objects (no reconcile loop between manager, dispatcher and kubectl).
	versions := func(g Gomega) string {
		g.Expect(k8s.List(ctx, list, client.InNamespace(ns.Name))).To(Succeed())
		var v []string
		for _, wh := range list.Items {
			v = append(v, wh.Name+"@"+wh.ResourceVersion)
		}
		return strings.Join(v, ",")
	}
	var settled string
	g.Eventually(func(g Gomega) {
		settled = versions(g)
		// Three status intervals without a write.
		g.Consistently(versions).WithTimeout(1500 * time.Millisecond).WithPolling(250 * time.Millisecond).Should(Equal(settled))
	}).WithTimeout(60*time.Second).Should(Succeed(), "webhooks keep changing while nothing happens")
	out, err = kubectl(t, "apply", "--server-side", "-n", ns.Name, "-f", samples)
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Expect(strings.Count(out, "serverside-applied")).To(Equal(len(files)), out)
	g.Consistently(versions).WithTimeout(3*time.Second).WithPolling(500*time.Millisecond).Should(Equal(settled),
		fmt.Sprintf("a re-apply of unchanged manifests must not change the objects (%s)", out))
}
