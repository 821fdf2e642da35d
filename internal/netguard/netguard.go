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

// Package netguard keeps webhook traffic away from addresses a tenant must never make hookline
// reach (server-side request forgery): loopback, private, link-local (cloud metadata included) and
// other special-purpose ranges, plus ranges the operator adds and the cluster's own Service and Pod
// networks, which can change at run time (SetClusterRanges). An allow-list re-opens ranges the
// operator trusts (in-cluster receivers, tests).
//
// The check runs in net.Dialer's Control hook, on the IP the socket is about to connect to, after
// name resolution. Checking the URL's host beforehand would not do: a name can resolve to a public
// address when it is checked and to 169.254.169.254 when it is dialed (DNS rebinding), and every
// address a name resolves to is dialed in turn. A Guard only sees what it dials, so the transports
// it protects must not use a proxy (http.Transport.Proxy nil): through a proxy it would check the
// proxy's address and the proxy would reach the target unchecked.
package netguard

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"syscall"
)

// rule is a blocked range and what it is, for messages.
type rule struct {
	prefix netip.Prefix
	reason string
}

// reasonConfigured names ranges blocked by Policy.Blocked.
const reasonConfigured = "configured blocked range"

// defaultRules are refused unless allowed. When several contain an address the longest prefix
// names it, so 169.254.169.254 is reported as cloud metadata, not just link-local.
var defaultRules = mustRules(
	"0.0.0.0/8", "unspecified address",
	"10.0.0.0/8", "private address",
	"100.64.0.0/10", "carrier-grade NAT address",
	"100.100.100.200/32", "cloud metadata address (Alibaba Cloud)",
	"127.0.0.0/8", "loopback address",
	"169.254.0.0/16", "link-local address",
	"169.254.169.254/32", "cloud metadata address",
	"172.16.0.0/12", "private address",
	"192.168.0.0/16", "private address",
	"224.0.0.0/4", "multicast address",
	"240.0.0.0/4", "reserved address",
	"255.255.255.255/32", "broadcast address",
	"::/128", "unspecified address",
	"::1/128", "loopback address",
	"fc00::/7", "unique local (private) address",
	"fd00:ec2::254/128", "cloud metadata address (AWS)",
	"fd20:ce::254/128", "cloud metadata address (Google Cloud)",
	"fe80::/10", "link-local address",
	"fec0::/10", "site-local address",
	"ff00::/8", "multicast address",
)

// IPv6 ranges that carry an IPv4 address which the network may reach on the host's behalf. The
// embedded address is checked like a plain IPv4 one. IPv4-mapped addresses (::ffff:0:0/96) need no
// entry: they are unmapped before anything else.
var (
	compatV4 = netip.MustParsePrefix("::/96")        // IPv4-compatible (deprecated), low 32 bits
	nat64    = netip.MustParsePrefix("64:ff9b::/96") // NAT64 well-known prefix, low 32 bits
	sixToV4  = netip.MustParsePrefix("2002::/16")    // 6to4, bits 16 to 48
)

func mustRules(pairs ...string) []rule {
	rules := make([]rule, 0, len(pairs)/2)
	for i := 0; i < len(pairs); i += 2 {
		rules = append(rules, rule{prefix: netip.MustParsePrefix(pairs[i]), reason: pairs[i+1]})
	}
	return rules
}

// Policy configures a Guard. The zero Policy blocks the default ranges.
type Policy struct {
	// Allowed ranges may be dialed even where a blocked range, default, configured or the
	// cluster's, contains them: in-cluster receivers, test receivers on 127.0.0.1. An allowed
	// range always wins, so 0.0.0.0/0 switches the guard off for IPv4.
	Allowed []netip.Prefix
	// Blocked ranges are refused in addition to the defaults, e.g. Pod ranges a CNI allocates
	// from its own pools, which SetClusterRanges' discovery cannot see.
	Blocked []netip.Prefix
}

