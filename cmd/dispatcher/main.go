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
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/hookline/hookline/dispatcher"
	"github.com/hookline/hookline/dispatcher/deliver"
	"github.com/hookline/hookline/dispatcher/ingest"
	"github.com/hookline/hookline/dispatcher/logapi"
	"github.com/hookline/hookline/dispatcher/store"
	"github.com/hookline/hookline/internal/attest"
	"github.com/hookline/hookline/internal/boundedhttp"
	"github.com/hookline/hookline/internal/clusterranges"
	"github.com/hookline/hookline/internal/gcheadroom"
	"github.com/hookline/hookline/internal/memlimit"
	"github.com/hookline/hookline/internal/netguard"
	"github.com/hookline/hookline/internal/notify"
	"github.com/hookline/hookline/internal/verify"
)

type options struct {
	listen, metrics, probes string
	tokensFile              string
	attestationKeyFile      string
	tokensReload            time.Duration
	maxBody                 int64
	maxInFlight             int64
	accountQuota            int64
	eventsPerSecond         float64
	store                   store.Config
	policy                  deliver.Policy
	timeout                 time.Duration
	accountConcurrency      int
	maxReceiverConnections  int
	memQueue                int
	eventCacheBytes         int
	memoryLimit             string
	gcHeadroom              string
	memoryTarget            string
	deliveryLogGather       time.Duration
	maxPayloadBytes         int
	statusInterval          time.Duration
	statusWrites            float64
	replayPoll              time.Duration
	replayMaxPerNamespace   int
	replayMaxSelection      int
	replayLogReads          float64
	replayNotes             float64
	allowHTTP               bool
	extraCA                 string
	allowedCIDRs            netguard.CIDRList
	blockedCIDRs            netguard.CIDRList
	egressMode              string
	clusterRanges           time.Duration
	defaultClientID         string
	secretResync            time.Duration
	sweepInterval           time.Duration
	workers                 int
	pprof                   string
	leaseTTL                time.Duration
	tlsCert, tlsKey         string
	metricsSecure           bool
	metricsCertDir          string
	problems                notify.Config
	problemAfter            time.Duration
	leaseIdentity           string
	partitions              int
	apiAddr                 string
	apiAllowPlain           bool
	deliveryLog             dispatcher.DeliveryLog
}

