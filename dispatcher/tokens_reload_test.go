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
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/hookline/hookline/internal/testsupport"
)

// The revocation attack on the real dispatcher binary (issue 10, item 9): an operator removes a
// leaked producer token, but the new tokens file does not parse. The dispatcher used to keep the
// last good set, so the leaked token kept posting events. Now it fails closed: every token is
// answered 503 (retry later, nothing is lost), /readyz fails and the metrics say why, until a
// valid file is read; then the remaining tokens work and the leaked one never does again.
func TestTokensFileThatFailsToReloadFailsClosed(t *testing.T) {
	g := NewWithT(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "dispatcher")
	build := exec.Command("go", "build", "-o", bin, "./cmd/dispatcher")
	build.Dir = cp.Root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the dispatcher: %v\n%s", err, out)
	}
	const leaked, kept = "leaked-token-0123456789abcdef", "kept-token-0123456789abcdef"
	tokens := filepath.Join(dir, "tokens.yaml")
	write := func(content string) {
		// Through a rename, as the kubelet updates a mounted Secret.
		tmp := tokens + ".new"
		g.Expect(os.WriteFile(tmp, []byte(content), 0o600)).To(Succeed())
		g.Expect(os.Rename(tmp, tokens)).To(Succeed())
	}
	write("tokens:\n- {name: leaked, token: " + leaked + ", accounts: [acc-rev]}\n- {name: kept, token: " + kept + ", accounts: ['*']}\n")

	probes, metrics := testsupport.FreeAddr(t), testsupport.FreeAddr(t)
	p := startDispatcherProc(t, bin, tokens, filepath.Join(dir, "data"), filepath.Join(dir, "dispatcher.log"),
		"--tokens-reload-interval", "100ms", "--health-probe-bind-address", probes, "--metrics-bind-address", metrics)
	t.Cleanup(func() { p.kill(t, syscall.SIGTERM, 20*time.Second) })

	post := func(token, id string) (int, string) {
		req, err := http.NewRequest(http.MethodPost, "http://"+p.addr+"/v1/events", bytes.NewReader(event(id, "acc-rev")))
		g.Expect(err).NotTo(HaveOccurred())
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		g.Expect(err).NotTo(HaveOccurred())
		defer resp.Body.Close()
		var e struct{ Code string }
		_ = json.NewDecoder(resp.Body).Decode(&e)
		return resp.StatusCode, e.Code
	}
	ready := func() int {
		resp, err := http.Get("http://" + probes + "/readyz")
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	metric := func(name string) string {
		resp, err := http.Get("http://" + metrics + "/metrics")
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
				return v
			}
		}
		return ""
	}

	g.Eventually(ready).WithTimeout(30 * time.Second).Should(Equal(http.StatusOK))
	g.Expect(post(leaked, "rev-1")).To(Equal(http.StatusAccepted))
	g.Expect(metric("hookline_ingest_tokens_file_valid")).To(Equal("1"))

	// The revocation, with a YAML error.
	write("tokens:\n- {name: kept, token: " + kept + ", accounts: ['*']\n")
	g.Eventually(func() int { code, _ := post(leaked, "rev-2"); return code }).WithTimeout(10*time.Second).
		Should(Equal(http.StatusServiceUnavailable), "the leaked token still posts events after its revocation failed")
	for _, tok := range []string{leaked, kept} {
		code, errCode := post(tok, "rev-3")
		g.Expect(code).To(Equal(http.StatusServiceUnavailable))
		g.Expect(errCode).To(Equal("TOKENS_UNAVAILABLE"))
	}
	g.Eventually(ready).WithTimeout(10*time.Second).Should(BeNumerically(">=", 500), "/readyz fails (controller-runtime answers 500)")
	g.Expect(metric("hookline_ingest_tokens_file_valid")).To(Equal("0"))
	g.Expect(metric("hookline_ingest_tokens_reload_errors_total")).NotTo(BeElementOf("", "0"))

	// Fixed.
	write("tokens:\n- {name: kept, token: " + kept + ", accounts: ['*']}\n")
	g.Eventually(func() int { code, _ := post(kept, "rev-4"); return code }).WithTimeout(10 * time.Second).Should(Equal(http.StatusAccepted))
	code, errCode := post(leaked, "rev-5")
	g.Expect(code).To(Equal(http.StatusUnauthorized))
	g.Expect(errCode).To(Equal("INVALID_ACCESS_TOKEN"))
	g.Eventually(ready).WithTimeout(10 * time.Second).Should(Equal(http.StatusOK))
	g.Expect(metric("hookline_ingest_tokens_file_valid")).To(Equal("1"))
}
