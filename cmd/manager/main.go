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

// Command manager runs hookline's Webhook controller: it verifies each endpoint's intent and
// reports every Webhook's state.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	corev1 "k8s.io/api/core/v1"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/controllers"
	"github.com/hookline/hookline/internal/attest"
	"github.com/hookline/hookline/internal/boundedhttp"
	"github.com/hookline/hookline/internal/cachetrim"
	"github.com/hookline/hookline/internal/clusterranges"
	"github.com/hookline/hookline/internal/netguard"
	"github.com/hookline/hookline/internal/securemetrics"
	"github.com/hookline/hookline/internal/verify"
)

func main() {
	var (
		metricsAddr, probeAddr, extraCA string
		metricsCertDir                  string
		attestationKeyFile              string
		metricsSecure, leaderElect      bool
		leaderElectionNamespace         string
		verifyTimeout, clusterRanges    time.Duration
		allowHTTP                       bool
		allowedCIDRs, blockedCIDRs      netguard.CIDRList
		egressMode                      string
		opts                            controllers.Options
	)
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8080", "Address of the metrics endpoint; 0 disables it.")
	flag.BoolVar(&metricsSecure, "metrics-secure", false, "Serve metrics over HTTPS with Kubernetes authentication and authorization.")
	flag.StringVar(&metricsCertDir, "metrics-cert-dir", "", "With --metrics-secure: serve the certificate in this directory (tls.crt, tls.key, reloaded when they change) instead of a self-signed one, so that scrapers can verify it.")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "Address of the /healthz and /readyz endpoints.")
	flag.BoolVar(&leaderElect, "leader-elect", false, "Use leader election so that only one replica is active.")
	flag.StringVar(&leaderElectionNamespace, "leader-election-namespace", "", "Namespace of the leader-election Lease (default: the pod's namespace).")
	flag.StringVar(&opts.DefaultClientID, "default-client-id", "", "Client id (X-AdobeSign-ClientId) for Webhooks without spec.clientId.")
	flag.DurationVar(&verifyTimeout, "verification-timeout", 5*time.Second, "Timeout of one intent-verification request.")
	flag.IntVar(&opts.VerificationsPerAccount, "verifications-per-account", 10, "Maximum concurrent verifications per account.")
	flag.DurationVar(&opts.RetryBase, "verification-retry-base", 10*time.Second, "First delay after a failed verification; doubles per failure.")
	flag.DurationVar(&opts.RetryMax, "verification-retry-max", 10*time.Minute, "Cap of the delay between failed verifications.")
	flag.DurationVar(&opts.ThrottleRetry, "verification-throttle-retry", time.Second, "Delay before a throttled verification is tried again.")
	flag.IntVar(&opts.MaxConcurrentReconciles, "max-concurrent-reconciles", 32, "Webhook reconcile workers.")
	flag.BoolVar(&allowHTTP, "allow-http", false, "Allow http:// webhook URLs (in-cluster receivers, local testing).")
	flag.StringVar(&extraCA, "extra-ca-bundle", "", "PEM file of CA certificates trusted for receivers in addition to the system pool.")
	flag.Var(&allowedCIDRs, "allowed-cidrs", "Comma-separated CIDRs endpoints may be in although the SSRF guard blocks them (loopback, private, link-local, ...), e.g. in-cluster receivers.")
	flag.Var(&blockedCIDRs, "blocked-cidrs", "Comma-separated CIDRs endpoints may not be in, besides the SSRF guard's defaults and the cluster's discovered ranges, e.g. a CNI's own Pod IP pools.")
	flag.StringVar(&egressMode, "egress-mode", string(netguard.ModePublic), "public: endpoints may be at any address the SSRF guard does not block; allowlist: only in --allowed-cidrs.")
	flag.StringVar(&attestationKeyFile, "attestation-key-file", "", "File holding the attestation key (at least 32 random bytes, shared with the dispatcher; mount it from a Secret). Required: the dispatcher delivers only to what the manager attested with it.")
	flag.DurationVar(&opts.CertificateResync, "certificate-resync", 5*time.Minute, "How often a verified Webhook's client-certificate Secret is read again, so that a rotated certificate is verified (the dispatcher holds deliveries until it is).")
	flag.DurationVar(&clusterRanges, "cluster-ranges-interval", clusterranges.DefaultInterval, "How often the cluster's Service ranges (ServiceCIDRs) and Pod ranges (Nodes' podCIDRs) are read into the SSRF guard; 0 disables it.")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))

	mode, err := netguard.ParseMode(egressMode)
	if err != nil {
		fmt.Fprintln(os.Stderr, "manager: --egress-mode:", err)
		os.Exit(1)
	}
	guard := netguard.New(netguard.Policy{Allowed: allowedCIDRs, Blocked: blockedCIDRs, Mode: mode})
	ctrl.Log.WithName("setup").Info("SSRF guard", "egressMode", mode, "allowedCIDRs", allowedCIDRs.String(), "blockedCIDRs", blockedCIDRs.String(),
		"clusterRangesInterval", clusterRanges)
	key, err := attest.Load(attestationKeyFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "manager:", err)
		os.Exit(1)
	}
	if err := run(metricsAddr, metricsSecure, metricsCertDir, probeAddr, leaderElect, leaderElectionNamespace, extraCA, verifyTimeout, allowHTTP, guard, clusterRanges, key, opts); err != nil {
		fmt.Fprintln(os.Stderr, "manager:", err)
		os.Exit(1)
	}
}