func main() {
	var o options
	def := deliver.DefaultPolicy()
	flag.StringVar(&o.listen, "listen-address", ":8090", "Address of the ingest API (POST /v1/events).")
	flag.StringVar(&o.metrics, "metrics-bind-address", ":8091", "Address of the metrics endpoint; 0 disables it.")
	flag.BoolVar(&o.metricsSecure, "metrics-secure", false, "Serve metrics over HTTPS with Kubernetes authentication and authorization.")
	flag.StringVar(&o.metricsCertDir, "metrics-cert-dir", "", "With --metrics-secure: serve the certificate in this directory (tls.crt, tls.key, reloaded when they change) instead of a self-signed one, so that scrapers can verify it.")
	flag.StringVar(&o.probes, "health-probe-bind-address", ":8092", "Address of /healthz and /readyz.")
	flag.StringVar(&o.tlsCert, "tls-cert-file", "", "Serve the ingest API over TLS with this certificate (reloaded when it changes); plain HTTP without it.")
	flag.StringVar(&o.tlsKey, "tls-key-file", "", "Key of --tls-cert-file.")
	flag.StringVar(&o.apiAddr, "api-bind-address", ":8444", "Address of the delivery log's read API (GET /v1/namespaces/{ns}/webhooks/{name}/notifications...), served over HTTPS with --tls-cert-file; 0 disables it. Without a certificate it is off unless --api-allow-plain-http.")
	flag.BoolVar(&o.apiAllowPlain, "api-allow-plain-http", false, "Serve the read API in plain HTTP when no --tls-cert-file is given (local development only: callers send Kubernetes bearer tokens).")
	flag.StringVar(&o.tokensFile, "tokens-file", "", "YAML file of ingest tokens and the accounts each may post for (mount it from a Secret).")
	flag.StringVar(&o.attestationKeyFile, "attestation-key-file", "", "File holding the attestation key (at least 32 random bytes, the manager's --attestation-key-file; mount it from a Secret). Required: webhooks are delivered to only when the manager attested their verification with it.")
	flag.DurationVar(&o.tokensReload, "tokens-reload-interval", 10*time.Second, "How often the tokens file is checked for changes; while it is invalid every token is refused and /readyz fails.")
	flag.Int64Var(&o.maxBody, "max-event-bytes", ingest.DefaultMaxBody, "Largest accepted event body.")
	flag.Int64Var(&o.maxInFlight, "max-ingest-bytes-in-flight", ingest.DefaultMaxInFlight, "Most event bytes received and stored at once, and one token's requests at most half of it; a post beyond either is answered 503 with Retry-After. At least twice --max-event-bytes plus 2, so that another token's largest event fits beside one token's share.")
	flag.Float64Var(&o.eventsPerSecond, "max-events-per-second-per-account", dispatcher.DefaultEventsPerSecond, "Most events one account may post per second to each replica (ten seconds' worth at once); beyond it a post is answered 429 ACCOUNT_RATE_EXCEEDED with Retry-After. Every event id costs about 190 bytes of memory in the process holding the events stream for the dedupe window (10 minutes), whatever the event's size: 1,000 a second for ten minutes is about 110 MB. 0 removes the bound.")
	flag.Int64Var(&o.accountQuota, "max-stored-bytes-per-account", dispatcher.DefaultAccountQuota, "Most event bytes one account may keep stored within the event retention, counted across every dispatcher; a post beyond it is answered 429 ACCOUNT_QUOTA_EXCEEDED with Retry-After, so that a producer of one account cannot fill the store every account shares. 0 removes the bound.")
	flag.StringVar(&o.store.URL, "nats-url", "", "URL of an external NATS cluster with JetStream; empty embeds JetStream.")
	flag.StringVar(&o.store.DataDir, "data-dir", "data", "Storage directory of the embedded JetStream.")
	flag.StringVar(&o.store.ListenAddress, "nats-listen-address", "", "Let other processes reach the embedded NATS server here (e.g. 127.0.0.1:4222); needs --nats-listen-token-file.")
	flag.StringVar(&o.store.ListenTokenFile, "nats-listen-token-file", "", "File holding the token (at least 32 characters) clients of --nats-listen-address must present.")
	flag.BoolVar(&o.store.SyncAlways, "sync-always", false, "fsync every write of the embedded JetStream before acknowledging it.")
	flag.StringVar(&o.store.Auth.CredsFile, "nats-creds-file", "", "NATS user credentials file (JWT and seed) for an external cluster in operator mode.")
	flag.StringVar(&o.store.Auth.NKeySeedFile, "nats-nkey-seed-file", "", "File holding an NKey user seed for an external cluster.")
	flag.StringVar(&o.store.Auth.TokenFile, "nats-token-file", "", "File holding a token for an external cluster (or another dispatcher's --nats-listen-address).")
	flag.StringVar(&o.store.Auth.CAFile, "nats-ca-file", "", "CA certificates of the external cluster's servers (requires TLS).")
	flag.StringVar(&o.store.Auth.CertFile, "nats-cert-file", "", "Client certificate for an external cluster that verifies clients.")
	flag.StringVar(&o.store.Auth.KeyFile, "nats-key-file", "", "Key of --nats-cert-file.")
	flag.IntVar(&o.store.Replicas, "nats-replicas", 1, "Stream replicas on an external cluster.")
	flag.DurationVar(&o.store.DedupeWindow, "dedupe-window", 10*time.Minute, "How long an event id is remembered for idempotency.")
	flag.DurationVar(&o.store.Retention, "retention", 73*time.Hour, "How long events and queued notifications are kept at most: at least --drop-after plus an hour (what outlives it is deleted with no record).")
	flag.IntVar(&o.store.InlineMax, "inline-event-bytes", 512<<10, "Events larger than this are stored in the JetStream object store.")
	flag.DurationVar(&o.timeout, "delivery-timeout", 5*time.Second, "Timeout of one delivery attempt.")
	flag.DurationVar(&o.policy.RetryBase, "retry-base", def.RetryBase, "First retry delay; doubles per retry.")
	flag.DurationVar(&o.policy.RetryCap, "retry-cap", def.RetryCap, "Cap of the retry delay.")
	flag.IntVar(&o.policy.MaxRetries, "max-retries", def.MaxRetries, "Retries after the first attempt.")
	flag.DurationVar(&o.policy.DropAfter, "drop-after", def.DropAfter, "Age at which a notification is dropped.")
	flag.DurationVar(&o.policy.DisableAfter, "disable-after", def.DisableAfter, "A drop disables a webhook without a success for this long.")
	flag.IntVar(&o.accountConcurrency, "account-concurrency", 30, "Most notifications in flight per account.")
	flag.IntVar(&o.maxReceiverConnections, "max-receiver-connections", deliver.DefaultConnsInAll, "Most connections to receivers held for all accounts together (about 40 KB each). At the bound, a connection without a request for a second is closed for a new one; if none is, an account holding less than its share has the oldest connection of the account holding the most closed for it (or, if none can be given, its attempt is tried again a second later, not counted as failed), and the attempt of one holding its share or more fails, to be retried. Raise it with the memory for installations whose accounts together keep more requests in flight.")
	flag.IntVar(&o.memQueue, "memory-queue-length", deliver.DefaultMemQueue, "Queued notifications per webhook held in memory; the rest stay in the store.")
	flag.StringVar(&o.gcHeadroom, "gc-headroom", "80Mi", "Most garbage the heap may grow by between collections: GOGC is lowered as the live heap grows past this, down to 25, so that a large live heap (a drain of a big backlog) is not doubled; the Go memory limit follows what that lets the process hold (never above --memory-limit), so that free heap pages go back to the system at once. 0: GOGC alone decides, as does setting the GOGC environment variable; GOMEMLIMIT leaves the memory limit alone.")
	flag.StringVar(&o.memoryTarget, "memory-target", "0", "Soft bound on the Go runtime's memory, under --memory-limit, e.g. 240Mi: as the process nears it the collector works harder, until the garbage it lets grow is down to a quarter of the live heap (GOGC 25); a larger live heap then raises the memory with it rather than keep the collector running. Costs CPU whenever the process runs near it (docs/operations.md). 0: none, the --gc-headroom alone bounds the garbage. Needs --gc-headroom; GOMEMLIMIT turns it off.")
	flag.StringVar(&o.memoryLimit, "memory-limit", "", "Soft memory limit of the Go runtime, e.g. 270Mi: the collector works harder as the heap nears it instead of letting garbage grow to twice the live heap. Empty: 90% of the container's memory limit; the lower of the two applies; GOMEMLIMIT overrides both.")
	flag.IntVar(&o.eventCacheBytes, "event-cache-bytes", 16<<20, "Memory for parsed events awaiting delivery (a fan-out parses an event once; a backlog reads events back from the store).")
	flag.IntVar(&o.maxPayloadBytes, "max-payload-bytes", 10<<20, "Notification size cap; optional sections are trimmed above it.")
	flag.DurationVar(&o.statusInterval, "status-interval", 10*time.Second, "Interval of routine status writes (state changes are written at once; those a tenant makes, up to 10 at once and 1 a second per namespace).")
	flag.Float64Var(&o.statusWrites, "status-writes-per-second", dispatcher.DefaultStatusWritesPerSecond, "Average routine status writes per second (counters; state changes are written at once, beyond it, those a tenant makes within 10 at once and 1 a second per namespace): with more delivering webhooks than this × --status-interval, each one's counters are written less often, the longest-waiting first, so that the API server's load does not grow with the number of webhooks.")
	flag.DurationVar(&o.replayPoll, "replay-poll-interval", 2*time.Second, "How often a running WebhookReplay's progress (or the Webhook it waits for) is read again.")
	flag.IntVar(&o.replayMaxPerNamespace, "replay-max-per-namespace", dispatcher.DefaultReplaysPerNamespace, "Most WebhookReplays running at once in one namespace; the others wait their turn (reason Queued) and start in creation order.")
	flag.Float64Var(&o.replayLogReads, "replay-log-reads-per-minute", dispatcher.DefaultReplayLogReadsPerMinute, "Each namespace's budget of delivery log reads for its WebhookReplays, after a burst of 5: a read walks the log from the earliest start asked (every tenant's records), and the replays created together share one; a namespace over its budget has its replays wait while other namespaces' go ahead.")
	flag.Float64Var(&o.replayNotes, "replay-notes-per-minute", dispatcher.DefaultReplayNotesPerMinute, "Each namespace's budget of notifications its WebhookReplays queue again, after a burst of --replay-max-selection: a replay starts selecting only while its namespace has some left (it then queues its whole selection), and otherwise waits, saying until when.")
	flag.IntVar(&o.replayMaxSelection, "replay-max-selection", dispatcher.DefaultReplayMaxSelection, "Most notifications one WebhookReplay's selection holds while the delivery log is read, and all replays' selections together (about 250 bytes each, 340 at the peak, when they are sorted for queueing); a replay that needs more stops before it queues anything (Stalled, reason SelectionTooLarge) and is to be split by time.")
	flag.BoolVar(&o.allowHTTP, "allow-http", false, "Deliver to http:// URLs (in-cluster receivers, local testing).")
	flag.StringVar(&o.extraCA, "extra-ca-bundle", "", "PEM file of CA certificates trusted for receivers in addition to the system pool.")
	flag.Var(&o.allowedCIDRs, "allowed-cidrs", "Comma-separated CIDRs receivers may be in although the SSRF guard blocks them (loopback, private, link-local, ...), e.g. in-cluster receivers.")
	flag.Var(&o.blockedCIDRs, "blocked-cidrs", "Comma-separated CIDRs receivers may not be in, besides the SSRF guard's defaults and the cluster's discovered ranges, e.g. a CNI's own Pod IP pools.")
	flag.StringVar(&o.egressMode, "egress-mode", string(netguard.ModePublic), "public: receivers may be at any address the SSRF guard does not block; allowlist: only in --allowed-cidrs.")
	flag.DurationVar(&o.clusterRanges, "cluster-ranges-interval", clusterranges.DefaultInterval, "How often the cluster's Service ranges (ServiceCIDRs) and Pod ranges (Nodes' podCIDRs) are read into the SSRF guard; 0 disables it.")
	flag.StringVar(&o.defaultClientID, "default-client-id", "", "Client id for Webhooks without spec.clientId (the manager's --default-client-id).")
	flag.DurationVar(&o.secretResync, "secret-resync", 5*time.Minute, "How often Webhooks' Secrets (client certificates, signing keys) are read again (one GET per such Webhook, jittered), so that rotations take effect.")
	flag.DurationVar(&o.sweepInterval, "sweep-interval", time.Minute, "How often routes, queues and saved state of Webhooks that no longer exist are swept away (also done at start); a backstop for removals that the Webhook watch missed.")
	flag.IntVar(&o.workers, "sync-workers", 8, "Workers syncing Webhook changes into the routing table.")
	flag.StringVar(&o.problems.Address, "smtp-address", "", "SMTP server (host:port) for problem e-mails to problemNotificationEmails; empty sends none.")
	flag.StringVar(&o.problems.From, "smtp-from", "", "Sender address of problem e-mails.")
	flag.StringVar(&o.problems.Username, "smtp-username", "", "SMTP user name (PLAIN auth, only over TLS or to localhost).")
	flag.StringVar(&o.problems.PasswordFile, "smtp-password-file", "", "File holding the SMTP password (mount it from a Secret); read at each send.")
	flag.StringVar(&o.problems.StartTLS, "smtp-starttls", "auto", "STARTTLS: auto (when offered), always, or never.")
	flag.DurationVar(&o.problems.MinInterval, "problem-email-interval", time.Hour, "Least time between two problem e-mails of one kind about one webhook (by namespace and name: recreating it does not reset this).")
	flag.Var(&o.problems.AllowedDomains, "problem-email-allowed-domains", "Recipient domains problem e-mails may go to: \"example.com,example.org\" for every account, \"acc-1=example.com\" for one account; repeatable. Addresses elsewhere are skipped; without any, no problem e-mail is sent.")
	flag.IntVar(&o.problems.NamespaceLimit, "problem-email-namespace-limit", notify.DefaultNamespaceLimit, "Most problem e-mails per hour about the webhooks of one namespace; negative for no limit.")
	flag.IntVar(&o.problems.TotalLimit, "problem-email-total-limit", notify.DefaultTotalLimit, "Most problem e-mails per hour overall; negative for no limit.")
	flag.DurationVar(&o.problemAfter, "problem-email-after", time.Hour, "A webhook failing for this long gets a problem e-mail (once per failing streak).")
	flag.DurationVar(&o.leaseTTL, "lease-ttl", 15*time.Second, "With --nats-url: dispatchers sharing the cluster elect one deliverer through a lease in JetStream; the others stand by and take over within this time of its death. 0 turns the lease off (one replica only).")
	flag.StringVar(&o.leaseIdentity, "lease-identity", "", "This dispatcher's name in the delivery lease, or among active-active dispatchers; defaults to the host name (the pod name).")
	flag.IntVar(&o.partitions, "partitions", 0, "Active-active: above 0, every dispatcher sharing the NATS cluster ingests and delivers its share of this many partitions of the accounts (rebalanced as dispatchers come and go; a dead one's share moves within --lease-ttl) instead of one delivering while the others stand by. An existing group keeps the number it was created with.")
	flag.BoolVar(&o.deliveryLog.Enabled, "delivery-log", true, "Record every delivery attempt and every change of a notification's state in the delivery log (JetStream stream HOOKLINE_LOG), which the read API and WebhookReplays use.")
	flag.DurationVar(&o.deliveryLog.MaxAge, "delivery-log-max-age", 7*24*time.Hour, "How long delivery log records are kept.")
	flag.Int64Var(&o.deliveryLog.MaxBytes, "delivery-log-max-bytes", 1<<30, "Most bytes the delivery log keeps: from 90 % of it, the oldest records of the account holding the most of the log are removed, down to 80 %. Keep it above about 100 MiB (what a dispatcher writes between its checks must fit above the mark).")
	flag.DurationVar(&o.deliveryLogGather, "delivery-log-gather", 200*time.Millisecond, "How long a Webhook's delivery records are gathered into one JetStream message (JetStream's cost is mostly per message). A SIGKILL re-sends, with the same id, notifications settled within about this long before it. 0: each record in a message of its own, at once.")
	flag.StringVar(&o.pprof, "pprof-address", "", "Serve Go's pprof profiles and the queues' state, without authentication, on this loopback address (e.g. 127.0.0.1:6060; kubectl port-forward reaches it); empty disables. Any other address is refused: every pod could profile the dispatcher and list the tenants' queues.")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	// Before anything allocates much: the collector must know the container's limit.
	var ceiling int64
	if o.memoryLimit != "" {
		q, err := resource.ParseQuantity(o.memoryLimit)
		if err != nil {
			fmt.Fprintln(os.Stderr, "dispatcher: --memory-limit:", err)
			os.Exit(2)
		}
		ceiling = q.Value()
	}
	if n, err := memlimit.SetAtMost(memlimit.DefaultRatio, ceiling); err != nil {
		ctrl.Log.Error(err, "Reading the container's memory limit; GOMEMLIMIT not set")
	} else if n > 0 {
		ctrl.Log.Info("Set the Go memory limit", "bytes", n)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "dispatcher:", err)
		os.Exit(1)
	}
}

