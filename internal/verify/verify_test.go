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
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/hookline/hookline/internal/echo"
)

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
	lax := New(Config{Timeout: time.Second, AllowHTTP: true})
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
	v := New(Config{Timeout: 200 * time.Millisecond, AllowHTTP: true})
	res := v.Verify(context.Background(), srv.URL, "id", nil)
	if res.Reason != ReasonTimeout {
		t.Fatalf("got %+v, want %s", res, ReasonTimeout)
	}
}
