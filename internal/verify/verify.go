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

// Package verify performs Acrobat Sign's intent verification: a GET to the webhook URL carrying
// X-AdobeSign-ClientId that passes only on a 2xx answer echoing the same id. Redirects are not
// followed, the whole exchange is bounded by a timeout, and connections go only to addresses the
// SSRF guard (internal/netguard) allows, checked on every address dialed.
package verify

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"syscall"
	"time"

	"github.com/hookline/hookline/internal/echo"
	"github.com/hookline/hookline/internal/netguard"
	"github.com/hookline/hookline/internal/safetext"
)

// Reasons a verification ends with; they double as condition reasons (CamelCase).
const (
	ReasonVerified              = "Verified"
	ReasonInvalidURL            = "InvalidURL"
	ReasonInsecureURLNotAllowed = "InsecureURLNotAllowed"
	ReasonTimeout               = "EndpointTimeout"
	ReasonConnectionFailed      = "ConnectionFailed"
	ReasonTLSError              = "TLSError"
	ReasonRedirected            = "Redirected"
	ReasonNonSuccessStatus      = "NonSuccessStatus"
	ReasonClientIDNotEchoed     = "ClientIdNotEchoed"
	ReasonClientIDMismatch      = "ClientIdMismatch"
	// ReasonBlockedAddress: the endpoint's address is in a range the SSRF guard refuses (loopback,
	// private, link-local, cloud metadata, --blocked-cidrs) and not in --allowed-cidrs.
	ReasonBlockedAddress = "BlockedAddress"
)

// Result is the outcome of one verification.
type Result struct {
	// OK is true when the endpoint confirmed its intent.
	OK bool
	// Reason is one of the Reason constants.
	Reason string
	// Message explains the outcome for a person; it never contains secrets. Text taken from the
	// endpoint's answer is cleaned and clipped (package safetext): it ends up in status and Events.
	Message string
	// Permanent is true when retrying cannot help until the spec or the operator's settings change.
	Permanent bool
}

// Config tunes a Verifier.
type Config struct {
	// Timeout bounds the whole exchange (connect, TLS, request, response). Acrobat Sign uses 5 s.
	Timeout time.Duration
	// AllowHTTP permits plain-http URLs (for in-cluster receivers).
	AllowHTTP bool
	// RootCAs are the trusted server CAs; nil means the system pool.
	RootCAs *x509.CertPool
	// Guard decides which addresses may be connected to; nil means netguard.Default(), which
	// refuses loopback, private, link-local and metadata addresses.
	Guard *netguard.Guard
}

// Verifier sends intent-verification requests.
type Verifier struct {
	cfg Config
}

// New returns a Verifier.
func New(cfg Config) *Verifier {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.Guard == nil {
		cfg.Guard = netguard.Default()
	}
	return &Verifier{cfg: cfg}
}

// CheckURL reports whether rawURL may be used at all under this configuration.
func (v *Verifier) CheckURL(rawURL string) *Result {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return &Result{Reason: ReasonInvalidURL, Message: "url is not an absolute URL", Permanent: true}
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if v.cfg.AllowHTTP {
			return nil
		}
		return &Result{Reason: ReasonInsecureURLNotAllowed, Permanent: true,
			Message: "url uses http, which this hookline installation does not allow; use https"}
	default:
		return &Result{Reason: ReasonInvalidURL, Message: fmt.Sprintf("url scheme %q is not http(s)", u.Scheme), Permanent: true}
	}
}

// maxLocation is how much of a redirect's Location is quoted, so that the message keeps its end.
const maxLocation = 128

