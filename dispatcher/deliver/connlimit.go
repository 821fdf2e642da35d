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
)

// Defaults of the connections the sender holds open: per account and receiver address, as many
// as the idle connections kept per host, and per account, across every address, four times that,
// so that an account whose webhooks spread over many hosts keeps reusing its connections while
// one hostile receiver among them cannot take the connections the others need.
const (
	DefaultConnsPerHost    = 1024
	DefaultConnsPerAccount = 4 * DefaultConnsPerHost
)

// connLimit bounds the connections a Sender holds open for one account's deliveries, per receiver
// address and in all, counted from the dial to the close, whichever transport holds them.
//
// A receiver speaking HTTP/2 may forbid any new request on a connection once it answered one
// (SETTINGS_MAX_CONCURRENT_STREAMS 0). The transport then opens a new connection for the next
// request and keeps the old one until it has been idle for its IdleConnTimeout (90 s): a
// malicious receiver had the dispatcher open one connection per delivery and hold tens of
// thousands of them (about 20 KB each, and a file descriptor), enough to exhaust the memory of
// the process every tenant shares. Past a bound, the connection of the bound that has been silent
// longest is closed for the new one, if it has carried nothing for longer than an attempt may
// last (it carries no request); otherwise the dial is refused and the attempt fails, to be
// retried like any connection failure.
type connLimit struct {
	perHost, perAccount int

	mu sync.Mutex
	// silent is how long a connection must have carried nothing to be closed for a new one.
	silent   time.Duration
	start    time.Time // the origin of the connections' activity stamps
	accounts map[string]*accountConns
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

func newConnLimit(perHost, perAccount int, silent time.Duration) *connLimit {
	return &connLimit{perHost: perHost, perAccount: perAccount, silent: silent, start: time.Now(),
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
	// Max is the bound reached: per address, or (PerAccount) of the account in all.
	Max        int
	PerAccount bool
}

func (e *ConnLimitError) Error() string {
	where := "to " + e.Address
	if e.PerAccount {
		where = "in all"
	}
	return fmt.Sprintf("the dispatcher holds %d connections for account %s %s already, the most it may, and none is idle: "+
		"a receiver that lets no request reuse its connection (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS 0) has one opened per delivery", e.Max, e.Account, where)
}

// setSilent changes how long a connection must have been silent to be closed for a new one.
func (l *connLimit) setSilent(d time.Duration) {
	l.mu.Lock()
	l.silent = d
	l.mu.Unlock()
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
		h.open[lc] = struct{}{}
		return lc, nil
	}
}

// reserve counts a dial for account to addr. At a bound, the bound's connection silent longest is
// closed for it, if it has been silent long enough; otherwise the dial is refused.
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
	if h.n >= l.perHost || a.n >= l.perAccount {
		if h.n >= l.perHost {
			victim = l.claimSilentLocked(a, h)
		} else {
			victim = l.claimSilentLocked(a, nil)
		}
		if victim == nil {
			err := &ConnLimitError{Account: account, Address: addr, Max: l.perHost}
			if h.n < l.perHost {
				err.Max, err.PerAccount = l.perAccount, true
			}
			if h.n == 0 {
				delete(a.hosts, addr)
			}
			l.mu.Unlock()
			return err
		}
	}
	h.n++
	a.n++
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

// claimSilentLocked finds the connection of h (of every address of a when h is nil) silent
// longest, and claims it for closing if it has been silent for l.silent: a request that starts
// writing on it after the claim is refused before anything is written (net/http then retries it
// on another connection), and one that started before keeps it.
func (l *connLimit) claimSilentLocked(a *accountConns, h *hostConns) *limitedConn {
	cutoff := l.now() - int64(l.silent)
	var oldest *limitedConn
	var at int64
	pick := func(open map[*limitedConn]struct{}) {
		for c := range open {
			if t := c.active.Load(); t >= 0 && t < cutoff && (oldest == nil || t < at) {
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
// dispatcher's takes it (used). Not by the bytes it carries: a receiver speaking HTTP/2 may send
// PINGs (which the client answers) or other frames of its own at any time, and so kept every
// connection it starved from ever counting as silent.
type limitedConn struct {
	net.Conn
	l             *connLimit
	account, addr string
	// active is when a request last took it, since l.start, or reclaimed.
	active atomic.Int64
	closed sync.Once
}

// used stamps the connection c a request took (httptrace's GotConn: c itself, or the TLS
// connection over it), if it is a limitedConn.
func used(c net.Conn) {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	if lc, ok := c.(*limitedConn); ok {
		lc.touch()
	}
}

// touch stamps c unless it was claimed for closing, and reports whether it was not.
func (c *limitedConn) touch() bool {
	for {
		t := c.active.Load()
		if t == reclaimed {
			return false
		}
		if c.active.CompareAndSwap(t, c.l.now()) {
			return true
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
