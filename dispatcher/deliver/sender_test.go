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

package deliver

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hookline/hookline/internal/deliveries"
	"github.com/hookline/hookline/internal/echo"
	"github.com/hookline/hookline/internal/netguard"
	"github.com/hookline/hookline/internal/safetext"
	"github.com/hookline/hookline/internal/verify"
)

// loopback lets tests deliver to their httptest receivers on 127.0.0.1, which the default guard
// refuses.
var loopback = netguard.New(netguard.Policy{Allowed: []netip.Prefix{
	netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"),
}})

func TestSenderJudgesAnswersLikeAcrobatSign(t *testing.T) {
	const id = "client-1"
	closed := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		_ = l.Close()
		return "http://" + addr
	}()
	cases := []struct {
		name    string
		handler http.HandlerFunc
		url     string
		ok      bool
		reason  string
	}{
		{"header echo", func(w http.ResponseWriter, r *http.Request) { w.Header().Set(echo.Header, r.Header.Get(echo.Header)) }, "", true, ReasonDelivered},
		{"body echo", func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte(`{"xAdobeSignClientId":"client-1"}`))
		}, "", true, ReasonDelivered},
		{"204 with header echo", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set(echo.Header, id)
			w.WriteHeader(http.StatusNoContent)
		}, "", true, ReasonDelivered},
		{"no echo", func(w http.ResponseWriter, r *http.Request) {}, "", false, verify.ReasonClientIDNotEchoed},
		{"wrong echo", func(w http.ResponseWriter, r *http.Request) { w.Header().Set(echo.Header, "other") }, "", false, verify.ReasonClientIDMismatch},
		// Either echo is enough (the seeds: "in the response header or in the JSON body").
		{"wrong header echo, body echo", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set(echo.Header, "other")
			_, _ = w.Write([]byte(`{"xAdobeSignClientId":"client-1"}`))
		}, "", true, ReasonDelivered},
		{"500 with echo", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set(echo.Header, id)
			w.WriteHeader(http.StatusInternalServerError)
		}, "", false, verify.ReasonNonSuccessStatus},
		{"redirect with echo", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set(echo.Header, id)
			http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
		}, "", false, verify.ReasonRedirected},
		{"timeout", func(w http.ResponseWriter, r *http.Request) {
			// The server notices the client hanging up only once the body has been read.
			_, _ = io.ReadAll(r.Body)
			<-r.Context().Done()
		}, "", false, verify.ReasonTimeout},
		{"connection refused", nil, closed, false, verify.ReasonConnectionFailed},
	}
	s := NewSender(300*time.Millisecond, true, nil, loopback)
	defer s.Close()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			url := tc.url
			// The handler passes the headers it saw over a channel: in the timeout case it is still
			// running when Send returns, so a shared variable would race with the check below.
			type headers struct{ ct, id string }
			seen := make(chan headers, 1)
			if tc.handler != nil {
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					select {
					case seen <- headers{r.Header.Get("Content-Type"), r.Header.Get(echo.Header)}:
					default: // a retried request: the first one's headers are checked
					}
					tc.handler(w, r)
				}))
				defer srv.Close()
				url = srv.URL
			}
			a := s.Send(context.Background(), url, id, "", nil, []byte(`{}`), nil)
			if a.OK != tc.ok || a.Reason != tc.reason {
				t.Fatalf("Send = %+v, want ok=%v reason=%s", a, tc.ok, tc.reason)
			}
			if tc.handler != nil {
				got := <-seen // the receiver answered or timed out, so it has seen the request
				if got.ct != "application/json" || got.id != id {
					t.Fatalf("request headers: Content-Type %q, client id %q", got.ct, got.id)
				}
			}
		})
	}
}

func TestSenderRefusesHTTPWithoutAllowance(t *testing.T) {
	s := NewSender(time.Second, false, nil, loopback)
	if a := s.Send(context.Background(), "http://127.0.0.1:1/x", "id", "", nil, nil, nil); a.OK || a.Reason != verify.ReasonInsecureURLNotAllowed {
		t.Fatalf("got %+v", a)
	}
}

