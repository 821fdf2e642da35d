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
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func TestDefaultGuardBlocksSpecialPurposeRanges(t *testing.T) {
	cases := []struct {
		ip     string
		prefix string // the range reported
		reason string // a substring of the reason
	}{
		{"127.0.0.1", "127.0.0.0/8", "loopback"},
		{"127.255.0.9", "127.0.0.0/8", "loopback"},
		{"::1", "::1/128", "loopback"},
		{"0.0.0.0", "0.0.0.0/8", "unspecified"},
		{"0.1.2.3", "0.0.0.0/8", "unspecified"},
		{"::", "::/128", "unspecified"},
		{"10.0.0.1", "10.0.0.0/8", "private"},
		{"172.16.0.1", "172.16.0.0/12", "private"},
		{"172.31.255.254", "172.16.0.0/12", "private"},
		{"192.168.1.1", "192.168.0.0/16", "private"},
		{"fc00::1", "fc00::/7", "unique local"},
		{"fd12:3456::1", "fc00::/7", "unique local"},
		{"169.254.0.1", "169.254.0.0/16", "link-local"},
		{"fe80::1", "fe80::/10", "link-local"},
		{"fe80::1%eth0", "fe80::/10", "link-local"},
		{"169.254.169.254", "169.254.169.254/32", "cloud metadata"},
		{"fd00:ec2::254", "fd00:ec2::254/128", "cloud metadata"},
		{"fd20:ce::254", "fd20:ce::254/128", "cloud metadata"},
		{"100.100.100.200", "100.100.100.200/32", "cloud metadata"},
		{"100.64.0.1", "100.64.0.0/10", "carrier-grade NAT"},
		{"100.127.255.254", "100.64.0.0/10", "carrier-grade NAT"},
		{"224.0.0.1", "224.0.0.0/4", "multicast"},
		{"239.255.255.250", "224.0.0.0/4", "multicast"},
		{"ff02::1", "ff00::/8", "multicast"},
		{"255.255.255.255", "255.255.255.255/32", "broadcast"},
		{"240.0.0.1", "240.0.0.0/4", "reserved"},
		{"fec0::1", "fec0::/10", "site-local"},
		// IPv6 forms that lead to a blocked IPv4 address.
		{"::ffff:127.0.0.1", "127.0.0.0/8", "loopback"},
		{"::ffff:169.254.169.254", "169.254.169.254/32", "cloud metadata"},
		{"::ffff:10.1.2.3", "10.0.0.0/8", "private"},
		{"::127.0.0.1", "::/96", "IPv4-compatible"},
		{"64:ff9b::169.254.169.254", "169.254.169.254/32", "cloud metadata address 169.254.169.254 in NAT64 form"},
		{"64:ff9b::a00:1", "10.0.0.0/8", "NAT64"},
		{"64:ff9b::c612:1", "198.18.0.0/15", "benchmarking address 198.18.0.1 in NAT64 form"},
		{"2002:a9fe:a9fe::1", "2002::/16", "6to4"},
		{"2002:808:808::1", "2002::/16", "6to4"},
		// The rest of the IANA registries' entries that are not globally reachable.
		{"192.0.0.1", "192.0.0.0/24", "IETF protocol assignment"},
		{"192.0.0.170", "192.0.0.0/24", "IETF protocol assignment"},
		{"192.0.2.20", "192.0.2.0/24", "documentation"},
		{"192.88.99.1", "192.88.99.0/24", "6to4 relay"},
		{"198.18.0.1", "198.18.0.0/15", "benchmarking"},
		{"198.19.255.254", "198.18.0.0/15", "benchmarking"},
		{"198.51.100.7", "198.51.100.0/24", "documentation"},
		{"203.0.113.7", "203.0.113.0/24", "documentation"},
		{"64:ff9b:1::a00:1", "64:ff9b:1::/48", "local-use NAT64"},
		{"64:ff9b:1:ffff::8.8.8.8", "64:ff9b:1::/48", "local-use NAT64"},
		{"100::1", "100::/64", "discard-only"},
		{"100:0:0:1::1", "100:0:0:1::/64", "dummy"},
		{"2001::1", "2001::/32", "Teredo"},
		{"2001:2::1", "2001:2::/48", "benchmarking"},
		{"2001:5::1", "2001::/23", "IETF protocol assignment"},
		{"2001:1::4", "2001::/23", "IETF protocol assignment"},
		{"2001:10::1", "2001:10::/28", "ORCHID"},
		{"2001:db8::1", "2001:db8::/32", "documentation"},
		{"3fff::1", "3fff::/20", "documentation"},
		{"5f00::1", "5f00::/16", "SRv6"},
		{"400::1", "::/3", "outside IPv6 global unicast"},
		{"4000::1", "4000::/2", "outside IPv6 global unicast"},
		{"e000::1", "8000::/1", "outside IPv6 global unicast"},
	}
	g := Default()
	for _, c := range cases {
		t.Run(c.ip, func(t *testing.T) {
			err := g.Check(netip.MustParseAddr(c.ip))
			var be *BlockedError
			if !errors.As(err, &be) {
				t.Fatalf("Check(%s) = %v, want a *BlockedError", c.ip, err)
			}
			if be.Range.String() != c.prefix || !strings.Contains(be.Reason, c.reason) {
				t.Fatalf("Check(%s): range %s, reason %q; want %s, %q", c.ip, be.Range, be.Reason, c.prefix, c.reason)
			}
			if !strings.Contains(be.Error(), c.reason) || !strings.Contains(be.Error(), c.prefix) {
				t.Fatalf("message %q names neither the reason nor the range", be.Error())
			}
		})
	}
}

