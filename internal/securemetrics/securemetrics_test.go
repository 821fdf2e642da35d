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
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/client-go/rest"
	certutil "k8s.io/client-go/util/cert"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"

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

// With a certificate of the operator's (--metrics-cert-dir: a cert-manager Secret), the secure
// endpoint serves it, so that a scraper verifies it against its CA instead of skipping
// verification (the chart's ServiceMonitors did); still HTTP/1.1 only.
func TestSecureMetricsServeTheGivenCertificate(t *testing.T) {
	certPEM, keyPEM, err := certutil.GenerateSelfSignedCertKeyWithFixtures("hookline-metrics.hookline-system.svc", []net.IP{{127, 0, 0, 1}}, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, b := range map[string][]byte{"tls.crt": certPEM, "tls.key": keyPEM} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	w, err := certwatcher.New(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(certPEM)
	verify := &tls.Config{RootCAs: roots, ServerName: "hookline-metrics.hookline-system.svc", NextProtos: []string{"h2", "http/1.1"}}
	for _, given := range []bool{false, true} {
		var get func(*tls.ClientHelloInfo) (*tls.Certificate, error)
		if given {
			get = w.GetCertificate
		}
		h, tc, err := handler(true, &rest.Config{Host: "https://127.0.0.1:1"}, http.DefaultClient, get)
		if err != nil {
			t.Fatal(err)
		}
		srv := boundedhttp.NewServer(h)
		l, err := boundedhttp.Listen("metrics", "127.0.0.1:0", tc, srv)
		if err != nil {
			t.Fatal(err)
		}
		go func() { _ = srv.Serve(l) }()
		conn, err := tls.Dial("tcp", l.Addr().String(), verify)
		switch {
		case given && err != nil:
			t.Fatalf("the given certificate does not verify: %v", err)
		case !given && err == nil:
			t.Fatal("the self-signed certificate verified against another CA")
		case given:
			if p := conn.ConnectionState().NegotiatedProtocol; p != "http/1.1" {
				t.Errorf("negotiated %q, want http/1.1 only", p)
			}
			_ = conn.Close()
		}
		_ = srv.Close()
	}
	if err := Serve(nil, ":0", false, dir); err == nil || !strings.Contains(err.Error(), "--metrics-secure") {
		t.Fatalf("a certificate without --metrics-secure: %v", err)
	}
}
