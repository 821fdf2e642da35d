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

// Command dispatcher runs hookline's dispatcher: the ingest API, the durable queues on (embedded)
// NATS JetStream, routing, delivery with Acrobat Sign's rules, and status reporting.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	corev1 "k8s.io/api/core/v1"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/dispatcher"
	"github.com/hookline/hookline/dispatcher/deliver"
	"github.com/hookline/hookline/dispatcher/ingest"
	"github.com/hookline/hookline/dispatcher/route"
	"github.com/hookline/hookline/dispatcher/store"
	"github.com/hookline/hookline/internal/verify"
)

type options struct {
	listen, metrics, probes string
	tokensFile              string
	maxBody                 int64
	store                   store.Config
	policy                  deliver.Policy
	timeout                 time.Duration
	accountConcurrency      int
	memQueue                int
	eventCacheBytes         int
	maxPayloadBytes         int
	statusInterval          time.Duration
	allowHTTP               bool
	extraCA                 string
	defaultClientID         string
	workers                 int
}

func main() {
	var o options
	def := deliver.DefaultPolicy()
	flag.StringVar(&o.listen, "listen-address", ":8090", "Address of the ingest API (POST /v1/events).")
	flag.StringVar(&o.metrics, "metrics-bind-address", ":8091", "Address of the metrics endpoint; 0 disables it.")
	flag.StringVar(&o.probes, "health-probe-bind-address", ":8092", "Address of /healthz and /readyz.")
	flag.StringVar(&o.tokensFile, "tokens-file", "", "YAML file of ingest tokens and the accounts each may post for (mount it from a Secret).")
	flag.Int64Var(&o.maxBody, "max-event-bytes", ingest.DefaultMaxBody, "Largest accepted event body.")
	flag.StringVar(&o.store.URL, "nats-url", "", "URL of an external NATS cluster with JetStream; empty embeds JetStream.")
	flag.StringVar(&o.store.DataDir, "data-dir", "data", "Storage directory of the embedded JetStream.")
	flag.StringVar(&o.store.ListenAddress, "nats-listen-address", "", "Let other processes reach the embedded NATS server here (e.g. 127.0.0.1:4222).")
	flag.BoolVar(&o.store.SyncAlways, "sync-always", false, "fsync every write of the embedded JetStream before acknowledging it.")
	flag.IntVar(&o.store.Replicas, "nats-replicas", 1, "Stream replicas on an external cluster.")
	flag.DurationVar(&o.store.DedupeWindow, "dedupe-window", 10*time.Minute, "How long an event id is remembered for idempotency.")
	flag.DurationVar(&o.store.Retention, "retention", 73*time.Hour, "How long events and queued notifications are kept at most (above --drop-after).")
	flag.IntVar(&o.store.InlineMax, "inline-event-bytes", 512<<10, "Events larger than this are stored in the JetStream object store.")
	flag.DurationVar(&o.timeout, "delivery-timeout", 5*time.Second, "Timeout of one delivery attempt.")
	flag.DurationVar(&o.policy.RetryBase, "retry-base", def.RetryBase, "First retry delay; doubles per retry.")
	flag.DurationVar(&o.policy.RetryCap, "retry-cap", def.RetryCap, "Cap of the retry delay.")
	flag.IntVar(&o.policy.MaxRetries, "max-retries", def.MaxRetries, "Retries after the first attempt.")
	flag.DurationVar(&o.policy.DropAfter, "drop-after", def.DropAfter, "Age at which a notification is dropped.")
	flag.DurationVar(&o.policy.DisableAfter, "disable-after", def.DisableAfter, "A drop disables a webhook without a success for this long.")
	flag.IntVar(&o.accountConcurrency, "account-concurrency", 30, "Most notifications in flight per account.")
	flag.IntVar(&o.memQueue, "memory-queue-length", 64, "Queued notifications per webhook held in memory; the rest stay in the store.")
	flag.IntVar(&o.eventCacheBytes, "event-cache-bytes", 64<<20, "Memory for parsed events awaiting delivery.")
	flag.IntVar(&o.maxPayloadBytes, "max-payload-bytes", 10<<20, "Notification size cap; optional sections are trimmed above it.")
	flag.DurationVar(&o.statusInterval, "status-interval", 10*time.Second, "Interval of routine status writes (state changes are written at once).")
	flag.BoolVar(&o.allowHTTP, "allow-http", false, "Deliver to http:// URLs (in-cluster receivers, local testing).")
	flag.StringVar(&o.extraCA, "extra-ca-bundle", "", "PEM file of CA certificates trusted for receivers in addition to the system pool.")
	flag.StringVar(&o.defaultClientID, "default-client-id", "", "Client id for Webhooks without spec.clientId (the manager's --default-client-id).")
	flag.IntVar(&o.workers, "sync-workers", 8, "Workers syncing Webhook changes into the routing table.")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "dispatcher:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	log := ctrl.Log.WithName("dispatcher")
	ctx := ctrl.SetupSignalHandler()
	if o.tokensFile == "" {
		return errors.New("--tokens-file is required: producers authenticate with account-scoped tokens")
	}
	tokens, err := ingest.LoadTokens(o.tokensFile)
	if err != nil {
		return err
	}
	roots, err := verify.LoadRootCAs(o.extraCA)
	if err != nil {
		return err
	}

	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(hooklinev1.AddToScheme(scheme))
	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: o.metrics},
		HealthProbeBindAddress: o.probes,
		Client:                 client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}},
	})
	if err != nil {
		return fmt.Errorf("creating manager: %w", err)
	}

	st, err := store.Open(ctx, o.store)
	if err != nil {
		return err
	}
	defer st.Close()

	clk := clock.RealClock{}
	reporter := &dispatcher.Reporter{
		Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("hookline-dispatcher"),
		Clock: clk, Interval: o.statusInterval, Log: log.WithName("status"),
	}
	metrics := deliver.NewMetrics(ctrlmetrics.Registry)
	engine := deliver.New(deliver.Config{
		Policy: o.policy, AccountConcurrency: o.accountConcurrency, MemQueue: o.memQueue,
		EventCacheBytes: o.eventCacheBytes, MaxPayloadBytes: o.maxPayloadBytes,
	}, st, deliver.NewSender(o.timeout, o.allowHTTP, roots), clk, log.WithName("deliver"), metrics, reporter.Mark)
	reporter.Engine = engine
	ctrlmetrics.Registry.MustRegister(engine.Collector())
	if err := engine.Start(ctx); err != nil {
		return fmt.Errorf("starting delivery engine: %w", err)
	}
	table := route.NewTable()
	syncer := &dispatcher.Syncer{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Table: table, Engine: engine,
		Reporter: reporter, DefaultClientID: o.defaultClientID,
	}
	if err := syncer.SetupWithManager(mgr, o.workers); err != nil {
		return err
	}
	if err := mgr.Add(reporter); err != nil {
		return err
	}
	_ = mgr.AddHealthzCheck("healthz", healthz.Ping)
	_ = mgr.AddReadyzCheck("readyz", healthz.Ping)

	d := &dispatcher.Dispatcher{Store: st, Engine: engine, Table: table, Clock: clk, Log: log}
	handler := &ingest.Handler{Tokens: tokens, Acceptor: d, MaxBody: o.maxBody, Metrics: ingest.NewMetrics(ctrlmetrics.Registry)}
	go tokens.Watch(ctx.Done(), 10*time.Second, func(err error) { log.Error(err, "Reloading tokens") })

	mgrErr := make(chan error, 1)
	go func() { mgrErr <- mgr.Start(ctx) }()
	// Accept events only once the routing table reflects the cluster, or early events would miss
	// webhooks that exist.
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		return errors.New("informer cache did not sync")
	}
	if err := syncer.CollectGarbage(ctx); err != nil {
		log.Error(err, "Collecting queues of deleted webhooks")
	}
	srv := dispatcher.NewIngestServer(o.listen, handler)
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	log.Info("Serving ingest API", "address", o.listen, "embedded", o.store.URL == "")
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	err = <-mgrErr
	engine.Wait()
	return err
}