func TestDefaultGuardAllowsPublicAddresses(t *testing.T) {
	for _, ip := range []string{
		"8.8.8.8", "1.1.1.1", "93.184.215.14", "172.32.0.1", "100.128.0.1", "169.255.0.1",
		"2001:4860:4860::8888", "2606:4700:4700::1111",
		"::ffff:8.8.8.8", "64:ff9b::8.8.8.8",
		// Globally reachable entries of the registries: outside any refused range, or exceptions
		// inside one (192.0.0.0/24, 2001::/23).
		"192.31.196.1", "192.52.193.1", "192.175.48.1", "192.0.0.9", "192.0.0.10",
		"2001:1::1", "2001:1::2", "2001:1::3", "2001:3::1", "2001:4:112::1", "2001:20::1", "2001:30::1",
		"198.17.255.255", "198.20.0.0", "3fff:1000::1",
	} {
		if err := Default().Check(netip.MustParseAddr(ip)); err != nil {
			t.Errorf("Check(%s) = %v, want allowed", ip, err)
		}
	}
}

func TestNilGuardIsTheDefaultGuard(t *testing.T) {
	var g *Guard
	if err := g.Check(netip.MustParseAddr("169.254.169.254")); err == nil {
		t.Fatal("a nil guard allowed the metadata address")
	}
	if err := g.Control("tcp4", "127.0.0.1:80", nil); err == nil {
		t.Fatal("a nil guard's Control allowed loopback")
	}
	if err := g.Check(netip.MustParseAddr("8.8.8.8")); err != nil {
		t.Fatalf("a nil guard blocked a public address: %v", err)
	}
}

func TestAllowListOverridesBlocks(t *testing.T) {
	g := New(Policy{Allowed: mustCIDRs(t, "127.0.0.0/8,::1/128,10.96.0.10/32"), Blocked: mustCIDRs(t, "10.96.0.0/12")})
	for _, ip := range []string{"127.0.0.1", "127.3.2.1", "::1", "::ffff:127.0.0.1", "10.96.0.10"} {
		if err := g.Check(netip.MustParseAddr(ip)); err != nil {
			t.Errorf("Check(%s) = %v, want allowed", ip, err)
		}
	}
	// Only what is allowed: the rest of the default and configured ranges stays blocked.
	for _, ip := range []string{"169.254.169.254", "10.0.0.1", "10.96.0.11", "192.168.0.1", "fd00:ec2::254"} {
		if err := g.Check(netip.MustParseAddr(ip)); err == nil {
			t.Errorf("Check(%s) allowed, want blocked", ip)
		}
	}
}

