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

package faults_test

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/internal/testsupport"
)

// size picks the quick or the full figure.
func size[T any](quick, long T) T {
	if full {
		return long
	}
	return quick
}

// The dispatcher (embedded JetStream) is killed with SIGKILL while events pour in and restarted on
// its data directory: every acknowledged event is delivered to every webhook, in order.
func TestDispatcherKill9UnderLoad(t *testing.T) {
	const account = "acc-kill9"
	total := size(600, 20000)
	ns := boundNamespace(t, account)
	rc := newChecker(t)
	startManager(t, cp.Kubeconfig)
	activeWebhooks(t, ns, rc, "kill-a", "kill-b")

	o := dispatcherOpts{name: "dispatcher-1", kubeconfig: cp.Kubeconfig, listen: testsupport.FreeAddr(t), dataDir: filepath.Join(t.TempDir(), "data")}
	first := startDispatcher(t, o)
	waitHTTP(t, first, "http://"+o.listen+"/healthz", http.StatusOK, time.Minute)

	l := startLoad(account, []string{o.listen}, total, 0)
	l.waitAcked(t, total/3, 2*time.Minute)
	first.kill(t, syscall.SIGKILL)
	killedAt := l.ackedCount()
	o.name = "dispatcher-2"
	second := startDispatcher(t, o)
	waitHTTP(t, second, "http://"+o.listen+"/healthz", http.StatusOK, time.Minute)
	l.finish(t, 5*time.Minute)

	f := verify(t, "dispatcher kill -9 (embedded JetStream)", rc, l, []string{"kill-a", "kill-b"}, 2*time.Minute)
	f.note = fmt.Sprintf("SIGKILL after %d acknowledged; restarted on the same data directory", killedAt)
	report(t, f)
}

// The manager is killed and restarted, then the API server is taken away from both components for
// an outage: deliveries go on from the dispatcher's cache, ingest keeps acknowledging, and once the
// API server is back the status catches up and new webhooks are verified again.
func TestManagerRestartAndAPIServerOutage(t *testing.T) {
	const account = "acc-outage"
	outage := size(10*time.Second, 60*time.Second)
	g := NewWithT(t)
	ns := boundNamespace(t, account)
	rc := newChecker(t)
	px := newAPIProxy(t)
	kubeconfig := px.kubeconfig(t)
	mgr := startManager(t, kubeconfig)
	hooks := activeWebhooks(t, ns, rc, "outage-a", "outage-b")

	o := dispatcherOpts{name: "dispatcher", kubeconfig: kubeconfig, listen: testsupport.FreeAddr(t), dataDir: filepath.Join(t.TempDir(), "data")}
	d := startDispatcher(t, o)
	waitHTTP(t, d, "http://"+o.listen+"/healthz", http.StatusOK, time.Minute)
	l := startLoad(account, []string{o.listen}, 0, 5*time.Millisecond)
	l.waitAcked(t, 100, time.Minute)

	// 1. The manager dies and comes back.
	mgr.kill(t, syscall.SIGKILL)
	startManager(t, kubeconfig)
	l.waitAcked(t, l.ackedCount()+100, time.Minute)

	// 2. The API server goes away.
	px.down()
	downAt := time.Now()
	ackedBefore, deliveredBefore := l.ackedCount(), rc.deliveries()
	g.Eventually(func() int { return rc.deliveries() }).WithTimeout(outage).Should(BeNumerically(">=", deliveredBefore+200),
		"deliveries stopped without the API server")
	g.Expect(l.ackedCount()).To(BeNumerically(">", ackedBefore), "ingest stopped without the API server")
	g.Expect(d.exited()).To(BeFalse(), "the dispatcher died without the API server")
	// Hold the outage for its whole length.
	g.Consistently(d.exited).WithTimeout(time.Until(downAt.Add(outage))).WithPolling(500 * time.Millisecond).Should(BeFalse())
	ackedDuring, deliveredDuring := l.ackedCount()-ackedBefore, rc.deliveries()-deliveredBefore

	// 3. It comes back.
	px.up(t)
	l.waitAcked(t, l.ackedCount()+100, time.Minute)
	l.finish(t, time.Minute)
	f := verify(t, "manager kill -9, API server outage", rc, l, []string{"outage-a", "outage-b"}, 2*time.Minute)

	// The status catches up: each webhook's deliveredTotal counts what its receiver got.
	for _, wh := range hooks {
		g.Eventually(func(g Gomega) {
			got := &hooklinev1.Webhook{}
			g.Expect(k8s.Get(context.Background(), client.ObjectKeyFromObject(wh), got)).To(Succeed())
			g.Expect(got.Status.DeliveredTotal).NotTo(BeNil())
			rc.mu.Lock()
			n := len(rc.events[wh.Name])
			rc.mu.Unlock()
			g.Expect(*got.Status.DeliveredTotal).To(BeEquivalentTo(n))
		}).WithTimeout(time.Minute).WithPolling(200*time.Millisecond).Should(Succeed(), "status of %s never caught up", wh.Name)
	}
	// The restarted manager verifies a new webhook after the outage.
	activeWebhooks(t, ns, rc, "outage-after")
	f.note = fmt.Sprintf("outage %s: %d events acknowledged and %d delivered during it", outage, ackedDuring, deliveredDuring)
	report(t, f)
}

