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
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultConnsPerAccount bounds the connections the sender holds open for one account's
// deliveries: as many as the idle connections kept per receiver host, so that an account whose
// webhooks spread over many hosts keeps reusing its connections.
const DefaultConnsPerAccount = 1024

// connLimit bounds the connections a Sender holds open for one account's deliveries, counted
// from the dial to the close, whichever transport holds them.
//
// A receiver speaking HTTP/2 may forbid any new request on a connection once it answered one
// (SETTINGS_MAX_CONCURRENT_STREAMS 0). The transport then opens a new connection for the next
// request and keeps the old one until it has been idle for its IdleConnTimeout (90 s): a
// malicious receiver had the dispatcher open one connection per delivery and hold tens of
// thousands of them (about 20 KB each, and a file descriptor), enough to exhaust the memory of
// the process every tenant shares. Past the bound, the account's connections silent for longer
// than an attempt may last (they carry no request) are closed; if none is, the dial is refused
// and the attempt fails, to be retried like any connection failure.
type connLimit struct {
	max int
	// silent is how long a connection must have carried nothing to be closed for a new one.
	silent time.Duration
	start  time.Time // the origin of the connections' activity stamps

	mu   sync.Mutex
	open map[string]map[*limitedConn]struct{}
	// dialing counts the dials under way per account: they count against the bound.
	dialing map[string]int
}

func newConnLimit(max int, silent time.Duration) *connLimit {
	return &connLimit{max: max, silent: silent, start: time.Now(),
		open: map[string]map[*limitedConn]struct{}{}, dialing: map[string]int{}}
}

// accountKey carries the account a delivery is for to the dial of its connection.
type accountKey struct{}

// withAccount tells the sender's dials made for ctx's request which account they are for.
func withAccount(ctx context.Context, account string) context.Context {
	return context.WithValue(ctx, accountKey{}, account)
}

// ConnLimitError refuses a dial for an account that holds the most connections it may.
type ConnLimitError struct {
	Account string
	Max     int
}

func (e *ConnLimitError) Error() string {
	return fmt.Sprintf("the dispatcher holds %d connections to the receivers of account %s already, the most it may, and none is idle: "+
		"a receiver that lets no request reuse its connection (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS 0) has one opened per delivery", e.Max, e.Account)
}

// dialer wraps dial so that each connection counts against the bound of the account its first
// request is for (net/http dials with the request's context values).
func (l *connLimit) dialer(dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		account, _ := ctx.Value(accountKey{}).(string)
		if err := l.reserve(account); err != nil {
			return nil, err
		}
		c, err := dial(ctx, network, addr)
		l.mu.Lock()
		l.dialing[account]--
		if l.dialing[account] == 0 {
			delete(l.dialing, account)
		}
		if err != nil {
			l.mu.Unlock()
			return nil, err
		}
		lc := &limitedConn{Conn: c, l: l, account: account}
		lc.touch()
		if l.open[account] == nil {
			l.open[account] = map[*limitedConn]struct{}{}
		}
		l.open[account][lc] = struct{}{}
		l.mu.Unlock()
		return lc, nil
	}
}

// reserve counts a dial for account, closing its silent connections first when it holds the most
// it may, or refuses it.
func (l *connLimit) reserve(account string) error {
	l.mu.Lock()
	if len(l.open[account])+l.dialing[account] < l.max {
		l.dialing[account]++
		l.mu.Unlock()
		return nil
	}
	cutoff := l.now() - int64(l.silent)
	var silent []*limitedConn
	for c := range l.open[account] {
		if c.active.Load() < cutoff {
			silent = append(silent, c)
			delete(l.open[account], c) // counted out now: a concurrent dial may take its place
		}
	}
	ok := len(silent) > 0
	if ok {
		l.dialing[account]++
	}
	l.mu.Unlock()
	for _, c := range silent {
		_ = c.Close()
	}
	if !ok {
		return &ConnLimitError{Account: account, Max: l.max}
	}
	return nil
}

func (l *connLimit) now() int64 { return int64(time.Since(l.start)) }

// release forgets c, closed.
func (l *connLimit) release(c *limitedConn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if m := l.open[c.account]; m != nil {
		delete(m, c)
		if len(m) == 0 {
			delete(l.open, c.account)
		}
	}
}

// limitedConn is a connection counted by a connLimit, stamped whenever it carries bytes.
type limitedConn struct {
	net.Conn
	l       *connLimit
	account string
	active  atomic.Int64 // when it last carried bytes, since l.start
	closed  sync.Once
}

func (c *limitedConn) touch() { c.active.Store(c.l.now()) }

func (c *limitedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.touch()
	}
	return n, err
}

func (c *limitedConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if n > 0 {
		c.touch()
	}
	return n, err
}

func (c *limitedConn) Close() error {
	c.closed.Do(func() { c.l.release(c) })
	return c.Conn.Close()
}