// retentionMargin is how much longer than --drop-after events and notes are kept: the time a
// dispatcher may be away around a notification's drop-after mark (so that it drops it, on record)
// before JetStream's retention deletes it unrecorded.
const retentionMargin = time.Hour

// validate checks the flags that do not depend on each other's files.
func (o options) validate() error {
	if o.tokensFile == "" {
		return errors.New("--tokens-file is required: producers authenticate with account-scoped tokens")
	}
	if err := checkPprofAddress(o.pprof); err != nil {
		return err
	}
	if o.store.Retention > 0 && o.store.Retention < o.policy.DropAfter+retentionMargin {
		// JetStream deletes what outlives the retention itself, with no record: a notification still
		// queued then (its webhook failing, or no dispatcher delivering around the drop-after mark)
		// would vanish after its 202, uncounted and out of reach of a replay.
		return fmt.Errorf("--retention (%s) must be at least --drop-after (%s) plus %s: notifications still queued when their events' retention ends are deleted with no record",
			o.store.Retention, o.policy.DropAfter, retentionMargin)
	}
	if o.maxReceiverConnections <= 0 {
		return fmt.Errorf("--max-receiver-connections %d: at least 1", o.maxReceiverConnections)
	}
	if o.eventsPerSecond < 0 {
		return fmt.Errorf("--max-events-per-second-per-account %g: 0 (no bound) or more", o.eventsPerSecond)
	}
	if least := ingest.MinMaxInFlight(o.maxBody); o.maxInFlight < least {
		// One token may hold half the bound: below this, a producer stalling its largest upload
		// leaves too little for any other account's largest event.
		return fmt.Errorf("--max-ingest-bytes-in-flight (%d) must be at least twice --max-event-bytes (%d) plus 2, i.e. %d: one token's requests may hold half of it, and another token's largest event must still fit beside them", o.maxInFlight, o.maxBody, least)
	}
	if o.accountQuota != 0 && o.accountQuota < o.maxBody {
		return fmt.Errorf("--max-stored-bytes-per-account (%d) must be 0 or at least --max-event-bytes (%d), or an account's largest events never fit", o.accountQuota, o.maxBody)
	}
	if o.replayMaxPerNamespace < 1 {
		return fmt.Errorf("--replay-max-per-namespace (%d) must be at least 1, or no replay ever runs", o.replayMaxPerNamespace)
	}
	if o.replayLogReads <= 0 {
		return fmt.Errorf("--replay-log-reads-per-minute (%g) must be above 0, or a namespace's replays wait for ever once its burst is spent", o.replayLogReads)
	}
	if o.replayNotes <= 0 {
		return fmt.Errorf("--replay-notes-per-minute (%g) must be above 0, or a namespace's replays wait for ever once its burst is spent", o.replayNotes)
	}
	if o.replayMaxSelection < 1 {
		return fmt.Errorf("--replay-max-selection (%d) must be at least 1, or no replay by time ever runs", o.replayMaxSelection)
	}
	if o.partitions < 0 || o.partitions > 1024 {
		return fmt.Errorf("--partitions (%d) must be between 0 (one dispatcher delivers) and 1024", o.partitions)
	}
	if o.partitions > 0 && o.leaseTTL <= 0 {
		return errors.New("--partitions needs a --lease-ttl above 0: it bounds how long a dead dispatcher's partitions go undelivered")
	}
	return nil
}

