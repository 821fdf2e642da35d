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
	"net/http"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
)

// NewIngestServer returns the HTTP server of the ingest API: POST /v1/events and GET /healthz.
func NewIngestServer(addr string, events http.Handler) *http.Server {
	mux := http.NewServeMux()
	mux.Handle("/v1/events", events)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	return &http.Server{
		Addr:              addr,
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		// Large events (25 MiB) over slow links need time; idle keep-alive connections do not.
		ReadTimeout: 5 * time.Minute,
		IdleTimeout: 2 * time.Minute,
	}
}

// ServeIngest serves srv until it is shut down: over TLS when certFile and keyFile are set (a
// kubernetes.io/tls Secret's files), reloading them when they change so that a renewed
// certificate (cert-manager) is served without a restart; over plain HTTP otherwise.
func ServeIngest(ctx context.Context, srv *http.Server, certFile, keyFile string) error {
	var err error
	switch {
	case certFile == "" && keyFile == "":
		err = srv.ListenAndServe()
	case certFile == "" || keyFile == "":
		return errors.New("ingest TLS needs both a certificate and a key file")
	default:
		w, werr := certwatcher.New(certFile, keyFile)
		if werr != nil {
			return fmt.Errorf("ingest TLS: %w", werr)
		}
		go func() { _ = w.Start(ctx) }()
		srv.TLSConfig = &tls.Config{GetCertificate: w.GetCertificate, MinVersion: tls.VersionTLS12}
		err = srv.ListenAndServeTLS("", "")
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}