// Guard decides which IP addresses outbound webhook connections may reach. It is safe for
// concurrent use. A nil *Guard behaves as Default(), so a forgotten guard is never an open door.
type Guard struct {
	allowed []netip.Prefix
	blocked []rule
	// cluster holds the cluster's Service and Pod ranges, which SetClusterRanges replaces while
	// transports keep dialing with Control: each check loads it once, so no lock is taken and no
	// transport needs rebuilding.
	cluster atomic.Pointer[clusterRules]
}

var defaultGuard = New(Policy{})

// Default returns the guard that blocks the default ranges and allows nothing extra.
func Default() *Guard { return defaultGuard }

// New returns a Guard for p. IPv4-mapped IPv6 prefixes (::ffff:10.0.0.0/104) are converted to
// IPv4 ones, because addresses are compared unmapped.
func New(p Policy) *Guard {
	g := &Guard{blocked: append([]rule(nil), defaultRules...)}
	for _, a := range p.Allowed {
		if a = normalize(a); a.IsValid() {
			g.allowed = append(g.allowed, a)
		}
	}
	for _, b := range p.Blocked {
		if b = normalize(b); b.IsValid() {
			g.blocked = append(g.blocked, rule{prefix: b, reason: reasonConfigured})
		}
	}
	return g
}

func normalize(p netip.Prefix) netip.Prefix {
	if !p.IsValid() {
		return p
	}
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(a.Unmap(), p.Bits()-96).Masked()
	}
	return netip.PrefixFrom(p.Addr().WithZone(""), p.Bits()).Masked()
}

// BlockedError is the error of a connection the Guard refused. Dialers return it wrapped (in a
// *net.OpError, and HTTP clients in a *url.Error): find it with errors.As.
type BlockedError struct {
	// Address is what was dialed: "ip:port" from Control, the IP from Check.
	Address string
	// IP is the refused address, IPv4-mapped IPv6 unmapped; invalid if Address was not an IP.
	IP netip.Addr
	// Range is the blocked range containing IP (for an IPv4 address embedded in IPv6, the IPv4
	// range).
	Range netip.Prefix
	// Reason says what the range is, e.g. "loopback address" or "cloud metadata address".
	Reason string
}

// Error reads e.g. "refusing to connect to 127.0.0.1:8443: loopback address (127.0.0.0/8)".
func (e *BlockedError) Error() string {
	if !e.Range.IsValid() {
		return fmt.Sprintf("refusing to connect to %s: %s", e.Address, e.Reason)
	}
	return fmt.Sprintf("refusing to connect to %s: %s (%s)", e.Address, e.Reason, e.Range)
}

// Check returns nil if ip may be dialed and a *BlockedError otherwise.
func (g *Guard) Check(ip netip.Addr) error {
	if g == nil {
		g = defaultGuard
	}
	if be := g.check(ip); be != nil {
		be.Address = ip.String()
		return be
	}
	return nil
}

func (g *Guard) check(ip netip.Addr) *BlockedError {
	// A zone (fe80::1%eth0) would make every Prefix.Contains false: drop it before comparing.
	ip = ip.WithZone("").Unmap()
	if !ip.IsValid() {
		return &BlockedError{Reason: "not an IP address"}
	}
	for _, a := range g.allowed {
		if a.Contains(ip) {
			return nil
		}
	}
	var cluster []rule
	if c := g.cluster.Load(); c != nil {
		cluster = c.rules
	}
	if r, ok := g.match(ip, cluster); ok {
		return &BlockedError{IP: ip, Range: r.prefix, Reason: r.reason}
	}
	if v4, form, ok := embeddedIPv4(ip); ok {
		if r, ok := g.match(v4, cluster); ok {
			return &BlockedError{IP: ip, Range: r.prefix, Reason: fmt.Sprintf("%s %s in %s form", r.reason, v4, form)}
		}
	}
	return nil
}

