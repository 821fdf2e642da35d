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

package controllers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/internal/cachetrim"
)

// A tenant grows its Webhook to hundreds of KB with labels and finalizers (their number has no
// bound) and annotations, which the API server stores with the managedFields recording them; a quota bounds
// only how many Webhooks it has, and the shared manager's and dispatcher's informers held every
// byte of each: a few hundred such objects filled the manager's memory. What they now cache of it
// is what hookline reads (the few labels and annotations it knows, a long value by its digest; not
// any other key of its prefix, which a tenant may use as freely), and the Webhook is verified as
// any other.
func TestATenantsGrownWebhookIsCachedSmall(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, "acc-grown", "")
	tenant := impersonatedTenant(t, ns, "tenant-"+ns)
	rc := newReceiver(t, false, echoHeader)
	wh := &hooklinev1.Webhook{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "grown", Labels: map[string]string{}, Annotations: map[string]string{
		"example.com/filler":            strings.Repeat("a", 100<<10),
		"hookline.io/filler":            strings.Repeat("h", 100<<10),
		hooklinev1.ReactivateAnnotation: strings.Repeat("r", 10<<10),
	}}, Spec: validSpec()}
	wh.Spec.URL = rc.URL
	for i := range 4000 {
		prefix := "filler.example.com"
		if i%2 == 0 {
			prefix = "hookline.io"
		}
		wh.Labels[fmt.Sprintf("%s/label-%05d", prefix, i)] = strings.Repeat("v", 63)
		if i < 1000 {
			wh.Finalizers = append(wh.Finalizers, fmt.Sprintf("filler.example.com/finalizer-%05d", i))
		}
	}
	g.Expect(tenant.Create(ctx, wh)).To(Succeed())
	t.Cleanup(func() { // its finalizers would keep the object, and its namespace, for ever
		cur := &hooklinev1.Webhook{}
		if k8s.Get(context.Background(), client.ObjectKeyFromObject(wh), cur) == nil {
			cur.Finalizers = nil
			_ = k8s.Update(context.Background(), cur)
		}
	})
	eventuallyReady(t, wh, metav1.ConditionTrue, hooklinev1.ReasonActive)

	stored := &hooklinev1.Webhook{}
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(wh), stored)).To(Succeed())
	full, _ := json.Marshal(stored)
	trimmed, err := cachetrim.Transform(stored.DeepCopy())
	g.Expect(err).NotTo(HaveOccurred())
	small, _ := json.Marshal(trimmed)
	t.Logf("the Webhook as stored: %d bytes; as cached: %d bytes", len(full), len(small))
	g.Expect(len(full)).To(BeNumerically(">", 500<<10))
	g.Expect(len(small)).To(BeNumerically("<", 8<<10))
	kept := trimmed.(*hooklinev1.Webhook)
	g.Expect(kept.Labels).To(BeEmpty())
	g.Expect(kept.ManagedFields).To(BeEmpty())
	g.Expect(kept.Finalizers).To(BeEmpty())
	g.Expect(kept.Annotations).To(Equal(map[string]string{hooklinev1.ReactivateAnnotation: hooklinev1.ReactivationToken(wh.Annotations[hooklinev1.ReactivateAnnotation])}))
	g.Expect(kept.Spec).To(Equal(stored.Spec))
	g.Expect(kept.Status).To(Equal(stored.Status))

}
