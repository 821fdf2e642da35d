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
	"cmp"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/dispatcher/deliver"
	"github.com/hookline/hookline/dispatcher/deliverylog"
	"github.com/hookline/hookline/dispatcher/deliverystats"
	"github.com/hookline/hookline/dispatcher/ingest"
	"github.com/hookline/hookline/dispatcher/logapi"
	"github.com/hookline/hookline/dispatcher/partition"
	"github.com/hookline/hookline/dispatcher/quota"
	"github.com/hookline/hookline/dispatcher/route"
	"github.com/hookline/hookline/dispatcher/store"
	"github.com/hookline/hookline/internal/attest"
	"github.com/hookline/hookline/internal/boundedhttp"
	"github.com/hookline/hookline/internal/cachetrim"
	"github.com/hookline/hookline/internal/clusterranges"
	"github.com/hookline/hookline/internal/keyrate"
	"github.com/hookline/hookline/internal/netguard"
	"github.com/hookline/hookline/internal/notify"
	"github.com/hookline/hookline/internal/securemetrics"
)

// DefaultEventsPerSecond is the default of --max-events-per-second-per-account.
const DefaultEventsPerSecond = 1000

// DefaultAccountQuota is the default of --max-stored-bytes-per-account: 2 GiB, a fifth of the
// chart's default volume, about 1.4 million Acrobat Sign events of 1.5 KB within the retention.
const DefaultAccountQuota = 2 << 30

// DeliveryLog configures the delivery log (package deliverylog).
type DeliveryLog struct {
	// Enabled records every delivery attempt and every change of a notification's state; off, the
	// engine records nothing (the benchmark's baseline).
	Enabled bool
	// Config tunes the log. Replicas defaults to the store's; CursorKey is derived from the
	// attestation key when empty.
	deliverylog.Config
}

// deliveryLogCursorPurpose derives the log's cursor key from the attestation key.
const deliveryLogCursorPurpose = "hookline delivery log cursor"

