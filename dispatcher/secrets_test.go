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
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/hookline/hookline/internal/secretaccess"
)

// countingReader counts the reads that reach the API.
type countingReader struct {
	client.Reader
	gets int
}

func (c *countingReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	c.gets++
	return c.Reader.Get(ctx, key, obj, opts...)
}

// Webhooks sharing a Secret cost one read per maxAge; answers are copies; a missing Secret is
// answered the same way and noticed once it exists.
func TestSecretReaderSharesReads(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "shared"}, Data: map[string][]byte{"k": []byte("v1")}}
	api := fake.NewClientBuilder().WithObjects(secret).Build()
	counted := &countingReader{Reader: api}
	clk := clocktesting.NewFakePassiveClock(time.Now())
	r := &secretReader{Reader: counted, clock: clk, maxAge: time.Minute}
	key := client.ObjectKeyFromObject(secret)

	for range 5 {
		got := &corev1.Secret{}
		g.Expect(r.Get(ctx, key, got)).To(Succeed())
		g.Expect(got.Data["k"]).To(Equal([]byte("v1")))
		got.Data["k"] = []byte("scribbled") // a caller's change must not reach the others
	}
	g.Expect(counted.gets).To(Equal(1))

	secret.Data["k"] = []byte("v2")
	g.Expect(api.Update(ctx, secret)).To(Succeed())
	clk.SetTime(clk.Now().Add(time.Minute))
	got := &corev1.Secret{}
	g.Expect(r.Get(ctx, key, got)).To(Succeed())
	g.Expect(got.Data["k"]).To(Equal([]byte("v2")), "read afresh after maxAge")
	g.Expect(counted.gets).To(Equal(2))

	missing := client.ObjectKey{Namespace: "ns", Name: "not-yet"}
	g.Expect(apierrors.IsNotFound(r.Get(ctx, missing, &corev1.Secret{}))).To(BeTrue())
	g.Expect(apierrors.IsNotFound(r.Get(ctx, missing, &corev1.Secret{}))).To(BeTrue())
	g.Expect(counted.gets).To(Equal(3))
	g.Expect(api.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "not-yet"}})).To(Succeed())
	clk.SetTime(clk.Now().Add(time.Minute))
	g.Expect(r.Get(ctx, missing, &corev1.Secret{})).To(Succeed())

	// Other objects are not cached.
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ns"}}
	g.Expect(api.Create(ctx, ns)).To(Succeed())
	before := counted.gets
	for range 2 {
		g.Expect(r.Get(ctx, client.ObjectKeyFromObject(ns), &corev1.Namespace{})).To(Succeed())
	}
	g.Expect(counted.gets).To(Equal(before + 2))
}

// A Secret larger than a client certificate or signing keys need is answered as an error and not
// kept: a tenant may write Secrets of 1 MiB and name them from as many Webhooks as it likes.
func TestSecretReaderKeepsNoOversizedSecret(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	big := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "big"},
		Data: map[string][]byte{"tls.crt": make([]byte, secretaccess.MaxBytes)}}
	api := fake.NewClientBuilder().WithObjects(big).Build()
	r := &secretReader{Reader: api, clock: clocktesting.NewFakePassiveClock(time.Now()), maxAge: time.Minute}
	err := r.Get(ctx, client.ObjectKeyFromObject(big), &corev1.Secret{})
	g.Expect(err).To(MatchError(secretaccess.ErrTooLarge))
	g.Expect(err.Error()).To(ContainSubstring("secret ns/big holds more than 64 KiB"))
	g.Expect(r.last[client.ObjectKeyFromObject(big)].secret).To(BeNil(), "only the error is kept")

	_, err = secretaccess.Get(ctx, api, "ns", "big")
	g.Expect(err).To(MatchError(secretaccess.ErrTooLarge), "uncached reads refuse it too")
	big.Data["tls.crt"] = make([]byte, secretaccess.MaxBytes-len("tls.crt"))
	g.Expect(api.Update(ctx, big)).To(Succeed())
	_, err = secretaccess.Get(ctx, api, "ns", "big")
	g.Expect(err).NotTo(HaveOccurred(), "exactly the bound")
}
