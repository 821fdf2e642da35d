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

// Package securemetrics serves the metrics of the manager and the dispatcher alike, so that
// --metrics-secure means the same in both.
package securemetrics

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"time"

	"github.com/go-logr/logr"
	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/hookline/hookline/internal/boundedhttp"
	"github.com/hookline/hookline/internal/keyrate"
	"github.com/hookline/hookline/internal/kubeauth"
)

// Serve adds to mgr the metrics endpoint at addr ("0" or "" serves none): plain HTTP, or, when
// secure, HTTPS (a self-signed certificate) with each scrape's bearer token checked by TokenReview
// and SubjectAccessReview, and with HTTP/2 switched off: HTTP/2 Rapid Reset (CVE-2023-44487) and
// Stream Cancellation (CVE-2023-39325) let an unauthenticated client exhaust the server before any
// token is checked, and a scraper needs nothing but HTTP/1.1. The server bounds request headers
// (boundedhttp): controller-runtime's own metrics server accepted 1 MiB headers for 32 s before any
// token was checked. The manager's own metrics server must be off (metricsserver.Options with
// BindAddress "0").
//
// certDir, when set, holds the certificate (tls.crt, tls.key: a kubernetes.io/tls Secret mounted
// there, reloaded when it changes) served instead of the self-signed one, so that scrapers can
// verify it rather than skip verification.
func Serve(mgr manager.Manager, addr string, secure bool, certDir string) error {
	if addr == "" || addr == "0" {
		return nil
	}
	if certDir != "" && !secure {
		return errors.New("a metrics certificate (--metrics-cert-dir) needs --metrics-secure")
	}
	var get func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	if certDir != "" {
		w, err := certwatcher.New(filepath.Join(certDir, "tls.crt"), filepath.Join(certDir, "tls.key"))
		if err != nil {
			return fmt.Errorf("metrics certificate: %w", err)
		}
		if err := mgr.Add(w); err != nil {
			return err
		}
		get = w.GetCertificate
	}
	h, tc, err := handler(secure, mgr.GetConfig(), mgr.GetHTTPClient(), get)
	if err != nil {
		return err
	}
	return boundedhttp.Add(mgr, "metrics", addr, h, tc)
}

// Handler is what Serve serves, and its TLS configuration when secure (nil otherwise); tokens are
// reviewed with the API server of cfg through hc.
func Handler(secure bool, cfg *rest.Config, hc *http.Client) (http.Handler, *tls.Config, error) {
	return handler(secure, cfg, hc, nil)
}

// handler is Handler serving the certificates get returns, or, when get is nil, a self-signed one
// (generated only then: an RSA key pair at every start).
func handler(secure bool, cfg *rest.Config, hc *http.Client, get func(*tls.ClientHelloInfo) (*tls.Certificate, error)) (http.Handler, *tls.Config, error) {
	h := boundedhttp.Metrics()
	var tc *tls.Config
	if secure {
		// kubeauth does what controller-runtime's filters.WithAuthenticationAndAuthorization does,
		// without that package's dependency on k8s.io/apiserver: about a fifth of each binary's
		// packages (CEL, gRPC, OpenTelemetry), and 16 MB of a draining dispatcher's resident size in
		// the binary's pages alone (docs/performance.md).
		rv, err := kubeauth.NewForConfig(cfg, hc, ReviewTTL)
		if err != nil {
			return nil, nil, err
		}
		h = Filter(rv, ctrl.Log.WithName("metrics"), h)
		if get != nil {
			tc = &tls.Config{GetCertificate: get, MinVersion: tls.VersionTLS12}
		} else if tc, err = boundedhttp.SelfSigned(); err != nil {
			return nil, nil, err
		}
		DisableHTTP2(tc)
	}
	mux := http.NewServeMux()
	// GET (and HEAD) only, answered 405 otherwise before any review: the review's verb was the
	// request's method, so that every made-up method was a review the cache had not seen.
	mux.Handle("GET /metrics", h)
	return mux, tc, nil
}

// Off is the manager's own metrics server, switched off: Serve serves the metrics.
var Off = metricsserver.Options{BindAddress: "0"}

// DisableHTTP2 offers only HTTP/1.1 in the TLS handshake.
func DisableHTTP2(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }

// HTTP1Only makes srv serve TLS with tc offering HTTP/1.1 alone: ServeTLS would add "h2" to the
// offer again, and serve it to a client asking only for it.
func HTTP1Only(srv *http.Server, tc *tls.Config) {
	DisableHTTP2(tc)
	var p http.Protocols
	p.SetHTTP1(true)
	srv.Protocols = &p
	srv.TLSConfig = tc
}

// ReviewTTL is how long a scrape's token and access reviews are reused: a scraper every 15 s
// costs the API server two reviews a minute, and a revoked token or binding stops scraping within
// it.
const ReviewTTL = time.Minute

// NewTokenRate and NewTokenBurst bound, per client address, the scrapes whose token has not been
// reviewed lately (429 beyond): the reviewer's budget of new tokens (kubeauth.NewTokenRate) is
// shared, and anyone on the pod network could spend it alone with random tokens, so that a
// scraper's rotated token (a projected ServiceAccount token, new about hourly) was refused 503 for
// as long as the flood lasted. One address now spends at most a tenth of it.
const (
	NewTokenRate  = 5
	NewTokenBurst = 10
)

// Filter serves next only to a bearer token the API server authenticates (TokenReview) and
// authorizes for the request's verb on its path (SubjectAccessReview of a non-resource URL, such as
// get /metrics): 401 without such a token, 403 without the right, 500 when the API server cannot
// answer.
func Filter(rv *kubeauth.Reviewer, log logr.Logger, next http.Handler) http.Handler {
	addresses := keyrate.New(NewTokenRate, NewTokenBurst, time.Minute, 4096)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := kubeauth.BearerToken(r)
		if !ok {
			unauthorized(w)
			return
		}
		if !rv.Known(token) && !addresses.Get(kubeauth.ClientAddress(r)).Allow() {
			// Not logged: a flood of new tokens would make a line each.
			w.Header().Set("Retry-After", "1")
			http.Error(w, "Too many new tokens from this address; slow down", http.StatusTooManyRequests)
			return
		}
		user, err := rv.Authenticate(r.Context(), token)
		switch {
		case errors.Is(err, kubeauth.ErrUnauthenticated):
			unauthorized(w)
			return
		case errors.Is(err, kubeauth.ErrBusy):
			// Not logged: a flood of new tokens would make a line each.
			w.Header().Set("Retry-After", "1")
			http.Error(w, "Too many new tokens to review; retry shortly", http.StatusServiceUnavailable)
			return
		case err != nil:
			log.Error(err, "Reviewing a scrape's token")
			http.Error(w, "Authentication failed", http.StatusInternalServerError)
			return
		}
		// Only reading is served: the verb is get whatever the method (HEAD reads too), so that a
		// caller cannot make a review per method it makes up.
		allowed, err := rv.Allowed(r.Context(), user, kubeauth.Attributes{
			NonResource: &authorizationv1.NonResourceAttributes{Path: r.URL.Path, Verb: "get"}})
		if err != nil {
			log.Error(err, "Reviewing a scrape's access", "user", user.Username)
			http.Error(w, "Authorization failed", http.StatusInternalServerError)
			return
		}
		if !allowed {
			log.V(4).Info("Scrape denied", "user", user.Username, "path", r.URL.Path)
			http.Error(w, "Forbidden", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// unauthorized answers 401 with its challenge.
func unauthorized(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", kubeauth.Challenge)
	http.Error(w, "Unauthorized", http.StatusUnauthorized)
}
