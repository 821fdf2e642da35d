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

// Package partition divides delivery among the dispatchers that share one NATS cluster.
//
// Webhooks belong to partitions by account (Of), so that an account's concurrency cap and each
// webhook's order are kept by one dispatcher. Each partition is owned by one dispatcher at a time
// through a lease: a key in the key-value bucket HOOKLINE_PARTITIONS whose entries expire TTL after
// their last write, renewed by compare-and-set on the revision the owner wrote last (the single
// delivery lease of package store, once per partition). The dispatchers alive announce themselves
// with a key each in HOOKLINE_MEMBERS, expiring the same way, and share the partitions by
// rendezvous hashing over that membership: a dispatcher joining or leaving moves only its own
// share, and every member computes the same assignment from the same membership.
//
// Fencing: an owner stops (Config.Stop returns, Owns is false) before its lease can expire, TTL/4
// before the store's expiry counted from the moment the renewal was sent; a lease given up on a
// rebalance is deleted only after Stop returned. So the next owner cannot start sending while the
// previous one still does. An attempt already in flight when Stop is called may complete; its
// notification may then be sent again by the next owner, with the same id.
//
// Why not NATS's partitioned consumer groups (orbit.go pcgroups) or a pinned-client priority group
// (ADR-42): they hand out stream messages to consumers, while a dispatcher keeps per-webhook queues
// whose head may be retried for 72 hours; and their elastic membership is managed by an operator or
// a program, not by the members' liveness. docs/operations.md has the comparison.
package partition

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookline/hookline/dispatcher/kvlease"
)

// Names of the buckets.
const (
	PartitionsBucket = "HOOKLINE_PARTITIONS"
	MembersBucket    = "HOOKLINE_MEMBERS"
	// countKey is the metadata key of the partitions bucket holding the number of partitions.
	countKey = "hookline.io/partitions"
)

// Of is the partition of account among n.
func Of(account string, n int) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(account))
	return int(h.Sum32() % uint32(n))
}

// Config configures one member of the group.
type Config struct {
	// JetStream of the cluster the dispatchers share.
	JetStream jetstream.JetStream
	// Identity names this dispatcher (its pod name): a valid key-value key. A dispatcher that
	// restarts under the same identity takes its own leases back at once.
	Identity string
	// Partitions is the number of partitions when the group is created; a group's number never
	// changes afterwards (webhooks would move between partitions), and an existing group's wins.
	Partitions int
	// TTL is how long a lease or a membership outlives its holder's last renewal; renewals come
	// every TTL/4.
	TTL time.Duration
	// Replicas of the buckets.
	Replicas int
	// Fence, when set, keeps another kind of deliverer out (the standby mode's lease holder, of an
	// older release during a rollout): called at every pass, it marks the way in as taken by the
	// group and returns who else delivers ("" when nobody). While somebody else does, or while
	// Fence has not succeeded for three quarters of the TTL, this member owns nothing.
	Fence func(ctx context.Context) (holder string, err error)
	// Renewed, when set, is told after each write of partition p's lease (taking it, before Start,
	// and renewing it) until when this member may start work for p: three quarters of the TTL
	// after the write was sent, or after the last check of Fence that succeeded if that is
	// earlier. A deliverer that checks it stops in time even when Run is held up.
	Renewed func(p int, until time.Time)
	// Start is called once this member owns partition p, with a fencing token: the revision of
	// the lease it took, higher for every later owner of p (the bucket's revisions only grow), so
	// that whatever an owner writes can be told from what an earlier one wrote late. Stop is
	// called before this member gives p up or once it can no longer be sure to own it; it must
	// return only when no new delivery for p starts. They are called in order for each partition;
	// Stop may run for several partitions at once.
	Start func(p int, token uint64)
	Stop  func(p int)
}

// Group is one member's view of the partitions: which it owns, kept up to date by Run.
type Group struct {
	cfg     Config
	log     logr.Logger
	parts   jetstream.KeyValue
	members jetstream.KeyValue
	n       int

	mu    sync.Mutex
	held  map[int]*lease // owned partitions
	alive []string       // members seen last
	// renewed is when this member's membership was last written (the write sent then).
	renewed time.Time
	// fenced is when Fence last succeeded (the call began then); blockedBy is who else delivers.
	fenced    time.Time
	blockedBy string
}

