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

package verify

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hookline/hookline/internal/echo"
	"github.com/hookline/hookline/internal/netguard"
	"github.com/hookline/hookline/internal/safetext"
)

// loopback lets tests verify their httptest receivers on 127.0.0.1, which the default guard
// refuses.
var loopback = netguard.New(netguard.Policy{Allowed: []netip.Prefix{
	netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"),
}})

func TestHTTPNeedsAllowance(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(echo.Header, r.Header.Get(echo.Header))
	}))
	defer srv.Close()

	strict := New(Config{Timeout: time.Second})
	res := strict.Verify(context.Background(), srv.URL, "id", nil)
	if res.OK || res.Reason != ReasonInsecureURLNotAllowed || !res.Permanent {
		t.Fatalf("http without allowance: got %+v", res)
	}
	lax := New(Config{Timeout: time.Second, AllowHTTP: true, Guard: loopback})
	if res := lax.Verify(context.Background(), srv.URL, "id", nil); !res.OK {
		t.Fatalf("http with allowance: got %+v", res)
	}
}

func TestCheckURL(t *testing.T) {
	v := New(Config{})
	for _, u := range []string{"ftp://x/y", "/relative", "https://", "://bad"} {
		if res := v.CheckURL(u); res == nil || !res.Permanent {
			t.Errorf("CheckURL(%q) = %+v, want a permanent rejection", u, res)
		}
	}
	if res := v.CheckURL("https://receiver.example.com/x"); res != nil {
		t.Errorf("https URL rejected: %+v", res)
	}
}

func TestTimeoutIsBounded(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	v := New(Config{Timeout: 200 * time.Millisecond, AllowHTTP: true, Guard: loopback})
	res := v.Verify(context.Background(), srv.URL, "id", nil)
	if res.Reason != ReasonTimeout {
		t.Fatalf("got %+v, want %s", res, ReasonTimeout)
	}
}

func TestLoopbackReceiverIsBlockedWithoutAllowList(t *testing.T) {
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.Header().Set(echo.Header, r.Header.Get(echo.Header))
	}))
	defer srv.Close()

	res := New(Config{Timeout: time.Second, AllowHTTP: true}).Verify(context.Background(), srv.URL, "id", nil)
	if res.OK || res.Reason != ReasonBlockedAddress {
		t.Fatalf("verification of %s with the default guard: got %+v, want %s", srv.URL, res, ReasonBlockedAddress)
	}
	host := strings.TrimPrefix(srv.URL, "http://")
	for _, want := range []string{"refusing to connect to " + host, "loopback address", "--allowed-cidrs"} {
		if !strings.Contains(res.Message, want) {
			t.Errorf("message %q does not contain %q", res.Message, want)
		}
	}
	if n := requests.Load(); n != 0 {
		t.Fatalf("the receiver got %d requests; the guard must refuse before connecting", n)
	}
	// The same receiver passes once its range is allowed.
	if res := New(Config{Timeout: time.Second, AllowHTTP: true, Guard: loopback}).Verify(context.Background(), srv.URL, "id", nil); !res.OK {
		t.Fatalf("with 127.0.0.0/8 allowed: got %+v", res)
	}
}

func TestMetadataAddressIsRefusedAtDial(t *testing.T) {
	// Even with loopback allowed. Nothing listens on 169.254.169.254 here: a refusal in the dialer
	// is the only way to get BlockedAddress rather than a timeout or a connection failure.
	v := New(Config{Timeout: 2 * time.Second, AllowHTTP: true, Guard: loopback})
	for _, u := range []string{"http://169.254.169.254/latest/meta-data/", "https://169.254.169.254/", "http://[::ffff:169.254.169.254]/"} {
		res := v.Verify(context.Background(), u, "id", nil)
		if res.Reason != ReasonBlockedAddress || !strings.Contains(res.Message, "cloud metadata address") {
			t.Errorf("Verify(%s) = %+v, want %s naming the cloud metadata address", u, res, ReasonBlockedAddress)
		}
	}
}

