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

// Package boundedhttp serves the endpoints anyone on the pod network may reach before any token is
// checked (health probes, metrics) with bounded request headers, among a controller-runtime
// manager's HTTP servers.
// controller-runtime's own probe and metrics servers accept 1 MiB headers for 32 s each: a few
// hundred stalled connections took hundreds of MiB from a component every tenant shares.
package boundedhttp

import (
	"crypto/tls"
	"fmt"
	"maps"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	certutil "k8s.io/client-go/util/cert"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/hookline/hookline/internal/listenlimit"
)

// MaxHeaderBytes bounds a request's header on every listener of the components. Go's default,
// 1 MiB, lets each connection that never ends its header hold that much.
const MaxHeaderBytes = 64 << 10

// NewServer returns a server of h whose requests' headers are bounded in size and in time.
func NewServer(h http.Handler) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: time.Minute, IdleTimeout: time.Minute, MaxHeaderBytes: MaxHeaderBytes}
}

// The bounds of each listener's connections (listenlimit), per source address and in all: a
// Prometheus server keeps a connection or two, the kubelet opens one per probe. Anyone on the pod
// network reached these ports without a token: thousands of idle keep-alive connections, about
// 20 KB each, outgrew the components' memory limits. At a bound the oldest connection carrying
// no request gives way.
const (
	ConnsPerSource = 64
	Conns          = 256
)

// Listen binds addr now, within the listeners' bounds and with TLS when tc is set, for srv to
// serve (it is given the bounds' ConnState); nil when addr is "" or "0" (nothing served). name
// labels the bounds' metrics.
func Listen(name, addr string, tc *tls.Config, srv *http.Server) (net.Listener, error) {
	if addr == "" || addr == "0" {
		return nil, nil
	}
	raw, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	var l net.Listener = listenlimit.Bind(srv, raw, name, ConnsPerSource, Conns)
	if tc != nil {
		l = tls.NewListener(l, tc)
	}
	return l, nil
}

// ListenAndServe serves srv at srv.Addr as Listen binds it, until it is shut down.
func ListenAndServe(name string, srv *http.Server) error {
	l, err := Listen(name, srv.Addr, nil, srv)
	if err != nil || l == nil {
		return err
	}
	return srv.Serve(l)
}

// Add serves h at addr ("" or "0": nothing) among mgr's HTTP servers, as controller-runtime
// serves its own probes and metrics: bound now, so that an address in use fails the setup;
// started before the caches sync and stopped after everything else, so that the probes answer
// while a first list is slow and while the components drain.
func Add(mgr manager.Manager, name, addr string, h http.Handler, tc *tls.Config) error {
	srv := NewServer(h)
	l, err := Listen(name, addr, tc, srv)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if l == nil {
		return nil
	}
	grace := 10 * time.Second
	return mgr.Add(&manager.Server{Name: name, Server: srv, Listener: l, ShutdownTimeout: &grace})
}

// Probes holds the liveness and readiness checks served on /healthz and /readyz (each check also
// on /healthz/<name> and /readyz/<name>), as controller-runtime's manager serves them.
type Probes struct {
	mu            sync.Mutex
	health, ready map[string]healthz.Checker
}

// ServeProbes serves new Probes at addr ("" or "0": none) among mgr's HTTP servers (Add), with a
// ping as liveness and as the first condition of readiness; the caller adds its own conditions.
func ServeProbes(mgr manager.Manager, addr string) (*Probes, error) {
	p := &Probes{}
	_ = p.AddHealthzCheck("healthz", healthz.Ping)
	_ = p.AddReadyzCheck("readyz", healthz.Ping)
	return p, Add(mgr, "probes", addr, p.Handler(), nil)
}

// AddHealthzCheck adds a liveness check.
func (p *Probes) AddHealthzCheck(name string, c healthz.Checker) error {
	return p.add(&p.health, name, c)
}

// AddReadyzCheck adds a readiness check.
func (p *Probes) AddReadyzCheck(name string, c healthz.Checker) error {
	return p.add(&p.ready, name, c)
}

func (p *Probes) add(m *map[string]healthz.Checker, name string, c healthz.Checker) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if *m == nil {
		*m = map[string]healthz.Checker{}
	}
	if _, dup := (*m)[name]; dup {
		return fmt.Errorf("a check named %q exists already", name)
	}
	(*m)[name] = c
	return nil
}

// Handler serves the checks; those added later are served too.
func (p *Probes) Handler() http.Handler {
	mux := http.NewServeMux()
	for path, checks := range map[string]*map[string]healthz.Checker{"/healthz": &p.health, "/readyz": &p.ready} {
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p.mu.Lock()
			snapshot := maps.Clone(*checks)
			p.mu.Unlock()
			http.StripPrefix(path, &healthz.Handler{Checks: snapshot}).ServeHTTP(w, r)
		})
		mux.Handle(path, h)
		mux.Handle(path+"/", h)
	}
	return mux
}

// Metrics serves controller-runtime's registry, which holds every metric of the components.
func Metrics() http.Handler {
	return promhttp.HandlerFor(ctrlmetrics.Registry, promhttp.HandlerOpts{ErrorHandling: promhttp.HTTPErrorOnError})
}

// SelfSigned is a TLS configuration with a self-signed certificate for localhost, as
// controller-runtime's secure metrics serving without a certificate directory.
func SelfSigned() (*tls.Config, error) {
	cert, key, err := certutil.GenerateSelfSignedCertKeyWithFixtures("localhost", []net.IP{{127, 0, 0, 1}}, nil, "")
	if err != nil {
		return nil, fmt.Errorf("generating the metrics server's self-signed certificate: %w", err)
	}
	pair, err := tls.X509KeyPair(cert, key)
	if err != nil {
		return nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}, nil
}
