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

package partition

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	. "github.com/onsi/gomega"

	"github.com/hookline/hookline/dispatcher/store"
	"github.com/hookline/hookline/internal/testsupport/natstest"
)

const (
	testTTL        = 2 * time.Second
	testPartitions = 16
)

// Adding a member moves partitions only to it, and removing one moves only its own: every member
// computes the same owner from the same membership.
func TestOwnerMovesOnlyTheJoiningMembersShare(t *testing.T) {
	g := NewWithT(t)
	const n = 256
	two, three := []string{"a", "b"}, []string{"a", "b", "c"}
	moved := 0
	for p := range n {
		before, after := Owner(two, p), Owner(three, p)
		if before != after {
			g.Expect(after).To(Equal("c"), "partition %d moved from %s to %s", p, before, after)
			moved++
		}
		g.Expect(Owner([]string{"b", "a"}, p)).To(Equal(before), "the order of the members does not matter")
	}
	// A third of the partitions, give or take.
	g.Expect(moved).To(BeNumerically("~", n/3, n/8))
	for _, account := range []string{"acc-1", "acc-2", "租户"} {
		g.Expect(Of(account, 16)).To(Equal(Of(account, 16)))
		g.Expect(Of(account, 16)).To(BeNumerically(">=", 0))
		g.Expect(Of(account, 16)).To(BeNumerically("<", 16))
	}
}

// One owner per partition at any moment, while members join, leave and die: the monitor fails the
// test when a member starts a partition another has not stopped.
func TestPartitionsFollowTheMembersWithOneOwnerAtATime(t *testing.T) {
	g := NewWithT(t)
	url := natstest.Server(t)
	mon := newMonitor(t)

	a := mon.start(t, url, "a")
	g.Eventually(a.group.Owned).WithTimeout(10 * time.Second).Should(HaveLen(testPartitions))

	b := mon.start(t, url, "b")
	c := mon.start(t, url, "c")
	mon.expectAssigned(g, a, b, c)
	g.Expect(a.group.Owned()).NotTo(HaveLen(testPartitions), "a gave partitions to b and c")

	// c leaves (a rolling update, a scale-down): its partitions move at once, not after the TTL.
	left := time.Now()
	c.stop()
	mon.expectAssigned(g, a, b)
	g.Expect(time.Since(left)).To(BeNumerically("<", testTTL), "released partitions are taken without waiting for their leases to expire")

	// b dies: nothing is released; a takes b's partitions once their leases expire.
	b.crash()
	mon.expectAssigned(g, a)
	g.Expect(mon.starts()).To(BeNumerically(">", testPartitions), "partitions moved")
}

// A member cut off from NATS stops delivering before another member takes its partitions over.
func TestAMemberCutOffFromNATSStopsBeforeAnotherTakesOver(t *testing.T) {
	g := NewWithT(t)
	url := natstest.Server(t)
	proxy := newProxy(t, url)
	mon := newMonitor(t)

	a := mon.start(t, "nats://"+proxy.addr(), "a")
	b := mon.start(t, url, "b")
	mon.expectAssigned(g, a, b)
	owned := a.group.Owned()
	g.Expect(owned).NotTo(BeEmpty())
	g.Expect(a.group.Member()).To(BeTrue())
	// a may have taken its share before it saw b (b took the rest first): its view of the members
	// catches up at its next pass.
	g.Eventually(a.group.Members).WithTimeout(testTTL).Should(Equal([]string{"a", "b"}))

	proxy.cut()
	// a keeps running, but cannot renew: it stops everything (the monitor checks that it does so
	// before b starts any of it), and b takes over.
	g.Eventually(a.group.Owned).WithTimeout(2 * testTTL).Should(BeEmpty())
	g.Eventually(a.group.Member).WithTimeout(testTTL).Should(BeFalse(), "no longer a current member: not ready")
	for _, p := range owned {
		g.Expect(a.group.Owns(p)).To(BeFalse())
	}
	g.Eventually(b.group.Owned).WithTimeout(4 * testTTL).Should(HaveLen(testPartitions))
}