func TestAllowListTakesIPv4MappedPrefixes(t *testing.T) {
	g := New(Policy{Allowed: []netip.Prefix{netip.MustParsePrefix("::ffff:127.0.0.0/104")}})
	if err := g.Check(netip.MustParseAddr("127.0.0.1")); err != nil {
		t.Fatalf("::ffff:127.0.0.0/104 does not allow 127.0.0.1: %v", err)
	}
}

func TestConfiguredBlocksAddToTheDefaults(t *testing.T) {
	g := New(Policy{Blocked: mustCIDRs(t, "203.0.113.0/24,10.96.0.0/12,2001:db8::/32")})
	for ip, want := range map[string]string{
		"203.0.113.7":     "203.0.113.0/24",
		"10.96.0.1":       "10.96.0.0/12", // the most specific range names it
		"10.0.0.1":        "10.0.0.0/8",
		"2001:db8::1":     "2001:db8::/32",
		"169.254.169.254": "169.254.169.254/32",
	} {
		var be *BlockedError
		if err := g.Check(netip.MustParseAddr(ip)); !errors.As(err, &be) || be.Range.String() != want {
			t.Errorf("Check(%s) = %v, want blocked by %s", ip, err, want)
		}
	}
	var be *BlockedError
	if errors.As(g.Check(netip.MustParseAddr("203.0.113.7")), &be); be.Reason != reasonConfigured {
		t.Errorf("reason %q, want %q", be.Reason, reasonConfigured)
	}
	if err := g.Check(netip.MustParseAddr("203.0.114.1")); err != nil {
		t.Errorf("a neighbour of a configured range is blocked: %v", err)
	}
}

func TestControlChecksTheDialedAddress(t *testing.T) {
	g := Default()
	var be *BlockedError
	if err := g.Control("tcp4", "169.254.169.254:80", nil); !errors.As(err, &be) || be.Address != "169.254.169.254:80" {
		t.Fatalf("Control = %v, want a *BlockedError naming 169.254.169.254:80", err)
	}
	if err := g.Control("tcp6", "[fd00:ec2::254]:80", nil); !errors.As(err, &be) || !strings.Contains(be.Reason, "metadata") {
		t.Fatalf("Control = %v, want the IPv6 metadata address blocked", err)
	}
	if err := g.Control("tcp6", "[fe80::1%lo]:443", nil); !errors.As(err, &be) {
		t.Fatalf("Control with a zone = %v, want blocked", err)
	}
	if err := g.Control("tcp4", "93.184.215.14:443", nil); err != nil {
		t.Fatalf("Control of a public address = %v", err)
	}
	// Whatever is not ip:port is refused: the guard fails closed.
	if err := g.Control("unix", "/run/docker.sock", nil); !errors.As(err, &be) {
		t.Fatalf("Control of a non-IP address = %v, want refused", err)
	}
}

