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

package dispatcher

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/internal/deliveries"
)

// The engine asks Gone before every replayed attempt: a replay found present is not read again for
// replayPresentFor, a deleted one is reported gone once that has passed (or at once when its
// reconcile forgot it), and a missing one is read every time. A narrow test on the fake client,
// counting its reads.
func TestGoneReadsAPresentReplayOncePerInterval(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	rp := &hooklinev1.WebhookReplay{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "recover"},
		Spec: hooklinev1.WebhookReplaySpec{WebhookName: "orders"}}
	var gets int
	c := fakeClientBuilder(t).WithObjects(rp).WithInterceptorFuncs(interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			gets++
			return c.Get(ctx, key, obj, opts...)
		},
	}).Build()
	base := time.Unix(1_700_000_000, 0)
	clk := clocktesting.NewFakePassiveClock(base)
	r := &Replayer{Client: c, Clock: clk}
	r.init()

	for range 100 {
		gone, err := r.Gone(ctx, "team-a", "recover", base)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(gone).To(BeFalse())
	}
	g.Expect(gets).To(Equal(1), "present: read once")

	g.Expect(c.Delete(ctx, rp)).To(Succeed())
	clk.SetTime(base.Add(replayPresentFor / 2))
	gone, _ := r.Gone(ctx, "team-a", "recover", base)
	g.Expect(gone).To(BeFalse(), "taken as present within the interval")
	clk.SetTime(base.Add(replayPresentFor))
	gone, _ = r.Gone(ctx, "team-a", "recover", base)
	g.Expect(gone).To(BeTrue(), "deleted: gone once the interval has passed")
	g.Expect(gets).To(Equal(2))
	gone, _ = r.Gone(ctx, "team-a", "never-was", base)
	g.Expect(gone).To(BeTrue())
	gone, _ = r.Gone(ctx, "team-a", "never-was", base)
	g.Expect(gone).To(BeTrue())
	g.Expect(gets).To(Equal(4), "a missing replay is read every time")

	// Forgotten by its reconcile (deleted): gone at once, within the interval.
	again := &hooklinev1.WebhookReplay{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "again"},
		Spec: hooklinev1.WebhookReplaySpec{WebhookName: "orders"}}
	g.Expect(c.Create(ctx, again)).To(Succeed())
	gone, _ = r.Gone(ctx, "team-a", "again", base)
	g.Expect(gone).To(BeFalse())
	g.Expect(c.Delete(ctx, again)).To(Succeed())
	r.present.Remove(types.NamespacedName{Namespace: "team-a", Name: "again"})
	gone, _ = r.Gone(ctx, "team-a", "again", base)
	g.Expect(gone).To(BeTrue())

	// Created again under its name: the notes of the first object are gone, those of the second
	// are not, whatever the cache held last.
	created := metav1.NewTime(base.Add(time.Hour))
	second := &hooklinev1.WebhookReplay{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "again", UID: "22222222-aaaa",
		CreationTimestamp: created}, Spec: hooklinev1.WebhookReplaySpec{WebhookName: "orders"}}
	g.Expect(c.Create(ctx, second)).To(Succeed())
	gone, _ = r.Gone(ctx, "team-a", deliveries.ReplayRef("again", "22222222-aaaa"), created.Time)
	g.Expect(gone).To(BeFalse(), "the second's own note")
	gone, _ = r.Gone(ctx, "team-a", deliveries.ReplayRef("again", "11111111-bbbb"), created.Time)
	g.Expect(gone).To(BeTrue(), "the first object's note, under the second")
	gone, _ = r.Gone(ctx, "team-a", "again", base)
	g.Expect(gone).To(BeTrue(), "a bare name of before, on a note older than the second")
	gone, _ = r.Gone(ctx, "team-a", "again", created.Add(time.Second))
	g.Expect(gone).To(BeFalse(), "a bare name of before, on a note of the second (queued across the upgrade)")
}
