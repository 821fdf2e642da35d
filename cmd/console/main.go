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

// Command console serves hookline's web console (internal/console): the Webhooks page, with
// sign-in by Kubernetes bearer token and every request sent to the API server as the signed-in user.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	flagpkg "flag"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/hookline/hookline/internal/console"
	"github.com/hookline/hookline/internal/listenlimit"
	"github.com/hookline/hookline/internal/securemetrics"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "console:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	flag := flagpkg.NewFlagSet("console", flagpkg.ContinueOnError)
	var (
		listen, certFile, keyFile, namespaces, apiCA, kubeconfig string
		logURL, logCA, trusted                                   string
		devHTTP, behindProxy                                     bool
	)
	flag.StringVar(&listen, "listen-address", ":8443", "Address the console listens on.")
	flag.StringVar(&certFile, "tls-cert-file", "", "Serve HTTPS with this certificate (reloaded when it changes).")
	flag.StringVar(&keyFile, "tls-key-file", "", "Key of --tls-cert-file.")
	flag.BoolVar(&behindProxy, "behind-tls-proxy", false, "Serve plain HTTP to a proxy that terminates TLS (an Ingress); cookies stay Secure, so browsers must reach the proxy over HTTPS.")
	flag.StringVar(&trusted, "trusted-proxies", "", "With --behind-tls-proxy: comma-separated CIDRs of the proxies (the Ingress controller's pods) whose X-Forwarded-For names the client. A peer outside them is known by its own address (the sign-in limits count per client address). Empty: any peer's X-Forwarded-For is read.")
	flag.BoolVar(&devHTTP, "insecure-dev-http", false, "Development only: serve plain HTTP with cookies that are not Secure. Refused unless --listen-address is a loopback address.")
	flag.StringVar(&namespaces, "namespaces", "", "Comma-separated namespaces to list for users who may not list webhooks cluster-wide (besides a ServiceAccount's own namespace and the ones users add).")
	flag.StringVar(&kubeconfig, "kubeconfig", "", "A kubeconfig naming the API server (its credentials are never used); default $KUBECONFIG, the in-cluster configuration or ~/.kube/config.")
	flag.StringVar(&apiCA, "api-ca-file", "", "In a pod without a mounted ServiceAccount token (the console needs none): reach the API server at $KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT and trust this CA bundle (the kube-root-ca.crt ConfigMap's ca.crt).")
	flag.StringVar(&logURL, "dispatcher-api-url", "", "The dispatcher's read API (docs/read-api.md), e.g. https://hookline-dispatcher.hookline-system.svc:8444, for the delivery log; users' tokens are sent to it, so https (plain http only to a loopback address). Empty: no delivery log.")
	flag.StringVar(&logCA, "dispatcher-api-ca-file", "", "PEM CA bundle trusted for --dispatcher-api-url (default: the system's).")
	opts := zap.Options{}
	opts.BindFlags(flag)
	if err := flag.Parse(args); err != nil {
		if errors.Is(err, flagpkg.ErrHelp) {
			return nil
		}
		return err
	}
	log := zap.New(zap.UseFlagOptions(&opts))
	ctrl.SetLogger(log)

	tlsFiles := certFile != "" || keyFile != ""
	switch {
	case tlsFiles && (certFile == "" || keyFile == ""):
		return errors.New("--tls-cert-file and --tls-key-file go together")
	case devHTTP && (tlsFiles || behindProxy):
		return errors.New("--insecure-dev-http excludes --tls-cert-file and --behind-tls-proxy")
	case devHTTP && !loopback(listen):
		return fmt.Errorf("--insecure-dev-http serves session cookies over plain HTTP: only on a loopback address such as 127.0.0.1:8443, not %q", listen)
	case !tlsFiles && !behindProxy && !devHTTP:
		return errors.New("choose how browsers reach the console over HTTPS: --tls-cert-file/--tls-key-file, or --behind-tls-proxy (or, on 127.0.0.1 for development, --insecure-dev-http)")
	}
	proxies, err := trustedProxies(trusted, behindProxy)
	if err != nil {
		return err
	}
	logAPI, err := deliveriesClient(logURL, logCA)
	if err != nil {
		return err
	}
	cfg, err := apiConfig(kubeconfig, apiCA)
	if err != nil {
		return fmt.Errorf("locating the API server: %w", err)
	}
	var nss []string
	for _, ns := range strings.Split(namespaces, ",") {
		if ns = strings.TrimSpace(ns); ns != "" {
			nss = append(nss, ns)
		}
	}
	srv, err := console.New(console.Config{API: cfg, Namespaces: nss, InsecureCookies: devHTTP, Log: log.WithName("console"), Deliveries: logAPI,
		BehindProxy: behindProxy, TrustedProxies: proxies})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		// Forgotten sessions leave memory (and their tokens) once idle, not only when next used.
		t := time.NewTicker(time.Minute)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				srv.Sessions().Sweep()
			}
		}
	}()
	hs := newHTTPServer(listen, srv.Handler())
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
	}()
	var tc *tls.Config
	scheme := "http"
	if tlsFiles {
		w, werr := certwatcher.New(certFile, keyFile)
		if werr != nil {
			return fmt.Errorf("console TLS: %w", werr)
		}
		go func() { _ = w.Start(ctx) }()
		tc, scheme = &tls.Config{GetCertificate: w.GetCertificate, MinVersion: tls.VersionTLS12}, "https"
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	log.Info("Serving the console", "address", listen, "scheme", scheme)
	if err := serve(hs, ln, tc); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// newHTTPServer is the console's http.Server for h on addr. A header within 64 KiB (cookies
// included), not Go's 1 MiB: that much is held per connection before anyone is signed in.
func newHTTPServer(addr string, h http.Handler) *http.Server {
	return &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: 30 * time.Second, WriteTimeout: time.Minute, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: console.MaxHeaderBytes}
}

