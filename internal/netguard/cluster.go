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
	"cmp"
	"net/netip"
	"slices"
)

// Reasons that name the cluster's own ranges in a BlockedError.
const (
	ReasonClusterService = "cluster Service range"
	ReasonClusterPod     = "cluster Pod range"
)

// ClusterRanges are the cluster's own Service and Pod networks and its Nodes' addresses. They are
// known only at run time and change with the cluster (a Node joins with a new Pod range, a
// ServiceCIDR is added), so a Guard takes them through SetClusterRanges rather than its Policy.
// They only add blocks. An allowed range wins over the Service and Pod ranges, which is how an
// operator lets tenants reach an in-cluster receiver; a Node address is refused even inside an
// allowed range (the Pod network often holds the Nodes), unless allowed as that very address.
type ClusterRanges struct {
	// Service holds the ranges ClusterIPs are allocated from (the ServiceCIDRs).
	Service []netip.Prefix
	// Pod holds the ranges Pod IPs are allocated from (the Nodes' podCIDRs).
	Pod []netip.Prefix
	// Nodes holds the Nodes' addresses (InternalIP, ExternalIP), where the kubelet, NodePorts and
	// host-network Pods listen.
	Nodes []netip.Addr
}

// Equal reports whether r and o hold the same prefixes and addresses in the same order, as
// Guard.ClusterRanges returns them.
func (r ClusterRanges) Equal(o ClusterRanges) bool {
	return slices.Equal(r.Service, o.Service) && slices.Equal(r.Pod, o.Pod) && slices.Equal(r.Nodes, o.Nodes)
}

// clusterRules is what a Guard holds of its ClusterRanges: the ranges as given back to callers
// and the rules and addresses check matches against.
type clusterRules struct {
	ranges ClusterRanges
	rules  []rule
	nodes  map[netip.Addr]bool
}

// SetClusterRanges replaces the cluster ranges g refuses. Every transport already dialing through
// g's Control or Dialer applies them from its next connection on, so nothing needs rebuilding.
// Prefixes are normalized like Policy's, and adjacent ones merged (a Node's 10.244.0.0/24 and the
// next one's 10.244.1.0/24 become 10.244.0.0/23), which keeps the list short in a large cluster;
// ClusterRanges returns the result.
//
// The guard of Default() is shared by everything that was given no guard, so it never takes
// cluster ranges: SetClusterRanges panics on it and on a nil Guard. Build the guard with New.
func (g *Guard) SetClusterRanges(r ClusterRanges) {
	if g == nil || g == defaultGuard {
		panic("netguard: SetClusterRanges on the shared default guard; build the guard with New")
	}
	c := &clusterRules{
		ranges: ClusterRanges{Service: merge(r.Service), Pod: merge(r.Pod), Nodes: uniqueAddrs(r.Nodes)},
		nodes:  map[netip.Addr]bool{},
	}
	for _, a := range c.ranges.Nodes {
		c.nodes[a] = true
	}
	for _, p := range c.ranges.Service {
		c.rules = append(c.rules, rule{prefix: p, reason: ReasonClusterService})
	}
	for _, p := range c.ranges.Pod {
		c.rules = append(c.rules, rule{prefix: p, reason: ReasonClusterPod})
	}
	g.cluster.Store(c)
}

// ClusterRanges returns the cluster ranges g refuses, as SetClusterRanges stored them (normalized,
// sorted, merged; Node addresses unmapped, sorted, without duplicates); none for a nil Guard or
// one that never got any.
func (g *Guard) ClusterRanges() ClusterRanges {
	if g == nil {
		return ClusterRanges{}
	}
	c := g.cluster.Load()
	if c == nil {
		return ClusterRanges{}
	}
	// Copies, so that a caller cannot change what connections are checked against.
	return ClusterRanges{Service: slices.Clone(c.ranges.Service), Pod: slices.Clone(c.ranges.Pod), Nodes: slices.Clone(c.ranges.Nodes)}
}

// uniqueAddrs returns the valid addresses of as unmapped, without zones, sorted and without
// duplicates.
func uniqueAddrs(as []netip.Addr) []netip.Addr {
	out := make([]netip.Addr, 0, len(as))
	for _, a := range as {
		if a.IsValid() {
			out = append(out, a.WithZone("").Unmap())
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out)
}

// merge returns the valid prefixes of ps normalized and sorted, without duplicates or prefixes
// another one contains, and with sibling halves joined into their parent. The result covers exactly
// the addresses ps covers: nothing is blocked that was not asked for.
func merge(ps []netip.Prefix) []netip.Prefix {
	in := make([]netip.Prefix, 0, len(ps))
	for _, p := range ps {
		if p = normalize(p); p.IsValid() {
			in = append(in, p)
		}
	}
	// By address, then widest first: a prefix comes right after any that contains it.
	slices.SortFunc(in, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return cmp.Compare(a.Bits(), b.Bits())
	})
	// out stays sorted and disjoint, so only its last element can contain the next prefix or be
	// its sibling.
	var out []netip.Prefix
	for _, p := range in {
		if n := len(out); n > 0 && out[n-1].Bits() <= p.Bits() && out[n-1].Contains(p.Addr()) {
			continue
		}
		out = append(out, p)
		for n := len(out); n >= 2; n = len(out) {
			a, b := out[n-2], out[n-1]
			if a.Bits() != b.Bits() || a.Bits() == 0 {
				break
			}
			pa, _ := a.Addr().Prefix(a.Bits() - 1)
			pb, _ := b.Addr().Prefix(b.Bits() - 1)
			if pa != pb {
				break
			}
			out = append(out[:n-2], pa)
		}
	}
	return out
}
