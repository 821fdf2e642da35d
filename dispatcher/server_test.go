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
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/hookline/hookline/dispatcher/ingest"
	"github.com/hookline/hookline/internal/testsupport"
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
	// The read API, whose answers (401 here, as to a request without a token) read no body.
	api := httptest.NewServer(NewAPIServer("", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
	})).Handler)
	t.Cleanup(func() { api.CloseClientConnections(); api.Close() })
	for _, c := range []struct {
		srv *httptest.Server
		req string
	}{
		{srv, "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"},
		{srv, "GET /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"},
		{srv, "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"},
		{srv, "GET /elsewhere HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"},
		{api, "GET /v1/namespaces/ns/webhooks/wh/notifications HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"},
		{api, "POST /v1/namespaces/ns/webhooks/wh/notifications HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"},
	} {
		req := c.req
		c, err := net.Dial("tcp", c.srv.Listener.Addr().String())
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

// Both listeners anyone may reach, the ingest and the read API, hold at most so many connections
// from one address (ConnsPerSource, ReadAPIConnsPerSource): one more, and the oldest that carries
// no request is closed. The read API's was unbounded, and a client without a token held as many
// connections as it liked.
func TestIngestAndReadAPIListenersAreBounded(t *testing.T) {
	for name, c := range map[string]struct {
		serve     func(context.Context, *http.Server) error
		perSource int
	}{
		"ingest": {func(ctx context.Context, srv *http.Server) error { return ServeIngest(ctx, srv, "", "") }, ConnsPerSource},
		"read API": {func(ctx context.Context, srv *http.Server) error {
			return ServeAPI(ctx, srv, nil, "", "", true)
		}, ReadAPIConnsPerSource},
	} {
		serve := c.serve
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			addr := testsupport.FreeAddr(t)
			srv := NewAPIServer(addr, http.NotFoundHandler())
			srv.ReadHeaderTimeout = time.Hour // only the bound closes a connection here
			ctx, cancel := context.WithCancel(context.Background())
			served := make(chan error, 1)
			go func() { served <- serve(ctx, srv) }()
			t.Cleanup(func() {
				cancel()
				_ = srv.Close()
				if err := <-served; err != nil {
					t.Errorf("serving: %v", err)
				}
			})
			var first net.Conn
			g.Eventually(func() error {
				var err error
				first, err = net.Dial("tcp", addr)
				return err
			}).Should(Succeed())
			t.Cleanup(func() { _ = first.Close() })
			// The first is accepted before the rest: the oldest.
			g.Expect(first.SetReadDeadline(time.Now().Add(50 * time.Millisecond))).To(Succeed())
			_, err := first.Read(make([]byte, 1))
			g.Expect(err).To(MatchError(os.ErrDeadlineExceeded), "held open while within the bounds")
			for range c.perSource {
				c, err := net.Dial("tcp", addr)
				g.Expect(err).NotTo(HaveOccurred())
				t.Cleanup(func() { _ = c.Close() })
			}
			g.Expect(first.SetReadDeadline(time.Now().Add(10 * time.Second))).To(Succeed())
			_, err = first.Read(make([]byte, 1))
			g.Expect(err).To(MatchError(io.EOF), "closed for the connection past the bound")
		})
	}
}

// A producer's requests answered before their body was read to its end (a wrong content type, a
// body over the limit, the token's share of bytes in flight full) close their connection: kept,
// net/http read up to 256 KiB of a body the producer announced and never sent, for up to the
// five-minute read timeout, and a token's holder kept every connection of the listener busy that
// way, beyond its share, since such a request reserves nothing.
func TestAnswersBeforeTheBodyCloseTheConnection(t *testing.T) {
	g := NewWithT(t)
	token := strings.Repeat("t", 32)
	tokens, err := ingest.StaticTokens(ingest.TokenEntry{Name: "p", Token: token, Accounts: []string{"acc"}})
	g.Expect(err).NotTo(HaveOccurred())
	srv := httptest.NewServer(NewIngestServer("", &ingest.Handler{Tokens: tokens, MaxBody: 1024, MaxInFlight: 1024}, nil).Handler)
	t.Cleanup(func() { srv.CloseClientConnections(); srv.Close() })
	post := func(header string) net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", srv.Listener.Addr().String())
		g.Expect(err).NotTo(HaveOccurred())
		t.Cleanup(func() { _ = c.Close() })
		_, err = c.Write([]byte("POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token + "\r\n" + header + "\r\n"))
		g.Expect(err).NotTo(HaveOccurred())
		return c
	}
	closedAtOnce := func(c net.Conn, status int) {
		t.Helper()
		g.Expect(c.SetReadDeadline(time.Now().Add(5 * time.Second))).To(Succeed())
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		g.Expect(err).NotTo(HaveOccurred(), "answered at once")
		g.Expect(resp.StatusCode).To(Equal(status))
		g.Expect(resp.Close).To(BeTrue(), "Connection: close")
		_ = resp.Body.Close()
	}
	closedAtOnce(post("Content-Type: text/plain\r\nContent-Length: 1000\r\n"), http.StatusUnsupportedMediaType)
	closedAtOnce(post("Content-Type: application/json\r\nContent-Length: 100000\r\n"), http.StatusRequestEntityTooLarge)
	// One request holds the token's share while its body does not come; the next is refused.
	post("Content-Type: application/json\r\nContent-Length: 1000\r\n")
	g.Eventually(func() int {
		c := post("Content-Type: application/json\r\nContent-Length: 1000\r\n")
		// Not answered within it: this one's body is awaited (the first had not reserved yet).
		_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return 0
		}
		_ = resp.Body.Close()
		g.Expect(resp.Close).To(BeTrue(), "Connection: close (status %d)", resp.StatusCode)
		return resp.StatusCode
	}).WithTimeout(10*time.Second).Should(Equal(http.StatusServiceUnavailable), "the token's share is full")
}
