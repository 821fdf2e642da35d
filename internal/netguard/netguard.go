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
// reach (server-side request forgery): every range of the IANA special-purpose address registries
// that is not globally reachable (loopback, private, link-local with cloud metadata, benchmarking,
// documentation, NAT64 local-use, ...), multicast, IPv6 outside global unicast, ranges the
// operator adds, the host's own interface addresses, and the cluster's Service and Pod networks
// and Node addresses, which can change at run time (SetClusterRanges). An allow-list re-opens
// ranges the operator trusts (in-cluster receivers, tests); in allow-list mode (ModeAllowList) it
// is the only way out.
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
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
)

// rule is a range of the address tables and what it is, for messages. A global rule marks a
// globally reachable exception inside a wider blocked range of the same table.
type rule struct {
	prefix netip.Prefix
	reason string
	global bool
}

// reasonConfigured names ranges blocked by Policy.Blocked.
const reasonConfigured = "configured blocked range"

// Reasons of addresses refused whatever range they are in, and of the allow-list mode.
const (
	ReasonHostAddress = "this host's own address"
	ReasonNodeAddress = "address of a cluster Node"
	reasonNotAllowed  = "not in the allowed CIDRs (egress mode allowlist)"
)

// defaultRules are refused unless allowed: every entry of the IANA special-purpose address
// registries whose "Globally Reachable" is not True (False, or N/A for deprecated and transition
// ranges), as the registries stand with RFC 9780 (the dummy IPv6 prefix) registered:
//
//   - https://www.iana.org/assignments/iana-ipv4-special-registry/
//   - https://www.iana.org/assignments/iana-ipv6-special-registry/
//
// plus multicast (224.0.0.0/4, ff00::/8: not unicast receivers) and, for IPv6, everything outside
// 2000::/3, the only block the IPv6 address space registry allocates to global unicast
// (https://www.iana.org/assignments/ipv6-address-space/): reserved space is refused before it is
// ever assigned. Entries with global set are the registries' "Globally Reachable: True" rows that
// lie inside a wider refused range; the longest matching entry decides, so they stay reachable.
// Globally reachable rows outside any refused range (192.31.196.0/24 AS112-v4, 192.52.193.0/24
// AMT, 192.175.48.0/24 AS112) need no entry. IPv4-mapped addresses (::ffff:0:0/96) need none
// either: they are unmapped and checked as IPv4 before anything else.
//
// Cloud metadata addresses are named on their own, so that 169.254.169.254 is reported as cloud
// metadata, not just link-local.
var defaultRules = mustRules(
	// IPv4 special-purpose registry.
	"0.0.0.0/8", "unspecified address (\"this network\")",
	"10.0.0.0/8", "private address",
	"100.64.0.0/10", "carrier-grade NAT address",
	"127.0.0.0/8", "loopback address",
	"169.254.0.0/16", "link-local address",
	"172.16.0.0/12", "private address",
	"192.0.0.0/24", "IETF protocol assignment",
	"+192.0.0.9/32", "Port Control Protocol anycast",
	"+192.0.0.10/32", "TURN anycast",
	"192.0.2.0/24", "documentation address (TEST-NET-1)",
	"192.88.99.0/24", "deprecated 6to4 relay anycast address",
	"192.168.0.0/16", "private address",
	"198.18.0.0/15", "benchmarking address",
	"198.51.100.0/24", "documentation address (TEST-NET-2)",
	"203.0.113.0/24", "documentation address (TEST-NET-3)",
	"240.0.0.0/4", "reserved address",
	"255.255.255.255/32", "broadcast address",
	// IPv4 multicast address space registry.
	"224.0.0.0/4", "multicast address",
	// Cloud metadata services.
	"100.100.100.200/32", "cloud metadata address (Alibaba Cloud)",
	"169.254.169.254/32", "cloud metadata address",
	"fd00:ec2::254/128", "cloud metadata address (AWS)",
	"fd20:ce::254/128", "cloud metadata address (Google Cloud)",
	// IPv6 address space registry: only 2000::/3 is global unicast.
	"::/3", "address outside IPv6 global unicast (2000::/3)",
	"4000::/2", "address outside IPv6 global unicast (2000::/3)",
	"8000::/1", "address outside IPv6 global unicast (2000::/3)",
	// IPv6 special-purpose registry.
	"::/128", "unspecified address",
	"::1/128", "loopback address",
	"::/96", "IPv4-compatible IPv6 address (deprecated)",
	"+64:ff9b::/96", "NAT64 well-known prefix", // its IPv4 address is checked (embeddedIPv4)
	"64:ff9b:1::/48", "local-use NAT64 address",
	"100::/64", "discard-only address",
	"100:0:0:1::/64", "dummy IPv6 prefix",
	"2001::/23", "IETF protocol assignment",
	"2001::/32", "Teredo address",
	"+2001:1::1/128", "Port Control Protocol anycast",
	"+2001:1::2/128", "TURN anycast",
	"+2001:1::3/128", "DNS-SD service registration protocol anycast",
	"2001:2::/48", "benchmarking address",
	"+2001:3::/32", "AMT",
	"+2001:4:112::/48", "AS112-v6",
	"2001:10::/28", "deprecated ORCHID address",
	"+2001:20::/28", "ORCHIDv2",
	"+2001:30::/28", "drone remote ID entity tag",
	"2001:db8::/32", "documentation address",
	"2002::/16", "6to4 address",
	"3fff::/20", "documentation address",
	"5f00::/16", "segment routing (SRv6) SID",
	"fc00::/7", "unique local (private) address",
	"fe80::/10", "link-local address",
	"fec0::/10", "site-local address",
	"ff00::/8", "multicast address",
)