func TestSenderRefusesBlockedAddresses(t *testing.T) {
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.Header().Set(echo.Header, r.Header.Get(echo.Header))
	}))
	defer srv.Close()

	// A nil guard is the default guard, never no guard.
	s := NewSender(time.Second, true, nil, nil)
	defer s.Close()
	a := s.Send(context.Background(), srv.URL+"/hook", "id", "", nil, []byte(`{}`), nil)
	if a.OK || a.Reason != verify.ReasonBlockedAddress || !strings.Contains(a.Message, "loopback address") {
		t.Fatalf("POST to %s with the default guard: got %+v, want %s", srv.URL, a, verify.ReasonBlockedAddress)
	}
	if n := requests.Load(); n != 0 {
		t.Fatalf("the receiver got %d requests; the guard must refuse before connecting", n)
	}

	// Nothing listens on 169.254.169.254 here: only a refusal in the dialer gives BlockedAddress
	// (rather than a timeout or a connection failure), and allowing loopback does not allow it.
	s = NewSender(2*time.Second, true, nil, loopback)
	defer s.Close()
	for _, u := range []string{"http://169.254.169.254/latest/meta-data/", "https://169.254.169.254/hook"} {
		a := s.Send(context.Background(), u, "id", "", nil, []byte(`{}`), nil)
		if a.OK || a.Reason != verify.ReasonBlockedAddress || !strings.Contains(a.Message, "cloud metadata address") {
			t.Errorf("POST to %s: got %+v, want %s naming the cloud metadata address", u, a, verify.ReasonBlockedAddress)
		}
	}
	if a := s.Send(context.Background(), srv.URL+"/hook", "id", "", nil, []byte(`{}`), nil); !a.OK {
		t.Fatalf("POST to %s with loopback allowed: got %+v", srv.URL, a)
	}
}

// A receiver's malformed answer (quoted by Go's client in its error) becomes a clipped, cleaned
// message: it ends up in status, Events and e-mails.
func TestSenderClipsReceiverText(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		c, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = io.WriteString(c, "HTTP/1.1 \x1b[31m"+strings.Repeat("\u2028\xff-abcdefgh", 4096)+"\r\n\r\n")
	}))
	defer srv.Close()
	a := NewSender(time.Second, true, nil, loopback).Send(context.Background(), srv.URL, "id", "", nil, []byte(`{}`), nil)
	if a.OK || len(a.Message) > safetext.MaxReceiverText || !utf8.ValidString(a.Message) || strings.ContainsFunc(a.Message, safetext.IsControl) {
		t.Fatalf("message not clipped and cleaned (%d bytes): %q", len(a.Message), a.Message)
	}
}

