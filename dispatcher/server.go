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
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/certwatcher"

	"github.com/hookline/hookline/internal/boundedhttp"
	"github.com/hookline/hookline/internal/listenlimit"
	"github.com/hookline/hookline/internal/securemetrics"
)

// NewIngestServer returns the HTTP server of the ingest API: POST /v1/events, GET /healthz (it
// serves), and GET /readyz, which answers 503 while ready fails (nil: always ready), so that a
// Service sends events only to dispatchers that can store them. The reason is not given: anyone who
// reaches the ingest port can ask, and a check's error may quote a file (the tokens file); the
// manager's /readyz on the probes port names the failing check.
func NewIngestServer(addr string, events http.Handler, ready func(*http.Request) error) *http.Server {
	mux := http.NewServeMux()
	mux.Handle("/v1/events", events)
	// Probes and anything else are answered on a connection then closed: they read no body, and
	// a connection kept for them could be held busy without a token (see ingest.Handler).
	mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		http.NotFound(w, r)
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Connection", "close")
		_, _ = w.Write([]byte("ok"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		if ready != nil {
			if err := ready(r); err != nil {
				http.Error(w, "not ready", http.StatusServiceUnavailable)
				return
			}
		}
		_, _ = w.Write([]byte("ok"))
	})
	return &http.Server{
		Addr:              addr,
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		// Large events (25 MiB) over slow links need time; idle keep-alive connections do not.
		ReadTimeout:    5 * time.Minute,
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: IngestMaxHeaderBytes,
	}
}

// IngestMaxHeaderBytes bounds a request's header on the ingest API, which anyone reaching its port
// may send before a token is checked: a producer's header (a bearer token, a content type) is a
// few hundred bytes.
const IngestMaxHeaderBytes = 16 << 10

// The bounds of the ingest and the read API listeners (listenlimit): connections held open per
// source address and in all. Each costs its goroutine, buffers and, until its header is read, up to
// its server's MaxHeaderBytes: about 75 MB for all of the ingest's at most (16 KiB headers), 45 MB
// for the read API's (64 KiB). Producers keep a few connections alive each, many of them; the read
// API's callers are the console (one address, a few connections) and people's CLIs. One client
// (or pod) with the port, no token needed, opened thousands.
const (
	ConnsPerSource        = 512
	Conns                 = 2048
	ReadAPIConnsPerSource = 128
	ReadAPIConns          = 512
)

// listenBounded listens on srv.Addr (":http" when empty) unless ln is given, and bounds ln's
// connections for srv, which must serve the returned listener.
func listenBounded(name string, srv *http.Server, ln net.Listener, perSource, total int) (net.Listener, error) {
	if ln == nil {
		addr := srv.Addr
		if addr == "" {
			addr = ":http"
		}
		var err error
		if ln, err = net.Listen("tcp", addr); err != nil {
			return nil, err
		}
	}
	return listenlimit.Bind(srv, ln, name, perSource, total), nil
}

// MaxHeaderBytes bounds a request's header on the read API's listener (the ingest API's is
// IngestMaxHeaderBytes). Go's default, 1 MiB, is
// held per connection before any token is checked: five hundred connections trickling headers
// within the header timeout held half a GiB of a dispatcher every tenant shares. A producer's
// header (a bearer token, a content type) is a few hundred bytes.
const MaxHeaderBytes = boundedhttp.MaxHeaderBytes

// ServeIngest serves srv until it is shut down: over TLS when certFile and keyFile are set (a
// kubernetes.io/tls Secret's files), reloading them when they change so that a renewed
// certificate (cert-manager) is served without a restart; over plain HTTP otherwise.
func ServeIngest(ctx context.Context, srv *http.Server, certFile, keyFile string) error {
	ln, err := listenBounded("ingest", srv, nil, ConnsPerSource, Conns)
	if err != nil {
		return err
	}
	if certFile == "" && keyFile == "" {
		return ignoreClosed(srv.Serve(ln))
	}
	// HTTP/1.1 only, as the read API: a client without a token could hold HTTP/2 streams open
	// (a window of 0) and with them its connections busy.
	return serveTLS(ctx, srv, ln, certFile, keyFile, "ingest")
}

// NewAPIServer returns the HTTP server of the delivery log's read API (package logapi).
func NewAPIServer(addr string, api http.Handler) *http.Server {
	return &http.Server{
		Addr: addr,
		// A request announcing a body (only a test notification's POST has one, 4 KiB at most, read
		// after its caller is authorized) has its connection closed after the answer: unread, net/http
		// would read up to 256 KiB of it (for up to ReadTimeout) to keep the connection, which a
		// client without a token held busy that way, out of reach of the listener's bounds (see
		// ingest.Handler). A test notification costs a new connection.
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.ContentLength != 0 {
				w.Header().Set("Connection", "close")
			}
			api.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		// A body can be 10 MiB (the payload cap) to a slow client.
		WriteTimeout:   5 * time.Minute,
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: MaxHeaderBytes,
	}
}

// ErrAPINeedsTLS: the read API carries bearer tokens, so it is served in plain HTTP only when that
// is allowed explicitly.
var ErrAPINeedsTLS = errors.New("the read API needs --tls-cert-file and --tls-key-file (or --api-allow-plain-http, for local development only)")

// ServeAPI serves the read API's srv until it is shut down: over TLS with the ingest API's
// certificate (reloaded when it changes) and HTTP/1.1 only (see securemetrics.DisableHTTP2: the
// API answers unauthenticated clients too); in plain HTTP only when allowPlain and no certificate
// is given, and never silently. It serves on ln, or listens on srv.Addr when ln is nil (a caller
// that listens first learns of an address in use before it reports itself started), within the
// bounds ReadAPIConnsPerSource and ReadAPIConns: anyone reaching the port may open connections.
func ServeAPI(ctx context.Context, srv *http.Server, ln net.Listener, certFile, keyFile string, allowPlain bool) error {
	if certFile == "" && keyFile == "" && !allowPlain {
		return ErrAPINeedsTLS
	}
	ln, err := listenBounded("read-api", srv, ln, ReadAPIConnsPerSource, ReadAPIConns)
	if err != nil {
		return err
	}
	if certFile == "" && keyFile == "" {
		return ignoreClosed(srv.Serve(ln))
	}
	return serveTLS(ctx, srv, ln, certFile, keyFile, "read API")
}

// serveTLS serves srv on ln with the certificate and key files, reloading them
// when they change, offering HTTP/1.1 only (securemetrics.HTTP1Only).
func serveTLS(ctx context.Context, srv *http.Server, ln net.Listener, certFile, keyFile, what string) error {
	if certFile == "" || keyFile == "" {
		return fmt.Errorf("%s TLS needs both a certificate and a key file", what)
	}
	w, err := certwatcher.New(certFile, keyFile)
	if err != nil {
		return fmt.Errorf("%s TLS: %w", what, err)
	}
	go func() { _ = w.Start(ctx) }()
	securemetrics.HTTP1Only(srv, &tls.Config{GetCertificate: w.GetCertificate, MinVersion: tls.VersionTLS12})
	return ignoreClosed(srv.ServeTLS(ln, "", ""))
}

func ignoreClosed(err error) error {
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}