// Config is everything the dispatcher needs besides the API server connection.
type Config struct {
	Store  store.Config
	Engine deliver.Config
	// DeliveryLog is the delivery log's configuration.
	DeliveryLog DeliveryLog
	// DeliveryTimeout bounds one delivery attempt (5 s).
	DeliveryTimeout time.Duration
	// EventsPerSecond bounds the events one account may post per second to this replica (ten
	// seconds' worth at once); 0: no bound.
	EventsPerSecond float64
	// MaxReceiverConnections bounds the connections to receivers the process holds for all
	// accounts together; 0 means deliver.DefaultConnsInAll.
	MaxReceiverConnections int
	AllowHTTP              bool
	RootCAs                *x509.CertPool
	// Guard decides which receiver addresses deliveries may connect to; nil means
	// netguard.Default() (loopback, private, link-local and metadata addresses refused), never no
	// guard.
	Guard *netguard.Guard
	// ClusterRangesInterval is how often the cluster's Service and Pod ranges are read into Guard
	// (package clusterranges); 0 turns that off (tests).
	ClusterRangesInterval time.Duration
	StatusInterval        time.Duration
	// StatusWritesPerSecond bounds the routine status writes (Reporter.WritesPerSecond); 0 means
	// DefaultStatusWritesPerSecond.
	StatusWritesPerSecond float64
	DefaultClientID       string
	// Attestation is the key the manager attests verifications with (--attestation-key-file):
	// webhooks are delivered to only when their attestation covers the current spec. Required.
	Attestation *attest.Key
	// SecretResync is how often webhooks' Secrets are read again (rotation); 0 means 5 minutes.
	SecretResync time.Duration
	// SweepInterval is how often routes, queues and status entries of webhooks that no longer
	// exist are swept away (besides at start); 0 means 1 minute.
	SweepInterval time.Duration
	SyncWorkers   int
	MaxEventBytes int64
	// AccountQuota is the most event bytes one account may keep stored within the retention
	// (quota.Usage); 0 leaves accounts unbounded.
	AccountQuota int64
	// Namespaces restricts the watched namespaces (tests); empty watches all.
	Namespaces []string
	// MetricsAddress and ProbeAddress of the controller-runtime manager ("0" disables).
	MetricsAddress, ProbeAddress string
	// MetricsSecure serves metrics over HTTPS behind Kubernetes authentication and authorization;
	// MetricsCertDir, when set, holds the certificate served (tls.crt, tls.key) instead of a
	// self-signed one.
	MetricsSecure  bool
	MetricsCertDir string
	// Problems, when its Address is set, e-mails webhooks' problemNotificationEmails about failing
	// streaks older than ProblemAfter (0 means 1 hour) and about auto-disables.
	Problems     notify.Config
	ProblemAfter time.Duration
	// Registry receives the dispatcher's metrics.
	Registry prometheus.Registerer
	// ReplayPoll is how often a running WebhookReplay's progress, or the Webhook it waits for, is
	// read again; 0 means 2 seconds.
	ReplayPoll time.Duration
	// ReplayGather is how long the first replay to ask for a read of the delivery log waits for
	// others to ask too, so that replays created together share one read (default 200 ms); while
	// asks keep coming it waits on, a quarter of it at a time, up to five times it.
	ReplayGather time.Duration
	// ReplayMaxPerNamespace is how many WebhookReplays run at once in one namespace; 0 means
	// DefaultReplaysPerNamespace.
	ReplayMaxPerNamespace int
	// ReplayMaxSelection bounds the notifications one WebhookReplay's selection holds
	// (Replayer.MaxSelection); 0 means DefaultReplayMaxSelection.
	ReplayMaxSelection int
	// ReplayBatch is how many notifications a WebhookReplay queues in one store round trip
	// (Replayer.Batch); 0 means 500.
	ReplayBatch int
	// ReplayLogReadsPerMinute and ReplayLogReadBurst are each namespace's budget of delivery log
	// reads for its replays (Replayer.LogReadsPerMinute); 0 means the defaults.
	ReplayLogReadsPerMinute float64
	ReplayLogReadBurst      int
	// ReplayNotesPerMinute and ReplayNotesBurst are each namespace's budget of notifications
	// queued again by its replays (Replayer.NotesPerMinute); 0 means the defaults.
	ReplayNotesPerMinute float64
	ReplayNotesBurst     int
	// APIAuthTTL is how long the read API reuses a TokenReview's or SubjectAccessReview's answer;
	// 0 means logapi.DefaultAuthTTL.
	APIAuthTTL time.Duration
	// TestInterval is the least time between two test notifications of one webhook; 0 means
	// logapi.DefaultTestInterval.
	TestInterval time.Duration
	// TestsPerNamespace is how many test notifications one namespace may send per minute; 0 means
	// logapi.DefaultTestsPerNamespace.
	TestsPerNamespace int
	// StatsCacheSize is how many webhooks' delivery statistics the read API keeps for the
	// console's chart; 0 means deliverystats.DefaultSize.
	StatsCacheSize int
	// SkipNameValidation lets several dispatchers run in one process (tests).
	SkipNameValidation bool
	// Partitioning, with Partitions above 0, makes this dispatcher one of several that deliver at
	// once, each its share of the accounts (partitioned.go); it needs an external NATS cluster
	// (or another dispatcher's embedded server) shared by all of them.
	Partitioning Partitioning
}