func TestClassifyFindsWrappedBlockedErrors(t *testing.T) {
	be := netguard.Default().Control("tcp4", "10.0.0.7:443", nil)
	err := &url.Error{Op: "Post", URL: "https://x", Err: &net.OpError{Op: "dial", Net: "tcp", Err: be}}
	res := Classify(err, time.Second)
	if res.Reason != ReasonBlockedAddress || res.Message != "refusing to connect to 10.0.0.7:443: private address (10.0.0.0/8; allow it with --allowed-cidrs)" {
		t.Fatalf("got %+v", res)
	}
}

// A body that stops half-way is a timeout, not a missing echo; an echo in the header does not wait
// for the body at all.
func TestBodyCutShortAndHeaderEcho(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/header" {
			w.Header().Set("X-AdobeSign-ClientId", r.Header.Get("X-AdobeSign-ClientId"))
		}
		w.Header().Set("Content-Length", "100")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(`{"xAdobeSignClientId": "i`))
		w.(http.Flusher).Flush()
		select { // the rest never comes
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	const timeout = 2 * time.Second
	v := New(Config{Timeout: timeout, AllowHTTP: true, Guard: loopback})
	if res := v.Verify(context.Background(), srv.URL+"/body", "id", nil); res.Reason != ReasonTimeout {
		t.Errorf("body cut short: got %+v, want %s", res, ReasonTimeout)
	}
	start := time.Now()
	if res := v.Verify(context.Background(), srv.URL+"/header", "id", nil); !res.OK {
		t.Errorf("header echo: got %+v, want verified", res)
	}
	if d := time.Since(start); d >= timeout {
		t.Errorf("header echo waited %s for a body it does not need", d)
	}
}

// rawAnswer answers every request with answer, written straight to the connection.
func rawAnswer(t *testing.T, answer string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		c, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = c.Write([]byte(answer))
	}))
	t.Cleanup(srv.Close)
	return srv
}

// An endpoint chooses the text of the message (a Location, a malformed status line that Go's client
// quotes): it is clipped and cleaned, so that status and Events stay writable and on one line.
func TestReceiverTextIsClippedAndCleaned(t *testing.T) {
	junk := strings.Repeat("\u2028\xff-abcdefghijk", 40<<10/16)
	for name, tc := range map[string]struct{ answer, reason string }{
		"redirect":    {"HTTP/1.1 302 Found\r\nLocation: https://example.com/" + junk + "\r\nContent-Length: 0\r\n\r\n", ReasonRedirected},
		"status line": {"HTTP/1.1 \x1b[31m" + junk + "\r\n\r\n", ReasonConnectionFailed},
	} {
		t.Run(name, func(t *testing.T) {
			srv := rawAnswer(t, tc.answer)
			v := New(Config{Timeout: time.Second, AllowHTTP: true, Guard: loopback})
			res := v.Verify(context.Background(), srv.URL, "id", nil)
			if res.OK || res.Reason != tc.reason {
				t.Fatalf("got %+v, want reason %s", res, tc.reason)
			}
			if len(res.Message) > safetext.MaxReceiverText || !utf8.ValidString(res.Message) || strings.ContainsFunc(res.Message, safetext.IsControl) {
				t.Fatalf("message not clipped and cleaned (%d bytes): %q", len(res.Message), res.Message)
			}
		})
	}
}

// An endpoint answering 101 Switching Protocols and then saying nothing: Go hands the connection
// over as the body, and the transport no longer closes it when the verification's context ends,
// so a read of it never ended (it held its account's verification slot for ever). The
// verification fails at once, without reading it.
func TestA101AnswerEndsAtTheDeadline(t *testing.T) {
	hold := make(chan struct{})
	t.Cleanup(func() { close(hold) })
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		c, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = c.Write([]byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n"))
		<-hold
	}))
	t.Cleanup(srv.Close)
	v := New(Config{Timeout: 300 * time.Millisecond, AllowHTTP: true, Guard: loopback})
	done := make(chan Result, 1)
	go func() { done <- v.Verify(context.Background(), srv.URL, "id", nil) }()
	select {
	case res := <-done:
		if res.OK || res.Reason != ReasonNonSuccessStatus {
			t.Errorf("got %+v, want %s", res, ReasonNonSuccessStatus)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the verification did not end")
	}
}
