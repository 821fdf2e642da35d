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

package kvlease

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	. "github.com/onsi/gomega"

	"github.com/hookline/hookline/internal/testsupport/natstest"
)

// bucket starts an embedded JetStream server and returns a fresh key-value bucket on it.
func bucket(t *testing.T) jetstream.KeyValue {
	t.Helper()
	js := natstest.JetStream(t)
	kv, err := js.CreateKeyValue(context.Background(), jetstream.KeyValueConfig{Bucket: "LEASES", TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

// One holder at a time: the second is told who holds the key; the first takes its own key back.
func TestTakeGivesTheKeyToOneHolder(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	kv := bucket(t)

	rev, other, err := Take(ctx, kv, "k", "a")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(other).To(BeEmpty())

	_, other, err = Take(ctx, kv, "k", "b")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(other).To(Equal("a"))

	again, other, err := Take(ctx, kv, "k", "a")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(other).To(BeEmpty(), "a restart under the same name takes the key back")
	g.Expect(again).To(BeNumerically(">", rev), "by writing it")

	g.Expect(Release(ctx, kv, "k", "a", again)).To(Succeed())
	_, other, err = Take(ctx, kv, "k", "b")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(other).To(BeEmpty(), "a released key is free")
}

// A renewal whose answer was lost was applied all the same: the holder's next renewal and its
// release go on from that revision, and the key stays its own until released.
func TestALostAnswerIsNotATakeOver(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	kv := bucket(t)
	rev, _, err := Take(ctx, kv, "k", "a")
	g.Expect(err).NotTo(HaveOccurred())

	// a's renewal, applied, whose answer a never got.
	lost, err := kv.Update(ctx, "k", []byte("a"), rev)
	g.Expect(err).NotTo(HaveOccurred())
	renewed, err := Renew(ctx, kv, "k", "a", rev)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(renewed).To(BeNumerically(">", lost))

	_, err = kv.Update(ctx, "k", []byte("a"), renewed) // lost again, just before the release
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(Release(ctx, kv, "k", "a", renewed)).To(Succeed())
	_, err = kv.Get(ctx, "k")
	g.Expect(err).To(MatchError(jetstream.ErrKeyNotFound), "released although the holder's revision was stale")
}

// A key another holder wrote is lost to it: Renew says so, and Release leaves it alone.
func TestAnotherHoldersKeyIsLeftAlone(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	kv := bucket(t)
	rev, _, err := Take(ctx, kv, "k", "a")
	g.Expect(err).NotTo(HaveOccurred())

	// a's lease expired (here: deleted) and b took it.
	g.Expect(kv.Delete(ctx, "k")).To(Succeed())
	_, other, err := Take(ctx, kv, "k", "b")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(other).To(BeEmpty())

	_, err = Renew(ctx, kv, "k", "a", rev)
	g.Expect(err).To(MatchError(ErrTaken))
	g.Expect(Release(ctx, kv, "k", "a", rev)).To(Succeed(), "nothing of a's left to release")
	e, err := kv.Get(ctx, "k")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(e.Value())).To(Equal("b"))

	// Gone altogether: lost too.
	g.Expect(kv.Delete(ctx, "k")).To(Succeed())
	_, err = Renew(ctx, kv, "k", "b", e.Revision())
	g.Expect(err).To(MatchError(ErrTaken))
}