// lease is one owned partition: the revision this member wrote last and when it sent that write,
// and the revision it took it at (the fencing token Config.Start was given).
type lease struct {
	rev     uint64
	renewed time.Time
	token   uint64
}

// Join opens (or creates) the group's buckets. Call Run to take part.
func Join(ctx context.Context, cfg Config) (*Group, error) {
	if cfg.TTL <= 0 || cfg.Identity == "" || cfg.Partitions <= 0 {
		return nil, errors.New("partition: a group member needs a TTL, an identity and a number of partitions")
	}
	if cfg.Start == nil {
		cfg.Start = func(int, uint64) {}
	}
	if cfg.Stop == nil {
		cfg.Stop = func(int) {}
	}
	g := &Group{cfg: cfg, log: logr.FromContextOrDiscard(ctx), held: map[int]*lease{}}
	var err error
	if g.parts, err = g.bucket(ctx, PartitionsBucket, "hookline: which dispatcher delivers each partition",
		map[string]string{countKey: strconv.Itoa(cfg.Partitions)}); err != nil {
		return nil, err
	}
	if g.members, err = g.bucket(ctx, MembersBucket, "hookline: the dispatchers alive", nil); err != nil {
		return nil, err
	}
	st, err := g.parts.Status(ctx)
	if err != nil {
		return nil, err
	}
	g.n = cfg.Partitions
	if v, err := strconv.Atoi(st.Metadata()[countKey]); err == nil && v > 0 {
		g.n = v
	}
	if g.n != cfg.Partitions {
		g.log.Info("Using the group's number of partitions", "partitions", g.n, "configured", cfg.Partitions)
	}
	return g, nil
}

// bucket opens a bucket, creating it with this member's TTL if it does not exist. An existing
// bucket's TTL wins: keys expire after it, so renewing and giving up must follow it.
func (g *Group) bucket(ctx context.Context, name, description string, metadata map[string]string) (jetstream.KeyValue, error) {
	kv, err := g.cfg.JetStream.KeyValue(ctx, name)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = g.cfg.JetStream.CreateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: name, Description: description, History: 1, TTL: g.cfg.TTL,
			Storage: jetstream.FileStorage, Replicas: max(g.cfg.Replicas, 1), Metadata: metadata,
		})
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = g.cfg.JetStream.KeyValue(ctx, name)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("partition bucket %s: %w", name, err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		return nil, err
	}
	if ttl := st.TTL(); ttl > 0 && ttl != g.cfg.TTL {
		g.log.Info("Using the bucket's TTL", "bucket", name, "bucketTTL", ttl, "configured", g.cfg.TTL)
		g.cfg.TTL = ttl
	}
	return kv, nil
}

// Partitions is the group's number of partitions.
func (g *Group) Partitions() int { return g.n }

// Owns reports whether this member owns partition p now: it holds p's lease and renewed it
// recently enough that nobody else can have taken it.
func (g *Group) Owns(p int) bool { return g.Token(p) != 0 }

// Token returns the fencing token this member took partition p with (Config.Start's, a KV
// revision: never 0) while it owns p (Owns), and 0 otherwise: a member that gives p up and takes
// it again gets a new one.
func (g *Group) Token(p int) uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	l := g.held[p]
	if l == nil || !time.Now().Before(l.renewed.Add(g.safe())) {
		return 0
	}
	return l.token
}

// Member reports whether this member's membership is current: written within three quarters of the
// TTL, so that the others count it in the assignment. It is false before Run's first pass and while
// NATS is out of reach.
func (g *Group) Member() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return !g.renewed.IsZero() && time.Now().Before(g.renewed.Add(g.safe()))
}

// BlockedBy names the deliverer of another kind that keeps this member from owning anything
// (Config.Fence), "" when none.
func (g *Group) BlockedBy() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.blockedBy
}

// Members lists the members seen alive at the last pass, this one included.
func (g *Group) Members() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.alive)
}

