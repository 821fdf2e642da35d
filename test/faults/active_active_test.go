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
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	. "github.com/onsi/gomega"

	"github.com/hookline/hookline/dispatcher/deliverylog"
	"github.com/hookline/hookline/internal/deliveries"
	"github.com/hookline/hookline/internal/testsupport"
)

// inflight wraps a checker's handler: it answers each webhook of slow accounts after a delay and
// records the most requests in flight at once per webhook (more than one means two dispatchers
// delivered one webhook at the same time) and per account (the cap holds across dispatchers).
type inflight struct {
	rc    http.Handler
	delay map[string]time.Duration // per account

	mu                sync.Mutex
	hook, account     map[string]int
	maxHook, maxAccnt map[string]int
}

// accountOf is the account of a webhook named "<account>-w<n>".
func accountOf(path string) string {
	i := strings.LastIndex(path, "-w")
	if i < 0 {
		return path
	}
	return path[:i]
}

func (f *inflight) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		f.rc.ServeHTTP(w, r)
		return
	}
	path := strings.TrimPrefix(r.URL.Path, "/")
	acc := accountOf(path)
	f.mu.Lock()
	f.hook[path]++
	f.account[acc]++
	f.maxHook[path] = max(f.maxHook[path], f.hook[path])
	f.maxAccnt[acc] = max(f.maxAccnt[acc], f.account[acc])
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.hook[path]--
		f.account[acc]--
		f.mu.Unlock()
	}()
	if d := f.delay[acc]; d > 0 {
		time.Sleep(d) // a slow receiver: what keeps requests in flight
	}
	f.rc.ServeHTTP(w, r)
}

// most returns the highest of m's values and its key.
func most(m map[string]int) (string, int) {
	key, n := "", 0
	for k, v := range m {
		if v > n {
			key, n = k, v
		}
	}
	return key, n
}

// owned scrapes a dispatcher's hookline_partitions_owned (-1 when it does not answer).
func owned(metrics string) int {
	resp, err := http.Get("http://" + metrics + "/metrics")
	if err != nil {
		return -1
	}
	defer func() { _ = resp.Body.Close() }()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "hookline_partitions_owned "); ok {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return -1
			}
			return int(n)
		}
	}
	return -1
}

