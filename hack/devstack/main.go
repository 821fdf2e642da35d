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
// manager, the dispatcher (embedded JetStream, data under .run/), a sample receiver that echoes the
// client id and prints what it gets, applies a sample Webhook and emits a sample event of every
// family, and the web console with a sign-in token for the demo namespace's administrator. Ctrl-C
// stops everything.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
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

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/internal/attest"
	"github.com/hookline/hookline/internal/controlplane"
	"github.com/hookline/hookline/internal/echo"
	"github.com/hookline/hookline/internal/samples"
	"github.com/hookline/hookline/internal/tenancy"
)

// localReceivers are the ranges the sample receiver listens in; the SSRF guard blocks them
// unless allowed.
const localReceivers = "127.0.0.0/8,::1/128"

const (
	demoNamespace = "demo"
	demoAccount   = "demo-account"
	demoClientID  = "hookline-demo"
	// demoViewer is the ServiceAccount whose token reads the delivery log.
	demoViewer = "demo-viewer"
)

func main() {
	receiverAddr := flag.String("receiver-address", "127.0.0.1:0", "Address of the sample receiver.")
	managerMetrics := flag.String("manager-metrics-address", "127.0.0.1:18080", "Metrics address of the manager.")
	managerProbes := flag.String("manager-probe-address", "127.0.0.1:18081", "Health probe address of the manager.")
	ingestAddr := flag.String("ingest-address", "127.0.0.1:8090", "Address of the dispatcher's ingest API.")
	apiAddr := flag.String("api-address", "127.0.0.1:18444", "Address of the dispatcher's read API (loopback only: plain HTTP).")
	consoleAddr := flag.String("console-address", "127.0.0.1:8443", "Address of the web console (plain HTTP, loopback only).")
	flag.Parse()
	if err := run(*receiverAddr, *managerMetrics, *managerProbes, *ingestAddr, *apiAddr, *consoleAddr); err != nil {
		fmt.Fprintln(os.Stderr, "make run:", err)
		os.Exit(1)
	}
}

