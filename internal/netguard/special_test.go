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

package netguard

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// dialRefused dials addr through g with an inner Control that records whether the socket got as
// far as connecting, and fails unless g refused the address before that: no packet left the host.
func dialRefused(t *testing.T, g *Guard, network, addr, reason string) {
	t.Helper()
	var reached atomic.Bool
	d := g.Dialer(&net.Dialer{Timeout: 2 * time.Second, Control: func(string, string, syscall.RawConn) error {
		reached.Store(true)
		return nil
	}})
	_, err := d.Dial(network, addr)
	var be *BlockedError
	if !errors.As(err, &be) || !strings.Contains(be.Reason, reason) {
		t.Fatalf("dial %s = %v, want a *BlockedError (%s)", addr, err, reason)
	}
	if reached.Load() {
		t.Fatalf("dial %s got past the guard", addr)
	}
}

// The ranges the guard used to let through are refused before connecting, over IPv4 and IPv6.
func TestRangesMissedBeforeAreRefusedAtDial(t *testing.T) {
	for addr, reason := range map[string]string{
		"198.18.0.1:443":                "benchmarking",
		"198.19.7.7:443":                "benchmarking",
		"[64:ff9b:1::a9fe:a9fe]:443":    "local-use NAT64",
		"[64:ff9b::c612:0001]:443":      "benchmarking address 198.18.0.1 in NAT64 form",
		"192.0.2.10:443":                "documentation",
		"[2001:2::1]:443":               "benchmarking",
		"[100::1]:443":                  "discard-only",
		"[5f00::1]:443":                 "SRv6",
		"[3fff::1]:443":                 "documentation",
		"192.88.99.1:443":               "6to4 relay",
		"[::ffff:198.18.0.1]:443":       "benchmarking",
		"[2001:0:4136:e378::1]:443":     "Teredo",
		"[2002:c612:1::1]:443":          "6to4",
		"[100:0:0:1:ffff:ffff::1]:443":  "dummy",
		"[2001:10:ffff:ffff::1]:443":    "ORCHID",
		"[2001:1ff:ffff:ffff::1]:443":   "IETF protocol assignment",
		"[a000:ffff:ffff:ffff::1]:443":  "outside IPv6 global unicast",
		"[ff0e::1]:443":                 "multicast",
		"[fd00:0:0:ffff::1]:443":        "unique local",
		"[fe80::1%25lo]:443":            "link-local",
		"[::ffff:192.0.0.171]:443":      "IETF protocol assignment",
		"255.255.255.255:443":           "broadcast",
		"[64:ff9b::100.64.0.1]:443":     "carrier-grade NAT address 100.64.0.1 in NAT64 form",
		"[64:ff9b::169.254.169.254]:80": "cloud metadata",
	} {
		t.Run(addr, func(t *testing.T) {
			addr = strings.Replace(addr, "%25", "%", 1)
			dialRefused(t, Default(), "tcp", addr, reason)
		})
	}
}

// nonLoopbackInterfaceAddrs returns the host's own addresses the guard must refuse.
func nonLoopbackInterfaceAddrs(t *testing.T) []netip.Addr {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	var out []netip.Addr
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(n.IP)
		if ok && !ip.Unmap().IsLoopback() && !ip.IsLinkLocalUnicast() {
			out = append(out, ip.Unmap())
		}
	}
	if len(out) == 0 {
		t.Skip("the host has no address besides loopback and link-local")
	}
	return out
}

// A receiver listening on all interfaces is not reached through the host's own addresses, even
// when the operator allows every range: an allowed Pod network contains the Pod's own address.
// Allowing the very address re-opens it, which shows the receiver was reachable all along.
func TestHostAddressesAreRefusedEvenInsideAnAllowedRange(t *testing.T) {
	everything := []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}
	g := New(Policy{Allowed: everything})
	for _, ip := range nonLoopbackInterfaceAddrs(t) {
		t.Run(ip.String(), func(t *testing.T) {
			network := "tcp"
			l, err := net.Listen(network, net.JoinHostPort(ip.String(), "0"))
			if err != nil {
				t.Skipf("cannot listen on %s: %v", ip, err)
			}
			t.Cleanup(func() { _ = l.Close() })
			dialRefused(t, g, network, l.Addr().String(), ReasonHostAddress)
			expectNoConnection(t, l)

			exact := New(Policy{Allowed: append(everything, netip.PrefixFrom(ip, ip.BitLen()))})
			c, err := exact.Dialer(&net.Dialer{Timeout: 5 * time.Second}).Dial(network, l.Addr().String())
			if err != nil {
				t.Fatalf("dial with %s allowed as such: %v", ip, err)
			}
			_ = c.Close()
			drain(t, l)
		})
	}
	if len(g.HostAddresses()) == 0 {
		t.Fatal("HostAddresses is empty")
	}
}