// App is an assembled dispatcher.
type App struct {
	Manager  ctrl.Manager
	Store    *store.Store
	Engine   *deliver.Engine
	Table    *route.Table
	Syncer   *Syncer
	Reporter *Reporter
	Intake   *Intake
	// Replayer runs WebhookReplays.
	Replayer *Replayer
	// Ingest is the POST /v1/events handler, without tokens: set Ingest.Tokens before serving.
	Ingest *ingest.Handler
	// API is the delivery log's read API (serve it with NewAPIServer and ServeAPI). Only the
	// dispatcher holding the delivery lease builds an App, so only it serves the API: a standby is
	// not ready, the Service sends it nothing, and its API port answers 503 (logapi.Standby).
	API *logapi.Handler
	// Log is the delivery log, for its read API and replays; nil when it is off.
	Log *deliverylog.Log
	// stopLog stops the log's writer once the engine has stopped appending to it.
	stopLog func()
	// accounts is every webhook's account, kept by the Syncer, for the log.
	accounts Accounts
	// logTrimmer is the group of active-active dispatchers, whose owner of partition 0 trims the
	// delivery log near its bound; nil: this dispatcher delivers everything, and trims.
	logTrimmer atomic.Pointer[partition.Group]
	// partitioned is this dispatcher's part among active-active dispatchers; nil when it delivers
	// everything.
	partitioned *partitioned
	// readiness are the checks of Ready, by name; probes serves them on the probe address.
	readiness []namedCheck
	probes    *boundedhttp.Probes
	// managerStopped receives the manager's error when it stops while Run's ctx lives.
	managerStopped chan error
}

type namedCheck struct {
	name  string
	check healthz.Checker
}

// newEngine creates the delivery engine on the store, with its metrics.
func (a *App) newEngine(cfg Config, clk clock.Clock, log logr.Logger) error {
	var metrics *deliver.Metrics
	if cfg.Registry != nil {
		metrics = deliver.NewMetrics(cfg.Registry)
	}
	sender := deliver.NewSender(cfg.DeliveryTimeout, cfg.AllowHTTP, cfg.RootCAs, cfg.Guard)
	sender.LimitConnections(cfg.MaxReceiverConnections, cfg.Engine.AccountConcurrency)
	a.Engine = deliver.New(cfg.Engine, a.Store, sender,
		clk, log.WithName("deliver"), metrics)
	if a.partitioned != nil {
		a.partitioned.engine = a.Engine
	}
	if cfg.Registry != nil {
		return cfg.Registry.Register(a.Engine.Collector())
	}
	return nil
}

// addProblemMailer e-mails webhooks' problemNotificationEmails when cfg.Problems has an address.
func (a *App) addProblemMailer(cfg Config, clk clock.Clock, log logr.Logger) error {
	if cfg.Problems.Address == "" {
		return nil
	}
	if cfg.Registry != nil {
		cfg.Problems.Metrics = notify.NewMetrics(cfg.Registry)
	}
	notifier, err := notify.New(cfg.Problems, clk, log.WithName("problem-emails"))
	if err != nil {
		return fmt.Errorf("problem e-mails: %w", err)
	}
	mailer := &ProblemMailer{Client: a.Manager.GetClient(), Engine: a.Engine, Notifier: notifier,
		After: cmp.Or(cfg.ProblemAfter, time.Hour), Clock: clk, Log: log.WithName("problem-emails")}
	a.Engine.Watch(mailer.Mark)
	if err := a.Manager.Add(notifier); err != nil {
		return err
	}
	return a.Manager.Add(mailer)
}

// newIngest makes the ingest handler; when cfg sets a quota, it bounds the event bytes each account
// keeps stored.
func (a *App) newIngest(ctx context.Context, cfg Config) error {
	log := logr.FromContextOrDiscard(ctx)
	// The notification cap is the one delivery trims Acrobat bodies to: an envelope notification,
	// delivered untrimmed, must fit it when it is ingested.
	a.Ingest = &ingest.Handler{Acceptor: a.Intake, MaxBody: cfg.MaxEventBytes, MaxNotification: int64(cfg.Engine.MaxPayloadBytes),
		Log: log.WithName("ingest")}
	if cfg.EventsPerSecond > 0 {
		// Ten seconds' worth at once; a limiter unused for a minute is forgotten (full again by
		// then at any rate of a second's worth or more).
		burst := max(1, int(cfg.EventsPerSecond*10))
		a.Ingest.EventRate = keyrate.New(rate.Limit(cfg.EventsPerSecond), burst, time.Minute, 65536)
	}
	if cfg.Registry != nil {
		a.Ingest.Metrics = ingest.NewMetrics(cfg.Registry)
	}
	if cfg.AccountQuota <= 0 {
		return nil
	}
	// Patiently, as the store's own assets: a cluster electing leaders answers nothing for a few
	// seconds, and a dispatcher starting then must not fail.
	var usage *quota.Usage
	err := a.Store.Patiently(ctx, func(ctx context.Context) error {
		var err error
		usage, err = quota.Open(ctx, a.Store.JetStream(), quota.Config{
			Limit: cfg.AccountQuota, Retention: a.Store.Retention(), Replicas: a.Store.Replicas(), Log: log.WithName("quota"),
		})
		return err
	})
	if err != nil {
		return err
	}
	if err := a.Manager.Add(usage); err != nil {
		return err
	}
	a.Ingest.Quota = usage
	return nil
}

