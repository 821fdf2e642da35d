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

package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/internal/attest"
	"github.com/hookline/hookline/internal/controlplane"
	"github.com/hookline/hookline/internal/echo"
	"github.com/hookline/hookline/internal/tenancy"
)

// dispatcherExtraArgs are added to the dispatcher's command line (-dispatcher-arg, repeatable).
var dispatcherExtraArgs []string

const (
	benchClientID = "hookline-bench"
	benchToken    = "bench-token-0123456789abcdef"
)

// The dispatcher's retry schedule, scaled so that dead endpoints are retried while we watch. The
// number of retries is scaled with it: Acrobat Sign's 15 retries span its 72 hours, and 15 retries
// 2 s apart would span 30 s only — a receiver down for longer than that (a scenario's dead phase
// across a dispatcher restart on a loaded machine) would have its notifications dropped, as the
// policy says, and never delivered. With as many retries as fit in the 72 hours, they are dropped
// after 72 hours again, as in production.
const (
	benchRetryBase  = time.Second
	benchRetryCap   = 2 * time.Second
	benchMaxRetries = int(72*time.Hour/benchRetryCap) + 1
)

// stack is the system under test.
type stack struct {
	cp         *controlplane.Env
	c          client.Client
	dir        string
	manager    *exec.Cmd
	dispatcher *exec.Cmd
	ingestURL  string
	metricsURL string
	pprofAddr  string
	sink       *sink
	sinkURL    string
	// dispatcherArgs is the dispatcher's command line, without a data directory (see
	// startDispatcher); dispatchers counts the ones started.
	dispatcherArgs []string
	dispatchers    int
	// dataDir is the current dispatcher's data directory.
	dataDir string
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func startStack() (*stack, error) {
	cp, err := controlplane.Start()
	if err != nil {
		return nil, err
	}
	s := &stack{cp: cp}
	if s.c, err = client.New(cp.Config, client.Options{Scheme: cp.Scheme}); err != nil {
		return nil, err
	}
	if s.dir, err = os.MkdirTemp("", "hookline-bench-"); err != nil {
		return nil, err
	}
	s.sink = newSink()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s.sinkURL = "http://" + l.Addr().String()
	srv := &http.Server{Handler: s.sink, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()

	tokens := filepath.Join(s.dir, "tokens.yaml")
	if err := os.WriteFile(tokens, []byte("tokens:\n- name: bench\n  token: "+benchToken+"\n  accounts: [\"*\"]\n"), 0o600); err != nil {
		return nil, err
	}
	key := filepath.Join(s.dir, "attestation.key")
	if err := attest.EnsureKeyFile(key); err != nil {
		return nil, err
	}
	bin := func(name string) string { return filepath.Join(cp.Bin, name) }
	s.manager = exec.Command(bin("manager"), "--kubeconfig", cp.Kubeconfig, "--default-client-id", benchClientID,
		"--attestation-key-file", key,
		"--allow-http", "--allowed-cidrs", "127.0.0.0/8", "--metrics-bind-address", "0", "--health-probe-bind-address", "0",
		"--max-concurrent-reconciles", "64")
	ingest, metrics := freeAddr(), freeAddr()
	s.pprofAddr = freeAddr()
	s.ingestURL, s.metricsURL = "http://"+ingest+"/v1/events", "http://"+metrics+"/metrics"
	// Production settings: embedded JetStream on file storage, Acrobat Sign's defaults — except the
	// retry base and cap, scaled so that the backlog scenario's dead endpoints are retried while we
	// watch, and http to 127.0.0.1.
	s.dispatcherArgs = []string{bin("dispatcher"), "--kubeconfig", cp.Kubeconfig, "--tokens-file", tokens,
		"--attestation-key-file", key,
		"--listen-address", ingest, "--metrics-bind-address", metrics,
		"--health-probe-bind-address", "0", "--default-client-id", benchClientID, "--allow-http",
		"--allowed-cidrs", "127.0.0.0/8",
		"--retry-base", benchRetryBase.String(), "--retry-cap", benchRetryCap.String(),
		"--max-retries", strconv.Itoa(benchMaxRetries), "--pprof-address", s.pprofAddr}
	if err := start(s.dir, "manager", s.manager); err != nil {
		return nil, err
	}
	if err := s.startDispatcher(); err != nil {
		return nil, err
	}
	return s, nil
}

// start starts cmd with its output in dir/<name>.log.
func start(dir, name string, cmd *exec.Cmd) error {
	logf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s (run make build): %w", cmd.Path, err)
	}
	return nil
}

// startDispatcher starts a dispatcher with an empty data directory of its own and the extra flags
// (after -dispatcher-arg's, so they win), and waits until it serves.
func (s *stack) startDispatcher(extra ...string) error {
	s.dispatchers++
	data, name := "data", "dispatcher"
	if s.dispatchers > 1 {
		data, name = fmt.Sprintf("data-%d", s.dispatchers), fmt.Sprintf("dispatcher-%d", s.dispatchers)
	}
	s.dataDir = filepath.Join(s.dir, data)
	args := append(slices.Clone(s.dispatcherArgs[1:]), "--data-dir="+s.dataDir)
	args = append(append(args, dispatcherExtraArgs...), extra...)
	s.dispatcher = exec.Command(s.dispatcherArgs[0], args...)
	if err := start(s.dir, name, s.dispatcher); err != nil {
		return err
	}
	// The dispatcher answers on its ingest port once its routing table has synced.
	return s.waitDispatcher(time.Minute)
}

// waitDispatcher waits until the stack's dispatcher serves on the ingest port.
func (s *stack) waitDispatcher(timeout time.Duration) error {
	return waitServing(s.dispatcher, strings.TrimSuffix(s.ingestURL, "/v1/events")+"/healthz", 0, timeout, s.dir)
}

// waitServing waits until cmd, a process the bench started, answers url (with status want; 0: any).
// A process that exits meanwhile fails it at once, and an answer counts only while cmd still runs:
// when a process another run left behind holds the port, the new one exits ("address already in
// use") and the old one answers, and the bench used to measure, and wait ten minutes for, that one.
// dir is where the process's log is.
func waitServing(cmd *exec.Cmd, url string, want int, timeout time.Duration, dir string) error {
	name := filepath.Base(cmd.Path)
	deadline := time.Now().Add(timeout)
	for {
		if exited(cmd.Process.Pid) {
			return fmt.Errorf("%s exited at start; see its log in %s", name, dir)
		}
		resp, err := http.Get(url)
		if err == nil {
			_ = resp.Body.Close()
			if exited(cmd.Process.Pid) {
				return fmt.Errorf("%s exited at start, and another process answers on %s (one left by an earlier run?); see its log in %s", name, url, dir)
			}
			if want == 0 || resp.StatusCode == want {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not serve on %s within %s (%w); see its log in %s", name, url, timeout, err, dir)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// exited reports whether the child process pid has ended (a zombie until the bench waits for it).
func exited(pid int) bool {
	f := statFields(pid)
	return len(f) == 0 || f[0] == "Z" || f[0] == "X"
}

// statFields returns the fields of /proc/pid/stat after the command's name (state first); nil when
// it cannot be read.
func statFields(pid int) []string {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	return strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
}

// restartDispatcher stops the dispatcher (as Kubernetes does: SIGTERM) and starts a new one on an
// empty data directory with the extra flags: the webhooks stay, their queues start empty. The old
// data directory is removed (unless HOOKLINE_BENCH_KEEP is set): nothing reads it again, and the
// kernel would otherwise spend the next runs' CPU writing its gigabytes back to disk.
func (s *stack) restartDispatcher(extra ...string) error {
	_ = s.dispatcher.Process.Signal(syscall.SIGTERM)
	_ = s.dispatcher.Wait()
	if os.Getenv("HOOKLINE_BENCH_KEEP") == "" {
		if err := os.RemoveAll(s.dataDir); err != nil {
			return err
		}
	}
	return s.startDispatcher(extra...)
}

func (s *stack) stop() {
	for _, cmd := range []*exec.Cmd{s.dispatcher, s.manager} {
		if cmd != nil && cmd.Process != nil {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			_ = cmd.Wait()
		}
	}
	_ = s.cp.Stop()
	if os.Getenv("HOOKLINE_BENCH_KEEP") == "" {
		_ = os.RemoveAll(s.dir)
	}
}

// group is a set of webhooks created for one scenario: accounts × webhooks per account.
type group struct {
	prefix string
	uids   []string // index → webhook uid
	paths  []string // index → receiver path
}

// createGroup creates accounts namespaces with perAccount ACCOUNT-scope webhooks each, pointing at
// the sink under /<prefix>/<index>, and waits until all are Active. edit, when given, changes each
// webhook's spec (conditionalParams, say).
func (s *stack) createGroup(ctx context.Context, prefix string, accounts, perAccount int, edit ...func(*hooklinev1.WebhookSpec)) (*group, time.Duration, error) {
	start := time.Now()
	g := &group{prefix: prefix}
	for a := range accounts {
		ns := fmt.Sprintf("bench-%s-%03d", prefix, a)
		nsObj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{tenancy.AccountLabel: account(prefix, a)}}}
		if err := s.c.Create(ctx, nsObj); err != nil {
			return nil, 0, err
		}
	}
	// Create in parallel: the API server is the bottleneck, not the client.
	work := make(chan int)
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	total := accounts * perAccount
	g.uids, g.paths = make([]string, total), make([]string, total)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				a := i / perAccount
				path := fmt.Sprintf("/%s/%d", prefix, i)
				wh := &hooklinev1.Webhook{
					ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("wh-%05d", i), Namespace: fmt.Sprintf("bench-%s-%03d", prefix, a)},
					Spec: hooklinev1.WebhookSpec{URL: s.sinkURL + path, Scope: hooklinev1.ScopeAccount,
						Events: []hooklinev1.EventName{"AGREEMENT_ALL"}},
				}
				for _, e := range edit {
					e(&wh.Spec)
				}
				err := s.c.Create(ctx, wh)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				g.uids[i], g.paths[i] = string(wh.UID), path
				mu.Unlock()
			}
		}()
	}
	for i := range total {
		work <- i
	}
	close(work)
	wg.Wait()
	if firstErr != nil {
		return nil, 0, firstErr
	}
	for i, uid := range g.uids {
		s.sink.expect(g.paths[i], uid)
	}
	// Wait until every webhook is Active and routed: a probe event per account must reach all.
	for {
		list := &hooklinev1.WebhookList{}
		if err := s.c.List(ctx, list, client.MatchingLabels{}); err != nil {
			return nil, 0, err
		}
		active, stuck := 0, ""
		for _, wh := range list.Items {
			if !strings.HasPrefix(wh.Namespace, "bench-"+prefix+"-") {
				continue
			}
			if wh.Status.State == hooklinev1.ObservedActive {
				active++
			} else if stuck == "" {
				stuck = describeStuck(&wh)
			}
		}
		if active == total {
			break
		}
		if time.Since(start) > 10*time.Minute {
			return nil, 0, fmt.Errorf("%d of %d webhooks Active after 10 minutes; first one not Active: %s", active, total, stuck)
		}
		time.Sleep(250 * time.Millisecond)
	}
	return g, time.Since(start), nil
}