func run(metricsAddr string, metricsSecure bool, metricsCertDir, probeAddr string, leaderElect bool, leNamespace, extraCA string,
	verifyTimeout time.Duration, allowHTTP bool, guard *netguard.Guard, clusterRanges time.Duration, key *attest.Key, opts controllers.Options) error {
	log := ctrl.Log.WithName("setup")
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(hooklinev1.AddToScheme(scheme))

	roots, err := verify.LoadRootCAs(extraCA)
	if err != nil {
		return err
	}
	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), ctrl.Options{
		Scheme: scheme,
		// Both served below by bounded servers (boundedhttp), not by controller-runtime's.
		Metrics:                       securemetrics.Off,
		HealthProbeBindAddress:        "0",
		LeaderElection:                leaderElect,
		LeaderElectionID:              "hookline-manager.hookline.io",
		LeaderElectionNamespace:       leNamespace,
		LeaderElectionReleaseOnCancel: true,
		// Secrets are read on demand and never cached: the manager may only "get" them.
		Client: client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}},
		// Only what hookline reads of tenants' objects is kept (labels and annotations grown by a
		// tenant are not).
		Cache: cache.Options{DefaultTransform: cachetrim.Transform},
	})
	if err != nil {
		return fmt.Errorf("creating manager: %w", err)
	}
	// The first read is made here, before the manager starts, so that no verification dials
	// before the cluster's ranges are blocked.
	if err := clusterranges.Setup(logr.NewContext(context.Background(), ctrl.Log.WithName("cluster-ranges")), mgr, guard, clusterRanges); err != nil {
		return err
	}
	r := &controllers.WebhookReconciler{
		Client:      mgr.GetClient(),
		APIReader:   mgr.GetAPIReader(),
		Recorder:    mgr.GetEventRecorder("hookline-manager"),
		Verifier:    verify.New(verify.Config{Timeout: verifyTimeout, AllowHTTP: allowHTTP, RootCAs: roots, Guard: guard}),
		Attestation: key,
		Clock:       clock.RealClock{},
		Options:     opts,
	}
	if err := r.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up webhook controller: %w", err)
	}
	if err := securemetrics.Serve(mgr, metricsAddr, metricsSecure, metricsCertDir); err != nil {
		return err
	}
	if _, err := boundedhttp.ServeProbes(mgr, probeAddr); err != nil {
		return err
	}
	log.Info("Starting manager", "allowHTTP", allowHTTP, "verificationTimeout", verifyTimeout)
	return mgr.Start(ctrl.SetupSignalHandler())
}
