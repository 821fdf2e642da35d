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

package deliver

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Defaults of the connections the sender holds open: per account and receiver address, and per
// account across every address, four times that, so that an account whose webhooks spread over
// many hosts keeps reusing its connections while one hostile receiver among them cannot take the
// connections the others need (Sender.LimitConnections raises both with the account concurrency).
//
// A connection costs about 40 KB (buffers, TLS state, the HTTP/2 reader's goroutine), so the
// process holds DefaultConnsInAll at most (about 160 MB), whatever the number of accounts: several
// accounts' hostile receivers each holding their bound would otherwise take the memory every
// tenant shares. An account holds 30 requests in flight at most, so its bounds leave ample room
// for connections kept for reuse.
const (
	DefaultConnsPerHost    = 256
	DefaultConnsPerAccount = 4 * DefaultConnsPerHost
	DefaultConnsInAll      = 4 * DefaultConnsPerAccount
)

// connLimit bounds the connections a Sender holds open for each account's deliveries, per
// receiver address and per account, and for all accounts together, counted from the dial to the
// close, whichever transport holds them.
//
// A receiver speaking HTTP/2 may forbid any new request on a connection once it answered one
// (SETTINGS_MAX_CONCURRENT_STREAMS 0). The transport then opens a new connection for the next
// request and keeps the old one until it has been idle for its IdleConnTimeout (90 s): a
// malicious receiver had the dispatcher open one connection per delivery and hold tens of
// thousands of them (about 40 KB each, and a file descriptor), enough to exhaust the memory of
// the process every tenant shares. Past a bound of an account, its connection of the bound idle
// longest (below) is closed for the new one; if none is idle, the dial is refused and the attempt
// fails, to be retried like any connection failure.
//
// A connection is in use from its dial until a request has taken it (its TLS handshake comes
// after the dial), then while requests of the dispatcher's are on it; it is idle once none has
// been for idle (a second: one just given back is likely to be used again). One whose request
// never said it ended, or that no request ever took, counts as idle once silent for longer than
// an attempt may last.
//
// Past the bound of the whole process (inAll), the connection idle longest of any account is
// closed for the new one; if none is idle, an account holding less than its fair share (inAll
// divided among the accounts holding connections) has the oldest connection of the largest holder
// that has one closed for it (a request that connection carried fails, to be retried), and the
// attempt of one holding its share or more fails. Connections count against the account whose
// request dialled them, whoever reuses them later.
type connLimit struct {
	perHost, perAccount, inAll int

	mu sync.Mutex
	// total counts every account's connections and dials under way.
	total int
	// idle is how long a connection without a request must have been so to be closed for a new
	// one; silent, how long one whose request never ended must have carried none.
	idle, silent time.Duration
	start        time.Time // the origin of the connections' activity stamps
	accounts     map[string]*accountConns
}

// accountConns are one account's connections, by address; n counts them and the dials under way.
type accountConns struct {
	n     int
	hosts map[string]*hostConns
}

// hostConns are one account's connections to one address; n counts them and the dials under way.
type hostConns struct {
	n    int
	open map[*limitedConn]struct{}
}

// newConnLimit bounds connections per host, per account and in all (0: no bound in all); a
// connection gives way after idle (and, with a request that never ended, silent) — both idleFor
// until setIdle says otherwise.
func newConnLimit(perHost, perAccount, inAll int, idleFor time.Duration) *connLimit {
	return &connLimit{perHost: perHost, perAccount: perAccount, inAll: inAll, idle: idleFor, silent: idleFor, start: time.Now(),
		accounts: map[string]*accountConns{}}
}

// accountKey carries the account a delivery is for to the dial of its connection.
type accountKey struct{}

// withAccount tells the sender's dials made for ctx's request which account they are for.
func withAccount(ctx context.Context, account string) context.Context {
	return context.WithValue(ctx, accountKey{}, account)
}

