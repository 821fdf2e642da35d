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
	"regexp"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

// kvKey is what a JetStream key-value key and a safe message id may hold.
var kvKey = regexp.MustCompile(`^[-_=.a-zA-Z0-9]+$`)

// One key per (account, id): the raw "account/id" let ids that a trimming reader cannot tell apart,
// and pairs that join to the same text, collide in one place (JetStream's dedupe) and not in
// another (the routed marker).
func TestEventKeyIsOneKeyPerEvent(t *testing.T) {
	g := NewWithT(t)
	seen := map[string][2]string{}
	for _, p := range [][2]string{
		{"acc", "dup-7"}, {"acc", "dup-7 "}, {"acc", "dup-7\n"}, {"acc", " dup-7"},
		{"a/b", "c"}, {"a", "b/c"}, {"ab", "c"}, {"a", "bc"}, {"", "acc"}, {"acc", ""},
	} {
		k := EventKey(p[0], p[1])
		g.Expect(k).To(MatchRegexp(kvKey.String()), "usable as a message id and a key-value key")
		g.Expect(seen).NotTo(HaveKey(k), "%q collides with %q", p, seen[k])
		seen[k] = p
		g.Expect(EventKey(p[0], p[1])).To(Equal(k), "stable")
	}

	// In JetStream: the trimmed-looking id is a new event, and the markers stay apart.
	ctx := context.Background()
	s := open(t, t.TempDir())
	defer s.Close()
	seq7, dup, err := s.PutEvent(ctx, EventKey("acc", "dup-7"), []byte(`{"n":1}`), time.Now())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(dup).To(BeFalse())
	seq7b, dup, err := s.PutEvent(ctx, EventKey("acc", "dup-7 "), []byte(`{"n":2}`), time.Now())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(dup).To(BeFalse(), "JetStream must not take dup-7 and \"dup-7 \" for one event")
	g.Expect(s.MarkRouted(ctx, EventKey("acc", "dup-7"), seq7)).To(Succeed())
	routed, err := s.Routed(ctx, EventKey("acc", "dup-7 "), seq7b)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(routed).To(BeFalse())

	// An event that is not stored (retention) is gone; the delivery engine drops its notifications
	// only then, and retries on any other error.
	_, _, err = s.GetEvent(ctx, 999)
	g.Expect(err).To(HaveOccurred())
	g.Expect(Gone(err)).To(BeTrue(), "%v", err)
}