func account(prefix string, a int) string { return fmt.Sprintf("%s-%03d", prefix, a) }

// sink is the receiver: it echoes the client id, checks that each delivery reached the webhook it
// names, and records latency and notification ids.
type sink struct {
	mu        sync.Mutex
	expectUID map[string]string // path → webhook uid
	seen      notificationSet   // webhookNotificationId
	lastSeq   map[string]int64  // path → last benchSeq (order check)
	lat       []latency
	count     atomic.Int64
	dups      atomic.Int64
	wrong     atomic.Int64
	outOfOrd  atomic.Int64
	hang      sync.Map // path → true: hold the request until the client gives up
	dead      sync.Map // path prefix → true: answer 503
	record    atomic.Bool
}

func newSink() *sink {
	return &sink{expectUID: map[string]string{}, seen: newNotificationSet(), lastSeq: map[string]int64{}}
}

func (s *sink) expect(path, uid string) {
	s.mu.Lock()
	s.expectUID[path] = uid
	s.mu.Unlock()
}

type benchBody struct {
	WebhookID      string `json:"webhookId"`
	NotificationID string `json:"webhookNotificationId"`
	SentAt         int64  `json:"benchSentAt"`
	Seq            int64  `json:"benchSeq"`
}

func (s *sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := r.Header.Get(echo.Header)
	if r.Method == http.MethodGet {
		w.Header().Set(echo.Header, id)
		return
	}
	body, _ := io.ReadAll(r.Body)
	var b benchBody
	if len(body) > 1<<20 {
		leadingFields(body, &b) // a large event: no need to decode megabytes to find the ids
	} else {
		_ = json.Unmarshal(body, &b)
	}
	if r.URL.Path == "/raw" {
		w.Header().Set(echo.Header, id) // the raw ceiling: same body, same parse, nothing else
		return
	}
	if _, ok := s.hang.Load(r.URL.Path); ok {
		<-r.Context().Done()
		return
	}
	if _, ok := s.dead.Load(strings.SplitN(r.URL.Path, "/", 3)[1]); ok {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	now := time.Now()
	s.mu.Lock()
	if s.expectUID[r.URL.Path] != b.WebhookID {
		s.wrong.Add(1)
	}
	if !s.seen.add(b.NotificationID) {
		s.dups.Add(1)
	} else {
		s.count.Add(1)
		if b.Seq > 0 { // events without a sequence (large ones, read only for their ids) are not ordered
			if b.Seq < s.lastSeq[r.URL.Path] {
				s.outOfOrd.Add(1)
			}
			s.lastSeq[r.URL.Path] = b.Seq
		}
		if s.record.Load() && b.SentAt > 0 {
			sent := time.Unix(0, b.SentAt)
			s.lat = append(s.lat, latency{sent: sent, d: now.Sub(sent)})
		}
	}
	s.mu.Unlock()
	w.Header().Set(echo.Header, id)
}

// leadingFields reads webhookId and webhookNotificationId, which lead every Acrobat body, without
// decoding the rest.
func leadingFields(body []byte, b *benchBody) {
	dec := json.NewDecoder(bytes.NewReader(body))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return
	}
	for dec.More() && (b.WebhookID == "" || b.NotificationID == "") {
		k, err := dec.Token()
		if err != nil {
			return
		}
		var v any = new(json.RawMessage)
		switch k {
		case "webhookId":
			v = &b.WebhookID
		case "webhookNotificationId":
			v = &b.NotificationID
		}
		if dec.Decode(v) != nil {
			return
		}
	}
}