// ConnLimitError refuses a dial for an account that holds the most connections it may.
type ConnLimitError struct {
	Account, Address string
	// Max is the bound reached: per address, (PerAccount) of the account in all, or (Share) the
	// account's share of the process's bound, which is reached; with Busy, what the account holds.
	Max               int
	PerAccount, Share bool
	// Busy: the process's bound is reached with no connection to take for an account under its
	// share: no fault of the account's receivers, so the attempt is tried again shortly, not
	// counted as failed.
	Busy bool
}

// bound names the bound e reached, for the metrics.
func (e *ConnLimitError) bound() string {
	switch {
	case e.Busy:
		return "process"
	case e.Share:
		return "share"
	case e.PerAccount:
		return "account"
	}
	return "address"
}

// connectionsRefused counts the receiver connections the bounds refused (by bound): an attempt
// refused at the process's bound (process) is tried again a second later and is no failure; the
// others fail their attempt (ConnectionFailed). Operators learn from it that a bound bites.
var connectionsRefused = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "hookline_receiver_connections_refused_total",
	Help: "Connections to receivers not opened for a bound: per account and address (address), per account (account), the account's share of the process's bound (share), or the process's bound with none to take (process: the attempt is retried, no failure).",
}, []string{"bound"})

func init() {
	ctrlmetrics.Registry.MustRegister(connectionsRefused)
}

func (e *ConnLimitError) Error() string {
	where := "to " + e.Address
	switch {
	case e.Busy:
		return fmt.Sprintf("the dispatcher holds the most connections it may for all accounts, none of them idle, and none can be given to account %s (holding %d)", e.Account, e.Max)
	case e.Share:
		return fmt.Sprintf("the dispatcher holds the most connections it may for all accounts, and %d or more for account %s, its share, none of them idle: "+
			"a receiver that lets no request reuse its connection (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS 0) has one opened per delivery", e.Max, e.Account)
	case e.PerAccount:
		where = "in all"
	}
	return fmt.Sprintf("the dispatcher holds %d connections for account %s %s already, the most it may, and none is idle: "+
		"a receiver that lets no request reuse its connection (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS 0) has one opened per delivery", e.Max, e.Account, where)
}

// setSilent makes every connection give way once it has carried nothing for d (tests).
func (l *connLimit) setSilent(d time.Duration) { l.setIdle(d, d) }

// setIdle sets how long a connection without a request (idle), or with one that never ended
// (silent), must have been so to be closed for a new one.
func (l *connLimit) setIdle(idle, silent time.Duration) {
	l.mu.Lock()
	l.idle, l.silent = idle, silent
	l.mu.Unlock()
}

// claimable returns c's stamp and whether c may be closed for a new connection at now.
func (l *connLimit) claimable(c *limitedConn, now int64) (int64, bool) {
	t := c.active.Load()
	if t < 0 {
		return t, false
	}
	if c.inFlight.Load() == 0 {
		return t, now-t >= int64(l.idle)
	}
	return t, now-t >= int64(l.silent)
}

// dialer wraps dial so that each connection counts against the bounds of the account its first
// request is for (net/http dials with the request's context values).
func (l *connLimit) dialer(dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		account, _ := ctx.Value(accountKey{}).(string)
		if err := l.reserve(account, addr); err != nil {
			return nil, err
		}
		c, err := dial(ctx, network, addr)
		l.mu.Lock()
		defer l.mu.Unlock()
		a := l.accounts[account]
		h := a.hosts[addr]
		if err != nil {
			l.uncountLocked(account, addr, a, h)
			return nil, err
		}
		lc := &limitedConn{Conn: c, l: l, account: account, addr: addr}
		lc.active.Store(l.now())
		// In use until a request has taken it: its TLS handshake, after this dial, may take
		// longer than a connection may stay idle.
		lc.inFlight.Store(1)
		h.open[lc] = struct{}{}
		return lc, nil
	}
}