// addProbes serves the metrics and the probes, and adds the conditions of Ready: not ready while
// events cannot be stored (another replica, active-active, takes them), nor while not a current
// member of the group.
func (a *App) addProbes(cfg Config) error {
	if err := securemetrics.Serve(a.Manager, cfg.MetricsAddress, cfg.MetricsSecure, cfg.MetricsCertDir); err != nil {
		return err
	}
	probes, err := boundedhttp.ServeProbes(a.Manager, cfg.ProbeAddress)
	if err != nil {
		return err
	}
	a.probes = probes
	if err := a.AddReadyCheck("nats", func(*http.Request) error { return a.Store.Reachable() }); err != nil {
		return err
	}
	if p := a.partitioned; p != nil {
		return a.AddReadyCheck("partitions", p.ready)
	}
	return nil
}

// AddReadyCheck adds a condition of Ready, also served on the manager's /readyz. Call it before Run.
func (a *App) AddReadyCheck(name string, check healthz.Checker) error {
	if err := a.probes.AddReadyzCheck(name, check); err != nil {
		return err
	}
	a.readiness = append(a.readiness, namedCheck{name, check})
	return nil
}

// Ready reports why this dispatcher should not be sent events now (nil: it should): NATS out of
// reach, not a current member of the active-active group, or a check added with AddReadyCheck
// (the tokens file). The ingest API serves it as GET /readyz, the pod's readiness probe.
func (a *App) Ready(r *http.Request) error {
	var errs []error
	for _, c := range a.readiness {
		if err := c.check(r); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c.name, err))
		}
	}
	return errors.Join(errs...)
}

// newManager is the dispatcher's controller-runtime manager: Secrets are never cached, and the
// cache holds cfg.Namespaces only when given.
func newManager(restCfg *rest.Config, cfg Config) (ctrl.Manager, error) {
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(hooklinev1.AddToScheme(scheme))
	// Only what hookline reads of tenants' objects is kept (labels and annotations grown by a
	// tenant are not).
	cacheOpts := cache.Options{DefaultTransform: cachetrim.Transform}
	if len(cfg.Namespaces) > 0 {
		cacheOpts.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range cfg.Namespaces {
			cacheOpts.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{
		Scheme: scheme,
		Cache:  cacheOpts,
		// Both served by bounded servers (boundedhttp, addProbes), not by controller-runtime's.
		Metrics:                securemetrics.Off,
		HealthProbeBindAddress: "0",
		Client:                 client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}},
	})
	if err != nil {
		return nil, fmt.Errorf("creating manager: %w", err)
	}
	return mgr, nil
}

