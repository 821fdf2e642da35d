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

package main

import (
	"strings"
	"testing"
)

// The console refuses every way of starting that would send session cookies over plain HTTP to
// anything but the local machine, and contradictory flags.
func TestRefusedSettings(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "choose how browsers reach the console over HTTPS"},
		{[]string{"--insecure-dev-http", "--listen-address", ":8443"}, "only on a loopback address"},
		{[]string{"--insecure-dev-http", "--listen-address", "0.0.0.0:8443"}, "only on a loopback address"},
		{[]string{"--insecure-dev-http", "--listen-address", "10.0.0.1:8443"}, "only on a loopback address"},
		{[]string{"--insecure-dev-http", "--behind-tls-proxy", "--listen-address", "127.0.0.1:8443"}, "excludes"},
		{[]string{"--tls-cert-file", "/x.crt"}, "go together"},
		{[]string{"--behind-tls-proxy", "--trusted-proxies", "10.0.0.0/8,ingress"}, "\"ingress\" is neither a CIDR nor an address"},
		{[]string{"--tls-cert-file", "/x.crt", "--tls-key-file", "/x.key", "--trusted-proxies", "10.0.0.0/8"}, "needs --behind-tls-proxy"},
		{[]string{"--behind-tls-proxy", "--trusted-proxies", "::ffff:0:0/80"}, "covers more than IPv4-mapped addresses"},
		{[]string{"--behind-tls-proxy", "--trusted-proxies", "fe80::1%eth0"}, "neither a CIDR nor an address"},
		{[]string{"--behind-tls-proxy", "--api-ca-file", "/nonexistent/ca.crt"}, "KUBERNETES_SERVICE_HOST"},
		{[]string{"--behind-tls-proxy", "--api-ca-file", "/x", "--kubeconfig", "/y"}, "exclude each other"},
		{[]string{"--behind-tls-proxy", "--dispatcher-api-url", "http://10.0.0.1:8444"}, "plain HTTP"},
		{[]string{"--behind-tls-proxy", "--dispatcher-api-url", "ftp://x"}, "want https"},
		{[]string{"--behind-tls-proxy", "--dispatcher-api-ca-file", "/x"}, "needs --dispatcher-api-url"},
		{[]string{"--behind-tls-proxy", "--dispatcher-api-url", "https://d:8444", "--dispatcher-api-ca-file", "/nonexistent"}, "--dispatcher-api-ca-file"},
	} {
		err := run(tc.args)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
}

func TestLoopback(t *testing.T) {
	for addr, want := range map[string]bool{"127.0.0.1:8443": true, "[::1]:8443": true, "localhost:8443": true,
		":8443": false, "0.0.0.0:8443": false, "192.168.1.2:8443": false, "nonsense": false} {
		if loopback(addr) != want {
			t.Errorf("loopback(%q) = %v", addr, !want)
		}
	}
}

// The read API's client: plain HTTP only to this machine (make run), no credentials of its own,
// and redirects not followed (the user's token must not go elsewhere).
func TestDeliveriesClient(t *testing.T) {
	for _, ok := range []string{"http://127.0.0.1:18444", "http://localhost:18444", "http://[::1]:18444", "https://hookline-dispatcher.hookline-system.svc:8444"} {
		c, err := deliveriesClient(ok, "")
		if err != nil || c == nil || c.HTTP.CheckRedirect == nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	if c, err := deliveriesClient("", ""); c != nil || err != nil {
		t.Errorf("no URL: %v %v", c, err)
	}
	for _, bad := range []string{"http://10.1.2.3:8444", "http://dispatcher:8444", "https://user:pw@d:8444", "d:8444"} {
		if _, err := deliveriesClient(bad, ""); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

// --trusted-proxies takes CIDRs and bare addresses; IPv4-mapped ones are kept as IPv4, as peers are
// compared.
func TestTrustedProxies(t *testing.T) {
	got, err := trustedProxies(" 10.0.0.0/8 ,192.0.2.7, ::ffff:10.1.0.0/112, fd00::/8", true)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.0.0/8", "192.0.2.7/32", "10.1.0.0/16", "fd00::/8"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Errorf("got %v, want %v", got, want)
		}
	}
}
