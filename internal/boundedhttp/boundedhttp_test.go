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
	"errors"
	"net/http"
	"strings"
	"testing"

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
	l, err := Listen("127.0.0.1:0", nil)
	g.Expect(err).NotTo(HaveOccurred())
	srv := NewServer(p.Handler())
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

	l, err = Listen("0", nil)
	g.Expect(l).To(BeNil(), "an address of 0 serves nothing")
	g.Expect(err).NotTo(HaveOccurred())
}