// nat64 is the NAT64 well-known prefix: the network reaches the IPv4 address in its low 32 bits
// on the host's behalf, so that address is checked like a plain IPv4 one.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// mustRules reads (prefix, reason) pairs; a prefix written with a leading "+" is a globally
// reachable exception.
func mustRules(pairs ...string) []rule {
	rules := make([]rule, 0, len(pairs)/2)
	for i := 0; i < len(pairs); i += 2 {
		p, global := strings.CutPrefix(pairs[i], "+")
		rules = append(rules, rule{prefix: netip.MustParsePrefix(p), reason: pairs[i+1], global: global})
	}
	return rules
}

// Mode says what a Guard does with addresses that are neither allowed nor blocked.
type Mode string

// Modes of Policy.Mode.
const (
	// ModePublic (the default) lets connections reach any address that no table blocks: receivers
	// anywhere on the Internet.
	ModePublic Mode = "public"
	// ModeAllowList refuses every address outside Policy.Allowed: receivers only in the networks
	// the operator names.
	ModeAllowList Mode = "allowlist"
)

// ParseMode reads an --egress-mode value; empty means ModePublic.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(strings.TrimSpace(s)); m {
	case "", ModePublic:
		return ModePublic, nil
	case ModeAllowList:
		return m, nil
	}
	return "", fmt.Errorf("egress mode %q: want %s or %s", s, ModePublic, ModeAllowList)
}

// Policy configures a Guard. The zero Policy blocks the default ranges.
type Policy struct {
	// Allowed ranges may be dialed even where a blocked range, default, configured or the
	// cluster's, contains them: in-cluster receivers, test receivers on 127.0.0.1. An allowed
	// range wins over every range, so 0.0.0.0/0 switches the range checks off for IPv4. It does
	// not win over a single address refused as such: the host's own and the Nodes' addresses
	// are refused unless allowed as that very address (a /32 or /128).
	Allowed []netip.Prefix
	// Blocked ranges are refused in addition to the defaults, e.g. Pod ranges a CNI allocates
	// from its own pools, which SetClusterRanges' discovery cannot see.
	Blocked []netip.Prefix
	// Mode is ModePublic (empty) or ModeAllowList.
	Mode Mode
	// InterfaceAddrs lists the host's addresses, which are refused (RefreshHostAddresses); nil
	// means net.InterfaceAddrs.
	InterfaceAddrs func() ([]net.Addr, error)
}