// tuneGC lowers GOGC as the live heap grows past headroom, and keeps the memory limit just above
// what that lets the process hold, or at target while that leaves GOGC 25 (gcheadroom), until ctx
// ends. Four times a second: the limit must follow a live heap that grows quickly.
func tuneGC(ctx context.Context, headroom, target string) error {
	h, err := resource.ParseQuantity(headroom)
	if err != nil || h.Sign() < 0 {
		return fmt.Errorf("--gc-headroom %q: a non-negative quantity such as 128Mi", headroom)
	}
	t, err := resource.ParseQuantity(target)
	if err != nil || t.Sign() < 0 {
		return fmt.Errorf("--memory-target %q: a non-negative quantity such as 256Mi", target)
	}
	if tu := gcheadroom.New(uint64(h.Value())); tu != nil {
		tu.Target = t.Value()
		go tu.Run(ctx, 250*time.Millisecond)
	}
	return nil
}

func run(o options) error {
	log := ctrl.Log.WithName("dispatcher")
	// fail stops the dispatcher for a server that cannot go on; run then returns its cause.
	ctx, fail := context.WithCancelCause(ctrl.SetupSignalHandler())
	defer fail(nil)
	if err := o.validate(); err != nil {
		return err
	}
	// For the process's whole life, not until the signal: a stopping dispatcher still flushes
	// its log and writes status, and must not do so with the memory limit lifted.
	if err := tuneGC(context.Background(), o.gcHeadroom, o.memoryTarget); err != nil {
		return err
	}
	tokens, err := ingest.LoadTokens(o.tokensFile)
	if err != nil {
		return err
	}
	key, err := attest.Load(o.attestationKeyFile)
	if err != nil {
		return err
	}
	roots, err := verify.LoadRootCAs(o.extraCA)
	if err != nil {
		return err
	}
	mode, err := netguard.ParseMode(o.egressMode)
	if err != nil {
		return fmt.Errorf("--egress-mode: %w", err)
	}

	identity := o.leaseIdentity
	if identity == "" {
		if identity, err = os.Hostname(); err != nil {
			return fmt.Errorf("--lease-identity is empty and the host name is unknown: %w", err)
		}
	}
	var lease *store.Lease
	if o.store.URL != "" && o.leaseTTL > 0 && o.partitions == 0 {
		if lease, err = standBy(logr.NewContext(ctx, log), o, identity, fail); err != nil {
			if cause := context.Cause(ctx); cause != nil {
				if !errors.Is(cause, context.Canceled) {
					return cause
				}
				log.Info("Stopped while standing by")
				return nil // told to stop before it was needed: a clean exit
			}
			return err
		}
	}
	leaseCtx, stopLease := context.WithCancel(context.Background())
	defer stopLease()
	kept := make(chan struct{})
	if lease != nil {
		go func() { defer close(kept); lease.Keep(leaseCtx) }()
		go func() {
			<-lease.Lost()
			if leaseCtx.Err() == nil {
				// Another dispatcher may deliver from now on: stop at once rather than risk two
				// deliverers (the process restarts as a standby).
				log.Error(lease.Err(), "Exiting: this dispatcher no longer holds the delivery lease")
				os.Exit(1)
			}
		}()
	}

	o.problems.RootCAs = roots
	o.deliveryLog.Gather = o.deliveryLogGather
	if o.deliveryLogGather <= 0 {
		o.deliveryLog.Gather = -1 // no gathering: the Config's zero is its default
	}
	app, err := dispatcher.NewApp(logr.NewContext(ctx, log), ctrl.GetConfigOrDie(), dispatcher.Config{
		Problems: o.problems, ProblemAfter: o.problemAfter,
		Store: o.store, DeliveryLog: o.deliveryLog,
		Engine: deliver.Config{
			Policy: o.policy, AccountConcurrency: o.accountConcurrency, MemQueue: o.memQueue,
			EventCacheBytes: o.eventCacheBytes, MaxPayloadBytes: o.maxPayloadBytes,
		},
		DeliveryTimeout: o.timeout, AllowHTTP: o.allowHTTP, RootCAs: roots, MaxReceiverConnections: o.maxReceiverConnections,
		Guard: netguard.New(netguard.Policy{Allowed: o.allowedCIDRs, Blocked: o.blockedCIDRs, Mode: mode}), ClusterRangesInterval: o.clusterRanges,
		StatusInterval: o.statusInterval, StatusWritesPerSecond: o.statusWrites, ReplayPoll: o.replayPoll, ReplayMaxPerNamespace: o.replayMaxPerNamespace, ReplayMaxSelection: o.replayMaxSelection, ReplayLogReadsPerMinute: o.replayLogReads, ReplayNotesPerMinute: o.replayNotes, ReplayNotesBurst: max(o.replayMaxSelection, dispatcher.DefaultReplayNotesBurst), DefaultClientID: o.defaultClientID, Attestation: key, SecretResync: o.secretResync, SyncWorkers: o.workers,
		SweepInterval: o.sweepInterval,
		MaxEventBytes: o.maxBody, AccountQuota: o.accountQuota, EventsPerSecond: o.eventsPerSecond, MetricsAddress: o.metrics, MetricsSecure: o.metricsSecure, MetricsCertDir: o.metricsCertDir, ProbeAddress: o.probes,
		Registry:     ctrlmetrics.Registry,
		Partitioning: dispatcher.Partitioning{Partitions: o.partitions, Identity: identity, TTL: o.leaseTTL},
	}, clock.RealClock{})
	if err != nil {
		return err
	}
	app.Ingest.Tokens = tokens
	if lease != nil {
		// No attempt starts past the lease's deadline, even in a process paused past it that
		// resumes before Keep notices and exits.
		lease.Covers(func(until time.Time) { app.Engine.Extend(0, until) })
	}
	app.Ingest.MaxInFlight = o.maxInFlight
	if err := tokens.Register(ctrlmetrics.Registry); err != nil {
		return err
	}
	// Not ready while the tokens file is invalid: every token is refused then (fail closed).
	if err := app.AddReadyCheck("tokens", tokens.Check); err != nil {
		return err
	}
	if o.pprof != "" {
		mux := pprofMux()
		mux.HandleFunc("/debug/hookline/queues", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(app.Engine.Debug())
		})
		srv := boundedhttp.NewServer(mux)
		srv.Addr, srv.WriteTimeout = o.pprof, 10*time.Minute // a CPU profile or trace takes its seconds to write
		go func() { log.Error(boundedhttp.ListenAndServe("pprof", srv), "pprof server stopped") }()
	}
	go tokens.Watch(ctx.Done(), o.tokensReload, func(err error) { log.Error(err, "Reloading tokens") })
	// Before Run: a manager that fails while Run waits for its caches would leave Run waiting.
	go stopWithManager(ctx, app, fail)
	done, err := app.Run(ctx)
	if err != nil {
		return err
	}
	srv := dispatcher.NewIngestServer(o.listen, app.Ingest, app.Ready)
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	stopAPI, err := serveAPI(logr.NewContext(ctx, log), o, app.API, fail)
	if err != nil {
		return err
	}
	defer stopAPI()
	log.Info("Serving ingest API", "address", o.listen, "tls", o.tlsCert != "", "embedded", o.store.URL == "",
		"egressMode", mode, "allowedCIDRs", o.allowedCIDRs.String(), "blockedCIDRs", o.blockedCIDRs.String(), "clusterRangesInterval", o.clusterRanges)
	if err := dispatcher.ServeIngest(ctx, srv, o.tlsCert, o.tlsKey); err != nil {
		return err
	}
	err = <-done
	if cause := context.Cause(ctx); err == nil && cause != nil && !errors.Is(cause, context.Canceled) {
		err = cause
	}
	// Delivery has stopped: hand the lease over so a standby takes over without waiting for it to
	// expire.
	stopLease()
	if lease != nil {
		<-kept // Keep renews the revision Release deletes: let it return first
		lease.Release()
	}
	return err
}