// Owned lists the partitions this member owns, in order.
func (g *Group) Owned() []int {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]int, 0, len(g.held))
	for p := range g.held {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// safe is how long after a renewal was sent its holder may go on: a quarter TTL less than the
// store keeps it, for clocks that run at slightly different rates.
func (g *Group) safe() time.Duration { return g.cfg.TTL * 3 / 4 }

// Run takes part in the group until ctx ends: it announces this member, takes the partitions the
// assignment gives it when they are free, renews them, and gives up the ones it no longer should
// hold. When ctx ends it stops and releases every partition and its membership, so that the
// others take over at once.
func (g *Group) Run(ctx context.Context) {
	tick := time.NewTicker(max(g.cfg.TTL/16, 10*time.Millisecond))
	defer tick.Stop()
	var next time.Time // of the next membership renewal and assignment pass
	for {
		now := time.Now()
		g.fence(now)
		if !now.Before(next) {
			next = now.Add(g.cfg.TTL / 4)
			g.pass(ctx)
		}
		select {
		case <-ctx.Done():
			g.leave()
			return
		case <-tick.C:
		}
	}
}

// fence stops every partition whose lease could not be renewed in time, all at once: one that stops
// slowly (NATS out of reach while it saves) must not delay the others past their own deadlines.
func (g *Group) fence(now time.Time) {
	var wg sync.WaitGroup
	for _, p := range g.Owned() {
		g.mu.Lock()
		l := g.held[p]
		late := !now.Before(g.deadlineLocked(l.renewed))
		g.mu.Unlock()
		if late {
			g.log.Info("Partition lease (or the check that no standby-mode dispatcher delivers) not renewed in time: stopping", "partition", p)
			wg.Go(func() { g.drop(p) })
		}
	}
	wg.Wait()
}

// deadlineLocked is until when a partition whose lease was last written at renewed may be
// delivered: three quarters of the TTL after that write, and after the last check of Config.Fence
// that succeeded, whichever comes first. The fence's mark keeps standby-mode dispatchers out for a
// TTL after that check, so a member whose checks fail must stop as if its leases had lapsed, even
// while their renewals succeed.
func (g *Group) deadlineLocked(renewed time.Time) time.Time {
	d := renewed.Add(g.safe())
	if g.cfg.Fence != nil {
		if f := g.fenced.Add(g.safe()); f.Before(d) {
			d = f
		}
	}
	return d
}

// drop stops delivering p and forgets its lease.
func (g *Group) drop(p int) {
	g.cfg.Stop(p)
	g.mu.Lock()
	delete(g.held, p)
	g.mu.Unlock()
}

// pass renews this member's membership and leases and moves partitions to where the assignment
// puts them.
func (g *Group) pass(ctx context.Context) {
	rctx, cancel := context.WithTimeout(ctx, g.cfg.TTL/4)
	defer cancel()
	sent := time.Now()
	if _, err := g.members.Put(rctx, g.cfg.Identity, []byte(sent.UTC().Format(time.RFC3339Nano))); err != nil {
		g.log.Info("Renewing the group membership failed; retrying", "error", err.Error())
	} else {
		g.mu.Lock()
		g.renewed = sent
		g.mu.Unlock()
	}
	alive, err := g.live(rctx)
	if err != nil {
		g.log.Info("Reading the group membership failed; keeping the current partitions", "error", err.Error())
		alive = nil
	}
	g.mu.Lock()
	if alive != nil {
		g.alive = alive
	}
	alive = g.alive
	g.mu.Unlock()
	if !g.fenceOpen(rctx) {
		for _, p := range g.Owned() {
			g.mu.Lock()
			l := g.held[p]
			g.mu.Unlock()
			g.release(rctx, p, l)
		}
		return
	}
	for p := range g.n {
		want := alive == nil || Owner(alive, p) == g.cfg.Identity
		g.mu.Lock()
		l := g.held[p]
		g.mu.Unlock()
		switch {
		case l != nil && want:
			g.renew(rctx, p, l)
		case l != nil:
			g.release(rctx, p, l)
		case want && alive != nil:
			g.take(rctx, p)
		}
	}
}

// fenceOpen runs Config.Fence and reports whether this member may own partitions.
func (g *Group) fenceOpen(ctx context.Context) bool {
	if g.cfg.Fence == nil {
		return true
	}
	began := time.Now()
	holder, err := g.cfg.Fence(ctx)
	g.mu.Lock()
	defer g.mu.Unlock()
	if err != nil {
		g.log.Info("Checking that no other kind of dispatcher delivers failed; retrying", "error", err.Error())
	} else {
		g.fenced = began
		if holder != g.blockedBy {
			if holder != "" {
				g.log.Info("Not delivering: a dispatcher in the standby mode holds the delivery lease", "holder", holder)
			} else if g.blockedBy != "" {
				g.log.Info("The standby mode's delivery lease is free: delivering", "previousHolder", g.blockedBy)
			}
		}
		g.blockedBy = holder
	}
	return g.blockedBy == "" && !g.fenced.IsZero() && began.Before(g.fenced.Add(g.safe()))
}

// live lists the members whose membership has not expired, this one included.
func (g *Group) live(ctx context.Context) ([]string, error) {
	keys, err := g.members.Keys(ctx)
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		keys, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	if !slices.Contains(keys, g.cfg.Identity) {
		keys = append(keys, g.cfg.Identity)
	}
	slices.Sort(keys)
	return keys, nil
}

// Owner is the member that partition p belongs to among members: the highest rendezvous score.
func Owner(members []string, p int) string {
	best, bestScore := "", uint64(0)
	for _, m := range members {
		// A cryptographic digest: FNV of such short, similar strings is far from uniform.
		sum := sha256.Sum256([]byte(m + "/" + strconv.Itoa(p)))
		if s := binary.BigEndian.Uint64(sum[:8]); best == "" || s > bestScore || s == bestScore && m < best {
			best, bestScore = m, s
		}
	}
	return best
}

func key(p int) string { return "p" + strconv.Itoa(p) }

// take acquires p's lease if it is free, or still this member's own from before a restart.
func (g *Group) take(ctx context.Context, p int) {
	sent := time.Now()
	rev, holder, err := kvlease.Take(ctx, g.parts, key(p), g.cfg.Identity)
	if err != nil || holder != "" {
		return // held by another member: it gives p up, or its lease expires
	}
	g.mu.Lock()
	g.held[p] = &lease{rev: rev, renewed: sent, token: rev}
	g.mu.Unlock()
	g.log.V(1).Info("Took partition", "partition", p)
	if g.cfg.Renewed != nil {
		g.mu.Lock()
		until := g.deadlineLocked(sent)
		g.mu.Unlock()
		g.cfg.Renewed(p, until)
	}
	g.cfg.Start(p, rev)
}

// renew extends p's lease; a lease somebody else wrote is lost at once.
func (g *Group) renew(ctx context.Context, p int, l *lease) {
	sent := time.Now()
	rev, err := kvlease.Renew(ctx, g.parts, key(p), g.cfg.Identity, l.rev)
	switch {
	case err == nil:
		g.mu.Lock()
		l.rev, l.renewed = rev, sent
		until := g.deadlineLocked(sent)
		g.mu.Unlock()
		if g.cfg.Renewed != nil {
			g.cfg.Renewed(p, until)
		}
	case errors.Is(err, kvlease.ErrTaken):
		g.log.Info("Partition taken over by another dispatcher", "partition", p)
		g.drop(p)
	default:
		// Perhaps a leader election in the cluster: fence drops p if no renewal succeeds in time.
		g.log.V(1).Info("Renewing a partition lease failed; retrying", "partition", p, "error", err.Error())
	}
}

// release stops delivering p, then deletes its lease so that its new owner takes it at once.
func (g *Group) release(ctx context.Context, p int, l *lease) {
	g.drop(p)
	if err := kvlease.Release(ctx, g.parts, key(p), g.cfg.Identity, l.rev); err != nil {
		g.log.V(1).Info("Releasing a partition failed; it expires on its own", "partition", p, "error", err.Error())
	}
}

// leave stops and releases every partition and ends the membership.
func (g *Group) leave() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, p := range g.Owned() {
		g.mu.Lock()
		l := g.held[p]
		g.mu.Unlock()
		g.release(ctx, p, l)
	}
	if err := g.members.Delete(ctx, g.cfg.Identity); err != nil {
		g.log.V(1).Info("Leaving the group failed; the membership expires on its own", "error", err.Error())
	}
}
