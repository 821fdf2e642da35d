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

// Package securemetrics holds the metrics-server options the manager and the dispatcher share, so
// that --metrics-secure means the same in both.
package securemetrics

import (
	"crypto/tls"

	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// Options serves metrics at addr ("0" disables them) in plain HTTP, or, when secure, over HTTPS
// with each scrape's bearer token checked by TokenReview and SubjectAccessReview, and with HTTP/2
// switched off: HTTP/2 Rapid Reset (CVE-2023-44487) and Stream Cancellation (CVE-2023-39325) let an
// unauthenticated client exhaust the server before any token is checked, and a scraper needs
// nothing but HTTP/1.1.
func Options(addr string, secure bool) metricsserver.Options {
	o := metricsserver.Options{BindAddress: addr, SecureServing: secure}
	if secure {
		o.FilterProvider = filters.WithAuthenticationAndAuthorization
		o.TLSOpts = []func(*tls.Config){DisableHTTP2}
	}
	return o
}

// DisableHTTP2 offers only HTTP/1.1 in the TLS handshake.
func DisableHTTP2(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }
