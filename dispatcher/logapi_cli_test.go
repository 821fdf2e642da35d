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

package dispatcher_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/hookline/hookline/internal/cli"
	"github.com/hookline/hookline/internal/deliveries"
)

// kubeconfigWithToken writes a kubeconfig for the test API server whose user authenticates with
// token, its context's namespace ns.
func kubeconfigWithToken(t *testing.T, token, ns string) string {
	t.Helper()
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["test"] = &clientcmdapi.Cluster{Server: cp.Config.Host, CertificateAuthorityData: cp.Config.CAData}
	cfg.AuthInfos["tenant"] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "tenant", Namespace: ns}
	cfg.CurrentContext = "test"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// runCLI runs the hookline CLI with env as its whole environment.
func runCLI(env map[string]string, pageSize int, args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	app := &cli.App{Name: "hookline", Stdout: &out, Stderr: &errOut, Getenv: func(k string) string { return env[k] }, PageSize: pageSize}
	code = app.Run(context.Background(), args)
	return code, out.String(), errOut.String()
}

// `hookline deliveries` and `hookline attempts` against a dispatcher's read API, with the token of
// the kubeconfig's user: the table, the structured output, the pages followed up to --limit, the
// receiver's answer shown escaped, and the API's own message when it refuses.
func TestCLIReadsTheDeliveryLog(t *testing.T) {
	g := NewWithT(t)
	ns, other := newNamespace(t, "acc-logcli", ""), newNamespace(t, "acc-logcli-other", "")
	rc := newReceiver(t)
	s := startStack(t, stackOptions{namespaces: []string{ns, other}, mutate: logOn})
	s.activeWebhook(t, ns, "orders", accountSpec(rc.URL))
	api := s.serveAPI(t)
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	g.Expect(os.WriteFile(caFile, api.ca.PEM(), 0o600)).To(Succeed())

	cs, err := kubernetes.NewForConfig(cp.Config)
	g.Expect(err).NotTo(HaveOccurred())
	installDeliveryRoles(t)
	dana := serviceAccountToken(t, cs, ns, "dana")
	bind(t, ns, "hookline-deliveries-viewer", ns, "dana")
	eve := serviceAccountToken(t, cs, other, "eve")

	for i := range 3 {
		s.mustPost(t, event(fmt.Sprintf("evt-cli-%d", i), "acc-logcli"))
	}
	g.Eventually(func() int { return len(rc.got()) }).WithTimeout(10 * time.Second).Should(Equal(3))
	// The receiver now fails with an answer full of markup and a terminal escape sequence.
	rc.set(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
		_, _ = w.Write([]byte("<h1>down</h1>\x1b[31mred\nline2"))
	})
	s.mustPost(t, event("evt-cli-fail", "acc-logcli"))
	g.Eventually(func() int { return len(rc.got()) }).WithTimeout(10 * time.Second).Should(BeNumerically(">=", 4))

	env := map[string]string{"KUBECONFIG": kubeconfigWithToken(t, dana, ns), "HOOKLINE_DISPATCHER_URL": api.base}
	var list deliveries.NotificationList
	api.eventually(g, func(g Gomega) {
		code, out, errOut := runCLI(env, 0, "deliveries", "orders", "--dispatcher-ca", caFile, "-o", "json")
		g.Expect(code).To(Equal(cli.ExitOK), errOut)
		list = deliveries.NotificationList{}
		g.Expect(json.Unmarshal([]byte(out), &list)).To(Succeed())
		g.Expect(list.Items).To(HaveLen(4))
		g.Expect(list.Items[0].State).To(Equal(deliveries.StateRetrying))
	}).WithTimeout(10 * time.Second).Should(Succeed())
	failing := list.Items[0]
	g.Expect(failing.EventID).To(Equal("evt-cli-fail"))

	// The table: one row per notification, newest first.
	code, out, errOut := runCLI(env, 0, "deliveries", "-n", ns, "orders", "--dispatcher-ca", caFile)
	g.Expect(code).To(Equal(cli.ExitOK), errOut)
	rows := strings.Split(strings.TrimSpace(out), "\n")
	g.Expect(rows).To(HaveLen(5))
	g.Expect(rows[0]).To(MatchRegexp(`^NOTIFICATION ID\s+EVENT\s+STATE\s+ATTEMPTS\s+LAST REASON/STATUS\s+UPDATED$`))
	g.Expect(rows[1]).To(MatchRegexp(`^%s\s+AGREEMENT_ACTION_COMPLETED\s+retrying\s+\d+\s+\S+ 502\s+`, failing.NotificationID))
	g.Expect(rows[4]).To(MatchRegexp(`^%s\s+AGREEMENT_ACTION_COMPLETED\s+delivered\s+1\s+Delivered 200\s+`, list.Items[3].NotificationID))

	// Pages of one notification, followed up to --limit; a state filter.
	code, out, errOut = runCLI(env, 1, "deliveries", "orders", "--dispatcher-ca", caFile, "--limit", "3", "-o", "json")
	g.Expect(code).To(Equal(cli.ExitOK), errOut)
	var paged deliveries.NotificationList
	g.Expect(json.Unmarshal([]byte(out), &paged)).To(Succeed())
	g.Expect(paged.Items).To(Equal(list.Items[:3]))
	g.Expect(errOut).To(ContainSubstring("More notifications match"))
	code, out, _ = runCLI(env, 0, "deliveries", "orders", "--dispatcher-ca", caFile, "--state", "delivered", "--since", "1h", "-o", "yaml")
	g.Expect(code).To(Equal(cli.ExitOK))
	g.Expect(strings.Count(out, "state: delivered")).To(Equal(3))

	// Every attempt of the failing notification, the receiver's answer quoted and escaped.
	code, out, errOut = runCLI(env, 0, "attempts", "orders", failing.NotificationID, "--dispatcher-ca", caFile)
	g.Expect(code).To(Equal(cli.ExitOK), errOut)
	g.Expect(out).To(MatchRegexp(`(?m)^Notification:\s+%s$`, failing.NotificationID))
	g.Expect(out).To(MatchRegexp(`(?m)^#\s+AT\s+STATE\s+STATUS\s+DURATION\s+REASON\s+RESPONSE$`))
	g.Expect(out).To(MatchRegexp(`(?m)^1\s+\S+\s+retrying\s+502\s+\S+\s+NonSuccessStatus: receiver answered 502\s+<h1>down</h1>\\u001b\[31mred\\nline2$`))
	g.Expect(out).NotTo(ContainSubstring("\x1b"), "no escape sequence reaches the terminal")
	g.Expect(strings.Count(out, "line2")).To(BeNumerically(">=", 1))
	for _, line := range strings.Split(out, "\n") {
		g.Expect(line).NotTo(HavePrefix("line2"), "the answer's newline does not break the row")
	}

	// Refusals carry the API's message.
	code, _, errOut = runCLI(env, 0, "attempts", "orders", "nosuchnotification", "--dispatcher-ca", caFile)
	g.Expect(code).To(Equal(cli.ExitFailure))
	g.Expect(errOut).To(ContainSubstring("notification nosuchnotification of webhook " + ns + "/orders not found (the read API answered 404 NotFound)"))
	eveEnv := map[string]string{"KUBECONFIG": kubeconfigWithToken(t, eve, other), "HOOKLINE_DISPATCHER_URL": api.base}
	code, _, errOut = runCLI(eveEnv, 0, "deliveries", ns+"/orders", "--dispatcher-ca", caFile)
	g.Expect(code).To(Equal(cli.ExitFailure))
	g.Expect(errOut).To(ContainSubstring("webhook " + ns + "/orders not found (the read API answered 404 NotFound)"))
	code, _, errOut = runCLI(eveEnv, 0, "deliveries", ns+"/orders", "--dispatcher-ca", caFile, "--token", "garbage")
	g.Expect(code).To(Equal(cli.ExitFailure))
	g.Expect(errOut).To(ContainSubstring("the bearer token is not valid (the read API answered 401 Unauthorized)"))
	// --token overrides the kubeconfig's user.
	code, _, errOut = runCLI(eveEnv, 0, "deliveries", ns+"/orders", "--dispatcher-ca", caFile, "--token", dana)
	g.Expect(code).To(Equal(cli.ExitOK), errOut)

	// No token in clear text to another host; the server's certificate is checked.
	code, _, errOut = runCLI(env, 0, "deliveries", "orders", "--dispatcher-url", "http://192.0.2.1:8444")
	g.Expect(code).To(Equal(cli.ExitUsage))
	g.Expect(errOut).To(ContainSubstring("refusing to send a bearer token over plain HTTP to 192.0.2.1"))
	code, _, errOut = runCLI(env, 0, "deliveries", "orders")
	g.Expect(code).To(Equal(cli.ExitFailure))
	g.Expect(errOut).To(ContainSubstring("certificate"))
	code, _, errOut = runCLI(map[string]string{"KUBECONFIG": env["KUBECONFIG"]}, 0, "deliveries", "orders")
	g.Expect(code).To(Equal(cli.ExitUsage))
	g.Expect(errOut).To(ContainSubstring("--dispatcher-url or $HOOKLINE_DISPATCHER_URL"))
}
