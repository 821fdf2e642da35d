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

package browser

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/internal/testsupport"
)

// Issue 12's figures, measured against bin/console as a process (the release binary, its own RSS):
// the list of 1,000 webhooks renders in under 500 ms of server time, and the console stays under
// 100 MB of RSS.
const (
	listWebhooks   = 1000
	maxListLatency = 500 * time.Millisecond
	maxConsoleRSS  = 100 << 20
)

func TestListOfAThousandWebhooks(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	bin := filepath.Join(env.Bin, "console")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s: run make build first (make test-browser does)", bin)
	}
	tn := newTenant(t, "acc-console-scale")
	start := time.Now()
	for i := range listWebhooks {
		wh := &hooklinev1.Webhook{ObjectMeta: metav1.ObjectMeta{Namespace: tn.ns, Name: fmt.Sprintf("wh-%04d", i)},
			Spec: hooklinev1.WebhookSpec{URL: fmt.Sprintf("https://receiver-%d.example/hooks", i), State: hooklinev1.StateInactive,
				Scope: hooklinev1.ScopeAccount, Events: []hooklinev1.EventName{"AGREEMENT_ALL", "WIDGET_ALL", "MEGASIGN_ALL"}}}
		g.Expect(k8s.Create(ctx, wh)).To(Succeed())
	}
	t.Logf("created %d webhooks in %s", listWebhooks, time.Since(start).Round(time.Millisecond))

	addr := testsupport.FreeAddr(t)
	cmd := exec.Command(bin, "--kubeconfig", env.Kubeconfig, "--listen-address", addr, "--insecure-dev-http")
	logf, err := os.Create(filepath.Join(t.TempDir(), "console.log"))
	g.Expect(err).NotTo(HaveOccurred())
	cmd.Stdout, cmd.Stderr = logf, logf
	g.Expect(cmd.Start()).To(Succeed())
	t.Cleanup(func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait() })
	base := "http://" + addr
	g.Eventually(func() error {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			_ = resp.Body.Close()
		}
		return err
	}).WithTimeout(10 * time.Second).Should(Succeed())

	hc := signInHTTP(t, base, tn.token)
	var times []time.Duration
	for range 10 {
		begin := time.Now()
		resp, err := hc.Get(base + "/webhooks")
		g.Expect(err).NotTo(HaveOccurred())
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		times = append(times, time.Since(begin))
		g.Expect(resp.StatusCode).To(Equal(http.StatusOK))
		g.Expect(strings.Count(string(body), "<tr data-webhook=")).To(Equal(listWebhooks))
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	rss := processRSS(t, cmd.Process.Pid)
	t.Logf("list of %d webhooks: median %s, max %s (10 requests); console RSS high-water mark %d MiB",
		listWebhooks, times[len(times)/2].Round(time.Millisecond), times[len(times)-1].Round(time.Millisecond), rss>>20)
	g.Expect(times[len(times)/2]).To(BeNumerically("<", maxListLatency))
	g.Expect(rss).To(BeNumerically("<", maxConsoleRSS))
}

// signInHTTP signs in as a browser would, without one: the sign-in page's nonce cookie and field,
// then the token; it returns a client holding the session cookie.
func signInHTTP(t *testing.T, base, token string) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	resp, err := hc.Get(base + "/signin")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	m := regexp.MustCompile(`name="nonce" value="([^"]+)"`).FindSubmatch(page)
	if m == nil {
		t.Fatal("no nonce on the sign-in page")
	}
	resp, err = hc.PostForm(base+"/signin", url.Values{"nonce": {string(m[1])}, "token": {token}})
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/webhooks" {
		t.Fatalf("sign-in: %d at %s", resp.StatusCode, resp.Request.URL.Path)
	}
	return hc
}

// processRSS returns the resident set's high-water mark (VmHWM) of a process, in bytes.
func processRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`VmHWM:\s+(\d+) kB`).FindSubmatch(b)
	if m == nil {
		t.Fatal("no VmHWM in /proc/PID/status")
	}
	kb, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return kb << 10
}