// reserve counts a dial for account to addr. At a bound of the account, its connection of that bound
// idle longest is closed for it, if one is idle; at the process's bound, claimForLocked's; otherwise
// the dial is refused (Busy when the account is under its share of the process's bound).
func (l *connLimit) reserve(account, addr string) error {
	l.mu.Lock()
	a := l.accounts[account]
	if a == nil {
		a = &accountConns{hosts: map[string]*hostConns{}}
		l.accounts[account] = a
	}
	h := a.hosts[addr]
	if h == nil {
		h = &hostConns{open: map[*limitedConn]struct{}{}}
		a.hosts[addr] = h
	}
	var victim *limitedConn
	var refused *ConnLimitError
	switch {
	case h.n >= l.perHost || a.n >= l.perAccount:
		if h.n >= l.perHost {
			victim = l.claimIdleLocked(a, h)
		} else {
			victim = l.claimIdleLocked(a, nil)
		}
		if victim == nil {
			refused = &ConnLimitError{Account: account, Address: addr, Max: l.perHost}
			if h.n < l.perHost {
				refused.Max, refused.PerAccount = l.perAccount, true
			}
		}
	case l.inAll > 0 && l.total >= l.inAll:
		victim = l.claimForLocked(a)
		switch {
		case victim != nil:
		case a.n < l.shareLocked():
			refused = &ConnLimitError{Account: account, Address: addr, Max: a.n, Busy: true}
		default:
			refused = &ConnLimitError{Account: account, Address: addr, Max: l.shareLocked(), Share: true}
		}
	}
	if refused != nil {
		connectionsRefused.WithLabelValues(refused.bound()).Inc()
		if h.n == 0 {
			delete(a.hosts, addr)
		}
		if a.n == 0 {
			delete(l.accounts, account)
		}
		l.mu.Unlock()
		return refused
	}
	h.n++
	a.n++
	l.total++
	if victim != nil {
		// After counting the dial: the victim's removal must not empty (and drop) h or a.
		l.removeLocked(victim)
	}
	l.mu.Unlock()
	if victim != nil {
		_ = victim.Conn.Close()
	}
	return nil
}

// claimIdleLocked finds the claimable connection of h (of every address of a when h is nil) idle
// longest, and claims it for closing: a request that takes it after the claim is refused before
// anything is written (net/http then retries it on another connection), and one that took it
// before keeps it.
func (l *connLimit) claimIdleLocked(a *accountConns, h *hostConns) *limitedConn {
	now := l.now()
	var oldest *limitedConn
	var at int64
	pick := func(open map[*limitedConn]struct{}) {
		for c := range open {
			if t, ok := l.claimable(c, now); ok && (oldest == nil || t < at) {
				oldest, at = c, t
			}
		}
	}
	if h != nil {
		pick(h.open)
	} else {
		for _, h := range a.hosts {
			pick(h.open)
		}
	}
	if oldest == nil || !oldest.active.CompareAndSwap(at, reclaimed) {
		return nil
	}
	return oldest
}

// shareLocked is one account's share of the process's bound: divided among the accounts holding
// connections (or dialling).
func (l *connLimit) shareLocked() int { return max(1, l.inAll/max(1, len(l.accounts))) }

// claimForLocked finds a connection to close for a dial of account a at the process's bound: the
// claimable connection idle longest of any account; otherwise, if a holds less than its share, the
// oldest of the largest holder (but a) that has one. nil: a's dial is refused.
func (l *connLimit) claimForLocked(a *accountConns) *limitedConn {
	for {
		now := l.now()
		var oldest, busiest *limitedConn
		var at, busiestAt int64
		var busiestOf *accountConns
		for _, o := range l.accounts {
			var first *limitedConn
			var firstAt int64
			for _, h := range o.hosts {
				for c := range h.open {
					t, ok := l.claimable(c, now)
					if ok && (oldest == nil || t < at) {
						oldest, at = c, t
					}
					// Prefer one without a request: closing it breaks nothing.
					if t >= 0 && (first == nil || older(c, t, first, firstAt)) {
						first, firstAt = c, t
					}
				}
			}
			// The largest holder with a connection to take (one whose are all dials under way, or
			// claimed already, has none).
			if o != a && first != nil && (busiestOf == nil || o.n > busiestOf.n) {
				busiest, busiestAt, busiestOf = first, firstAt, o
			}
		}
		victim, stamp := oldest, at
		if victim == nil {
			if a.n >= l.shareLocked() || busiest == nil || busiestOf.n <= a.n+1 {
				return nil // a holds its share, or as many as any other: it may not take theirs
			}
			victim, stamp = busiest, busiestAt
		}
		if victim.active.CompareAndSwap(stamp, reclaimed) {
			return victim
		}
		// Taken by a request meanwhile: look again.
	}
}