// resetPeakRSS starts a new peak for procStats (VmHWM) of pid.
func resetPeakRSS(pid int) {
	_ = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

// latency is one delivery's ingest→delivery time and when its event was sent.
type latency struct {
	sent time.Time
	d    time.Duration
}

// takeLatencies returns and clears the recorded latencies, sorted.
func (s *sink) takeLatencies() []time.Duration {
	out, _ := s.takeLatencySamples()
	return out
}

// takeLatencySamples returns and clears the recorded latencies, sorted, and the samples in the
// order they arrived.
func (s *sink) takeLatencySamples() ([]time.Duration, []latency) {
	s.mu.Lock()
	samples := s.lat
	s.lat = nil
	s.mu.Unlock()
	out := make([]time.Duration, len(samples))
	for i, l := range samples {
		out[i] = l.d
	}
	slices.Sort(out)
	return out, samples
}

// slowestSeconds tells whether a tail is spread over the run or comes in bursts: it groups the
// deliveries slower than above by the second their event was sent (from the first sample's) and
// names the three seconds holding most of them, e.g. "above 25ms: 170 deliveries in 4 of 20 s;
// most at s7 (150, max 210ms), s12 (12, max 40ms), s3 (5, max 30ms)". A burst points at a stall
// (a collection, a periodic task), a spread at per-delivery cost.
func slowestSeconds(samples []latency, above time.Duration) string {
	if len(samples) == 0 {
		return ""
	}
	_, seconds, bySecond, order := slowBySecond(samples, above)
	if len(order) == 0 {
		return fmt.Sprintf("none above %v in %d s", above, seconds)
	}
	slow := 0
	for _, sec := range bySecond {
		slow += sec.n
	}
	parts := make([]string, 0, 3)
	for _, k := range order[:min(3, len(order))] {
		parts = append(parts, fmt.Sprintf("s%d (%d, max %v)", k, bySecond[k].n, bySecond[k].max.Round(time.Millisecond)))
	}
	return fmt.Sprintf("above %v: %d deliveries in %d of %d s; most at %s", above, slow, len(bySecond), seconds, strings.Join(parts, ", "))
}

// slowSecond is how many deliveries of one second of sending were slow, and the slowest.
type slowSecond struct {
	n   int
	max time.Duration
}

// slowBySecond groups the deliveries slower than above by the second their event was sent, counted
// from the first sample's: the first send, the seconds the samples span, the slow ones per second,
// and those seconds ordered by most slow deliveries (then the earlier first). samples must not be
// empty.
func slowBySecond(samples []latency, above time.Duration) (first time.Time, seconds int, bySecond map[int]*slowSecond, order []int) {
	first, last := samples[0].sent, samples[0].sent
	for _, l := range samples {
		if l.sent.Before(first) {
			first = l.sent
		}
		if l.sent.After(last) {
			last = l.sent
		}
	}
	bySecond = map[int]*slowSecond{}
	for _, l := range samples {
		if l.d <= above {
			continue
		}
		k := int(l.sent.Sub(first) / time.Second)
		if bySecond[k] == nil {
			bySecond[k] = &slowSecond{}
		}
		bySecond[k].n++
		bySecond[k].max = max(bySecond[k].max, l.d)
	}
	order = slices.Collect(maps.Keys(bySecond))
	slices.SortFunc(order, func(a, b int) int { return cmp.Or(bySecond[b].n-bySecond[a].n, a-b) })
	return first, int(last.Sub(first)/time.Second) + 1, bySecond, order
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)-1) * p)
	return sorted[i]
}