// NewApp opens the store, starts the delivery engine and wires the syncer and reporter into a
// controller-runtime manager; Run starts the rest.
// It logs with the logger of ctx (logr.NewContext).
func NewApp(ctx context.Context, restCfg *rest.Config, cfg Config, clk clock.Clock) (*App, error) {
	log := logr.FromContextOrDiscard(ctx)
	if cfg.Attestation == nil {
		return nil, errors.New("an attestation key is required: without one no webhook's verification can be checked")
	}
	mgr, err := newManager(restCfg, cfg)
	if err != nil {
		return nil, err
	}
	if cfg.ClusterRangesInterval != 0 {
		if cfg.Guard == nil {
			// The default guard is shared and takes no cluster ranges: give this one its own.
			cfg.Guard = netguard.New(netguard.Policy{})
		}
		// Before the engine starts, so that no delivery dials before the ranges are blocked.
		if err := clusterranges.Setup(logr.NewContext(ctx, log.WithName("cluster-ranges")), mgr, cfg.Guard, cfg.ClusterRangesInterval); err != nil {
			return nil, err
		}
	}
	if cfg.Store.Log.GetSink() == nil {
		cfg.Store.Log = log.WithName("nats")
	}
	// Active-active dispatchers all queue notes into the same streams.
	cfg.Store.SharedQueues = cfg.Store.SharedQueues || cfg.Partitioning.Partitions > 0
	st, err := store.Open(ctx, cfg.Store)
	if err != nil {
		return nil, err
	}
	a := &App{Manager: mgr, Store: st, Table: route.NewTable(), stopLog: func() {}, managerStopped: make(chan error, 1)}
	if cfg.Registry != nil {
		if err := cfg.Registry.Register(storeCollector(st)); err != nil {
			st.Close()
			return nil, err
		}
	}
	a.Replayer = &Replayer{
		Client: mgr.GetClient(), Store: st, Table: a.Table, Recorder: mgr.GetEventRecorder("hookline-dispatcher"),
		Clock: clk, Poll: cfg.ReplayPoll, Batch: cfg.ReplayBatch, Gather: cfg.ReplayGather, MaxPerNamespace: cfg.ReplayMaxPerNamespace, MaxSelection: cfg.ReplayMaxSelection,
		LogReadsPerMinute: cfg.ReplayLogReadsPerMinute, LogReadBurst: cfg.ReplayLogReadBurst,
		NotesPerMinute: cfg.ReplayNotesPerMinute, NotesBurst: cfg.ReplayNotesBurst,
	}
	if cfg.DeliveryLog.Enabled {
		if err := a.openLog(ctx, cfg); err != nil {
			st.Close()
			return nil, err
		}
		a.Replayer.Log = a.Log // not a typed nil in the interface: without the log, replays stall
		// The replays count their deliveries as the engine records them.
		cfg.Engine.Recorder = a.Replayer.Observe(a.Log)
		// Deleting a replay withdraws what it queued and has not sent yet.
		cfg.Engine.ReplayGone = a.Replayer.Gone
	}
	// Every failure from here on stops the log's writer before closing the store.
	fail := func(err error) (*App, error) {
		a.stopLog()
		if a.partitioned != nil {
			a.partitioned.close()
		}
		st.Close()
		return nil, err
	}
	if cfg.Partitioning.Partitions > 0 {
		// Before the engine: the group's number of partitions is the engine's.
		if err := a.joinPartitions(ctx, &cfg); err != nil {
			return fail(err)
		}
	}
	if err := a.newEngine(cfg, clk, log); err != nil {
		return fail(err)
	}
	// The engine only tells of changes; the reporter and the problem mailer read its state.
	a.Reporter = &Reporter{
		Client: mgr.GetClient(), Engine: a.Engine, Recorder: mgr.GetEventRecorder("hookline-dispatcher"),
		Clock: clk, Interval: cfg.StatusInterval, WritesPerSecond: cfg.StatusWritesPerSecond, Log: log.WithName("status"),
	}
	a.Engine.Watch(a.Reporter.Mark)
	if err := a.addProblemMailer(cfg, clk, log); err != nil {
		return fail(err)
	}
	if err := startPatiently(ctx, a.Engine.Start, engineStartPatience); err != nil {
		return fail(fmt.Errorf("starting delivery engine: %w", err))
	}
	resync := cmp.Or(cfg.SecretResync, 5*time.Minute)
	a.Syncer = &Syncer{
		Client: mgr.GetClient(), Table: a.Table, Engine: a.Engine,
		// Half an interval: a Webhook's next resync always reads the Secret afresh.
		APIReader: &secretReader{Reader: mgr.GetAPIReader(), clock: clock.RealClock{}, maxAge: resync / 2},
		Reporter:  a.Reporter, DefaultClientID: cfg.DefaultClientID, SecretResync: resync,
		Attestation: cfg.Attestation, Accounts: &a.accounts,
	}
	if a.partitioned != nil {
		a.Syncer.Retake = a.partitioned.taken
	}
	if err := a.Syncer.SetupWithManager(mgr, max(cfg.SyncWorkers, 1), cfg.SkipNameValidation); err != nil {
		return fail(err)
	}
	a.Replayer.Engine = a.Engine
	if cfg.Registry != nil {
		if a.Replayer.Metrics, err = NewReplayMetrics(cfg.Registry); err != nil {
			return fail(err)
		}
	}
	if err := a.Replayer.SetupWithManager(ctx, mgr, cfg.SkipNameValidation); err != nil {
		return fail(err)
	}
	if err := mgr.Add(a.Reporter); err != nil {
		return fail(err)
	}
	if err := mgr.Add(a.Syncer.SweepEvery(cmp.Or(cfg.SweepInterval, time.Minute))); err != nil {
		return fail(err)
	}
	if err := a.addProbes(cfg); err != nil {
		return fail(err)
	}
	a.Intake = &Intake{Store: st, Engine: a.Engine, Table: a.Table, Clock: clk, Log: log, DeliveryLog: a.Log}
	if err := a.newIngest(ctx, cfg); err != nil {
		return fail(err)
	}
	auth, err := logapi.NewAuth(mgr.GetConfig(), mgr.GetHTTPClient(), cfg.APIAuthTTL)
	if err != nil {
		return fail(err)
	}
	a.API = &logapi.Handler{
		Webhooks: mgr.GetCache(), Bodies: a.Engine, Auth: auth,
		Limits: &logapi.Limits{}, Logger: log.WithName("log-api"), Tester: a.Intake, TestInterval: cfg.TestInterval, TestsPerNamespace: cfg.TestsPerNamespace,
	}
	if a.Log != nil {
		// Not a nil *deliverylog.Log in the interface: without a log the API answers 503.
		a.API.Log = a.Log
		a.API.Stats = deliverystats.New(a.Log, cfg.StatsCacheSize, nil)
	}
	return a, nil
}

