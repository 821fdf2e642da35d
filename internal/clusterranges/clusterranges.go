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

// Package clusterranges reads the cluster's own Service and Pod ranges and its Nodes' addresses
// from the API server into the SSRF guard (netguard.Guard.SetClusterRanges), so that a tenant's
// webhook URL cannot reach ClusterIPs, Pods, kubelets and NodePorts wherever the cluster puts
// them: these are often private addresses, which the guard refuses anyway, but not always (IPv6
// clusters usually give Pods global addresses, some clusters use "privately used public" IPv4
// ranges, and a Node's ExternalIP is public by definition). Each read also refreshes the host's
// own interface addresses (netguard.Guard.RefreshHostAddresses).
//
// The Service ranges are the networking.k8s.io/v1 ServiceCIDR objects; the Pod ranges are the
// Nodes' spec.podCIDRs and the Node addresses their status.addresses of type InternalIP and
// ExternalIP. Both are listed, uncached, every interval: watching them would need watch rights
// and a cache of every Node, for ranges that change a few times a day. A CNI that allocates Pod
// IPs from its own pools (Calico IPPools, Cilium's cluster-pool) leaves podCIDRs unused or
// unrelated, so its pools must be given with --blocked-cidrs.
package clusterranges

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/hookline/hookline/internal/netguard"
)

const (
	// DefaultInterval is how often the ranges are read again unless the flag says otherwise.
	DefaultInterval = 5 * time.Minute
	// firstRefreshTimeout bounds Setup's first read, which delays start-up.
	firstRefreshTimeout = 15 * time.Second
	// refreshTimeout bounds each later read, so that a hung request cannot stop the refreshes.
	refreshTimeout = time.Minute
	// nodePage is how many Nodes one list request returns: a large cluster's Nodes are big objects.
	nodePage = 500
)

// Sources of ranges, as named in logs.
const (
	sourceServiceCIDRs = "servicecidrs.networking.k8s.io"
	sourceNodes        = "nodes"
	sourceInterfaces   = "network interfaces"
)

// Discoverer keeps a Guard's cluster ranges current. It is a controller-runtime Runnable that runs
// on every replica, leader or not. Its ServiceAccount needs list (only) on
// servicecidrs.networking.k8s.io and nodes, cluster-wide; the RBAC markers granting it are with
// each binary's others, in controllers/ and dispatcher/, where controller-gen reads them.
type Discoverer struct {
	// Reader lists ServiceCIDRs and Nodes. Give it the manager's API reader
	// (manager.GetAPIReader): the cached client would start informers, which need watch rights
	// and keep every Node in memory.
	Reader client.Reader
	// Guard receives the ranges. It must come from netguard.New: the default guard is shared and
	// takes none.
	Guard *netguard.Guard
	// Interval is the time between two reads; it must be positive.
	Interval time.Duration
	// Log receives the ranges when they change, and each distinct error once.
	Log logr.Logger

	mu sync.Mutex
	// primed says a read has been made (by Setup): Start then waits an interval before the next.
	primed bool
	// service, pod and nodes are what each source last gave: a source that fails keeps its own.
	service, pod []netip.Prefix
	nodes        []netip.Addr
	// errs holds the last error message per source, so that a persisting error is logged once.
	errs map[string]string
}

var _ manager.LeaderElectionRunnable = &Discoverer{}

// Setup makes one read at once, so that the ranges are blocked before the caller starts dialing,
// and adds a Discoverer that reads them again every interval to mgr. An interval of 0 turns
// discovery off; a negative one is an error. A failing first read is logged, not returned: the
// guard's other ranges still apply, and the next read may succeed.
// It logs with the logger of ctx (logr.NewContext).
func Setup(ctx context.Context, mgr manager.Manager, guard *netguard.Guard, interval time.Duration) error {
	log := logr.FromContextOrDiscard(ctx)
	switch {
	case interval < 0:
		return fmt.Errorf("--cluster-ranges-interval must not be negative, got %s", interval)
	case interval == 0:
		log.Info("Discovery of the cluster's Service and Pod ranges is off (--cluster-ranges-interval=0)")
		return nil
	}
	d := &Discoverer{Reader: mgr.GetAPIReader(), Guard: guard, Interval: interval, Log: log}
	if err := d.valid(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, firstRefreshTimeout)
	defer cancel()
	_ = d.Refresh(ctx) // logged by Refresh
	return mgr.Add(d)
}

func (d *Discoverer) valid() error {
	switch {
	case d.Reader == nil:
		return errors.New("clusterranges: no Reader")
	case d.Guard == nil || d.Guard == netguard.Default():
		return errors.New("clusterranges: the Guard must come from netguard.New")
	case d.Interval <= 0:
		return fmt.Errorf("clusterranges: the interval must be positive, got %s", d.Interval)
	}
	return nil
}

// NeedLeaderElection returns false: a standby that wins the election dials at once, so its guard
// must be current before then; reading is harmless.
func (d *Discoverer) NeedLeaderElection() bool { return false }

// Start reads the ranges at once (unless Setup just did) and then every Interval until ctx ends.
// Errors are logged, never returned: a cluster that does not serve ServiceCIDRs, or RBAC that
// forbids a list, must not stop the process.
func (d *Discoverer) Start(ctx context.Context) error {
	if err := d.valid(); err != nil {
		return err
	}
	d.mu.Lock()
	primed := d.primed
	d.mu.Unlock()
	if !primed {
		d.refreshWithTimeout(ctx)
	}
	t := time.NewTicker(d.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			d.refreshWithTimeout(ctx)
		}
	}
}

