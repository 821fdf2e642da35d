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

// Package freeport finds TCP ports for processes a test starts. It is imported by tests only.
package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"testing"
)

// Addr returns a 127.0.0.1 address with a port nobody listens on at the moment, for a process
// the test starts and must know the address of in advance.
//
// The port is taken below the kernel's ephemeral range: a port the kernel handed out for a listener
// on :0 is just as likely to be given next to an outgoing connection (a NATS node dialling its
// routes), and the process started on it then fails to bind. CI saw that once in a three-node NATS
// cluster. Below the range only another Addr can collide: each checks with a bind, never hands the
// same port out twice in a process, and picks from a slice of the range of its own process's (by
// process id), since `go test ./...` runs several test binaries at once.
func Addr(t testing.TB) string {
	t.Helper()
	freeMu.Lock()
	defer freeMu.Unlock()
	lo, hi := ownSlice(belowEphemeral())
	for range 200 {
		port := lo + rand.IntN(hi-lo)
		if freeGiven[port] {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		_ = l.Close()
		freeGiven[port] = true
		return l.Addr().String()
	}
	// Ports below the range are scarce here; fall back to the kernel's choice.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String()
}

var (
	freeMu    sync.Mutex
	freeGiven = map[int]bool{}
)

// slices is how many parts the range is cut into, one per process (by process id).
const slices = 8

// ownSlice returns this process's part of [lo, hi).
func ownSlice(lo, hi int) (int, int) {
	n := (hi - lo) / slices
	start := lo + os.Getpid()%slices*n
	return start, start + n
}

// belowEphemeral returns the ports [lo, hi) Addr picks from: up to 12,000 ports under the
// kernel's ephemeral range, never below 10,000.
func belowEphemeral() (lo, hi int) {
	hi = 32768 // Linux's default start of the range
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		var a, z int
		if _, err := fmt.Sscan(string(b), &a, &z); err == nil && a > 11000 {
			hi = a
		}
	}
	return max(10000, hi-12000), hi
}