// Run starts the manager and returns once the routing table reflects the cluster (events may be
// accepted from then on); the manager runs until ctx ends, then done receives its result. A manager
// that stops on its own (a runnable failed) is reported on ManagerStopped: the caller must then
// end ctx, since the rest (delivery, the partitions) runs until it ends.
func (a *App) Run(ctx context.Context) (done <-chan error, err error) {
	ch := make(chan error, 1)
	// Closed once this dispatcher gave its partitions up (at once when it has none): the engine
	// and the store stop after that, since giving a partition up saves its queues' state.
	groupDone := make(chan struct{})
	grouped := false
	defer func() {
		if !grouped {
			close(groupDone)
		}
	}()
	go func() {
		err := a.Manager.Start(ctx)
		if ctx.Err() == nil {
			a.managerStopped <- cmp.Or(err, errors.New("stopped without an error"))
		}
		<-groupDone
		a.Engine.Wait()
		a.stopLog()
		a.Store.Close()
		ch <- err
	}()
	if !a.Manager.GetCache().WaitForCacheSync(ctx) {
		return ch, errors.New("informer cache did not sync")
	}
	if err := a.Syncer.Sweep(ctx); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Sweeping routes and queues of deleted webhooks")
	}
	// Sync every webhook once before accepting events, so that no event misses a webhook that
	// exists; the controller's own first pass repeats it harmlessly.
	if err := a.Syncer.SyncAll(ctx); err != nil {
		return ch, err
	}
	a.accounts.known.Store(true)
	if p := a.partitioned; p != nil {
		// Every webhook is known: the partitions taken from here on find their queues.
		grouped = true
		go func() {
			defer close(groupDone)
			p.run(ctx)
			p.close()
		}()
	}
	return ch, nil
}

// ManagerStopped receives the controller manager's error when it stops before Run's ctx ends:
// the dispatcher then no longer sees changes of Webhooks, namespaces or replays, nor writes
// status, and must stop.
func (a *App) ManagerStopped() <-chan error { return a.managerStopped }

