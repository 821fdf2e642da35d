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

package boundedhttp

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
)

// The probes answer as controller-runtime's manager did (each check also on its own path; a
// failing readiness check fails /readyz, not /healthz), checks added after the start included,
// and a header beyond MaxHeaderBytes gets 431.
func TestProbesServeTheirChecksWithBoundedHeaders(t *testing.T) {
	g := NewWithT(t)
	p := &Probes{}
	g.Expect(p.AddHealthzCheck("healthz", healthz.Ping)).To(Succeed())
	g.Expect(p.AddReadyzCheck("readyz", healthz.Ping)).To(Succeed())
	g.Expect(p.AddReadyzCheck("readyz", healthz.Ping)).NotTo(Succeed(), "one name once")
	srv := NewServer(p.Handler())
	l, err := Listen("probes", "127.0.0.1:0", nil, srv)
	g.Expect(err).NotTo(HaveOccurred())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	defer func() { _ = srv.Close(); g.Expect(<-done).To(MatchError(http.ErrServerClosed)) }()
	addr := l.Addr().String()

	get := func(path string, headerBytes int) int {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
		req.Header.Set("X-Padding", strings.Repeat("x", headerBytes))
		resp, err := http.DefaultClient.Do(req)
		g.Expect(err).NotTo(HaveOccurred())
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	g.Expect(get("/healthz", 0)).To(Equal(http.StatusOK))
	g.Expect(get("/readyz", 0)).To(Equal(http.StatusOK))
	g.Expect(p.AddReadyzCheck("nats", func(*http.Request) error { return errors.New("unreachable") })).To(Succeed())
	g.Expect(get("/readyz", 0)).To(Equal(http.StatusInternalServerError), "a check added after the start counts")
	g.Expect(get("/readyz/nats", 0)).To(Equal(http.StatusInternalServerError))
	g.Expect(get("/readyz/readyz", 0)).To(Equal(http.StatusOK))
	g.Expect(get("/healthz", 0)).To(Equal(http.StatusOK), "readiness is not liveness")
	g.Expect(get("/healthz", MaxHeaderBytes+8<<10)).To(Equal(http.StatusRequestHeaderFieldsTooLarge))

	l, err = Listen("probes", "0", nil, NewServer(p.Handler()))
	g.Expect(l).To(BeNil(), "an address of 0 serves nothing")
	g.Expect(err).NotTo(HaveOccurred())
}

// The probe and metrics listeners hold at most ConnsPerSource connections from one address: one
// more, and the oldest carrying no request is closed, over TLS too. Anyone on the pod network
// held as many idle connections as it liked, each about 20 KB, past the components' memory limits.
func TestListenersBoundTheirConnections(t *testing.T) {
	tc, err := SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]*tls.Config{"plain": nil, "TLS": tc} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			srv := NewServer(http.NotFoundHandler())
			srv.ReadHeaderTimeout, srv.ReadTimeout = time.Hour, time.Hour // only the bound closes one here
			l, err := Listen("test", "127.0.0.1:0", tc, srv)
			g.Expect(err).NotTo(HaveOccurred())
			done := make(chan error, 1)
			go func() { done <- srv.Serve(l) }()
			t.Cleanup(func() { _ = srv.Close(); g.Expect(<-done).To(MatchError(http.ErrServerClosed)) })
			dial := func() net.Conn {
				c, err := net.Dial("tcp", l.Addr().String())
				g.Expect(err).NotTo(HaveOccurred())
				t.Cleanup(func() { _ = c.Close() })
				return c
			}
			first := dial()
			g.Expect(first.SetReadDeadline(time.Now().Add(50 * time.Millisecond))).To(Succeed())
			_, err = first.Read(make([]byte, 1))
			g.Expect(err).To(MatchError(os.ErrDeadlineExceeded), "held open within the bounds")
			for range ConnsPerSource {
				dial()
			}
			g.Expect(first.SetReadDeadline(time.Now().Add(10 * time.Second))).To(Succeed())
			_, err = first.Read(make([]byte, 1))
			g.Expect(err).To(MatchError(io.EOF), "closed for the connection past the bound")
		})
	}
}
