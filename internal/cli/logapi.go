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

package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"k8s.io/client-go/rest"

	"github.com/hookline/hookline/internal/deliveries"
)

// dispatcherURLEnv names the environment variable holding the read API's address.
const dispatcherURLEnv = "HOOKLINE_DISPATCHER_URL"

// apiFlags choose the dispatcher's read API and the credentials sent to it.
type apiFlags struct {
	url, ca, token string
	timeout        time.Duration
}

func (f *apiFlags) bind(fs *flag.FlagSet) {
	fs.StringVar(&f.url, "dispatcher-url", "", "read API URL")
	fs.StringVar(&f.ca, "dispatcher-ca", "", "CA file of the read API's certificate")
	fs.StringVar(&f.token, "token", "", "bearer token")
	fs.DurationVar(&f.timeout, "timeout", 30*time.Second, "timeout of each request")
}

const apiFlagsUsage = `      --dispatcher-url URL   the dispatcher's read API (default: $` + dispatcherURLEnv + `), e.g. after
                             kubectl port-forward -n hookline-system svc/hookline-dispatcher 8444:api
                             https://localhost:8444
      --dispatcher-ca FILE   PEM CA certificates trusted for the read API (default: the system's)
      --token TOKEN          bearer token (default: the kubeconfig user's token, token file or
                             exec plugin); the API checks it with the API server (TokenReview)
      --timeout D            timeout of each request (default 30s)
`

// logClient calls the read API with the kubeconfig user's credentials.
type logClient struct {
	base *url.URL
	http *http.Client
}

// logClient builds the read API's client: the kubeconfig's token (static, file or exec plugin,
// through client-go's own transport wrappers) or --token; never the API server's CA or client
// certificate. A token is never sent in clear text except to a loopback address.
func (a *App) logClient(k *kube, f apiFlags) (*logClient, error) {
	raw := f.url
	if raw == "" {
		raw = a.Getenv(dispatcherURLEnv)
	}
	if raw == "" {
		return nil, usagef("the read API's address is needed: --dispatcher-url or $%s (for example https://localhost:8444 after kubectl port-forward -n hookline-system svc/hookline-dispatcher 8444:api)", dispatcherURLEnv)
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, usagef("--dispatcher-url %q: want https://HOST[:PORT]", raw)
	}
	if u.Scheme == "http" && !loopback(u.Hostname()) {
		return nil, usagef("--dispatcher-url %q: refusing to send a bearer token over plain HTTP to %s; use https (plain http only to a loopback address)", raw, u.Hostname())
	}
	cfg := &rest.Config{
		Host: u.Scheme + "://" + u.Host, UserAgent: "hookline-cli/" + Version,
		TLSClientConfig: rest.TLSClientConfig{CAFile: f.ca},
	}
	if f.token != "" {
		cfg.BearerToken = f.token
	} else {
		kc := k.config
		cfg.BearerToken, cfg.BearerTokenFile = kc.BearerToken, kc.BearerTokenFile
		cfg.ExecProvider, cfg.AuthProvider, cfg.AuthConfigPersister = kc.ExecProvider, kc.AuthProvider, kc.AuthConfigPersister
		if cfg.BearerToken == "" && cfg.BearerTokenFile == "" && cfg.ExecProvider == nil && cfg.AuthProvider == nil {
			return nil, usagef("the kubeconfig user has no token (a client certificate does not authenticate to the read API): pass --token, e.g. --token \"$(kubectl create token SERVICEACCOUNT)\"")
		}
	}
	rt, err := rest.TransportFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("read API client: %w", err)
	}
	u.Path, u.RawQuery = strings.TrimSuffix(u.Path, "/"), ""
	// Never following a redirect: the transport adds the bearer token to every request, wherever
	// a redirect would lead.
	return &logClient{base: u, http: &http.Client{Transport: rt, Timeout: f.timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}, nil
}

// loopback reports whether host names this machine.
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// apiError is an error answer of the read API.
type apiError struct{ body deliveries.Error }

func (e *apiError) Error() string {
	return fmt.Sprintf("%s (the read API answered %d %s)", oneLine(e.body.Message), e.body.Status, oneLine(e.body.Reason))
}

// get GETs path (below the base URL's path) with query and decodes a 200 answer into v.
func (c *logClient) get(ctx context.Context, path string, query url.Values, v any) error {
	u := *c.base
	u.Path += path
	u.RawQuery = query.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the read API at %s: %w", c.base.Host, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("reading the read API's answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e deliveries.Error
		if json.Unmarshal(body, &e) == nil && e.Message != "" {
			return &apiError{body: e}
		}
		return fmt.Errorf("the read API at %s answered %s", c.base.Host, resp.Status)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("the read API's answer is not what this CLI expects: %w", err)
	}
	return nil
}

func webhookPath(ns, name string) string {
	return "/v1/namespaces/" + url.PathEscape(ns) + "/webhooks/" + url.PathEscape(name) + "/notifications"
}
