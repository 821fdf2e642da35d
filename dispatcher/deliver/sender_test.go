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
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/hookline/hookline/internal/echo"
	"github.com/hookline/hookline/internal/verify"
)

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
	s := NewSender(300*time.Millisecond, true, nil)
	defer s.Close()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			url := tc.url
			var got struct{ ct, id string }
			if tc.handler != nil {
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					got.ct, got.id = r.Header.Get("Content-Type"), r.Header.Get(echo.Header)
					tc.handler(w, r)
				}))
				defer srv.Close()
				url = srv.URL
			}
			a := s.Send(context.Background(), url, id, nil, []byte(`{}`), nil)
			if a.OK != tc.ok || a.Reason != tc.reason {
				t.Fatalf("Send = %+v, want ok=%v reason=%s", a, tc.ok, tc.reason)
			}
			if tc.handler != nil && (got.ct != "application/json" || got.id != id) {
				t.Fatalf("request headers: Content-Type %q, client id %q", got.ct, got.id)
			}
		})
	}
}

func TestSenderRefusesHTTPWithoutAllowance(t *testing.T) {
	s := NewSender(time.Second, false, nil)
	if a := s.Send(context.Background(), "http://127.0.0.1:1/x", "id", nil, nil, nil); a.OK || a.Reason != verify.ReasonInsecureURLNotAllowed {
		t.Fatalf("got %+v", a)
	}
}