// RefreshHostAddresses picks up addresses that appear after start and forgets those that leave.
func TestRefreshHostAddressesFollowsTheInterfaces(t *testing.T) {
	var current atomic.Value
	current.Store([]net.Addr{&net.IPNet{IP: net.ParseIP("127.0.0.1"), Mask: net.CIDRMask(8, 32)}})
	g := New(Policy{
		Allowed:        []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")},
		InterfaceAddrs: func() ([]net.Addr, error) { return current.Load().([]net.Addr), nil },
	})
	if len(g.HostAddresses()) != 0 {
		t.Fatalf("loopback counted as a host address: %v", g.HostAddresses())
	}
	public := netip.MustParseAddr("93.184.215.14")
	if err := g.Check(public); err != nil {
		t.Fatal(err)
	}
	current.Store([]net.Addr{&net.IPNet{IP: net.ParseIP("93.184.215.14"), Mask: net.CIDRMask(24, 32)}})
	if err := g.RefreshHostAddresses(); err != nil {
		t.Fatal(err)
	}
	var be *BlockedError
	if err := g.Check(public); !errors.As(err, &be) || be.Reason != ReasonHostAddress {
		t.Fatalf("Check(%s) = %v, want refused as the host's address", public, err)
	}
	if err := g.Check(netip.MustParseAddr("93.184.215.15")); err != nil {
		t.Fatalf("a neighbour of the host's address is refused: %v", err)
	}
	current.Store([]net.Addr(nil))
	_ = g.RefreshHostAddresses()
	if err := g.Check(public); err != nil {
		t.Fatalf("a departed host address is still refused: %v", err)
	}
}

// Node addresses are refused like the host's, inside allowed ranges too, unless allowed as such.
func TestNodeAddressesAreRefusedUnlessAllowedExactly(t *testing.T) {
	g := New(Policy{Allowed: mustCIDRs(t, "10.0.0.0/8,203.0.113.9/32")})
	g.SetClusterRanges(ClusterRanges{Nodes: []netip.Addr{
		netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("::ffff:93.184.215.14"),
		netip.MustParseAddr("203.0.113.9"), netip.MustParseAddr("10.0.0.5"),
	}})
	for _, ip := range []string{"10.0.0.5", "93.184.215.14", "::ffff:10.0.0.5", "64:ff9b::93.184.215.14"} {
		var be *BlockedError
		if err := g.Check(netip.MustParseAddr(ip)); !errors.As(err, &be) || !strings.Contains(be.Reason, ReasonNodeAddress) {
			t.Errorf("Check(%s) = %v, want refused as a Node address", ip, err)
		}
	}
	for _, ip := range []string{"10.0.0.6", "203.0.113.9", "93.184.215.15"} {
		if err := g.Check(netip.MustParseAddr(ip)); err != nil {
			t.Errorf("Check(%s) = %v, want allowed", ip, err)
		}
	}
	got := g.ClusterRanges().Nodes
	if len(got) != 3 || got[0] != netip.MustParseAddr("10.0.0.5") {
		t.Fatalf("Nodes = %v, want three unmapped addresses without duplicates", got)
	}
}

// In allow-list mode only the allowed ranges are reached: a public address is refused, and a
// listener on 127.0.0.1 is reached only while its address is allowed.
func TestAllowListModeRefusesEverythingElse(t *testing.T) {
	l := listen(t)
	only := New(Policy{Mode: ModeAllowList, Allowed: mustCIDRs(t, "127.0.0.2/32,2606:4700::/32")})
	for _, ip := range []string{"8.8.8.8", "93.184.215.14", "2001:4860:4860::8888", "64:ff9b::8.8.8.8", "127.0.0.1"} {
		var be *BlockedError
		if err := only.Check(netip.MustParseAddr(ip)); !errors.As(err, &be) || !strings.Contains(be.Reason, "allowlist") {
			t.Errorf("Check(%s) = %v, want refused by the allow-list mode", ip, err)
		}
	}
	for _, ip := range []string{"127.0.0.2", "2606:4700:4700::1111"} {
		if err := only.Check(netip.MustParseAddr(ip)); err != nil {
			t.Errorf("Check(%s) = %v, want allowed", ip, err)
		}
	}
	dialRefused(t, only, "tcp4", l.Addr().String(), "allowlist")
	expectNoConnection(t, l)

	loopback := New(Policy{Mode: ModeAllowList, Allowed: mustCIDRs(t, "127.0.0.0/8")})
	c, err := loopback.Dialer(&net.Dialer{Timeout: 5 * time.Second}).Dial("tcp4", l.Addr().String())
	if err != nil {
		t.Fatalf("dial an allowed receiver in allow-list mode: %v", err)
	}
	_ = c.Close()
	drain(t, l)

	if m, err := ParseMode("allowlist"); err != nil || m != ModeAllowList {
		t.Fatalf("ParseMode(allowlist) = %q, %v", m, err)
	}
	if m, err := ParseMode(""); err != nil || m != ModePublic {
		t.Fatalf("ParseMode(\"\") = %q, %v", m, err)
	}
	if _, err := ParseMode("deny-all"); err == nil || !strings.Contains(err.Error(), "allowlist") {
		t.Fatalf("ParseMode(deny-all) = %v, want an error naming the modes", err)
	}
	if err := New(Policy{Mode: "typo"}).Check(netip.MustParseAddr("8.8.8.8")); err == nil {
		t.Fatal("an unknown mode let a public address through; it must fail closed")
	}
}