// procStats reads a process's CPU seconds (user+system) and peak and current RSS.
func procStats(pid int) (cpu float64, peakMB, rssMB float64) {
	if f := statFields(pid); len(f) > 13 {
		ut, _ := strconv.ParseFloat(f[11], 64)
		st, _ := strconv.ParseFloat(f[12], 64)
		cpu = (ut + st) / 100 // USER_HZ
	}
	if fh, err := os.Open(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			k, v, _ := strings.Cut(sc.Text(), ":")
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			switch k {
			case "VmHWM":
				peakMB = kb / 1024
			case "VmRSS":
				rssMB = kb / 1024
			}
		}
		fh.Close()
	}
	return cpu, peakMB, rssMB
}

// scrape returns the value of a metric from a Prometheus text endpoint: the sum of its series, or
// one series when name ends with its labels (name{label="value"}).
func scrape(url, name string) float64 {
	sum, found := 0.0, false
	metricLines(url, func(line string) {
		if strings.HasPrefix(line, name+" ") || (!strings.HasSuffix(name, "}") && strings.HasPrefix(line, name+"{")) {
			f := strings.Fields(line)
			v, err := strconv.ParseFloat(f[len(f)-1], 64)
			if err == nil {
				sum += v
				found = true
			}
		}
	})
	if !found {
		return -1
	}
	return sum
}

