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
	"net"
	"sync"
)

// Wrap returns l holding at most perSource connections from one source address and total in all:
// a connection past either is closed as soon as it is accepted (its client sees it reset and may
// try again), and Accept goes on with the next.
func Wrap(l net.Listener, perSource, total int) net.Listener {
	return &listener{Listener: l, perSource: perSource, total: total, bySource: map[string]int{}}
}

type listener struct {
	net.Listener
	perSource, total int

	mu       sync.Mutex
	open     int
	bySource map[string]int
}

// Accept returns the next connection within the bounds.
func (l *listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		src := source(c.RemoteAddr())
		if !l.admit(src) {
			_ = c.Close()
			continue
		}
		return &conn{Conn: c, l: l, src: src}, nil
	}
}

func (l *listener) admit(src string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open >= l.total || l.bySource[src] >= l.perSource {
		return false
	}
	l.open++
	l.bySource[src]++
	return true
}

func (l *listener) release(src string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if l.bySource[src]--; l.bySource[src] <= 0 {
		delete(l.bySource, src)
	}
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
	l    *listener
	src  string
	once sync.Once
}

func (c *conn) Close() error {
	c.once.Do(func() { c.l.release(c.src) })
	return c.Conn.Close()
}
