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

package clusterranges_test

import (
	"errors"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/hookline/hookline/internal/clusterranges"
	"github.com/hookline/hookline/internal/netguard"
	"github.com/hookline/hookline/internal/testlog"
)

// newNodeWithAddresses creates a Node and gives its status the addresses, as a kubelet would.
func newNodeWithAddresses(t *testing.T, name string, addrs ...corev1.NodeAddress) *corev1.Node {
	t.Helper()
	n := newNode(t, name)
	n.Status.Addresses = addrs
	if err := k8s.Status().Update(t.Context(), n); err != nil {
		t.Fatalf("setting the addresses of Node %s: %v", name, err)
	}
	return n
}

// The Nodes' InternalIP and ExternalIP addresses, read by a user that may only list Nodes, are
// refused even inside an allowed range: a receiver listening on a Node address inside the allowed
// 127.0.0.0/8 (where the test suites' receivers live) never sees a connection, and a public
// ExternalIP is refused although nothing else blocks it. A deleted Node's addresses are released.
func TestDiscoveryRefusesNodeAddresses(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	receiver, err := net.Listen("tcp4", "127.0.0.77:0")
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = receiver.Close() })
	var accepted atomic.Int32
	go func() {
		for {
			c, err := receiver.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
			accepted.Add(1)
		}
	}()

	node := newNodeWithAddresses(t, "hookline-test-node-addresses",
		corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "127.0.0.77"},
		corev1.NodeAddress{Type: corev1.NodeExternalIP, Address: "93.184.215.14"},
		corev1.NodeAddress{Type: corev1.NodeExternalIP, Address: "2606:2800:21f:cb07:6820:80da:af6b:8b2c"},
		corev1.NodeAddress{Type: corev1.NodeHostName, Address: "node-a.example.com"})

	listOnly, err := client.New(configAs(listOnlyUser), client.Options{Scheme: env.Scheme})
	g.Expect(err).NotTo(HaveOccurred())
	guard := netguard.New(netguard.Policy{Allowed: []netip.Prefix{
		netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"),
	}})
	logs := &testlog.Buffer{}
	d := &clusterranges.Discoverer{Reader: listOnly, Guard: guard, Interval: time.Hour, Log: logs.Logger()}

	// Before discovery the allowed receiver is reached: the refusal below is the Node's.
	g.Expect(refusal(guard, "127.0.0.77")).To(HavePrefix("allowed"))
	g.Expect(refusal(guard, "93.184.215.14")).To(HavePrefix("allowed"))

	g.Expect(d.Refresh(ctx)).To(Succeed())
	for _, ip := range []string{"127.0.0.77", "93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c", "::ffff:93.184.215.14"} {
		g.Expect(refusal(guard, ip)).To(HavePrefix(netguard.ReasonNodeAddress), ip)
	}
	g.Expect(refusal(guard, "127.0.0.78")).To(HavePrefix("allowed"), "only the Node's own address")

	d2 := guard.Dialer(&net.Dialer{Timeout: 5 * time.Second})
	_, err = d2.Dial("tcp4", receiver.Addr().String())
	var be *netguard.BlockedError
	g.Expect(errors.As(err, &be)).To(BeTrue(), "dial the Node's address: %v", err)
	g.Expect(be.Reason).To(Equal(netguard.ReasonNodeAddress))
	// The receiver works: a connection the test makes itself, after the refused one, is the only
	// one it accepts.
	c, err := net.Dial("tcp4", receiver.Addr().String())
	g.Expect(err).NotTo(HaveOccurred())
	_ = c.Close()
	g.Eventually(accepted.Load).WithTimeout(5 * time.Second).Should(BeNumerically(">=", 1))
	g.Expect(accepted.Load()).To(BeEquivalentTo(1), "the refused dial reached the receiver")

	g.Expect(k8s.Delete(ctx, node)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(d.Refresh(ctx)).To(Succeed())
		g.Expect(refusal(guard, "93.184.215.14")).To(HavePrefix("allowed"))
	}).WithTimeout(10 * time.Second).WithPolling(50 * time.Millisecond).Should(Succeed())
	g.Expect(logs.String()).To(ContainSubstring(`"nodeAddresses"`))
}