// metricLines calls fn with each line of the metrics page at url (none when it cannot be read).
func metricLines(url string, fn func(line string)) {
	resp, err := http.Get(url)
	if err != nil {
		return
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		fn(sc.Text())
	}
}

// describeStuck says where a Webhook that is not Active stands: its name, state and conditions.
func describeStuck(wh *hooklinev1.Webhook) string {
	out := fmt.Sprintf("%s/%s (uid %s, generation %d, observed %d) state %q", wh.Namespace, wh.Name, wh.UID,
		wh.Generation, wh.Status.ObservedGeneration, wh.Status.State)
	for _, c := range wh.Status.Conditions {
		out += fmt.Sprintf("; %s=%s %s: %s", c.Type, c.Status, c.Reason, c.Message)
	}
	return out
}

// selfCPU returns the CPU seconds this process (load generator and receiver) used so far.
func selfCPU() float64 {
	cpu, _, _ := procStats(os.Getpid())
	return cpu
}

// sumCPU adds up treeCPUByName's figures: the whole stack's CPU seconds.
func sumCPU(byName map[string]float64) float64 {
	var total float64
	for _, cpu := range byName {
		total += cpu
	}
	return total
}

// treeCPUByName returns the CPU seconds used so far by this process and every process descended
// from it (control plane, manager, dispatcher; this process is the receiver and load generator),
// by process name (comm).
func treeCPUByName() map[string]float64 {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children, names := map[int][]int{}, map[int]string{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
		if len(f) < 2 {
			continue
		}
		if ppid, err := strconv.Atoi(f[1]); err == nil {
			children[ppid] = append(children[ppid], pid)
		}
		if i, j := strings.IndexByte(string(raw), '('), strings.LastIndexByte(string(raw), ')'); i >= 0 && j > i {
			names[pid] = string(raw[i+1 : j])
		}
	}
	out := map[string]float64{}
	for todo := []int{os.Getpid()}; len(todo) > 0; {
		pid := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		cpu, _, _ := procStats(pid)
		out[names[pid]] += cpu
		todo = append(todo, children[pid]...)
	}
	return out
}