func TestDialerKeepsItsOwnControl(t *testing.T) {
	l := listen(t)
	var ran atomic.Int32
	d := New(Policy{Allowed: mustCIDRs(t, "127.0.0.0/8")}).Dialer(&net.Dialer{
		Timeout: 5 * time.Second,
		Control: func(string, string, syscall.RawConn) error { ran.Add(1); return nil },
	})
	c, err := d.Dial("tcp4", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
	if ran.Load() != 1 {
		t.Fatalf("the dialer's own Control ran %d times, want 1", ran.Load())
	}
	// With ControlContext set, net.Dialer ignores Control: the guard must wrap ControlContext.
	d = Default().Dialer(&net.Dialer{
		ControlContext: func(context.Context, string, string, syscall.RawConn) error { ran.Add(1); return nil },
	})
	var be *BlockedError
	if _, err := d.Dial("tcp4", l.Addr().String()); !errors.As(err, &be) {
		t.Fatalf("dial with ControlContext = %v, want a *BlockedError", err)
	}
	if ran.Load() != 1 {
		t.Fatal("the inner ControlContext ran for a refused address")
	}
}

// TestGuardRefusesAtConnectTimeWhateverTheName dials real listeners on 127.0.0.1 by names, so
// the address is only known after resolution.
func TestGuardRefusesAtConnectTimeWhateverTheName(t *testing.T) {
	l := listen(t)
	_, port, _ := net.SplitHostPort(l.Addr().String())

	t.Run("localhost", func(t *testing.T) {
		var be *BlockedError
		_, err := Default().Dialer(&net.Dialer{Timeout: 5 * time.Second}).Dial("tcp", net.JoinHostPort("localhost", port))
		if !errors.As(err, &be) || !be.IP.IsLoopback() {
			t.Fatalf("dial localhost = %v, want a *BlockedError for a loopback address", err)
		}
		expectNoConnection(t, l)

		allowed := New(Policy{Allowed: mustCIDRs(t, "127.0.0.0/8,::1/128")})
		c, err := allowed.Dialer(&net.Dialer{Timeout: 5 * time.Second}).Dial("tcp", net.JoinHostPort("localhost", port))
		if err != nil {
			t.Fatalf("dial localhost with 127.0.0.0/8 allowed: %v", err)
		}
		_ = c.Close()
		drain(t, l)
	})

	t.Run("rebinding", func(t *testing.T) {
		// receiver.example.com first resolves to a public address, as when a URL is checked,
		// then to 127.0.0.1, as when it is dialed.
		dns := startDNS(t, netip.MustParseAddr("93.184.215.14"), netip.MustParseAddr("127.0.0.1"))
		first, err := dns.LookupNetIP(context.Background(), "ip4", "receiver.example.com")
		if err != nil || len(first) != 1 {
			t.Fatalf("first lookup: %v %v", first, err)
		}
		if err := Default().Check(first[0]); err != nil {
			t.Fatalf("the first answer %s should look fine: %v", first[0], err)
		}
		d := Default().Dialer(&net.Dialer{Timeout: 5 * time.Second, Resolver: dns})
		var be *BlockedError
		_, err = d.Dial("tcp4", net.JoinHostPort("receiver.example.com", port))
		if !errors.As(err, &be) || be.IP != netip.MustParseAddr("127.0.0.1") {
			t.Fatalf("dial after rebinding = %v, want a *BlockedError for 127.0.0.1", err)
		}
		expectNoConnection(t, l)
	})
}

func TestParseCIDRs(t *testing.T) {
	got, err := ParseCIDRs(" 10.0.0.0/8, 192.168.1.1 ,fd00::/8,,2001:db8::1")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.0.0/8", "192.168.1.1/32", "fd00::/8", "2001:db8::1/128"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	if got, err := ParseCIDRs(""); err != nil || len(got) != 0 {
		t.Fatalf("empty: %v %v", got, err)
	}
	for in, msg := range map[string]string{
		"10.1.2.3/8":  "did you mean 10.0.0.0/8",
		"nope":        "neither a CIDR nor an IP",
		"10.0.0.0/33": "not a CIDR",
		"fe80::1%lo":  "neither a CIDR nor an IP",
	} {
		if _, err := ParseCIDRs(in); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("ParseCIDRs(%q) = %v, want an error with %q", in, err, msg)
		}
	}
}

func TestCIDRListFlag(t *testing.T) {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var l CIDRList
	fs.Var(&l, "allowed-cidrs", "")
	if err := fs.Parse([]string{"--allowed-cidrs=127.0.0.0/8,::1/128", "--allowed-cidrs", "10.0.0.0/16"}); err != nil {
		t.Fatal(err)
	}
	if l.String() != "127.0.0.0/8,::1/128,10.0.0.0/16" {
		t.Fatalf("got %s", l.String())
	}
	if err := fs.Parse([]string{"--allowed-cidrs=10.0.0.1/8"}); err == nil {
		t.Fatal("a host address with a prefix length was accepted")
	}
}