// older reports whether c (stamped t) should go before d (stamped u): one without a request before
// one with, then the oldest.
func older(c *limitedConn, t int64, d *limitedConn, u int64) bool {
	ci, di := c.inFlight.Load() == 0, d.inFlight.Load() == 0
	if ci != di {
		return ci
	}
	return t < u
}

// reclaimed marks a connection's activity stamp once it is claimed for closing.
const reclaimed = -1

func (l *connLimit) now() int64 { return int64(time.Since(l.start)) }

// removeLocked forgets c, closed or about to be; it counts once.
func (l *connLimit) removeLocked(c *limitedConn) {
	a := l.accounts[c.account]
	if a == nil {
		return
	}
	h := a.hosts[c.addr]
	if h == nil {
		return
	}
	if _, ok := h.open[c]; !ok {
		return
	}
	delete(h.open, c)
	l.uncountLocked(c.account, c.addr, a, h)
}

// uncountLocked takes one connection or dial of account to addr out of the counts.
func (l *connLimit) uncountLocked(account, addr string, a *accountConns, h *hostConns) {
	h.n--
	a.n--
	l.total--
	if h.n == 0 {
		delete(a.hosts, addr)
	}
	if a.n == 0 {
		delete(l.accounts, account)
	}
}

// counted is how many connections and dials account holds (tests).
func (l *connLimit) counted(account string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if a := l.accounts[account]; a != nil {
		return a.n
	}
	return 0
}

// limitedConn is a connection counted by a connLimit, stamped whenever a request of the
// dispatcher's takes it or gives it back, and counting those on it. Not by the bytes it carries: a
// receiver speaking HTTP/2 may send PINGs (which the client answers) or other frames of its own at
// any time, and so kept every connection it starved from ever counting as idle.
type limitedConn struct {
	net.Conn
	l             *connLimit
	account, addr string
	// active is when a request last took it or gave it back, since l.start, or reclaimed.
	active atomic.Int64
	// inFlight counts the requests on it (HTTP/2 carries several), and 1 from its dial until a
	// request first took it (taken).
	inFlight atomic.Int32
	taken    atomic.Bool
	closed   sync.Once
}

// limitedOf is the limitedConn under c (httptrace's GotConn: c itself, or the TLS connection
// over it), or nil.
func limitedOf(c net.Conn) *limitedConn {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	lc, _ := c.(*limitedConn)
	return lc
}

// take counts a request on c: before the stamp, so that a claim that sees no request on c either
// comes before the stamp (and the request writes nothing) or fails. The first request takes the
// count the dial left (a connection is in use from its dial on).
func (c *limitedConn) take() {
	if c.taken.CompareAndSwap(false, true) {
		c.touch()
		return
	}
	c.inFlight.Add(1)
	c.touch()
}

// giveBack counts a request off c, whose answer was read and closed.
func (c *limitedConn) giveBack() {
	c.touch()
	c.inFlight.Add(-1)
}

// touch stamps c unless it was claimed for closing.
func (c *limitedConn) touch() {
	for {
		t := c.active.Load()
		if t == reclaimed || c.active.CompareAndSwap(t, c.l.now()) {
			return
		}
	}
}

// Write writes nothing on a connection claimed for closing, so that a request that took it at
// that moment fails having written nothing (which net/http retries), never half sent.
func (c *limitedConn) Write(p []byte) (int, error) {
	if c.active.Load() == reclaimed {
		return 0, net.ErrClosed
	}
	return c.Conn.Write(p)
}

func (c *limitedConn) Close() error {
	c.closed.Do(func() {
		c.l.mu.Lock()
		c.l.removeLocked(c)
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}