// counted returns one series of a dispatcher counter (label="value") and the counter's sum over
// every series.
func counted(url, metric, label, value string) (n, all float64) {
	return scrape(url, metric+`{`+label+`="`+value+`"}`), scrape(url, metric)
}

// share describes one series' share of a counter between two counted samples: "<who> N% of M
// <what>".
func share(who, what string, n0, all0, n1, all1 float64) string {
	if all1 <= all0 {
		return "no " + what
	}
	return fmt.Sprintf("%s %.0f%% of %.0f %s", who, 100*(n1-n0)/(all1-all0), all1-all0, what)
}

// queueReads returns the dispatcher's queue reads so far: answered by one kind (the metric's
// answered_by: index, sweep or stream), and in all.
func queueReads(url, by string) (n, all float64) {
	return counted(url, "hookline_store_queue_reads_total", "answered_by", by)
}

// cacheReads returns the dispatcher's reads of events for delivery so far: answered by the event
// cache, and in all.
func cacheReads(url string) (hits, all float64) {
	return counted(url, "hookline_event_cache_reads_total", "result", "hit")
}

// cacheShare describes the event reads the cache answered between two cacheReads samples.
func cacheShare(h0, all0, h1, all1 float64) string {
	return share("event cache answered", "event reads", h0, all0, h1, all1)
}

// readShare describes the queue reads of one kind between two queueReads samples.
func readShare(by string, n0, all0, n1, all1 float64) string {
	return share(by+" answered", "queue reads", n0, all0, n1, all1)
}

// sweepMisses returns the dispatcher's queue reads the sweep left to the stream so far, by reason
// (the label of each series of hookline_store_sweep_misses_total).
func sweepMisses(url string) map[string]float64 {
	out := map[string]float64{}
	const prefix = `hookline_store_sweep_misses_total{reason="`
	metricLines(url, func(line string) {
		rest, ok := strings.CutPrefix(line, prefix)
		reason, value, ok2 := strings.Cut(rest, `"} `)
		if !ok || !ok2 {
			return
		}
		if v, err := strconv.ParseFloat(value, 64); err == nil {
			out[reason] = v
		}
	})
	return out
}

// missList describes the sweep's misses between two sweepMisses samples, most first: "sweep
// missed: cut 12, floor 3" (reasons with none left out).
func missList(m0, m1 map[string]float64) string {
	type miss struct {
		reason string
		n      float64
	}
	var ms []miss
	for r, v := range m1 {
		if n := v - m0[r]; n > 0 {
			ms = append(ms, miss{r, n})
		}
	}
	if len(ms) == 0 {
		return "sweep missed none"
	}
	slices.SortFunc(ms, func(a, b miss) int { return cmp.Or(cmp.Compare(b.n, a.n), strings.Compare(a.reason, b.reason)) })
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = fmt.Sprintf("%s %.0f", m.reason, m.n)
	}
	return "sweep missed: " + strings.Join(parts, ", ")
}

// removals returns the dispatcher's removals of settled notes so far: by a compaction of the notes
// stream, and in all.
func removals(url string) (compacted, all float64) {
	return counted(url, "hookline_store_removals_total", "by", "compaction")
}

// removalShare describes the compaction's share of the removals between two removals samples.
func removalShare(c0, all0, c1, all1 float64) string {
	return share("compaction did", "removals", c0, all0, c1, all1)
}

func dirSizeMB(dir string) float64 {
	var total int64
	_ = filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			total += info.Size()
		}
		return nil
	})
	return float64(total) / (1 << 20)
}