func run(receiverAddr, managerMetrics, managerProbes, ingestAddr, apiAddr, consoleAddr string) error {
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

	// The admission policies of a real install: only binding administrators (here the admin of
	// .run/kubeconfig) relabel namespaces, and only those who may read a Secret name it in a Webhook.
	say("Installing the admission policies (config/policies)")
	if out, err := exec.CommandContext(ctx, filepath.Join(cp.Root, "bin", "kubectl"), "--kubeconfig", kubeconfig,
		"apply", "-k", filepath.Join(cp.Root, "config", "policies")).CombinedOutput(); err != nil {
		return fmt.Errorf("installing config/policies: %w: %s", err, out)
	}

	url, err := startReceiver(ctx, receiverAddr)
	if err != nil {
		return err
	}
	say("Sample receiver listening on %s (it echoes X-AdobeSign-ClientId and prints every request)", url)

	// The manager attests its verifications with this key and the dispatcher checks them with it;
	// made once, kept in .run/ like the tokens.
	attestationKey := filepath.Join(runDir, "attestation.key")
	if err := attest.EnsureKeyFile(attestationKey); err != nil {
		return err
	}
	manager, err := startProcess(cp.Root, "manager", runDir,
		"--kubeconfig", kubeconfig,
		"--attestation-key-file", attestationKey,
		"--default-client-id", demoClientID,
		"--allow-http",
		"--allowed-cidrs", localReceivers,
		"--metrics-bind-address", managerMetrics,
		"--health-probe-bind-address", managerProbes,
	)
	if err != nil {
		return err
	}
	defer stopProcess(manager)

	token, tokensFile, err := writeTokens(runDir)
	if err != nil {
		return err
	}
	dispatcher, err := startProcess(cp.Root, "dispatcher", runDir,
		"--kubeconfig", kubeconfig,
		"--tokens-file", tokensFile,
		"--attestation-key-file", attestationKey,
		"--data-dir", filepath.Join(runDir, "data"),
		"--listen-address", ingestAddr,
		"--metrics-bind-address", "127.0.0.1:18091",
		"--health-probe-bind-address", "127.0.0.1:18092",
		"--default-client-id", demoClientID,
		"--allow-http",
		"--allowed-cidrs", localReceivers,
		"--status-interval", "2s",
		// The read API on loopback only, in plain HTTP: the CLI sends tokens in clear text to a
		// loopback address and nowhere else.
		"--api-bind-address", apiAddr,
		"--api-allow-plain-http",
	)
	if err != nil {
		return err
	}
	defer stopProcess(dispatcher)

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: demoNamespace, Labels: map[string]string{tenancy.AccountLabel: demoAccount}}}
	if err := c.Create(ctx, ns); err != nil {
		return fmt.Errorf("creating namespace %s: %w", demoNamespace, err)
	}
	// A tenant who may read the demo namespace's delivery log: the admin of .run/kubeconfig
	// authenticates with a client certificate, which the read API does not take.
	say("Installing the tenants' ClusterRoles (config/rbac/deliveries_roles.yaml) and ServiceAccount %s/%s", demoNamespace, demoViewer)
	if out, err := exec.CommandContext(ctx, filepath.Join(cp.Root, "bin", "kubectl"), "--kubeconfig", kubeconfig,
		"apply", "-f", filepath.Join(cp.Root, "config", "rbac", "deliveries_roles.yaml")).CombinedOutput(); err != nil {
		return fmt.Errorf("installing config/rbac/deliveries_roles.yaml: %w: %s", err, out)
	}
	if err := c.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: demoViewer, Namespace: demoNamespace}}); err != nil {
		return fmt.Errorf("creating ServiceAccount %s: %w", demoViewer, err)
	}
	if err := c.Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: demoViewer, Namespace: demoNamespace},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "hookline-deliveries-viewer"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: demoViewer, Namespace: demoNamespace}},
	}); err != nil {
		return fmt.Errorf("binding ServiceAccount %s: %w", demoViewer, err)
	}
	wh := &hooklinev1.Webhook{
		ObjectMeta: metav1.ObjectMeta{Name: "demo-agreements", Namespace: demoNamespace},
		Spec: hooklinev1.WebhookSpec{
			URL:    url + "/hooks/agreements",
			Scope:  hooklinev1.ScopeAccount,
			Events: []hooklinev1.EventName{"AGREEMENT_ALL", "WIDGET_ALL", "MEGASIGN_ALL", "LIBRARY_DOCUMENT_ALL", "ENVELOPE_ALL"},
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
	ingestURL := "http://" + ingestAddr + "/v1/events"
	if err := emitSamples(ctx, ingestURL, token); err != nil {
		return err
	}

	consoleToken, err := demoAdminToken(ctx, cp.Config, c)
	if err != nil {
		return err
	}
	consoleTokenFile := filepath.Join(runDir, "console-token")
	if err := os.WriteFile(consoleTokenFile, []byte(consoleToken+"\n"), 0o600); err != nil {
		return err
	}
	console, err := startProcess(cp.Root, "console", runDir,
		"--kubeconfig", kubeconfig,
		"--listen-address", consoleAddr,
		"--insecure-dev-http",
		"--namespaces", demoNamespace,
		"--dispatcher-api-url", "http://"+apiAddr,
	)
	if err != nil {
		return err
	}
	defer stopProcess(console)

	fmt.Printf("\nWeb console: http://%s/\n  sign in as the %s namespace's administrator with the token in %s:\n  %s\n",
		consoleAddr, demoNamespace, consoleTokenFile, consoleToken)
	fmt.Printf(`
hookline is running.

  export KUBECONFIG=%s
  bin/kubectl get webhooks -A
  bin/kubectl apply -n %s -f config/samples/      # more webhooks (their example.com URLs fail verification)
  bin/kubectl describe webhook -n %s demo-agreements

Emit more events (the token is in %s):
  bin/hookline emit --url %s --token %s --all-samples --account %s
  bin/hookline status -n demo demo-agreements --kubeconfig .run/kubeconfig

Read the delivery log (as ServiceAccount %[11]s/%[12]s):
  export HOOKLINE_DISPATCHER_URL=http://%[13]s
  bin/hookline deliveries -n demo demo-agreements --kubeconfig .run/kubeconfig \
    --token "$(bin/kubectl --kubeconfig .run/kubeconfig create token -n %[11]s %[12]s)"

Logs: %[8]s, %[9]s   metrics: http://%[10]s/metrics, http://127.0.0.1:18091/metrics
Press Ctrl-C to stop everything.
`, kubeconfig, demoNamespace, demoNamespace, tokensFile, ingestURL, token, demoAccount,
		filepath.Join(runDir, "manager.log"), filepath.Join(runDir, "dispatcher.log"), managerMetrics,
		demoNamespace, demoViewer, apiAddr)
	<-ctx.Done()
	say("Shutting down")
	return nil
}

// demoAdminToken gives the demo namespace an administrator, a ServiceAccount that may manage the
// namespace's Webhooks and read its Events and nothing else, and returns an 8-hour token of it for
// signing in to the console.
func demoAdminToken(ctx context.Context, cfg *rest.Config, c client.Client) (string, error) {
	rules := []rbacv1.PolicyRule{
		{APIGroups: []string{hooklinev1.GroupVersion.Group}, Resources: []string{"webhooks"}, Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"}},
		{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"get", "list", "watch"}},
	}
	for _, obj := range []client.Object{
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: demoNamespace, Name: "demo-admin"}},
		&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: demoNamespace, Name: "webhook-admin"}, Rules: rules},
		&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: demoNamespace, Name: "demo-admin"},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "webhook-admin"},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: demoNamespace, Name: "demo-admin"}}},
		// The delivery log and Replay / Recover on the console's webhook page (config/rbac/deliveries_roles.yaml,
		// installed above).
		&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: demoNamespace, Name: "demo-admin-replays"},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "hookline-replay-editor"},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: demoNamespace, Name: "demo-admin"}}},
	} {
		if err := c.Create(ctx, obj); err != nil {
			return "", fmt.Errorf("creating the console's demo user: %w", err)
		}
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return "", err
	}
	expiry := int64(8 * 3600)
	tr, err := cs.CoreV1().ServiceAccounts(demoNamespace).CreateToken(ctx, "demo-admin",
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &expiry}}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("requesting a token for the console's demo user: %w", err)
	}
	return tr.Status.Token, nil
}