// A rollout between the modes never has both kinds deliver: an active-active member owns nothing
// while a standby-mode dispatcher holds the delivery lease, takes its partitions once that one
// stops, and keeps every standby-mode dispatcher waiting while it runs.
func TestActiveActiveWaitsForTheStandbyModesDeliverer(t *testing.T) {
	g := NewWithT(t)
	url := natstest.Server(t)
	leaseCfg := store.LeaseConfig{URL: url, Identity: "old-holder", TTL: testTTL}
	old, err := store.AcquireLease(context.Background(), leaseCfg)
	g.Expect(err).NotTo(HaveOccurred())
	keepCtx, stopKeeping := context.WithCancel(context.Background())
	kept := make(chan struct{})
	go func() { defer close(kept); old.Keep(keepCtx) }()

	mon := newMonitor(t)
	mon.fence = func(js jetstream.JetStream) func(context.Context) (string, error) {
		return store.LeaseFence(js, store.LeaseConfig{TTL: testTTL})
	}
	a := mon.start(t, url, "a")
	g.Eventually(a.group.BlockedBy).WithTimeout(testTTL).Should(Equal("old-holder"))
	g.Consistently(a.group.Owned).WithTimeout(testTTL).Should(BeEmpty(), "nothing delivered beside the lease holder")
	g.Expect(a.group.Member()).To(BeTrue(), "a member, ready to ingest, while it waits")

	stopKeeping()
	<-kept
	old.Release()
	g.Eventually(a.group.Owned).WithTimeout(2 * testTTL).Should(HaveLen(testPartitions))
	g.Expect(a.group.BlockedBy()).To(BeEmpty())

	// A standby-mode dispatcher started now waits while a runs, and takes over once it is gone.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan *store.Lease, 1)
	go func() {
		l, err := store.AcquireLease(ctx, store.LeaseConfig{URL: url, Identity: "late-standby", TTL: testTTL})
		if err == nil {
			got <- l
		}
	}()
	g.Consistently(got).WithTimeout(2*testTTL).ShouldNot(Receive(), "the active-active members hold the way in")
	a.stop()
	g.Expect(a.group.Owned()).To(BeEmpty())
	var late *store.Lease
	g.Eventually(got).WithTimeout(3*testTTL).Should(Receive(&late), "the mark expires after the last member")
	late.Release()
}

// A member whose checks that no standby-mode dispatcher delivers keep failing, while its partition
// leases renew fine, stops delivering by three quarters of the TTL after the last check that
// succeeded: the mark that check left keeps standby-mode dispatchers out only for a TTL. No renewal
// lets the deliverer go on past that.
func TestAFailingFenceStopsThePartitionsInTime(t *testing.T) {
	g := NewWithT(t)
	url := natstest.Server(t)
	mon := newMonitor(t)
	var mu sync.Mutex
	var failing bool
	var lastOK time.Time // when the last check that succeeded began
	var late []string
	mon.fence = func(js jetstream.JetStream) func(context.Context) (string, error) {
		real := store.LeaseFence(js, store.LeaseConfig{TTL: testTTL})
		return func(ctx context.Context) (string, error) {
			began := time.Now()
			mu.Lock()
			fail := failing
			mu.Unlock()
			if fail {
				return "", errors.New("JetStream answered no (fence bucket unavailable)")
			}
			holder, err := real(ctx)
			if err == nil {
				mu.Lock()
				lastOK = began
				mu.Unlock()
			}
			return holder, err
		}
	}
	mon.renewed = func(_ string, p int, until time.Time) {
		mu.Lock()
		defer mu.Unlock()
		if failing && until.After(lastOK.Add(testTTL*3/4)) {
			late = append(late, fmt.Sprintf("partition %d until %s, the fence's deadline %s", p, until.Format(time.StampMilli), lastOK.Add(testTTL*3/4).Format(time.StampMilli)))
		}
	}
	a := mon.start(t, url, "a")
	mon.expectAssigned(g, a)

	mu.Lock()
	failing = true
	mu.Unlock()
	g.Eventually(a.group.Owned).WithTimeout(2 * testTTL).Should(BeEmpty())
	mu.Lock()
	defer mu.Unlock()
	g.Expect(late).To(BeEmpty(), "renewals extended delivery past the fence's deadline")
}

// A renewal whose answer was lost (timed out under load, though JetStream applied it) leaves the
// lease at a revision the member does not know: the member keeps the partition (it churned: stopped
// as "taken over by another dispatcher", then took it back).
func TestALostRenewalAnswerKeepsThePartition(t *testing.T) {
	g := NewWithT(t)
	url := natstest.Server(t)
	mon := newMonitor(t)
	a := mon.start(t, url, "a")
	mon.expectAssigned(g, a)
	starts := mon.starts()

	ctx := context.Background()
	e, err := a.group.parts.Get(ctx, key(3))
	g.Expect(err).NotTo(HaveOccurred())
	_, err = a.group.parts.Update(ctx, key(3), []byte("a"), e.Revision()) // a's own write, answer lost
	g.Expect(err).NotTo(HaveOccurred())

	g.Consistently(func() int { return mon.starts() }).WithTimeout(2*testTTL).Should(Equal(starts), "no partition stopped and started again")
	g.Expect(a.group.Owns(3)).To(BeTrue())
	after, err := a.group.parts.Get(ctx, key(3))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(after.Revision()).To(BeNumerically(">", e.Revision()+1), "renewed since")
}

