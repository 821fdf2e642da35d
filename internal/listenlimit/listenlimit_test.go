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

package listenlimit

import (
	"io"
	"net"
	"testing"
	"time"
)

// A source holds at most its bound, and all sources together the total: a connection past either
// is closed at once; one closed frees its place.
func TestConnectionsAreBoundedPerSourceAndInAll(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := Wrap(raw, 2, 3)
	t.Cleanup(func() { _ = l.Close() })
	accepted := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	dial := func(from string) net.Conn {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
		c, err := d.Dial("tcp", raw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	// closedByServer reports whether the server closed c (a read ends) rather than holding it.
	closedByServer := func(c net.Conn) bool {
		_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		_, err := c.Read(make([]byte, 1))
		return err == io.EOF || (err != nil && !isTimeout(err))
	}
	a1, a2 := dial("127.0.0.1"), dial("127.0.0.1")
	if a3 := dial("127.0.0.1"); !closedByServer(a3) {
		t.Fatal("a third connection from one source was held")
	}
	b1 := dial("127.0.0.2")
	if c1 := dial("127.0.0.3"); !closedByServer(c1) {
		t.Fatal("a fourth connection in all was held")
	}
	for _, c := range []net.Conn{a1, a2, b1} {
		if closedByServer(c) {
			t.Fatal("a connection within the bounds was closed")
		}
	}
	// The server closes one of its connections: its place is free again.
	(<-accepted).Close()
	if c2 := dial("127.0.0.3"); closedByServer(c2) {
		t.Fatal("a connection was refused after one closed")
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