// stopWithManager stops the dispatcher (fail) when app's controller manager stops before ctx ends:
// without it the dispatcher would go on delivering and accepting events blind to every change of a
// Webhook (one set INACTIVE would still receive).
func stopWithManager(ctx context.Context, app *dispatcher.App, fail context.CancelCauseFunc) {
	select {
	case err := <-app.ManagerStopped():
		fail(fmt.Errorf("controller manager stopped: %w", err))
	case <-ctx.Done():
	}
}

// serveAPI serves h (the read API, or its standby answer) on the read API's address unless it is
// disabled, and returns what stops it; stop returns once the listener is closed, so that the
// address can be served again at once. Without a certificate it stays off (and says so) unless
// plain HTTP is allowed: tokens never cross the network in clear text by default, and existing
// deployments without TLS keep starting. The address is bound
// before it returns: one that cannot be (in use, not permitted) is an error, and a server that
// stops on its own later calls fail, so that the dispatcher exits rather than run without the API
// its Service and users expect.
func serveAPI(ctx context.Context, o options, h http.Handler, fail context.CancelCauseFunc) (stop func(), err error) {
	log := logr.FromContextOrDiscard(ctx)
	if o.apiAddr == "" || o.apiAddr == "0" {
		return func() {}, nil
	}
	if o.tlsCert == "" && o.tlsKey == "" && !o.apiAllowPlain {
		log.Info("Read API off: it needs --tls-cert-file and --tls-key-file, or --api-allow-plain-http for local development")
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", o.apiAddr)
	if err != nil {
		return nil, fmt.Errorf("read API (--api-bind-address %s): %w", o.apiAddr, err)
	}
	srv := dispatcher.NewAPIServer(o.apiAddr, h)
	done := make(chan struct{})
	go func() {
		defer close(done)
		log.Info("Serving read API", "address", ln.Addr().String(), "tls", o.tlsCert != "")
		if err := dispatcher.ServeAPI(ctx, srv, ln, o.tlsCert, o.tlsKey, o.apiAllowPlain); err != nil {
			log.Error(err, "Read API server stopped")
			fail(fmt.Errorf("read API: %w", err))
		}
	}()
	return func() {
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
		<-done
	}, nil
}

// standBy waits until this dispatcher holds the delivery lease. Meanwhile it answers the health
// probes (live, not ready), so that Kubernetes keeps the standby running and sends it no events.
func standBy(ctx context.Context, o options, identity string, fail context.CancelCauseFunc) (*store.Lease, error) {
	log := logr.FromContextOrDiscard(ctx)
	var probes *http.Server
	if o.probes != "" && o.probes != "0" {
		mux := http.NewServeMux()
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
		mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "standing by for the delivery lease", http.StatusServiceUnavailable)
		})
		probes = boundedhttp.NewServer(mux)
		probes.Addr = o.probes
		go func() {
			if err := boundedhttp.ListenAndServe("probes", probes); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error(err, "Standby probe server")
			}
		}()
	}
	// The read API answers 503 while standing by (the lease holder serves the log), so that a
	// caller reaching this replica directly learns why.
	stopStandbyAPI, err := serveAPI(logr.NewContext(ctx, log), o, logapi.Standby(), fail)
	if err != nil {
		return nil, err
	}
	lease, err := store.AcquireLease(logr.NewContext(ctx, log.WithName("lease")), store.LeaseConfig{
		URL: o.store.URL, Auth: o.store.Auth, Replicas: o.store.Replicas, Identity: identity, TTL: o.leaseTTL,
	})
	if probes != nil {
		// The manager serves the probes from here on, on the same address.
		_ = probes.Close()
	}
	stopStandbyAPI()
	return lease, err
}

// checkPprofAddress refuses a pprof address that is not a loopback one: the profiles and the
// queues' state are served without authentication.
func checkPprofAddress(addr string) error {
	if addr == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--pprof-address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("--pprof-address %q: only a loopback address (127.0.0.1:6060, [::1]:6060, localhost:6060) is allowed: what it serves has no authentication", addr)
	}
	return nil
}

// pprofMux serves net/http/pprof's handlers on their own mux, never on the ingest API.
func pprofMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	return mux
}
