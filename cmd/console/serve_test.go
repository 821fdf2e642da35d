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

package main

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/hookline/hookline/internal/testcerts"
)

// serveOnLoopback serves hs (a console server: newHTTPServer) with serve on 127.0.0.1, over TLS
// with tc when set, and returns its address.
func serveOnLoopback(t *testing.T, hs *http.Server, tc *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- serve(hs, ln, tc) }()
	t.Cleanup(func() {
		_ = hs.Close()
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	})
	return ln.Addr().String()
}

func ok(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }

// Over TLS the console offers HTTP/1.1 only, as every other listener of hookline: over HTTP/2 one
// connection, no session needed, held 250 streams with a window of 0, each its handler (and a
// page), out of reach of the bound on connections. A client offering h2 and HTTP/1.1 gets
// HTTP/1.1; one offering only h2 is refused.
func TestConsoleOverTLSSpeaksHTTP1Only(t *testing.T) {
	g := NewWithT(t)
	ca, err := testcerts.NewCA("console-ca")
	g.Expect(err).NotTo(HaveOccurred())
	leaf, err := ca.Server()
	g.Expect(err).NotTo(HaveOccurred())
	addr := serveOnLoopback(t, newHTTPServer("", http.HandlerFunc(ok)),
		&tls.Config{Certificates: []tls.Certificate{leaf.TLS}, MinVersion: tls.VersionTLS12})

	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool(), NextProtos: []string{"h2", "http/1.1"}})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(conn.ConnectionState().NegotiatedProtocol).To(Equal("http/1.1"))
	_ = conn.Close()
	_, err = tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool(), NextProtos: []string{"h2"}})
	g.Expect(err).To(MatchError(ContainSubstring("no application protocol")), "a client offering only h2 is refused")

	// A browser's request (Go's client offers h2 too) is served over HTTP/1.1.
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}, ForceAttemptHTTP2: true}}
	resp, err := c.Get("https://" + addr + "/healthz")
	g.Expect(err).NotTo(HaveOccurred())
	_ = resp.Body.Close()
	g.Expect(resp.StatusCode).To(Equal(http.StatusOK))
	g.Expect(resp.ProtoMajor).To(Equal(1))
}

// The console's listener holds at most connsPerSource connections from one address: one more
// from 127.0.0.1 closes the oldest that carries no request. Anyone reaching the port can open
// connections and trickle headers; without the bound they held one each, as many as they opened.
// The server's header timeout is an hour here, so only the bound can close it.
func TestConsoleListenerBoundsConnections(t *testing.T) {
	g := NewWithT(t)
	hs := newHTTPServer("", http.HandlerFunc(ok))
	hs.ReadHeaderTimeout, hs.IdleTimeout = time.Hour, time.Hour
	addr := serveOnLoopback(t, hs, nil)

	dial := func() net.Conn {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		g.Expect(err).NotTo(HaveOccurred())
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	// Accepted before the others (in the order they connect); no request on it, whose end would
	// make it idle again at a moment the test does not know.
	oldest := dial()
	br := bufio.NewReader(oldest)
	_ = oldest.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	_, err := br.ReadByte()
	g.Expect(err).To(MatchError(os.ErrDeadlineExceeded), "held open within the bounds")

	var last net.Conn
	for range connsPerSource {
		last = dial()
	}
	_ = oldest.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = br.ReadByte()
	var ne net.Error
	g.Expect(errors.As(err, &ne) && ne.Timeout()).To(BeFalse(), "the oldest idle connection was closed by the server, not left to time out")
	g.Expect(err).To(HaveOccurred())

	// The newest is held: its request is answered.
	_, err = io.WriteString(last, "GET /healthz HTTP/1.1\r\nHost: console\r\n\r\n")
	g.Expect(err).NotTo(HaveOccurred())
	_ = last.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(last), nil)
	g.Expect(err).NotTo(HaveOccurred())
	_ = resp.Body.Close()
	g.Expect(resp.StatusCode).To(Equal(http.StatusOK))
}
