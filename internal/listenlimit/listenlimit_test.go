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
	"bufio"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// At a bound (two connections from one source, three in all), the oldest connection carrying no
// request gives way to the new one: connections held open without a request (anyone reaching the
// port can) cannot keep producers or the kubelet's probe out. Only when every connection carries
// a request is the new one closed.
func TestIdleConnectionsGiveWayAtTheBounds(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := Wrap(raw, t.Name(), 2, 3)
	gaveWay, refused := closed.WithLabelValues(t.Name(), "gave_way"), closed.WithLabelValues(t.Name(), "refused")
	gaveWayBefore, refusedBefore := testutil.ToFloat64(gaveWay), testutil.ToFloat64(refused)
	entered, release := make(chan struct{}, 8), make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
	}), ConnState: l.ConnState, ReadHeaderTimeout: time.Minute}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { close(release); _ = srv.Close() })

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
	// busy sends a request the handler holds, and waits until it is there.
	busy := func(c net.Conn) {
		t.Helper()
		if _, err := c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		select {
		case <-entered:
		case <-time.After(5 * time.Second):
			t.Fatal("the request did not reach the handler")
		}
	}
	// closedByServer reports whether the server closed c (it is only asked where it must have:
	// the deadline is generous, for a loaded machine).
	closedByServer := func(c net.Conn) bool {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err := bufio.NewReader(c).ReadByte()
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			return false
		}
		return err != nil
	}
	accepted := func(c net.Conn) {
		t.Helper()
		// The server holds it: a request on it reaches the handler.
		busy(c)
	}

	aBusy := dial("127.0.0.1")
	busy(aBusy)
	aIdle := dial("127.0.0.1")
	x := dial("127.0.0.1") // the source's bound: its idle one gives way
	if !closedByServer(aIdle) {
		t.Fatal("the source's idle connection was kept at its bound")
	}
	bBusy := dial("127.0.0.2")
	busy(bBusy)
	y := dial("127.0.0.3") // the bound in all: the idle one held longest (x) gives way
	if !closedByServer(x) {
		t.Fatal("the idle connection was kept at the bound in all")
	}
	accepted(y)
	if z := dial("127.0.0.4"); !closedByServer(z) {
		t.Fatal("a connection was held while every one carried a request")
	}
	// Counted, for operators to see the bounds bite.
	if n := testutil.ToFloat64(gaveWay) - gaveWayBefore; n != 2 {
		t.Errorf("%v connections counted as given way, want 2", n)
	}
	if n := testutil.ToFloat64(refused) - refusedBefore; n != 1 {
		t.Errorf("%v connections counted as refused, want 1", n)
	}
}