// openLog opens the delivery log on the store's JetStream and starts its writer, which runs until
// stopLog: after the engine, whose last settlements it must still store.
func (a *App) openLog(ctx context.Context, cfg Config) error {
	log := logr.FromContextOrDiscard(ctx)
	lc := cfg.DeliveryLog.Config
	lc.Replicas = cmp.Or(lc.Replicas, a.Store.Replicas())
	if lc.AccountOf == nil {
		lc.AccountOf, lc.AccountsKnown, lc.Deleted, lc.Seen = a.accounts.Of, a.accounts.Known, a.accounts.Deleted, a.accounts.Seen
		a.accounts.keepDeleted = cmp.Or(lc.MaxAge, 7*24*time.Hour) + 24*time.Hour
	}
	if lc.Trimmer == nil {
		lc.Trimmer = func() uint64 {
			g := a.logTrimmer.Load()
			if g == nil {
				return 1
			}
			return g.Token(0)
		}
	}
	if lc.Patiently == nil {
		// As the store's own assets: a standby taking over right after a NATS node died must not
		// exit because the log's stream has no leader yet (seen in the fault suite).
		lc.Patiently = a.Store.Patiently
	}
	if len(lc.CursorKey) == 0 {
		// Never the attestation key itself: a key of its own, derived from it, so that every
		// replica hands out and accepts the same cursors without another Secret.
		lc.CursorKey = cfg.Attestation.Derive(deliveryLogCursorPurpose)
	}
	// A connection of its own: the log's messages (each webhook's records, every 200 ms) on the
	// store's connection delayed the queue's acknowledgements behind the log's (and shared its
	// limit of unacknowledged publishes).
	nc, err := a.Store.Connect("hookline-dispatcher-log")
	if err != nil {
		return fmt.Errorf("opening the delivery log: %w", err)
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(deliverylog.MaxPending))
	if err != nil {
		nc.Close()
		return fmt.Errorf("opening the delivery log: %w", err)
	}
	l, err := deliverylog.New(logr.NewContext(ctx, log.WithName("delivery-log")), js, a.Store, lc, cfg.Registry)
	if err != nil {
		nc.Close()
		return fmt.Errorf("opening the delivery log: %w", err)
	}
	a.Log = l
	// Not ctx: the engine's acker still appends and waits for the log while it stops.
	logCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() { defer close(done); l.Start(logCtx) }()
	a.stopLog = func() {
		flush, cancelFlush := context.WithTimeout(context.Background(), 5*time.Second)
		if err := l.Barrier(flush); err != nil {
			log.Error(err, "Storing the last delivery log records")
		}
		cancelFlush()
		cancel()
		<-done
		nc.Close()
	}
	return nil
}

// engineStartPatience is how long a dispatcher that took the lease tries to start its engine while
// JetStream does not answer.
const engineStartPatience = 30 * time.Second

// startPatiently runs start (the engine's, whose reads of the queues' state and the delivery log
// change nothing until they all succeed) and, while it fails because JetStream does not answer,
// runs it again, for at most patience. The engine's reads are the first requests a dispatcher makes
// once it holds the lease, and a stream of a NATS cluster can be without a leader for a moment (a
// node lost): the fault suite's dispatcher, taking over after such a loss, exited there ("no
// responders available for request") and left the lease unused until it was restarted.
func startPatiently(ctx context.Context, start func(context.Context) error, patience time.Duration) error {
	log := logr.FromContextOrDiscard(ctx)
	deadline := time.Now().Add(patience)
	for wait := 50 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		err := start(ctx)
		if err == nil || !jetStreamUnanswered(err) || ctx.Err() != nil || time.Now().Add(wait).After(deadline) {
			return err
		}
		log.Info("JetStream did not answer while the delivery engine started; trying again", "error", err.Error(), "after", wait)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
}

// jetStreamUnanswered reports whether err says that JetStream did not answer a request (no stream
// leader, or none in time), as opposed to answering with an error.
func jetStreamUnanswered(err error) bool {
	return errors.Is(err, nats.ErrNoResponders) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, context.DeadlineExceeded)
}
