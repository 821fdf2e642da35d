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
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// The cluster's ranges are public addresses here (TEST-NET-2 and -3, documentation IPv6), which
// the defaults let through: only the cluster ranges can refuse them.
func TestClusterRangesAreRefusedWithTheirNames(t *testing.T) {
	g := New(Policy{})
	g.SetClusterRanges(ClusterRanges{
		Service: mustCIDRs(t, "44.51.100.0/24,2a00:db8:5::/112"),
		Pod:     mustCIDRs(t, "44.3.113.0/25,44.3.113.128/25,2a00:db8:a::/64,10.244.0.0/16"),
	})
	for _, c := range []struct{ ip, prefix, reason string }{
		{"44.51.100.10", "44.51.100.0/24", ReasonClusterService},
		{"2a00:db8:5::a", "2a00:db8:5::/112", ReasonClusterService},
		{"44.3.113.7", "44.3.113.0/24", ReasonClusterPod}, // the two halves are merged
		{"44.3.113.200", "44.3.113.0/24", ReasonClusterPod},
		{"2a00:db8:a::17", "2a00:db8:a::/64", ReasonClusterPod},
		// Inside a default range the cluster's, more specific, names the address.
		{"10.244.3.4", "10.244.0.0/16", ReasonClusterPod},
		{"::ffff:44.3.113.7", "44.3.113.0/24", ReasonClusterPod},
		{"64:ff9b::2c03:7107", "44.3.113.0/24", ReasonClusterPod + " 44.3.113.7 in NAT64 form"},
	} {
		var be *BlockedError
		if err := g.Check(netip.MustParseAddr(c.ip)); !errors.As(err, &be) {
			t.Errorf("Check(%s) = %v, want a *BlockedError", c.ip, err)
			continue
		}
		if be.Range.String() != c.prefix || be.Reason != c.reason {
			t.Errorf("Check(%s): range %s, reason %q; want %s, %q", c.ip, be.Range, be.Reason, c.prefix, c.reason)
		}
	}
	// The defaults stay, and neighbours of the cluster's ranges are not refused.
	if err := g.Check(netip.MustParseAddr("10.0.0.1")); err == nil || !strings.Contains(err.Error(), "private address") {
		t.Errorf("Check(10.0.0.1) = %v, want the private range", err)
	}
	for _, ip := range []string{"44.51.101.1", "44.3.112.255", "2a00:db8:5::1:0"} {
		if err := g.Check(netip.MustParseAddr(ip)); err != nil {
			t.Errorf("Check(%s) = %v, want allowed", ip, err)
		}
	}
}

// Transports are built once, at start; the ranges arrive and change later. A dialer made before
// SetClusterRanges must apply every later set on its next connection.
func TestClusterRangesApplyToTransportsBuiltBefore(t *testing.T) {
	g := New(Policy{})
	d := g.Dialer(&net.Dialer{Timeout: 5 * time.Second})
	client := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}

	// Before any discovery the address is public to the guard (nothing is dialed here: a
	// TEST-NET address would just time out).
	if err := d.Control("tcp4", "44.3.113.7:443", nil); err != nil {
		t.Fatalf("Control before any cluster range = %v", err)
	}

	g.SetClusterRanges(ClusterRanges{Pod: mustCIDRs(t, "44.3.113.0/24")})
	// Refused in the dialer, before a packet is sent, so this returns at once.
	_, err := client.Get("http://44.3.113.7/")
	var be *BlockedError
	if !errors.As(err, &be) || be.Reason != ReasonClusterPod || be.Address != "44.3.113.7:80" {
		t.Fatalf("GET through a transport built earlier = %v, want a *BlockedError for the cluster Pod range", err)
	}
	if !strings.Contains(be.Error(), "cluster Pod range (44.3.113.0/24)") {
		t.Errorf("message %q does not name the cluster Pod range", be.Error())
	}

	// The Node left: its range is no longer the cluster's, and another one is.
	g.SetClusterRanges(ClusterRanges{Pod: mustCIDRs(t, "44.3.113.0/26")})
	if err := d.Control("tcp4", "44.3.113.70:443", nil); err != nil {
		t.Errorf("Control after the range shrank = %v, want allowed", err)
	}
	if err := d.Control("tcp4", "44.3.113.7:443", nil); !errors.As(err, &be) || be.Range.String() != "44.3.113.0/26" {
		t.Errorf("Control in the remaining range = %v, want refused by 44.3.113.0/26", err)
	}
	g.SetClusterRanges(ClusterRanges{})
	if err := d.Control("tcp4", "44.3.113.7:443", nil); err != nil {
		t.Errorf("Control after the ranges were cleared = %v, want allowed", err)
	}
}

