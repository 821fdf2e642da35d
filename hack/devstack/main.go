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

// Command devstack is `make run`: it starts a local control plane (the kube-apiserver and etcd that
// hack/controlplane builds), installs the CRDs, binds a demo namespace to an account, starts the
// manager, a sample receiver that echoes the client id and prints what it gets, and applies a sample
// Webhook. Ctrl-C stops everything.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/internal/controlplane"
	"github.com/hookline/hookline/internal/echo"
	"github.com/hookline/hookline/internal/tenancy"
)

const (
	demoNamespace = "demo"
	demoAccount   = "demo-account"
	demoClientID  = "hookline-demo"
)

func main() {
	receiverAddr := flag.String("receiver-address", "127.0.0.1:0", "Address of the sample receiver.")
	managerMetrics := flag.String("manager-metrics-address", "127.0.0.1:18080", "Metrics address of the manager.")
	managerProbes := flag.String("manager-probe-address", "127.0.0.1:18081", "Health probe address of the manager.")
	flag.Parse()
	if err := run(*receiverAddr, *managerMetrics, *managerProbes); err != nil {
		fmt.Fprintln(os.Stderr, "make run:", err)
		os.Exit(1)
	}
}

func run(receiverAddr, managerMetrics, managerProbes string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	say("Starting the local control plane (kube-apiserver + etcd from bin/)")
	cp, err := controlplane.Start()
	if err != nil {
		return err
	}
	defer func() {
		say("Stopping the control plane")
		_ = cp.Stop()
	}()
	runDir := filepath.Join(cp.Root, ".run")
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		return err
	}
	kubeconfig := filepath.Join(runDir, "kubeconfig")
	if err := copyFile(cp.Kubeconfig, kubeconfig); err != nil {
		return err
	}
	c, err := client.New(cp.Config, client.Options{Scheme: cp.Scheme})
	if err != nil {
		return err
	}

	url, err := startReceiver(ctx, receiverAddr)
	if err != nil {
		return err
	}
	say("Sample receiver listening on %s (it echoes X-AdobeSign-ClientId and prints every request)", url)

	manager, err := startManager(ctx, cp.Root, kubeconfig, managerMetrics, managerProbes, runDir)
	if err != nil {
		return err
	}
	defer func() {
		_ = manager.Process.Signal(os.Interrupt)
		_ = manager.Wait()
	}()

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: demoNamespace, Labels: map[string]string{tenancy.AccountLabel: demoAccount}}}
	if err := c.Create(ctx, ns); err != nil {
		return fmt.Errorf("creating namespace %s: %w", demoNamespace, err)
	}
	wh := &hooklinev1.Webhook{
		ObjectMeta: metav1.ObjectMeta{Name: "demo-agreements", Namespace: demoNamespace},
		Spec: hooklinev1.WebhookSpec{
			URL:    url + "/hooks/agreements",
			Scope:  hooklinev1.ScopeAccount,
			Events: []hooklinev1.EventName{"AGREEMENT_ALL", "ENVELOPE_ALL"},
		},
	}
	if err := c.Create(ctx, wh); err != nil {
		return fmt.Errorf("creating sample webhook: %w", err)
	}
	say("Applied Webhook %s/%s; waiting for it to become Active", demoNamespace, wh.Name)
	if err := waitActive(ctx, c, wh); err != nil {
		return err
	}
	say("Webhook %s/%s is Active", demoNamespace, wh.Name)

	fmt.Printf(`
hookline is running.

  export KUBECONFIG=%s
  bin/kubectl get webhooks -A
  bin/kubectl apply -n %s -f config/samples/      # more webhooks (their example.com URLs fail verification)
  bin/kubectl describe webhook -n %s demo-agreements

Manager log: %s   metrics: http://%s/metrics
Press Ctrl-C to stop everything.
`, kubeconfig, demoNamespace, demoNamespace, filepath.Join(runDir, "manager.log"), managerMetrics)
	<-ctx.Done()
	say("Shutting down")
	return nil
}

func startManager(ctx context.Context, root, kubeconfig, metrics, probes, runDir string) (*exec.Cmd, error) {
	logFile, err := os.Create(filepath.Join(runDir, "manager.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(filepath.Join(root, "bin", "manager"),
		"--kubeconfig", kubeconfig,
		"--default-client-id", demoClientID,
		"--allow-http",
		"--metrics-bind-address", metrics,
		"--health-probe-bind-address", probes,
	)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own process group: Ctrl-C in the terminal reaches devstack, which then stops it in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting bin/manager (run 'make build'): %w", err)
	}
	say("Started manager (pid %d)", cmd.Process.Pid)
	return cmd, nil
}

// startReceiver serves a sample receiver that acknowledges like an Acrobat Sign client should.
func startReceiver(ctx context.Context, addr string) (string, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return "", err
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(echo.Header)
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		fmt.Printf("receiver: %s %s (client id %q) %s\n", r.Method, r.URL.Path, id, summarize(body))
		w.Header().Set(echo.Header, id)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{echo.BodyKey: id})
	})}
	go func() { _ = srv.Serve(l) }()
	go func() { <-ctx.Done(); _ = srv.Close() }()
	return "http://" + l.Addr().String(), nil
}

func summarize(body []byte) string {
	if len(body) == 0 {
		return ""
	}
	if len(body) > 300 {
		return fmt.Sprintf("%s… (%d bytes)", body[:300], len(body))
	}
	return string(body)
}

func waitActive(ctx context.Context, c client.Client, wh *hooklinev1.Webhook) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		got := &hooklinev1.Webhook{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(wh), got); err == nil {
			if got.Status.State == hooklinev1.ObservedActive {
				return nil
			}
			if ready := meta.FindStatusCondition(got.Status.Conditions, "Ready"); ready != nil && ready.Status == metav1.ConditionFalse {
				say("  Ready=False %s: %s", ready.Reason, ready.Message)
			}
		}
		select {
		case <-ctx.Done():
			return errors.New("sample webhook did not become Active within 60s; see .run/manager.log")
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o600)
}

func say(format string, args ...any) {
	fmt.Printf("==> "+format+"\n", args...)
}
