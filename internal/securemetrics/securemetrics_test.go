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

package securemetrics

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"testing"
)

// A client that prefers HTTP/2 gets HTTP/1.1 from a server configured by Options.
func TestSecureMetricsRefuseHTTP2(t *testing.T) {
	o := Options(":0", true)
	if o.FilterProvider == nil || !o.SecureServing {
		t.Fatal("secure metrics without authentication and authorization")
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	for _, opt := range o.TLSOpts {
		opt(srv.TLS)
	}
	// The listener reads srv.TLS at each handshake, so the options apply from the next connection.
	conn, err := tls.Dial("tcp", srv.Listener.Addr().String(), &tls.Config{
		InsecureSkipVerify: true, // a throwaway test certificate; only the negotiated protocol matters
		NextProtos:         []string{"h2", "http/1.1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	if p := conn.ConnectionState().NegotiatedProtocol; p != "http/1.1" {
		t.Fatalf("negotiated %q, want http/1.1 only", p)
	}

	if plain := Options(":0", false); plain.SecureServing || plain.FilterProvider != nil || len(plain.TLSOpts) != 0 {
		t.Fatalf("plain metrics got secure options: %+v", plain)
	}
}
