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

// Package listenlimit bounds the connections a listener holds open, per source address and in
// all, so that clients that never authenticate (a server answers anyone who reaches its port)
// cannot hold an unbounded number of them, each with its goroutine, buffers and header.
package listenlimit

import (
	"crypto/tls"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// closed counts the connections a listener's bounds closed, by listener: the one that gave way to
// a new one, or the new one when none could. Operators learn from it that a bound bites (a proxy
// or NAT sharing one source address, or someone holding connections open).
var closed = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "hookline_listener_connections_closed_total",
	Help: "Connections closed at a listener's bounds on connections per source address and in all: the oldest without a request giving way (gave_way), or the new one when every connection carried a request (refused).",
}, []string{"listener", "reason"})

func init() {
	ctrlmetrics.Registry.MustRegister(closed)
}

// Listener holds at most perSource connections from one source address and total in all. At a
// bound, the oldest of its connections that carries no request (a keep-alive connection between
// requests, or one whose request header has not arrived) is closed for the new one, so that
// connections held open without a request (no token is needed for that) give way to clients that
// come (at the bound in all, one of the source holding the most first, and idle counts from a
// connection's last request); when every one carries a request, the new connection is closed as
// soon as it is accepted.
// Requests are known from the http.Server's ConnState, which must be the Listener's.
type Listener struct {
	net.Listener
	perSource, total int
	gaveWay, refused prometheus.Counter

	mu       sync.Mutex
	open     map[*conn]struct{}
	bySource map[string]int
}

// Wrap returns l holding at most perSource connections from one source address and total in all;
// the http.Server serving it must have the Listener's ConnState. name labels its metrics.
func Wrap(l net.Listener, name string, perSource, total int) *Listener {
	return &Listener{Listener: l, perSource: perSource, total: total, open: map[*conn]struct{}{}, bySource: map[string]int{},
		gaveWay: closed.WithLabelValues(name, "gave_way"), refused: closed.WithLabelValues(name, "refused")}
}

// Bind wraps ln as Wrap does for srv, which must serve the returned listener: srv is given its
// ConnState.
func Bind(srv *http.Server, ln net.Listener, name string, perSource, total int) *Listener {
	l := Wrap(ln, name, perSource, total)
	srv.ConnState = l.ConnState
	return l
}

// Accept returns the next connection within the bounds.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		lc := &conn{Conn: c, l: l, src: source(c.RemoteAddr()), since: time.Now()}
		victim, ok := l.admit(lc)
		if victim != nil {
			l.gaveWay.Inc()
			_ = victim.Close()
		}
		if !ok {
			l.refused.Inc()
			_ = c.Close()
			continue
		}
		return lc, nil
	}
}

// admit counts c in, making room by claiming the connection that gives way, if one must and
// can; ok is false when c cannot be held.
func (l *Listener) admit(c *conn) (victim *conn, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.bySource[c.src] >= l.perSource:
		if victim = l.oldestIdleLocked(c.src); victim == nil {
			return nil, false
		}
	case len(l.open) >= l.total:
		// From the source holding the most first: the one filling the bound.
		if victim = l.oldestIdleLocked(l.largestSourceLocked()); victim == nil {
			if victim = l.oldestIdleLocked(""); victim == nil {
				return nil, false
			}
		}
	}
	if victim != nil {
		l.releaseLocked(victim)
	}
	l.open[c] = struct{}{}
	l.bySource[c.src]++
	return victim, true
}

// oldestIdleLocked is the connection (of source src, or any when "") held longest that carries no
// request.
func (l *Listener) oldestIdleLocked(src string) *conn {
	var oldest *conn
	for c := range l.open {
		if (src == "" || c.src == src) && !c.busy && (oldest == nil || c.since.Before(oldest.since)) {
			oldest = c
		}
	}
	return oldest
}

// largestSourceLocked is the source holding the most connections.
func (l *Listener) largestSourceLocked() string {
	var top string
	for src, n := range l.bySource {
		if top == "" || n > l.bySource[top] {
			top = src
		}
	}
	return top
}

// releaseLocked counts c out, once.
func (l *Listener) releaseLocked(c *conn) {
	if _, ok := l.open[c]; !ok {
		return
	}
	delete(l.open, c)
	if l.bySource[c.src]--; l.bySource[c.src] <= 0 {
		delete(l.bySource, c.src)
	}
}

// ConnState is the http.Server's ConnState of a server serving l: it tells l which connections
// carry a request.
func (l *Listener) ConnState(c net.Conn, st http.ConnState) {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	lc, ok := c.(*conn)
	if !ok {
		return
	}
	l.mu.Lock()
	lc.busy = st == http.StateActive
	if st == http.StateIdle {
		lc.since = time.Now() // idle from now: the longest idle goes first
	}
	l.mu.Unlock()
}

// source is the address a connection comes from, without its port.
func source(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// conn counts itself out of its listener's bounds once closed.
type conn struct {
	net.Conn
	l     *Listener
	src   string
	since time.Time
	busy  bool // carries a request (l.mu)
}

func (c *conn) Close() error {
	c.l.mu.Lock()
	c.l.releaseLocked(c)
	c.l.mu.Unlock()
	return c.Conn.Close()
}