// The bounds of the console's listener (listenlimit): connections held open per source address
// and in all. Anyone reaching the port may open connections, and each costs its goroutine, buffers
// and, until its header is read, up to console.MaxHeaderBytes: about 90 KiB with a full header, so
// 512 hold about 45 MB at most, of the console's 128 Mi, beside what its pages may hold
// (internal/console/bounds.go).
// People use the console through browsers, a few connections each; behind an Ingress they all
// come from its address, so one source may hold half of the bound, and at a bound the oldest
// connection carrying no request gives way: a browser's or the proxy's idle keep-alive connection,
// or a header trickled by someone holding connections. Requests in flight are few (pages are built
// three at once), so these bounds are far above what its users need at once.
const (
	connsPerSource = 256
	conns          = 512
)

// serve serves hs on ln within the listener's bounds: over TLS with tc when it is set, offering
// HTTP/1.1 only, and in plain HTTP otherwise. A browser needs nothing but HTTP/1.1, and over
// HTTP/2 one connection with a window of 0 held 250 streams (each its handler, and a page) without
// a session, out of reach of the bound on connections.
func serve(hs *http.Server, ln net.Listener, tc *tls.Config) error {
	lim := listenlimit.Bind(hs, ln, "console", connsPerSource, conns)
	if tc == nil {
		return hs.Serve(lim)
	}
	securemetrics.HTTP1Only(hs, tc)
	return hs.ServeTLS(lim, "", "")
}

// apiConfig says where the API server is. The console uses no credentials of its own, so in a pod
// it needs no ServiceAccount token: with --api-ca-file the address comes from the environment
// Kubernetes sets in every container, and the CA from the file. Otherwise --kubeconfig, $KUBECONFIG
// or the in-cluster configuration (of which only the address and CA are used).
func apiConfig(kubeconfig, caFile string) (*rest.Config, error) {
	switch {
	case kubeconfig != "" && caFile != "":
		return nil, errors.New("--kubeconfig and --api-ca-file exclude each other")
	case kubeconfig != "":
		return clientcmd.BuildConfigFromFlags("", kubeconfig)
	case caFile == "":
		return ctrl.GetConfig()
	}
	host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
	if host == "" || port == "" {
		return nil, errors.New("--api-ca-file needs $KUBERNETES_SERVICE_HOST and $KUBERNETES_SERVICE_PORT (set in every pod)")
	}
	if _, err := os.Stat(caFile); err != nil {
		return nil, fmt.Errorf("--api-ca-file: %w", err)
	}
	return &rest.Config{Host: "https://" + net.JoinHostPort(host, port), TLSClientConfig: rest.TLSClientConfig{CAFile: caFile}}, nil
}

// deliveriesClient builds the read API's client: its CA and no credentials (each request carries
// the user's token). A token goes over plain HTTP only to this machine.
func deliveriesClient(raw, caFile string) (*console.LogAPI, error) {
	if raw == "" {
		if caFile != "" {
			return nil, errors.New("--dispatcher-api-ca-file needs --dispatcher-api-url")
		}
		return nil, nil
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
		return nil, fmt.Errorf("--dispatcher-api-url %q: want https://HOST[:PORT]", raw)
	}
	if u.Scheme == "http" && !loopback(u.Host) && !loopback(u.Host+":0") {
		return nil, fmt.Errorf("--dispatcher-api-url %q: users' tokens would go over plain HTTP; use https (plain http only to a loopback address)", raw)
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("--dispatcher-api-ca-file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--dispatcher-api-ca-file %s: no PEM certificate in it", caFile)
		}
		tc.RootCAs = pool
	}
	u.RawQuery, u.Fragment = "", ""
	tr := &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: false, MaxIdleConnsPerHost: 8, IdleConnTimeout: time.Minute}
	return &console.LogAPI{Base: u, HTTP: &http.Client{Transport: tr, Timeout: 30 * time.Second,
		// The user's token must not follow a redirect elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}, nil
}

// trustedProxies parses --trusted-proxies: CIDRs, or bare addresses (one address each). An
// IPv4-mapped IPv6 prefix is kept as the IPv4 prefix it covers (peers are compared unmapped).
func trustedProxies(list string, behindProxy bool) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(list, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			a, aerr := netip.ParseAddr(f)
			if aerr != nil || a.Zone() != "" {
				return nil, fmt.Errorf("--trusted-proxies: %q is neither a CIDR nor an address", f)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if p.Addr().Is4In6() {
			if p.Bits() < 96 {
				return nil, fmt.Errorf("--trusted-proxies: %q covers more than IPv4-mapped addresses; name the IPv4 range", f)
			}
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		out = append(out, p.Masked())
	}
	if len(out) > 0 && !behindProxy {
		return nil, errors.New("--trusted-proxies needs --behind-tls-proxy")
	}
	return out, nil
}

// loopback reports whether addr's host is a loopback IP or localhost.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