// Guard decides which IP addresses outbound webhook connections may reach. It is safe for
// concurrent use. A nil *Guard behaves as Default(), so a forgotten guard is never an open door.
type Guard struct {
	allowed []netip.Prefix
	// exact holds the allowed single addresses (/32, /128): only they re-open a pinned address.
	exact      map[netip.Addr]bool
	configured []rule
	allowList  bool
	ifaceAddrs func() ([]net.Addr, error)
	// host holds the host's own addresses, which RefreshHostAddresses replaces.
	host atomic.Pointer[map[netip.Addr]bool]
	// cluster holds the cluster's Service and Pod ranges and Node addresses, which
	// SetClusterRanges replaces while transports keep dialing with Control: each check loads it
	// once, so no lock is taken and no transport needs rebuilding.
	cluster atomic.Pointer[clusterRules]
}

var defaultGuard = New(Policy{})

// Default returns the guard that blocks the default ranges and allows nothing extra.
func Default() *Guard { return defaultGuard }

// New returns a Guard for p, refusing the host's addresses as they are now (see
// RefreshHostAddresses). IPv4-mapped IPv6 prefixes (::ffff:10.0.0.0/104) are converted to IPv4
// ones, because addresses are compared unmapped. An unknown p.Mode is treated as ModeAllowList:
// the guard fails closed (ParseMode reports it).
func New(p Policy) *Guard {
	g := &Guard{exact: map[netip.Addr]bool{}, allowList: p.Mode != "" && p.Mode != ModePublic, ifaceAddrs: p.InterfaceAddrs}
	if g.ifaceAddrs == nil {
		g.ifaceAddrs = net.InterfaceAddrs
	}
	for _, a := range p.Allowed {
		if a = normalize(a); a.IsValid() {
			g.allowed = append(g.allowed, a)
			if a.IsSingleIP() {
				g.exact[a.Addr()] = true
			}
		}
	}
	for _, b := range p.Blocked {
		if b = normalize(b); b.IsValid() {
			g.configured = append(g.configured, rule{prefix: b, reason: reasonConfigured})
		}
	}
	_ = g.RefreshHostAddresses() // an error leaves none: the ranges still apply
	return g
}

// RefreshHostAddresses reads the host's interface addresses again and refuses them from the next
// connection on: a receiver URL naming the host's own address reaches whatever listens there (the
// dispatcher's ingest and metrics ports, a sidecar, node services with host networking), and an
// operator's allowed range that contains the Pod network contains the Pod's own address too.
// Loopback addresses are left to the loopback range, which the test suites allow. On error the
// addresses last read are kept.
func (g *Guard) RefreshHostAddresses() error {
	if g == nil {
		return errors.New("netguard: RefreshHostAddresses on a nil Guard")
	}
	addrs, err := g.ifaceAddrs()
	if err != nil {
		return fmt.Errorf("listing the host's interface addresses: %w", err)
	}
	host := map[netip.Addr]bool{}
	for _, a := range addrs {
		var ip net.IP
		switch v := a.(type) {
		case *net.IPNet:
			ip = v.IP
		case *net.IPAddr:
			ip = v.IP
		}
		if addr, ok := netip.AddrFromSlice(ip); ok && !addr.Unmap().IsLoopback() {
			host[addr.Unmap().WithZone("")] = true
		}
	}
	g.host.Store(&host)
	return nil
}

