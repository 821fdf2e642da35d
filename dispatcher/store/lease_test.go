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

package store

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/hookline/hookline/internal/testsupport/freeport"
)

// natsAt is where a test's NATS server listens and how to authenticate to it.
type natsAt struct {
	URL  string
	Auth Auth
}

// natsURL starts an embedded JetStream server reachable over TCP, with a token, and returns
// where it is.
func natsURL(t *testing.T) natsAt {
	t.Helper()
	addr := freeport.Addr(t)
	tokenFile := writeToken(t, strings.Repeat("t0ken", 8))
	s, err := Open(context.Background(), Config{DataDir: t.TempDir(), ListenAddress: addr, ListenTokenFile: tokenFile})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return natsAt{URL: "nats://" + addr, Auth: Auth{TokenFile: tokenFile}}
}

// writeToken writes token to a file of the test's and returns its path.
func writeToken(t *testing.T, token string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(p, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func acquireIn(ctx context.Context, at natsAt, identity string, ttl time.Duration) (chan *Lease, chan error) {
	got, failed := make(chan *Lease, 1), make(chan error, 1)
	go func() {
		l, err := AcquireLease(ctx, LeaseConfig{URL: at.URL, Auth: at.Auth, Identity: identity, TTL: ttl})
		if err != nil {
			failed <- err
			return
		}
		got <- l
	}()
	return got, failed
}

// One holder at a time; a released lease passes to the standby at once.
func TestLeaseHasOneHolderAndPassesOnRelease(t *testing.T) {
	g := NewWithT(t)
	url := natsURL(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Long enough that the hand-over below is told apart from an expiry with seconds to spare on a
	// loaded CI machine: an expired lease would pass on no sooner than 3/4 TTL after the release
	// (the last renewal is at most TTL/4 before it).
	const ttl = 8 * time.Second

	aCh, _ := acquireIn(ctx, url, "a", ttl)
	var a *Lease
	g.Eventually(aCh).WithTimeout(10 * time.Second).Should(Receive(&a))
	keepCtx, stopKeep := context.WithCancel(ctx)
	kept := make(chan struct{})
	go func() { defer close(kept); a.Keep(keepCtx) }()

	bCh, _ := acquireIn(ctx, url, "b", ttl)
	// Renewed every TTL/4, a's lease never expires: b keeps standing by for two TTLs.
	g.Consistently(bCh).WithTimeout(2 * ttl).WithPolling(50 * time.Millisecond).ShouldNot(Receive())
	g.Expect(a.Lost()).NotTo(BeClosed())

	stopKeep()
	<-kept // Release is called once Keep has returned, as cmd/dispatcher does
	released := time.Now()
	a.Release()
	var b *Lease
	g.Eventually(bCh).WithTimeout(5*ttl/8).Should(Receive(&b), "a released lease passes on without waiting for the TTL")
	t.Logf("standby took over %s after the release", time.Since(released).Round(time.Millisecond))
	b.Release()
}

// A holder that cannot renew gives up before its lease can expire, and only then may the standby
// take it: two deliverers never overlap.
func TestLeaseHolderGivesUpBeforeStandbyTakesOver(t *testing.T) {
	g := NewWithT(t)
	url := natsURL(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Long enough that the hand-over below is told apart from an expiry with seconds to spare on a
	// loaded CI machine: an expired lease would pass on no sooner than 3/4 TTL after the release
	// (the last renewal is at most TTL/4 before it).
	const ttl = 8 * time.Second

	aCh, _ := acquireIn(ctx, url, "a", ttl)
	var a *Lease
	g.Eventually(aCh).WithTimeout(10 * time.Second).Should(Receive(&a))
	go a.Keep(ctx)
	bCh, _ := acquireIn(ctx, url, "b", ttl)
	g.Consistently(bCh).WithTimeout(ttl / 2).ShouldNot(Receive())

	// a is cut off from the cluster: its renewals fail from now on.
	a.nc.Close()
	lostAt := make(chan time.Time, 1)
	go func() { <-a.Lost(); lostAt <- time.Now() }()
	var b *Lease
	g.Eventually(bCh).WithTimeout(3 * ttl).Should(Receive(&b))
	took := time.Now()
	var lost time.Time
	g.Expect(lostAt).To(Receive(&lost), "the standby took over while the old holder still delivered")
	g.Expect(took).To(BeTemporally(">", lost))
	t.Logf("old holder gave up %s before the standby took over", took.Sub(lost).Round(time.Millisecond))
	g.Expect(a.Err()).To(MatchError(ErrLeaseLost))
	b.Release()
}

// A dispatcher restarting under its own identity takes its lease back at once.
func TestLeaseIsTakenBackBySameIdentity(t *testing.T) {
	g := NewWithT(t)
	url := natsURL(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const ttl = time.Minute // far longer than the test: only the identity can explain a takeover

	first, _ := acquireIn(ctx, url, "dispatcher-0", ttl)
	var a *Lease
	g.Eventually(first).WithTimeout(10 * time.Second).Should(Receive(&a))
	a.nc.Close() // killed without releasing

	other, _ := acquireIn(ctx, url, "dispatcher-1", ttl)
	again, _ := acquireIn(ctx, url, "dispatcher-0", ttl)
	var b *Lease
	g.Eventually(again).WithTimeout(5 * time.Second).Should(Receive(&b))
	g.Consistently(other).WithTimeout(500 * time.Millisecond).ShouldNot(Receive())
	b.Release()
}

// The bucket's TTL, set by the first dispatcher, governs everybody's renewals: a dispatcher started
// with another --lease-ttl (a rollout changing it) follows the bucket, or it could renew too slowly
// for the key's real expiry.
func TestLeaseFollowsTheBucketTTL(t *testing.T) {
	g := NewWithT(t)
	url := natsURL(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	first, _ := acquireIn(ctx, url, "a", 2*time.Second)
	var a *Lease
	g.Eventually(first).WithTimeout(10 * time.Second).Should(Receive(&a))
	a.Release()
	second, _ := acquireIn(ctx, url, "b", time.Minute)
	var b *Lease
	g.Eventually(second).WithTimeout(10 * time.Second).Should(Receive(&b))
	g.Expect(b.cfg.TTL).To(Equal(2*time.Second), "b renews on the bucket's schedule")
	b.Release()
}

// A renewal whose answer was lost (a timeout under load; a renewal cut short when the dispatcher
// stops) was applied all the same: the holder keeps the lease instead of giving it up as taken over.
func TestLeaseOutlivesALostRenewalAnswer(t *testing.T) {
	g := NewWithT(t)
	url := natsURL(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const ttl = 2 * time.Second

	got, _ := acquireIn(ctx, url, "a", ttl)
	var a *Lease
	g.Eventually(got).WithTimeout(10 * time.Second).Should(Receive(&a))
	_, err := a.kv.Update(ctx, leaseKey, []byte("a"), a.rev) // applied, answer lost
	g.Expect(err).NotTo(HaveOccurred())
	go a.Keep(ctx)
	g.Consistently(a.Lost()).WithTimeout(2 * ttl).ShouldNot(BeClosed())
	cancel()
}

// A release after a lost answer still hands the lease over at once: with a TTL far longer than the
// test, only the release can explain the standby taking over.
func TestLeaseReleasedAfterALostAnswerPassesOn(t *testing.T) {
	g := NewWithT(t)
	url := natsURL(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const ttl = time.Minute

	got, _ := acquireIn(ctx, url, "a", ttl)
	var a *Lease
	g.Eventually(got).WithTimeout(10 * time.Second).Should(Receive(&a))
	_, err := a.kv.Update(ctx, leaseKey, []byte("a"), a.rev) // the last renewal, cut short by the stop
	g.Expect(err).NotTo(HaveOccurred())
	a.Release()

	next, _ := acquireIn(ctx, url, "b", ttl)
	var b *Lease
	g.Eventually(next).WithTimeout(10 * time.Second).Should(Receive(&b))
	b.Release()
}

// stallingProxy forwards TCP to a NATS server until stalled: from then on it holds every byte
// either way and keeps the connections open, as a network that drops packets does (the client
// notices nothing until its pings go unanswered, minutes later).
type stallingProxy struct {
	ln      net.Listener
	mu      sync.Mutex
	stalled bool
	conns   []net.Conn
}

func newStallingProxy(t *testing.T, natsURL string) *stallingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stallingProxy{ln: ln}
	t.Cleanup(func() {
		_ = ln.Close()
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, c := range p.conns {
			_ = c.Close()
		}
	})
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", strings.TrimPrefix(natsURL, "nats://"))
			if err != nil {
				_ = in.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, in, out)
			p.mu.Unlock()
			go p.pipe(in, out)
			go p.pipe(out, in)
		}
	}()
	return p
}

func (p *stallingProxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if err != nil {
			_ = dst.Close()
			return
		}
		p.mu.Lock()
		stalled := p.stalled
		p.mu.Unlock()
		if stalled {
			continue // held for ever
		}
		if _, err := dst.Write(buf[:n]); err != nil {
			return
		}
	}
}

func (p *stallingProxy) stall() {
	p.mu.Lock()
	p.stalled = true
	p.mu.Unlock()
}

// A holder whose renewals hang (the network holds its packets) gives up at its deadline, not a
// renewal's timeout later: no renewal waits past it. And the deadline it reports to the deliverer
// (Covers) moves with each renewal.
func TestLeaseHolderGivesUpAtItsDeadlineWhenRenewalsHang(t *testing.T) {
	g := NewWithT(t)
	at := natsURL(t)
	px := newStallingProxy(t, at.URL)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Long enough that a busy machine's scheduling (the slack below, ttl/32) is told apart from the
	// lateness of the code before the change (ttl/16 at least).
	const ttl = 8 * time.Second
	l, err := AcquireLease(ctx, LeaseConfig{URL: "nats://" + px.ln.Addr().String(), Auth: at.Auth, Identity: "a", TTL: ttl})
	g.Expect(err).NotTo(HaveOccurred())
	var mu sync.Mutex
	var covered []time.Time
	l.Covers(func(until time.Time) { mu.Lock(); covered = append(covered, until); mu.Unlock() })
	lastCovered := func() time.Time { mu.Lock(); defer mu.Unlock(); return covered[len(covered)-1] }
	first := lastCovered()
	g.Expect(first).To(BeTemporally("~", time.Now().Add(ttl*3/4), ttl/4))
	go l.Keep(ctx)
	g.Eventually(lastCovered).WithTimeout(ttl).Should(BeTemporally(">", first), "a renewal moves the deadline")

	px.stall()
	var lost time.Time
	select {
	case <-l.Lost():
		lost = time.Now()
	case <-time.After(2 * ttl):
		t.Fatal("the holder never gave up")
	}
	until := lastCovered()
	// Before the change a renewal sent just before the deadline waited a quarter TTL, and the
	// loop noticed the deadline a sixteenth of a TTL after that at the earliest.
	g.Expect(lost).To(BeTemporally("<", until.Add(ttl/32)), "gave up %s after its deadline", lost.Sub(until))
	g.Expect(l.Err()).To(MatchError(ErrLeaseLost))
}
