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

package dispatcher

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/hookline/hookline/dispatcher/ingest"
)

// The ingest port's /readyz says whether to send events, never why not: anyone on the network can
// ask, and a failing check may quote the tokens file.
func TestIngestReadyzWithholdsTheReason(t *testing.T) {
	g := NewWithT(t)
	var failing atomic.Bool
	failing.Store(true)
	ready := func(*http.Request) error {
		if failing.Load() {
			return errors.New(`tokens file: yaml: cannot unmarshal !!str "s3cret-token-0123456789"`)
		}
		return nil
	}
	srv := httptest.NewServer(NewIngestServer("", http.NotFoundHandler(), ready).Handler)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/readyz")
	g.Expect(err).NotTo(HaveOccurred())
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	g.Expect(resp.StatusCode).To(Equal(http.StatusServiceUnavailable))
	g.Expect(string(body)).NotTo(ContainSubstring("s3cret"))
	failing.Store(false)
	resp, err = http.Get(srv.URL + "/readyz")
	g.Expect(err).NotTo(HaveOccurred())
	_ = resp.Body.Close()
	g.Expect(resp.StatusCode).To(Equal(http.StatusOK))
}

// Anyone who reaches the ingest or read API port may send a header before any token is checked:
// it is bounded at MaxHeaderBytes, IngestMaxHeaderBytes on the ingest API (Go's default, 1 MiB a
// connection, let a few hundred slow connections hold the memory of the dispatcher every tenant
// shares).
func TestListenersBoundTheHeader(t *testing.T) {
	for name, c := range map[string]struct {
		s     *http.Server
		bound int
	}{
		"ingest":   {NewIngestServer("", http.NotFoundHandler(), nil), IngestMaxHeaderBytes},
		"read API": {NewAPIServer("", http.NotFoundHandler()), MaxHeaderBytes},
	} {
		s := c.s
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			srv := httptest.NewUnstartedServer(s.Handler)
			srv.Config = s
			srv.Start()
			defer srv.Close()
			send := func(headerBytes int) int {
				req, err := http.NewRequest(http.MethodGet, srv.URL+"/v1/events", nil)
				g.Expect(err).NotTo(HaveOccurred())
				req.Header.Set("X-Padding", strings.Repeat("x", headerBytes))
				resp, err := srv.Client().Do(req)
				g.Expect(err).NotTo(HaveOccurred())
				_ = resp.Body.Close()
				return resp.StatusCode
			}
			g.Expect(send(c.bound/2)).To(Equal(http.StatusNotFound), "a header well within the bound reaches the handler")
			g.Expect(send(c.bound + 8<<10)).To(Equal(http.StatusRequestHeaderFieldsTooLarge))
		})
	}
}

// A client without a token that announces a body and never sends it is answered at once and its
// connection closed: net/http read up to 256 KiB of an unread body (for up to the read timeout,
// five minutes) before answering, to keep the connection, which counted as carrying a request all
// that while and so was out of reach of the listener's bounds. Probes' connections are closed too.
func TestUnauthenticatedAnswersCloseTheConnection(t *testing.T) {
	g := NewWithT(t)
	tokens, err := ingest.StaticTokens(ingest.TokenEntry{Name: "p", Token: strings.Repeat("t", 32), Accounts: []string{"acc"}})
	g.Expect(err).NotTo(HaveOccurred())
	srv := httptest.NewServer(NewIngestServer("", &ingest.Handler{Tokens: tokens}, nil).Handler)
	t.Cleanup(func() { srv.CloseClientConnections(); srv.Close() }) // a failure leaves one reading
	for _, req := range []string{
		"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n",
		"GET /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n",
		"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n",
		"GET /elsewhere HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n",
	} {
		c, err := net.Dial("tcp", srv.Listener.Addr().String())
		g.Expect(err).NotTo(HaveOccurred())
		_, err = c.Write([]byte(req))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(c.SetReadDeadline(time.Now().Add(5 * time.Second))).To(Succeed())
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		g.Expect(err).NotTo(HaveOccurred(), "answered at once: %q", req)
		g.Expect(resp.Close).To(BeTrue(), "Connection: close for %q", req)
		_ = resp.Body.Close()
		_ = c.Close()
	}
}