// HostAddresses returns the host addresses g refuses, sorted.
func (g *Guard) HostAddresses() []netip.Addr {
	if g == nil {
		return nil
	}
	h := g.host.Load()
	if h == nil {
		return nil
	}
	out := make([]netip.Addr, 0, len(*h))
	for a := range *h {
		out = append(out, a)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
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
	c := g.cluster.Load()
	be := g.verdict(ip, c)
	if be == nil && nat64.Contains(ip) && !g.isAllowed(ip) {
		b := ip.As16()
		v4 := netip.AddrFrom4([4]byte(b[12:16]))
		if be = g.verdict(v4, c); be != nil {
			be.Reason = fmt.Sprintf("%s %s in NAT64 form", be.Reason, v4)
		}
	}
	if be != nil {
		be.IP = ip
	}
	return be
}

func (g *Guard) isAllowed(ip netip.Addr) bool {
	for _, a := range g.allowed {
		if a.Contains(ip) {
			return true
		}
	}
	return false
}

// verdict decides for an unmapped, zoneless address, in this order: the host's and the Nodes'
// own addresses are refused unless allowed as such; an allowed range admits; in allow-list mode
// nothing else does; otherwise the most specific blocked range refuses.
func (g *Guard) verdict(ip netip.Addr, c *clusterRules) *BlockedError {
	if !g.exact[ip] {
		if h := g.host.Load(); h != nil && (*h)[ip] {
			return &BlockedError{Range: netip.PrefixFrom(ip, ip.BitLen()), Reason: ReasonHostAddress}
		}
		if c != nil && c.nodes[ip] {
			return &BlockedError{Range: netip.PrefixFrom(ip, ip.BitLen()), Reason: ReasonNodeAddress}
		}
	}
	if g.isAllowed(ip) {
		return nil
	}
	if g.allowList {
		return &BlockedError{Reason: reasonNotAllowed}
	}
	var cluster []rule
	if c != nil {
		cluster = c.rules
	}
	if r, ok := g.match(ip, cluster); ok {
		return &BlockedError{Range: r.prefix, Reason: r.reason}
	}
	return nil
}

// match returns the most specific blocked range containing ip: among the default ones, where a
// globally reachable exception that is more specific than any blocked range admits ip, and among
// the configured and the cluster's, which no exception re-opens.
func (g *Guard) match(ip netip.Addr, cluster []rule) (rule, bool) {
	var best rule
	found := false
	for _, r := range defaultRules {
		if r.prefix.Contains(ip) && (!found || r.prefix.Bits() > best.prefix.Bits()) {
			best, found = r, true
		}
	}
	if found && best.global {
		best, found = rule{}, false
	}
	// On a tie a configured range names the address, and the cluster's below names it over both:
	// "cluster Pod range" tells an operator more than "configured blocked range", which tells
	// more than "private address", for the same prefix.
	for _, r := range g.configured {
		if r.prefix.Contains(ip) && (!found || r.prefix.Bits() >= best.prefix.Bits()) {
			best, found = r, true
		}
	}
	for _, r := range cluster {
		if r.prefix.Contains(ip) && (!found || r.prefix.Bits() >= best.prefix.Bits()) {
			best, found = r, true
		}
	}
	return best, found
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

// DialContext is g.Dialer(d)'s DialContext, looking every host name up as an absolute name. A pod's
// resolver tries its search domains first for a name with fewer dots than its ndots (5 in
// Kubernetes): hooks.example.com was looked up as hooks.example.com.svc.cluster.local before
// itself, which is the pod named "hooks" behind the headless Service "example" of a namespace
// named "com" — whoever may create such a Service in a namespace named like a top-level domain
// answered for every receiver of that shape. A receiver's URL names a host on the internet; one in
// the cluster needs its full name (receiver.team-a.svc.cluster.local), and a dotted name in the
// pod's hosts file (hostAliases) is not found.
func (g *Guard) DialContext(d *net.Dialer) func(ctx context.Context, network, address string) (net.Conn, error) {
	dial := g.Dialer(d).DialContext
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		return dial(ctx, network, Absolute(address))
	}
}

// Absolute returns address (host:port) with its host name made absolute (a trailing dot) when it
// has a dot; an IP address, a name absolute already, or a single label ("localhost", a name of the
// pod's hosts file, which Go's resolver consults only for relative names) is returned as it is.
// (A single label is searched for only in the pod's own namespace first, and then as a namespace
// of that name without a Service: nothing a tenant controls.)
func Absolute(address string) string {
	host, port, err := net.SplitHostPort(address)
	if err != nil || !strings.Contains(strings.TrimSuffix(host, "."), ".") || strings.HasSuffix(host, ".") {
		return address
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return address
	}
	return net.JoinHostPort(host+".", port)
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