func TestAllowListOverridesClusterRanges(t *testing.T) {
	// An in-cluster receiver: its Service's ClusterIP is allowed, the rest of the range is not.
	g := New(Policy{Allowed: mustCIDRs(t, "44.51.100.10/32")})
	g.SetClusterRanges(ClusterRanges{Service: mustCIDRs(t, "44.51.100.0/24")})
	if err := g.Control("tcp4", "44.51.100.10:443", nil); err != nil {
		t.Errorf("Control of the allowed ClusterIP = %v, want allowed", err)
	}
	var be *BlockedError
	if err := g.Control("tcp4", "44.51.100.11:443", nil); !errors.As(err, &be) || be.Reason != ReasonClusterService {
		t.Errorf("Control of another ClusterIP = %v, want refused as the cluster Service range", err)
	}
}

func TestClusterRangeNamesAConfiguredRangeOfTheSameSize(t *testing.T) {
	g := New(Policy{Blocked: mustCIDRs(t, "44.3.113.0/24,44.51.100.0/24")})
	g.SetClusterRanges(ClusterRanges{Pod: mustCIDRs(t, "44.3.113.0/24")})
	var be *BlockedError
	if errors.As(g.Check(netip.MustParseAddr("44.3.113.1")), &be); be == nil || be.Reason != ReasonClusterPod {
		t.Errorf("44.3.113.1: %v, want named the cluster Pod range", be)
	}
	// Clearing the cluster's ranges never removes a configured block.
	g.SetClusterRanges(ClusterRanges{})
	be = nil
	if errors.As(g.Check(netip.MustParseAddr("44.3.113.1")), &be); be == nil || be.Reason != reasonConfigured {
		t.Errorf("44.3.113.1 after clearing: %v, want the configured range", be)
	}
}

func TestSetClusterRangesMergesAndNormalizes(t *testing.T) {
	g := New(Policy{})
	g.SetClusterRanges(ClusterRanges{
		Service: []netip.Prefix{
			netip.MustParsePrefix("::ffff:44.51.100.0/120"), // IPv4-mapped: 44.51.100.0/24
			netip.MustParsePrefix("44.51.100.0/24"),         // a duplicate
			netip.MustParsePrefix("44.51.100.128/25"),       // contained
			{}, // invalid: dropped
		},
		// One /24 per Node, unsorted, with a hole at 10.244.3.0/24.
		Pod: mustCIDRs(t, "10.244.1.0/24,10.244.0.0/24,10.244.2.0/24,10.244.4.0/24,10.244.5.0/24,2a00:db8::/65,2a00:db8:0:0:8000::/65"),
	})
	got := g.ClusterRanges()
	want := ClusterRanges{
		Service: mustCIDRs(t, "44.51.100.0/24"),
		Pod:     mustCIDRs(t, "10.244.0.0/23,10.244.2.0/24,10.244.4.0/23,2a00:db8::/64"),
	}
	if !got.Equal(want) {
		t.Fatalf("ClusterRanges() = %v, want %v", got, want)
	}
	// The hole stays open: merging never blocks what no Node has.
	if err := g.Check(netip.MustParseAddr("10.244.3.1")); err == nil || strings.Contains(err.Error(), "cluster") {
		t.Errorf("Check(10.244.3.1) = %v, want only the private range", err)
	}
	// What ClusterRanges returns is a copy.
	got.Pod[0] = netip.MustParsePrefix("192.0.2.0/24")
	if !g.ClusterRanges().Equal(want) {
		t.Error("changing the result of ClusterRanges changed the guard")
	}
}

func TestSetClusterRangesRefusesTheSharedDefault(t *testing.T) {
	for name, g := range map[string]*Guard{"Default()": Default(), "nil": nil} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("SetClusterRanges did not panic")
				}
			}()
			g.SetClusterRanges(ClusterRanges{Pod: mustCIDRs(t, "44.3.113.0/24")})
		})
	}
	if err := Default().Check(netip.MustParseAddr("44.3.113.1")); err != nil {
		t.Fatalf("the default guard took cluster ranges: %v", err)
	}
	if r := Default().ClusterRanges(); len(r.Service)+len(r.Pod) != 0 {
		t.Fatalf("Default().ClusterRanges() = %v", r)
	}
}

// Run with -race: checks and replacements happen concurrently in the binaries.
func TestSetClusterRangesWhileDialing(t *testing.T) {
	g := New(Policy{})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				err := g.Control("tcp4", "44.3.113.7:443", nil)
				var be *BlockedError
				if err != nil && (!errors.As(err, &be) || be.Reason != ReasonClusterPod) {
					t.Errorf("Control = %v", err)
					return
				}
			}
		})
	}
	for i := range 1000 {
		if i%2 == 0 {
			g.SetClusterRanges(ClusterRanges{Pod: mustCIDRs(t, "44.3.113.0/24")})
		} else {
			g.SetClusterRanges(ClusterRanges{})
		}
	}
	close(stop)
	wg.Wait()
}