func (d *Discoverer) refreshWithTimeout(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, refreshTimeout)
	defer cancel()
	_ = d.Refresh(ctx)
}

// Refresh lists the ServiceCIDRs and the Nodes once and hands their ranges to the Guard. A source
// that cannot be listed keeps the ranges it last gave; its error is logged once per distinct
// message and returned (joined with the other source's).
func (d *Discoverer) Refresh(ctx context.Context) error {
	if err := d.valid(); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.primed = true

	service, svcErr := d.listServiceCIDRs(ctx)
	d.report(sourceServiceCIDRs, svcErr)
	if svcErr == nil {
		d.service = service
	}
	pod, nodes, podErr := d.listNodes(ctx)
	d.report(sourceNodes, podErr)
	if podErr == nil {
		d.pod, d.nodes = pod, nodes
	}
	hostErr := d.Guard.RefreshHostAddresses()
	d.report(sourceInterfaces, hostErr)

	before := d.Guard.ClusterRanges()
	d.Guard.SetClusterRanges(netguard.ClusterRanges{Service: d.service, Pod: d.pod, Nodes: d.nodes})
	if after := d.Guard.ClusterRanges(); !after.Equal(before) {
		kv := []any{"service", cidrStrings(after.Service), "pod", cidrStrings(after.Pod), "nodeAddresses", len(after.Nodes)}
		if len(after.Pod) == 0 && podErr == nil {
			kv = append(kv, "note", "no Node has a podCIDR: if the CNI allocates Pod IPs from its own pools, give them with --blocked-cidrs")
		}
		d.Log.Info("Blocking the cluster's Service and Pod ranges and Node addresses", kv...)
	}
	return errors.Join(svcErr, podErr, hostErr)
}

func (d *Discoverer) listServiceCIDRs(ctx context.Context) ([]netip.Prefix, error) {
	list := &networkingv1.ServiceCIDRList{}
	if err := d.Reader.List(ctx, list); err != nil {
		return nil, err
	}
	var out []netip.Prefix
	for _, s := range list.Items {
		out = d.appendParsed(out, "ServiceCIDR "+s.Name, s.Spec.CIDRs...)
	}
	return out, nil
}

// listNodes returns the Nodes' Pod ranges and their InternalIP and ExternalIP addresses.
func (d *Discoverer) listNodes(ctx context.Context) ([]netip.Prefix, []netip.Addr, error) {
	var pods []netip.Prefix
	var addrs []netip.Addr
	for cont := ""; ; {
		list := &corev1.NodeList{}
		if err := d.Reader.List(ctx, list, client.Limit(nodePage), client.Continue(cont)); err != nil {
			return nil, nil, err
		}
		for _, n := range list.Items {
			// podCIDR is the first of podCIDRs on current clusters; older ones set only podCIDR.
			pods = d.appendParsed(pods, "Node "+n.Name, n.Spec.PodCIDRs...)
			pods = d.appendParsed(pods, "Node "+n.Name, n.Spec.PodCIDR)
			for _, a := range n.Status.Addresses {
				if a.Type != corev1.NodeInternalIP && a.Type != corev1.NodeExternalIP {
					continue // Hostname and DNS names: the IPs they stand for are listed too
				}
				ip, err := netip.ParseAddr(a.Address)
				if err != nil {
					d.Log.V(1).Info("Ignoring an invalid Node address", "object", "Node "+n.Name, "address", a.Address)
					continue
				}
				addrs = append(addrs, ip)
			}
		}
		if cont = list.Continue; cont == "" {
			return pods, addrs, nil
		}
	}
}

// appendParsed appends the CIDRs in cidrs to out, skipping empty and invalid ones (the API server
// validates these fields, so an invalid one is not worth failing the whole source for).
func (d *Discoverer) appendParsed(out []netip.Prefix, owner string, cidrs ...string) []netip.Prefix {
	for _, c := range cidrs {
		if c == "" {
			continue
		}
		p, err := netip.ParsePrefix(c)
		if err != nil {
			d.Log.V(1).Info("Ignoring an invalid CIDR", "object", owner, "cidr", c)
			continue
		}
		out = append(out, p.Masked())
	}
	return out
}

// cidrStrings formats ps for logs, the same with every log encoder.
func cidrStrings(ps []netip.Prefix) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

// report logs err for source unless it is the error last logged for it, and logs a recovery.
func (d *Discoverer) report(source string, err error) {
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	if d.errs == nil {
		d.errs = map[string]string{}
	}
	last, failed := d.errs[source]
	if err == nil {
		if failed {
			delete(d.errs, source)
			d.Log.Info("Listing works again", "resource", source)
		}
		return
	}
	if failed && last == msg || errors.Is(err, context.Canceled) {
		// Logged already, or the process is shutting down.
		return
	}
	d.errs[source] = msg
	switch {
	case meta.IsNoMatchError(err) || apierrors.IsNotFound(err):
		// ServiceCIDRs are served from Kubernetes 1.33 on; an older cluster is no malfunction.
		d.Log.Info("The API server does not serve this resource, so its ranges are unknown: give them with --blocked-cidrs",
			"resource", source, "error", msg)
	case apierrors.IsForbidden(err):
		d.Log.Error(err, "Not allowed to list the cluster's ranges (the ServiceAccount needs list on this resource); keeping the ones last read",
			"resource", source)
	default:
		d.Log.Error(err, "Listing the cluster's ranges failed; keeping the ones last read", "resource", source)
	}
}