// startProcess starts bin/<name> with its output in <runDir>/<name>.log.
func startProcess(root, name, runDir string, args ...string) (*exec.Cmd, error) {
	logFile, err := os.Create(filepath.Join(runDir, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(filepath.Join(root, "bin", name), args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own process group: Ctrl-C in the terminal reaches devstack, which then stops it in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting bin/%s (run 'make build'): %w", name, err)
	}
	say("Started %s (pid %d, log %s)", name, cmd.Process.Pid, logFile.Name())
	return cmd, nil
}

func stopProcess(cmd *exec.Cmd) {
	_ = cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// writeTokens creates the dispatcher's tokens file with a fresh random token for the demo account.
func writeTokens(runDir string) (token, path string, err error) {
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		return "", "", err
	}
	token = "demo-" + hex.EncodeToString(b)
	path = filepath.Join(runDir, "tokens.yaml")
	content := fmt.Sprintf("tokens:\n- name: demo\n  token: %s\n  accounts: [%s]\n", token, demoAccount)
	return token, path, os.WriteFile(path, []byte(content), 0o600)
}

// emitSamples posts a sample event of every family for the demo account. The first is retried
// until the dispatcher routes it: the dispatcher starts routing to a webhook moments after the
// manager marks it Active.
func emitSamples(ctx context.Context, url, token string) error {
	for i, name := range samples.Names() {
		raw, err := samples.Event(name)
		if err != nil {
			return err
		}
		var ev map[string]any
		if err := json.Unmarshal(raw, &ev); err != nil {
			return err
		}
		ev["accountId"] = demoAccount
		deadline := time.Now().Add(30 * time.Second)
		for attempt := 0; ; attempt++ {
			ev["id"] = fmt.Sprintf("demo-%s-%d-%d", name, time.Now().Unix(), attempt)
			body, _ := json.Marshal(ev)
			n, err := post(ctx, url, token, body)
			if err == nil && (n > 0 || i > 0) {
				say("Emitted sample event %s (%s)", name, ev["event"])
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("emitting sample %s: %v (notifications queued: %d); see .run/dispatcher.log", name, err, n)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(300 * time.Millisecond):
			}
		}
	}
	return nil
}

// post sends one event and returns how many notifications it queued.
func post(ctx context.Context, url, token string, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	var receipt struct {
		Notifications int    `json:"notifications"`
		Message       string `json:"message"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&receipt)
	if resp.StatusCode != http.StatusAccepted {
		return 0, fmt.Errorf("ingest answered %d: %s", resp.StatusCode, receipt.Message)
	}
	return receipt.Notifications, nil
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