// The start of the receiver's answer is kept for the delivery log, whichever way the client id is
// echoed: at most deliveries.ExcerptMax bytes, never a cut rune, control characters escaped, and
// markup kept as the characters it is (the log shows text, never renders it).
func TestSenderKeepsAnExcerptOfTheAnswer(t *testing.T) {
	const id = "client-1"
	euros := strings.Repeat("€", 1000) // 3000 bytes; a rune straddles the 1024-byte mark
	cases := []struct {
		name    string
		handler http.HandlerFunc
		ok      bool
		want    string
	}{
		{"header echo, markup", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set(echo.Header, id)
			_, _ = io.WriteString(w, "<script>alert(1)</script>")
		}, true, "<script>alert(1)</script>"},
		{"body echo, line breaks", func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "{\r\n\t\"xAdobeSignClientId\": \"client-1\"\n}\n")
		}, true, `{\r\n\t"xAdobeSignClientId": "client-1"\n}\n`},
		{"error, terminal escapes", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = io.WriteString(w, "\x1b[31mfailed\x00\u2028\u202e")
		}, false, `\u001b[31mfailed\u0000\u2028\u202e`},
		{"error page, cut at a rune boundary", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusBadGateway)
			_, _ = io.WriteString(w, euros)
		}, false, strings.Repeat("€", deliveries.ExcerptMax/3)},
		{"header echo, long answer cut at a rune boundary", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set(echo.Header, id)
			_, _ = io.WriteString(w, strings.Repeat("a", deliveries.ExcerptMax-1)+euros)
		}, true, strings.Repeat("a", deliveries.ExcerptMax-1)},
		{"no answer body", func(w http.ResponseWriter, r *http.Request) { w.Header().Set(echo.Header, id) }, true, ""},
	}
	s := NewSender(2*time.Second, true, nil, loopback)
	defer s.Close()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.handler)
			defer srv.Close()
			a := s.Send(context.Background(), srv.URL, id, "", nil, []byte(`{}`), nil)
			if a.OK != tc.ok || a.Response != tc.want {
				t.Fatalf("Send = ok %v, response %q (%d bytes); want ok %v, %q", a.OK, a.Response, len(a.Response), tc.ok, tc.want)
			}
			if len(a.Response) > deliveries.ExcerptMax || !utf8.ValidString(a.Response) || strings.ContainsFunc(a.Response, safetext.IsControl) {
				t.Fatalf("response excerpt not safe: %q", a.Response)
			}
		})
	}
}

// The transports kept per client certificate are bounded: a tenant rotating its certificates again
// and again does not grow the dispatcher's memory by a transport each time. The least recently
// used goes first; one in use stays the same transport (its connections are reused).
func TestSenderBoundsItsClientCertificateTransports(t *testing.T) {
	s := NewSender(time.Second, true, nil, nil)
	defer s.Close()
	cert := func(i int) *tls.Certificate {
		return &tls.Certificate{Certificate: [][]byte{fmt.Appendf(nil, "certificate %d", i)}}
	}
	first, kept := s.transport(cert(0)), s.transport(cert(1))
	for i := range maxCertTransports + 10 {
		s.transport(cert(i + 2))
		if i%100 == 0 && s.transport(cert(1)) != kept {
			t.Fatal("a certificate in use got a new transport")
		}
	}
	if n := s.byCert.Len(); n != maxCertTransports {
		t.Fatalf("%d transports kept, want %d", n, maxCertTransports)
	}
	if s.transport(cert(1)) != kept {
		t.Fatal("a certificate in use got a new transport")
	}
	if s.transport(cert(0)) == first {
		t.Fatal("the least recently used transport was kept")
	}
}

// A receiver answering 101 Switching Protocols and then saying nothing: Go hands the connection
// over as the body, and the transport no longer closes it when the attempt's context ends, so a
// read of it never ended. The attempt fails with the status at once, without reading it, whether
// or not the receiver echoed the client id in the 101's headers.
func TestSenderEndsAnAttemptAnswered101AtItsDeadline(t *testing.T) {
	hold := make(chan struct{})
	t.Cleanup(func() { close(hold) })
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		echoed := ""
		if r.URL.Path == "/echo" {
			echoed = echo.CanonicalHeader + ": id\r\n"
		}
		_, _ = c.Write([]byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n" + echoed + "\r\n"))
		<-hold
	}))
	t.Cleanup(srv.Close)
	s := NewSender(300*time.Millisecond, true, nil, loopback)
	for _, path := range []string{"/", "/echo"} {
		done := make(chan Attempt, 1)
		go func() { done <- s.Send(context.Background(), srv.URL+path, "id", "", nil, []byte(`{}`), nil) }()
		select {
		case a := <-done:
			if a.OK || a.Status != http.StatusSwitchingProtocols || a.Reason != verify.ReasonNonSuccessStatus {
				t.Errorf("%s: got %+v, want a failure with status 101", path, a)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: the attempt did not end", path)
		}
	}
}
