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

package echo

import (
	"bufio"
	"net/http"
	"slices"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	const id = "CLIENT-1"
	hdr := func(k, v string) http.Header { h := http.Header{}; h.Set(k, v); return h }
	cases := []struct {
		name string
		h    http.Header
		body string
		want Result
	}{
		{"header", hdr("X-AdobeSign-ClientId", id), "", Echoed},
		{"header any case", hdr("x-adobesign-clientid", id), "", Echoed},
		{"header wrong id", hdr(Header, "other"), "", Mismatch},
		{"header wrong id, body echoes", hdr(Header, "other"), `{"xAdobeSignClientId":"CLIENT-1"}`, Echoed},
		{"header empty, body echoes", hdr(Header, ""), `{"xAdobeSignClientId":"CLIENT-1"}`, Echoed},
		{"header wrong id, body not json", hdr(Header, "other"), `CLIENT-1`, Mismatch},
		{"header wrong id, body wrong id", hdr(Header, "other"), `{"xAdobeSignClientId":"x"}`, Mismatch},
		{"header right id, body wrong id", hdr(Header, id), `{"xAdobeSignClientId":"x"}`, Echoed},
		{"body", nil, `{"xAdobeSignClientId":"CLIENT-1"}`, Echoed},
		{"body with header-name key", nil, `{"X-AdobeSign-ClientId":"CLIENT-1"}`, Echoed},
		{"body wrong id", nil, `{"xAdobeSignClientId":"other"}`, Mismatch},
		{"body id not a string", nil, `{"xAdobeSignClientId":1}`, Mismatch},
		{"body key case differs", nil, `{"XADOBESIGNCLIENTID":"CLIENT-1"}`, Missing},
		{"body not json", nil, `CLIENT-1`, Missing},
		{"body json array", nil, `["CLIENT-1"]`, Missing},
		{"empty", nil, "", Missing},
		{"id is a prefix only", hdr(Header, "CLIENT-10"), "", Mismatch},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.h
			if h == nil {
				h = http.Header{}
			}
			if got := Check(h, []byte(tc.body), id); got != tc.want {
				t.Fatalf("Check = %v, want %v", got, tc.want)
			}
		})
	}
}

// Values finds the echo header however the receiver spelled its name on the wire, as
// Header.Values(Header) does.
func TestValuesReadsTheHeaderInAnyCase(t *testing.T) {
	raw := "HTTP/1.1 200 OK\r\nx-adobesign-clientid: a\r\nX-ADOBESIGN-CLIENTID: b\r\nX-AdobeSign-ClientId: c\r\nContent-Length: 0\r\n\r\n"
	resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(raw)), nil)
	if err != nil {
		t.Fatal(err)
	}
	got, want := Values(resp.Header), resp.Header.Values(Header)
	if !slices.Equal(got, want) || len(got) != 3 {
		t.Fatalf("Values = %q, Header.Values = %q", got, want)
	}
	if Values(http.Header{}) != nil {
		t.Fatal("Values of an empty header")
	}
}
