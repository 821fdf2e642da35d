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
	"net/http"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/internal/boundedhttp"
	"github.com/hookline/hookline/internal/securemetrics"
	"github.com/hookline/hookline/internal/testsupport"
)

// The probes answer from the start, as controller-runtime's own did, even while the manager's
// caches cannot sync (here: a user who may list nothing, so the Webhook informer never syncs; in
// production a slow or failing first list). Served as a plain Runnable, they would answer only
// once the caches synced, and the kubelet would kill the pod meanwhile.
func TestProbesAnswerWhileTheCachesSync(t *testing.T) {
	g := NewWithT(t)
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "nobody-" + t.Name()}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{Scheme: env.Scheme, Metrics: securemetrics.Off, HealthProbeBindAddress: "0"})
	g.Expect(err).NotTo(HaveOccurred())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err = mgr.GetCache().GetInformer(ctx, &hooklinev1.Webhook{})
	g.Expect(err).NotTo(HaveOccurred())
	probes := &boundedhttp.Probes{}
	g.Expect(probes.AddHealthzCheck("healthz", healthz.Ping)).To(Succeed())
	addr := testsupport.FreeAddr(t)
	g.Expect(boundedhttp.Add(mgr, "probes", addr, probes.Handler(), nil)).To(Succeed())
	// Not waited for at the end: a manager whose caches never synced does not return from Start
	// when stopped (controller-runtime waits for the sync without a deadline).
	go func() { _ = mgr.Start(ctx) }()

	g.Eventually(func() int {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			return 0
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}).WithTimeout(10*time.Second).WithPolling(100*time.Millisecond).Should(Equal(http.StatusOK), "the probes wait for the caches")
	synced, stop := context.WithTimeout(context.Background(), time.Second)
	defer stop()
	g.Expect(mgr.GetCache().WaitForCacheSync(synced)).To(BeFalse(), "the caches synced: the test shows nothing")
}