// Three active-active dispatchers on a three-node JetStream cluster, under load from four accounts
// (one of them with more webhooks than the per-account cap, behind a slow receiver). The group
// scales 1→3, one dispatcher is killed with SIGKILL and replaced, one is cut off from NATS (its
// only server is behind a proxy that is stopped) and reconnected, and the group scales back to
// 1 with clean stops. Throughout: every acknowledged event is delivered to every webhook, in order;
// no webhook ever has two requests in flight (two owners at once); no account ever has more than
// 30 in flight across the dispatchers.
func TestActiveActiveDispatchersUnderFaults(t *testing.T) {
	const (
		ttl        = 3 * time.Second
		partitions = 16
		bigHooks   = 32
	)
	g := NewWithT(t)
	nodes := startNATSCluster(t)
	urls := nodes[0].client + "," + nodes[1].client + "," + nodes[2].client
	proxy := newTCPProxy(t, strings.TrimPrefix(nodes[2].client, "nats://"))

	big, small := "acc-aa-big", []string{"acc-aa-1", "acc-aa-2", "acc-aa-3"}
	f := &inflight{delay: map[string]time.Duration{big: 100 * time.Millisecond},
		hook: map[string]int{}, account: map[string]int{}, maxHook: map[string]int{}, maxAccnt: map[string]int{}}
	rc := newCheckerBehind(t, func(rc http.Handler) http.Handler { f.rc = rc; return f })
	startManager(t, cp.Kubeconfig)
	hooks := map[string][]string{}
	for i := range bigHooks {
		hooks[big] = append(hooks[big], fmt.Sprintf("%s-w%02d", big, i))
	}
	for _, acc := range small {
		hooks[acc] = []string{acc + "-w0", acc + "-w1"}
	}
	for acc, names := range hooks {
		activeWebhooks(t, boundNamespace(t, acc), rc, names...)
	}

	opts := make([]dispatcherOpts, 3)
	metrics := make([]string, 3)
	procs := make([]*proc, 3)
	for i := range opts {
		url := urls
		if i == 2 {
			url = "nats://" + proxy.addr // its only way to NATS
		}
		metrics[i] = testsupport.FreeAddr(t)
		opts[i] = dispatcherOpts{name: fmt.Sprintf("aa-%d", i), kubeconfig: cp.Kubeconfig, listen: testsupport.FreeAddr(t), natsURL: url,
			extra: []string{"--partitions", strconv.Itoa(partitions), "--lease-ttl", ttl.String(), "--lease-identity", fmt.Sprintf("aa-%d", i),
				"--metrics-bind-address", metrics[i]}}
	}
	start := func(i int) {
		procs[i] = startDispatcher(t, opts[i])
		waitHTTP(t, procs[i], "http://"+opts[i].listen+"/readyz", http.StatusOK, time.Minute)
	}
	// shares waits until the running dispatchers in want own every partition between them, each
	// some, and the others none; it returns how long that took.
	shares := func(want ...int) time.Duration {
		t.Helper()
		began := time.Now()
		g.Eventually(func(g Gomega) {
			sum := 0
			for _, i := range want {
				n := owned(metrics[i])
				g.Expect(n).To(BeNumerically(">", 0), "aa-%d owns some", i)
				sum += n
			}
			g.Expect(sum).To(Equal(partitions))
		}).WithTimeout(4 * ttl).WithPolling(100 * time.Millisecond).Should(Succeed())
		return time.Since(began)
	}

	// 1 → 3 under load.
	start(0)
	addrs := []string{opts[0].listen, opts[1].listen, opts[2].listen}
	loads := map[string]*load{big: startLoad(big, addrs, 0, 120*time.Millisecond)}
	for _, acc := range small {
		loads[acc] = startLoad(acc, addrs, 0, 30*time.Millisecond)
	}
	progress := func() {
		t.Helper()
		for _, l := range loads {
			l.waitAcked(t, l.ackedCount()+20, time.Minute)
		}
	}
	progress()
	start(1)
	start(2)
	shares(0, 1, 2)
	progress()

	// kill -9 one: the others deliver its partitions within the lease TTL; it is replaced.
	var handovers []handover
	handovers = append(handovers, handover{name: "kill -9", at: time.Now()})
	procs[1].kill(t, syscall.SIGKILL)
	takeover := shares(0, 2)
	progress()
	opts[1].name = "aa-1-replaced"
	start(1)
	shares(0, 1, 2)

	// Cut one off from NATS: it stops (owns nothing) and the others take its partitions.
	progress()
	proxy.down()
	cut := time.Now()
	// Cut off, it goes on delivering until its lease's deadline, and cannot record the outcomes.
	handovers = append(handovers, handover{name: "NATS cut", at: cut, upTo: ttl})
	g.Eventually(func() int { return owned(metrics[2]) }).WithTimeout(3 * ttl).WithPolling(50 * time.Millisecond).Should(BeZero())
	fenced := time.Since(cut)
	shares(0, 1)
	progress()
	proxy.up(t)
	shares(0, 1, 2)
	progress()

	// 3 → 1 with clean stops.
	for _, i := range []int{2, 1} {
		// A clean stop waits for the attempts in flight a bounded time (TTL/5).
		handovers = append(handovers, handover{name: fmt.Sprintf("SIGTERM aa-%d", i), at: time.Now(), upTo: ttl / 5})
		procs[i].kill(t, syscall.SIGTERM)
		g.Expect(procs[i].err).NotTo(HaveOccurred(), "aa-%d stops cleanly", i)
	}
	shares(0)
	progress()

	total := figures{scenario: "active-active: 1→3, kill -9 + replace, NATS cut + reconnect, 3→1 (3-node cluster)"}
	var notes []string
	for acc, l := range loads {
		l.finish(t, time.Minute)
		fig := verify(t, "active-active, 3 dispatchers: "+acc, rc, l, hooks[acc], 3*time.Minute)
		notes = append(notes, fmt.Sprintf("%s: %d duplicates", acc, fig.dups))
		total.posts += fig.posts
		total.acked += fig.acked
		total.expected += fig.expected
		total.delivered += fig.delivered
		total.dups += fig.dups
		total.orderBreaks += fig.orderBreaks
	}
	f.mu.Lock()
	hook, perHook := most(f.maxHook)
	acc, perAccount := most(f.maxAccnt)
	f.mu.Unlock()
	g.Expect(perHook).To(Equal(1), "webhook %s had %d requests in flight at once: two dispatchers delivered it", hook, perHook)
	g.Expect(perAccount).To(BeNumerically("<=", 30), "account %s had %d requests in flight at once", acc, perAccount)
	g.Expect(perAccount).To(BeNumerically(">=", 25), "the slow account's webhooks kept the cap busy (else the check proves little)")

	// Duplicates only of attempts in flight at a handover: sent by the old owner before it stopped,
	// with the record that settles them not yet stored in the delivery log when the partitions
	// changed hands (a stored record keeps the next owner from sending the notification again).
	perHandover, unexplained := explainDuplicates(rc, handovers, settlementsStored(t, urls))
	g.Expect(unexplained).To(BeEmpty(), "duplicates whose first copy was not in flight at a handover (hand-overs: %s)", perHandover)
	total.note = fmt.Sprintf("takeover after kill -9 %s (TTL %s); cut-off dispatcher owned nothing %s after the cut; most in flight: %d per webhook, %d per account (%s); %s; duplicates by handover: %s",
		takeover.Round(100*time.Millisecond), ttl, fenced.Round(100*time.Millisecond), perHook, perAccount, acc, strings.Join(notes, "; "), perHandover)
	report(t, total)
}