// match returns the most specific blocked range containing ip, among g's own and the cluster's.
func (g *Guard) match(ip netip.Addr, cluster []rule) (rule, bool) {
	var best rule
	found := false
	for _, r := range g.blocked {
		if r.prefix.Contains(ip) && (!found || r.prefix.Bits() > best.prefix.Bits()) {
			best, found = r, true
		}
	}
	// On a tie the cluster's range names the address: "cluster Pod range" tells an operator more
	// than "configured blocked range" or "private address" for the same prefix.
	for _, r := range cluster {
		if r.prefix.Contains(ip) && (!found || r.prefix.Bits() >= best.prefix.Bits()) {
			best, found = r, true
		}
	}
	return best, found
}

// embeddedIPv4 returns the IPv4 address an IPv6 transition address leads to, if any.
func embeddedIPv4(ip netip.Addr) (netip.Addr, string, bool) {
	if !ip.Is6() {
		return netip.Addr{}, "", false
	}
	b := ip.As16()
	switch {
	case nat64.Contains(ip):
		return netip.AddrFrom4([4]byte(b[12:16])), "NAT64", true
	case compatV4.Contains(ip):
		return netip.AddrFrom4([4]byte(b[12:16])), "IPv4-compatible IPv6", true
	case sixToV4.Contains(ip):
		return netip.AddrFrom4([4]byte(b[2:6])), "6to4", true
	}
	return netip.Addr{}, "", false
}

// Control is a net.Dialer Control function: it runs after the socket is created and before it
// connects, with the resolved address, and refuses blocked addresses with a *BlockedError. An
// address that is not ip:port is refused too: the guard fails closed.
func (g *Guard) Control(network, address string, _ syscall.RawConn) error {
	if g == nil {
		g = defaultGuard
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return &BlockedError{Address: address, Reason: fmt.Sprintf("not an IP address (%s)", network)}
	}
	if be := g.check(ap.Addr()); be != nil {
		be.Address = address
		return be
	}
	return nil
}

// Dialer returns a copy of d that checks every connection with g before it is made. A Control or
// ControlContext d already has runs after the check.
func (g *Guard) Dialer(d *net.Dialer) *net.Dialer {
	out := *d
	if inner := d.ControlContext; inner != nil {
		// net.Dialer ignores Control when ControlContext is set: wrap the one that runs.
		out.ControlContext = func(ctx context.Context, network, address string, c syscall.RawConn) error {
			if err := g.Control(network, address, c); err != nil {
				return err
			}
			return inner(ctx, network, address, c)
		}
		return &out
	}
	inner := d.Control
	out.Control = func(network, address string, c syscall.RawConn) error {
		if err := g.Control(network, address, c); err != nil {
			return err
		}
		if inner != nil {
			return inner(network, address, c)
		}
		return nil
	}
	return &out
}

// ParseCIDRs parses a comma-separated list of CIDRs; a bare IP stands for that one address.
// Prefixes must be network addresses (10.0.0.0/8, not 10.1.2.3/8), so that a typo cannot
// silently open or close a wider range than meant.
func ParseCIDRs(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !strings.Contains(f, "/") {
			a, err := netip.ParseAddr(f)
			if err != nil || a.Zone() != "" {
				return nil, fmt.Errorf("%q is neither a CIDR nor an IP address", f)
			}
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("%q is not a CIDR: %w", f, err)
		}
		if m := p.Masked(); m != p {
			return nil, fmt.Errorf("%q is not a network address; did you mean %s?", f, m)
		}
		out = append(out, p)
	}
	return out, nil
}

// CIDRList is a flag.Value holding comma-separated CIDRs; the flag may also be repeated.
type CIDRList []netip.Prefix

// String returns the CIDRs comma-separated.
func (l *CIDRList) String() string {
	if l == nil {
		return ""
	}
	s := make([]string, len(*l))
	for i, p := range *l {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

// Set appends the comma-separated CIDRs in s.
func (l *CIDRList) Set(s string) error {
	ps, err := ParseCIDRs(s)
	if err != nil {
		return err
	}
	*l = append(*l, ps...)
	return nil
}