// Verify sends the verification GET to rawURL with clientID, presenting cert when it is not nil.
func (v *Verifier) Verify(ctx context.Context, rawURL, clientID string, cert *tls.Certificate) (res Result) {
	// Whatever the endpoint made of the message (a 40 KB Location, control characters in a
	// malformed status line) must not make the status write fail or span lines.
	defer func() { res.Message = safetext.Receiver(res.Message) }()
	if bad := v.CheckURL(rawURL); bad != nil {
		return *bad
	}
	ctx, cancel := context.WithTimeout(ctx, v.cfg.Timeout)
	defer cancel()

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return Result{Reason: ReasonInvalidURL, Message: err.Error(), Permanent: true}
	}
	req.Header.Set(echo.Header, clientID)
	req.Header.Set("User-Agent", "hookline-verifier")

	client := &http.Client{
		Transport: v.transport(cert),
		// Acrobat Sign does not follow redirects: a 3xx is an answer, and not a 2xx.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	if err != nil {
		return Classify(err, v.cfg.Timeout)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode < http.StatusOK {
		// A 101 Switching Protocols, the only answer below 200 Go's transport returns: it hands
		// the connection itself over as the body, which it no longer closes when ctx ends (an
		// endpoint then saying nothing held its account's verification slot for ever). Nothing
		// of it is read.
		return Result{Reason: ReasonNonSuccessStatus, Message: fmt.Sprintf("endpoint answered %d, want 2xx", resp.StatusCode)}
	}
	// With the echo in the header the body does not matter: do not wait for it. Otherwise the echo
	// can only be in the body, and a body cut short (timeout, broken connection) is no answer.
	var body []byte
	var readErr error
	if !echo.HeaderEchoes(resp.Header, clientID) {
		// Either echo is enough: the body may echo the id whatever the header says.
		body, readErr = echo.ReadBody(resp.Body)
	}

	switch {
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return Result{Reason: ReasonRedirected,
			Message: fmt.Sprintf("endpoint answered %d (redirect to %q); redirects are not followed", resp.StatusCode,
				safetext.Clip(resp.Header.Get("Location"), maxLocation))}
	case resp.StatusCode < 200 || resp.StatusCode >= 300:
		return Result{Reason: ReasonNonSuccessStatus, Message: fmt.Sprintf("endpoint answered %d, want 2xx", resp.StatusCode)}
	case readErr != nil:
		return Classify(readErr, v.cfg.Timeout)
	}
	switch echo.Check(resp.Header, body, clientID) {
	case echo.Echoed:
		return Result{OK: true, Reason: ReasonVerified, Message: "endpoint echoed the client id"}
	case echo.Mismatch:
		return Result{Reason: ReasonClientIDMismatch,
			Message: "endpoint echoed a different client id than the X-AdobeSign-ClientId it was sent"}
	default:
		return Result{Reason: ReasonClientIDNotEchoed,
			Message: `endpoint answered 2xx but did not echo the client id (header X-AdobeSign-ClientId or JSON body {"xAdobeSignClientId": ...})`}
	}
}

func (v *Verifier) transport(cert *tls.Certificate) *http.Transport {
	tlsCfg := &tls.Config{RootCAs: v.cfg.RootCAs, MinVersion: tls.VersionTLS12}
	if cert != nil {
		tlsCfg.Certificates = []tls.Certificate{*cert}
	}
	return &http.Transport{
		Proxy:                  nil, // never route verification through an ambient proxy
		DialContext:            v.cfg.Guard.DialContext(&net.Dialer{Timeout: v.cfg.Timeout}),
		TLSClientConfig:        tlsCfg,
		TLSHandshakeTimeout:    v.cfg.Timeout,
		DisableKeepAlives:      true,
		MaxResponseHeaderBytes: 64 << 10,
	}
}

// Classify maps a transport error of a request bounded by timeout to a Result; notification delivery
// shares it so that both report failures alike.
func Classify(err error, timeout time.Duration) Result {
	var (
		netErr    net.Error
		unknownCA x509.UnknownAuthorityError
		hostErr   x509.HostnameError
		invalid   x509.CertificateInvalidError
		verifyErr *tls.CertificateVerificationError
		alert     tls.AlertError
		recErr    tls.RecordHeaderError
		dnsErr    *net.DNSError
		blocked   *netguard.BlockedError
	)
	switch {
	case errors.As(err, &blocked):
		// First: the refusal is the root cause whatever wraps it.
		return Result{Reason: ReasonBlockedAddress, Message: blockedMessage(blocked)}
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return Result{Reason: ReasonTimeout, Message: fmt.Sprintf("endpoint did not answer within %s", timeout)}
	case errors.As(err, &verifyErr), errors.As(err, &unknownCA), errors.As(err, &hostErr),
		errors.As(err, &invalid), errors.As(err, &alert), errors.As(err, &recErr):
		return Result{Reason: ReasonTLSError, Message: "TLS handshake failed: " + rootMessage(err)}
	case errors.As(err, &dnsErr):
		return Result{Reason: ReasonConnectionFailed, Message: "cannot resolve host: " + dnsErr.Err}
	case errors.Is(err, syscall.ECONNREFUSED):
		return Result{Reason: ReasonConnectionFailed, Message: "connection refused"}
	default:
		return Result{Reason: ReasonConnectionFailed, Message: rootMessage(err)}
	}
}

// blockedMessage explains a refused address and how an operator can allow it.
func blockedMessage(e *netguard.BlockedError) string {
	if !e.Range.IsValid() {
		return e.Error()
	}
	return fmt.Sprintf("refusing to connect to %s: %s (%s; allow it with --allowed-cidrs)", e.Address, e.Reason, e.Range)
}

// rootMessage drops net/http's "Get \"url\": " prefix so messages stay short.
func rootMessage(err error) string {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return uerr.Err.Error()
	}
	return err.Error()
}

// LoadRootCAs returns the system pool plus the PEM certificates in extraBundle (if not empty).
func LoadRootCAs(extraBundle string) (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if extraBundle == "" {
		return pool, nil
	}
	pem, err := os.ReadFile(extraBundle)
	if err != nil {
		return nil, fmt.Errorf("reading CA bundle: %w", err)
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA bundle %s holds no PEM certificate", extraBundle)
	}
	return pool, nil
}