func mustCIDRs(t *testing.T, s string) []netip.Prefix {
	t.Helper()
	p, err := ParseCIDRs(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// expectNoConnection proves that nothing connected to l before now: it connects a marked
// connection and checks that it is the first one accepted.
func expectNoConnection(t *testing.T, l net.Listener) {
	t.Helper()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	if _, err := c.Write([]byte{'!'}); err != nil {
		t.Fatal(err)
	}
	got, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = got.Close() }()
	_ = got.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 1)
	if _, err := io.ReadFull(got, b); err != nil || b[0] != '!' {
		t.Fatalf("the first connection accepted is not the marker (%v): a refused dial connected", err)
	}
}

// drain accepts one connection made by the test.
func drain(t *testing.T, l net.Listener) {
	t.Helper()
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
}

// startDNS serves A queries on 127.0.0.1 over UDP: the first is answered with answers[0], the
// second with answers[1] and so on, the last repeating. AAAA and other queries get no answer. It
// returns a resolver that asks only this server.
func startDNS(t *testing.T, answers ...netip.Addr) *net.Resolver {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	var n atomic.Int32
	go func() {
		buf := make([]byte, 1500)
		for {
			size, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			q := buf[:size]
			// The question starts after the 12-byte header: labels up to a zero byte, then type
			// and class.
			end := 12
			for end < len(q) && q[end] != 0 {
				end += int(q[end]) + 1
			}
			end += 5
			if end > len(q) {
				continue
			}
			qtype := binary.BigEndian.Uint16(q[end-4:])
			resp := append([]byte{}, q[0:2]...)         // id
			resp = append(resp, 0x84|(q[2]&0x01), 0x80) // response, authoritative, RD copied, RA
			resp = append(resp, 0, 1, 0, 0, 0, 0, 0, 0) // 1 question, counts below
			resp = append(resp, q[12:end]...)           // the question
			if qtype == 1 {                             // A
				i := min(int(n.Add(1))-1, len(answers)-1)
				ip := answers[i].As4()
				resp[7] = 1                                                 // one answer
				resp = append(resp, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4) // name → question, A, IN, TTL 0, 4 bytes
				resp = append(resp, ip[:]...)
			}
			_, _ = pc.WriteTo(resp, from)
		}
	}()
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "udp4", pc.LocalAddr().String())
		},
	}
}

// A receiver's host name is looked up as an absolute name, never through the pod's search domains
// (hooks.example.com was looked up as hooks.example.com.svc.cluster.local first, a pod of a
// namespace named "com"); IP addresses and absolute names pass unchanged, and a name from the hosts
// file still connects.
func TestHostNamesAreLookedUpAbsolute(t *testing.T) {
	for in, want := range map[string]string{
		"hooks.example.com:443":  "hooks.example.com.:443",
		"hooks.example.com.:443": "hooks.example.com.:443",
		"receiver:8443":          "receiver:8443",
		"receiver.team-a.svc:80": "receiver.team-a.svc.:80",
		"10.0.0.5:443":           "10.0.0.5:443",
		"[2001:db8::1]:443":      "[2001:db8::1]:443",
		"not-an-address":         "not-an-address",
	} {
		if got := Absolute(in); got != want {
			t.Errorf("Absolute(%q) = %q, want %q", in, got, want)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		if c, err := l.Accept(); err == nil {
			_ = c.Close()
		}
	}()
	g := New(Policy{Allowed: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}})
	_, port, _ := net.SplitHostPort(l.Addr().String())
	c, err := g.DialContext(&net.Dialer{Timeout: 5 * time.Second})(context.Background(), "tcp4", net.JoinHostPort("localhost", port))
	if err != nil {
		t.Fatalf("localhost from the hosts file: %v", err)
	}
	_ = c.Close()
}