// handover is a moment delivery changed hands: from at on, the partitions of a dispatcher are
// someone else's; the dispatcher itself may start attempts until at+upTo.
type handover struct {
	name string
	at   time.Time
	upTo time.Duration
}

const (
	// recordLag bounds how long after its attempt a settlement record may be stored and still
	// explain a duplicate: a record stored later than that is a fault of its own.
	recordLag = 10 * time.Second
	// receiveLag is how much later than its sender stopped a request may reach the receiver's
	// handler: a request written just before a SIGKILL took effect is read after it, later still
	// on a loaded machine. No new owner sends that soon: it waits out the lease TTL (3 s).
	receiveLag = time.Second
)

// explainDuplicates finds, for every duplicate delivery rc received, the handover whose attempts in
// flight its first copy was among: the first copy arrived before the old owner stopped (the
// handover's at+upTo, give or take receiveLag), at most recordLag before the handover, and the record that settles it was
// not stored before the handover (stored maps a webhookNotificationId to when its first settling
// record was stored). It returns how many each handover explains and the duplicates none does.
func explainDuplicates(rc *checker, handovers []handover, stored map[string]time.Time) (perHandover string, unexplained []string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	count := make([]int, len(handovers))
	earliest := make([]time.Duration, len(handovers)) // the first copies' times relative to the handover
	latest := make([]time.Duration, len(handovers))
	for path, ids := range rc.events {
		first := map[string]time.Time{}
		for i, id := range ids {
			at := rc.at[path][i]
			t1, seen := first[id]
			if !seen {
				first[id] = at
				continue
			}
			settled, recorded := stored[rc.ids[path][id]]
			explained := false
			for j, h := range handovers {
				if !t1.Before(h.at.Add(-recordLag)) && !t1.After(h.at.Add(h.upTo+receiveLag)) && (!recorded || !settled.Before(h.at)) {
					count[j]++
					if d := t1.Sub(h.at); count[j] == 1 {
						earliest[j], latest[j] = d, d
					} else {
						earliest[j], latest[j] = min(earliest[j], d), max(latest[j], d)
					}
					explained = true
					break
				}
			}
			if !explained {
				rec := "no settling record"
				if recorded {
					rec = "settling record stored at " + settled.Format("15:04:05.000")
				}
				unexplained = append(unexplained, fmt.Sprintf("%s: event %s first at %s (%s), again at %s", path, id,
					t1.Format("15:04:05.000"), rec, at.Format("15:04:05.000")))
			}
		}
	}
	var parts []string
	for j, h := range handovers {
		part := fmt.Sprintf("%s at %s: %d", h.name, h.at.Format("15:04:05.000"), count[j])
		if count[j] > 0 {
			part += fmt.Sprintf(" (first copies %s to %s from it)", earliest[j].Round(time.Millisecond), latest[j].Round(time.Millisecond))
		}
		parts = append(parts, part)
	}
	return strings.Join(parts, ", "), unexplained
}

// settlementsStored reads the delivery log's stream: for every webhookNotificationId, when
// JetStream stored the first record that settles it (delivered, dropped or cancelled). A read
// that fails is started again: in a cluster, a consumer's first pull can find no responder yet.
func settlementsStored(t *testing.T, urls string) map[string]time.Time {
	t.Helper()
	var out map[string]time.Time
	NewWithT(t).Eventually(func() (err error) {
		out, err = readSettlements(urls)
		return err
	}).WithTimeout(time.Minute).WithPolling(time.Second).Should(Succeed(), "reading the delivery log")
	return out
}

func readSettlements(urls string) (map[string]time.Time, error) {
	nc, err := nats.Connect(urls)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := js.Stream(ctx, deliverylog.Stream)
	if err != nil {
		return nil, err
	}
	last := stream.CachedInfo().State.LastSeq // the test's load is over: nothing is added now
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, err
	}
	out := map[string]time.Time{}
	for read := uint64(0); read < last; {
		batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return nil, err
		}
		n := 0
		for msg := range batch.Messages() {
			n++
			meta, err := msg.Metadata()
			if err != nil {
				return nil, err
			}
			read = meta.Sequence.Stream
			// A message holds one webhook's records written together, one per line.
			for line := range bytes.SplitSeq(msg.Data(), []byte("\n")) {
				var r deliveries.Record
				if err := json.Unmarshal(line, &r); err != nil {
					return nil, fmt.Errorf("undecodable delivery record: %w", err)
				}
				settles := r.Kind == deliveries.KindDropped || r.Kind == deliveries.KindCancelled ||
					r.Kind == deliveries.KindAttempt && r.State.Final() && r.State != deliveries.StateLost
				if !settles {
					continue
				}
				if at, seen := out[r.NotificationID]; !seen || meta.Timestamp.Before(at) {
					out[r.NotificationID] = meta.Timestamp
				}
			}
		}
		if err := batch.Error(); err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, fmt.Errorf("the delivery log's stream ended at %d of %d", read, last)
		}
	}
	return out, nil
}
