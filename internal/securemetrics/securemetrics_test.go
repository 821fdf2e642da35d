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

package securemetrics

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"

	"k8s.io/client-go/rest"

	"github.com/hookline/hookline/internal/boundedhttp"
)

// startEndpoint serves what Serve would serve, on 127.0.0.1, and returns its address.
func startEndpoint(t *testing.T, secure bool) string {
	t.Helper()
	h, tc, err := Handler(secure, &rest.Config{Host: "https://127.0.0.1:1"}, http.DefaultClient)
	if err != nil {
		t.Fatal(err)
	}
	srv := boundedhttp.NewServer(h)
	l, err := boundedhttp.Listen("metrics", "127.0.0.1:0", tc, srv)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return l.Addr().String()
}

// A client that prefers HTTP/2 gets HTTP/1.1 from the secure metrics endpoint.
func TestSecureMetricsRefuseHTTP2(t *testing.T) {
	addr := startEndpoint(t, true)
	conn, err := tls.Dial("tcp", addr, &tls.Config{
		InsecureSkipVerify: true, // a self-signed certificate; only the negotiated protocol matters
		NextProtos:         []string{"h2", "http/1.1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	if p := conn.ConnectionState().NegotiatedProtocol; p != "http/1.1" {
		t.Fatalf("negotiated %q, want http/1.1 only", p)
	}
}

// A request header beyond 64 KiB is refused before any token is checked (controller-runtime's
// metrics server took 1 MiB), on the plain and the secure endpoint alike.
func TestMetricsBoundTheHeader(t *testing.T) {
	for _, secure := range []bool{false, true} {
		t.Run(fmt.Sprint("secure=", secure), func(t *testing.T) {
			addr := startEndpoint(t, secure)
			var conn interface {
				Write([]byte) (int, error)
				Read([]byte) (int, error)
				Close() error
			}
			var err error
			if secure {
				conn, err = tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // self-signed on purpose
			} else {
				conn, err = net.Dial("tcp", addr)
			}
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = conn.Close() }()
			if _, err := fmt.Fprintf(conn, "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Pad: %s\r\n\r\n", strings.Repeat("x", 72<<10)); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
				t.Fatalf("status %d, want 431", resp.StatusCode)
			}
		})
	}
}