// monitor records which member delivers each partition, from the Start and Stop calls, and fails
// the test when two would deliver one partition at once.
type monitor struct {
	t *testing.T
	// fence, when set, is the members' Config.Fence on their JetStream.
	fence func(js jetstream.JetStream) func(context.Context) (string, error)
	mu    sync.Mutex
	owner map[int]string
	moves int
	// token is the fencing token each partition was last started with.
	token map[int]uint64
	// renewed, when set, is the members' Config.Renewed.
	renewed func(id string, p int, until time.Time)
}

func newMonitor(t *testing.T) *monitor {
	return &monitor{t: t, owner: map[int]string{}, token: map[int]uint64{}}
}

func (m *monitor) starts() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.moves
}

// member is one running group member.
type member struct {
	id     string
	group  *Group
	nc     *nats.Conn
	cancel context.CancelFunc
	done   chan struct{}
}

// start joins id to the group through the server at url and runs it until the test ends.
func (m *monitor) start(t *testing.T, url, id string) *member {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond), nats.Timeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	var fence func(context.Context) (string, error)
	if m.fence != nil {
		fence = m.fence(js)
	}
	grp, err := Join(context.Background(), Config{
		JetStream: js, Identity: id, Partitions: testPartitions, TTL: testTTL, Fence: fence,
		Renewed: func(p int, until time.Time) {
			if m.renewed != nil {
				m.renewed(id, p, until)
			}
		},
		Start: func(p int, token uint64) {
			m.mu.Lock()
			defer m.mu.Unlock()
			if cur, ok := m.owner[p]; ok && cur != id {
				m.t.Errorf("partition %d started by %s while %s has not stopped it", p, id, cur)
			}
			if token <= m.token[p] {
				m.t.Errorf("partition %d started by %s with fencing token %d, not above the previous owner's %d", p, id, token, m.token[p])
			}
			m.token[p] = token
			m.owner[p] = id
			m.moves++
		},
		Stop: func(p int) {
			m.mu.Lock()
			defer m.mu.Unlock()
			if m.owner[p] == id {
				delete(m.owner, p)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	mb := &member{id: id, group: grp, nc: nc, cancel: cancel, done: make(chan struct{})}
	go func() { defer close(mb.done); grp.Run(ctx) }()
	t.Cleanup(mb.stop)
	return mb
}

// stop ends the member the way a dispatcher shuts down: it releases what it owns.
func (mb *member) stop() {
	mb.cancel()
	<-mb.done
	mb.nc.Close()
}

// crash ends the member without releasing anything, as a kill -9 would.
func (mb *member) crash() {
	mb.nc.Close()
	mb.stop()
}

// expectAssigned waits until the members own exactly the partitions the assignment gives them
// and the monitor agrees.
func (m *monitor) expectAssigned(g Gomega, members ...*member) {
	ids := make([]string, 0, len(members))
	for _, mb := range members {
		ids = append(ids, mb.id)
	}
	slices.Sort(ids)
	g.Eventually(func(g Gomega) {
		for _, mb := range members {
			want := []int{}
			for p := range testPartitions {
				if Owner(ids, p) == mb.id {
					want = append(want, p)
				}
			}
			g.Expect(mb.group.Owned()).To(Equal(want), "partitions of %s among %v", mb.id, ids)
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		g.Expect(m.owner).To(HaveLen(testPartitions))
	}).WithTimeout(4 * testTTL).WithPolling(20 * time.Millisecond).Should(Succeed())
}

// proxy forwards TCP connections to a NATS server until cut, which closes them all and refuses
// new ones: a network partition between one client and the cluster.
type proxy struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
	dead  bool
}

func newProxy(t *testing.T, natsURL string) *proxy {
	t.Helper()
	target := natsURL[len("nats://"):]
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln}
	t.Cleanup(p.cut)
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				_ = in.Close()
				continue
			}
			p.mu.Lock()
			if p.dead {
				p.mu.Unlock()
				_, _ = in.Close(), out.Close()
				return
			}
			p.conns = append(p.conns, in, out)
			p.mu.Unlock()
			go pipe(in, out)
			go pipe(out, in)
		}
	}()
	return p
}

func pipe(dst, src net.Conn) {
	_, _ = io.Copy(dst, src)
	_ = dst.Close()
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dead = true
	_ = p.ln.Close()
	for _, c := range p.conns {
		_ = c.Close()
	}
}