// natsNode is one server of a three-node JetStream cluster on 127.0.0.1.
type natsNode struct {
	*proc
	client string
}

func startNATSCluster(t *testing.T) []*natsNode {
	t.Helper()
	routes := make([]string, 3)
	clients := make([]string, 3)
	for i := range routes {
		routes[i], clients[i] = testsupport.FreeAddr(t), testsupport.FreeAddr(t)
	}
	routeURLs := make([]string, 0, len(routes))
	for _, r := range routes {
		routeURLs = append(routeURLs, "nats://"+r)
	}
	nodes := make([]*natsNode, 3)
	for i := range nodes {
		host, port, _ := strings.Cut(clients[i], ":")
		nodes[i] = &natsNode{client: "nats://" + clients[i], proc: startProc(t, fmt.Sprintf("nats-%d", i), bins.nats,
			"--jetstream", "--store_dir", filepath.Join(t.TempDir(), fmt.Sprintf("nats-%d", i)),
			"--server_name", fmt.Sprintf("n%d", i), "--addr", host, "--port", port,
			"--cluster_name", "hookline", "--cluster", "nats://"+routes[i], "--routes", strings.Join(routeURLs, ","),
			// Clients reach only the servers they are given: one connected through a proxy must not
			// learn the others' addresses and go around it.
			"--no_advertise=true",
		)}
	}
	// A node that could not start (its port taken) makes the cluster wait for a quorum forever: say
	// which one rather than time out on the symptom.
	exited := func() error {
		for _, n := range nodes {
			select {
			case <-n.done:
				return StopTrying(n.name + " exited while the cluster was forming; its log follows")
			default:
			}
		}
		return nil
	}
	// JetStream answers once the cluster has elected its meta leader.
	var nc *nats.Conn
	NewWithT(t).Eventually(func() (err error) {
		if err := exited(); err != nil {
			return err
		}
		nc, err = nats.Connect(nodes[0].client + "," + nodes[1].client + "," + nodes[2].client)
		return err
	}).WithTimeout(time.Minute).WithPolling(100 * time.Millisecond).Should(Succeed())
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	NewWithT(t).Eventually(func() error {
		if err := exited(); err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := js.AccountInfo(ctx)
		return err
	}).WithTimeout(time.Minute).WithPolling(200 * time.Millisecond).Should(Succeed())
	return nodes
}

// Two dispatchers share an external three-node JetStream cluster; one delivers (it holds the lease),
// the other stands by. Under load one NATS node and the delivering dispatcher are killed with
// SIGKILL: the standby takes over, and every acknowledged event is delivered in order.
func TestNATSClusterNodeAndDispatcherKill(t *testing.T) {
	const account = "acc-cluster"
	total := size(600, 20000)
	const leaseTTL = 3 * time.Second
	g := NewWithT(t)
	ns := boundNamespace(t, account)
	rc := newChecker(t)
	startManager(t, cp.Kubeconfig)
	activeWebhooks(t, ns, rc, "cluster-a", "cluster-b")
	nodes := startNATSCluster(t)
	urls := nodes[0].client + "," + nodes[1].client + "," + nodes[2].client

	opts := make([]dispatcherOpts, 2)
	procs := make([]*proc, 2)
	for i := range opts {
		opts[i] = dispatcherOpts{name: fmt.Sprintf("dispatcher-%d", i), kubeconfig: cp.Kubeconfig, listen: testsupport.FreeAddr(t), probes: testsupport.FreeAddr(t),
			natsURL: urls, extra: []string{"--lease-ttl", leaseTTL.String(), "--lease-identity", fmt.Sprintf("dispatcher-%d", i)}}
	}
	procs[0] = startDispatcher(t, opts[0])
	waitHTTP(t, procs[0], "http://"+opts[0].listen+"/healthz", http.StatusOK, time.Minute)
	procs[1] = startDispatcher(t, opts[1])
	// The standby is alive, not ready, and takes no events.
	waitHTTP(t, procs[1], "http://"+opts[1].probes+"/healthz", http.StatusOK, time.Minute)
	waitHTTP(t, procs[1], "http://"+opts[1].probes+"/readyz", http.StatusServiceUnavailable, time.Minute)

	l := startLoad(account, []string{opts[0].listen, opts[1].listen}, total, 0)
	l.waitAcked(t, total/3, 2*time.Minute)
	g.Expect(rc.deliveries()).To(BeNumerically(">", 0), "the lease holder delivers")

	// One NATS node and the delivering dispatcher die together.
	nodes[0].kill(t, syscall.SIGKILL)
	procs[0].kill(t, syscall.SIGKILL)
	killed := time.Now()
	killedAt := l.ackedCount()
	waitHTTP(t, procs[1], "http://"+opts[1].listen+"/healthz", http.StatusOK, time.Minute)
	takeover := time.Since(killed)
	l.finish(t, 5*time.Minute)

	f := verify(t, "NATS node + delivering dispatcher kill -9 (3-node cluster, 2 replicas)", rc, l, []string{"cluster-a", "cluster-b"}, 3*time.Minute)

	// A rollout: the old holder comes back as a standby, then the holder is stopped cleanly and
	// hands the lease over without making anybody wait for it to expire.
	opts[0].name = "dispatcher-0-again"
	procs[0] = startDispatcher(t, opts[0])
	waitHTTP(t, procs[0], "http://"+opts[0].probes+"/readyz", http.StatusServiceUnavailable, time.Minute)
	procs[1].kill(t, syscall.SIGTERM)
	stopped := time.Now()
	g.Expect(procs[1].err).NotTo(HaveOccurred(), "a clean stop exits 0")
	waitHTTP(t, procs[0], "http://"+opts[0].listen+"/healthz", http.StatusOK, time.Minute)
	handover := time.Since(stopped)
	// A standby told to stop exits cleanly too.
	opts[1].name = "dispatcher-1-again"
	procs[1] = startDispatcher(t, opts[1])
	waitHTTP(t, procs[1], "http://"+opts[1].probes+"/readyz", http.StatusServiceUnavailable, time.Minute)
	procs[1].kill(t, syscall.SIGTERM)
	g.Expect(procs[1].err).NotTo(HaveOccurred(), "a standby's clean stop exits 0")

	f.note = fmt.Sprintf("SIGKILL after %d acknowledged; standby serving %s later (lease TTL %s); clean hand-over in %s",
		killedAt, takeover.Round(100*time.Millisecond), leaseTTL, handover.Round(100*time.Millisecond))
	report(t, f)
}
