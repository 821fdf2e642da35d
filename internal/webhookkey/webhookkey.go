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

// Package webhookkey computes a Webhook's configuration key: what Acrobat Sign compares to refuse
// a second webhook with the same configuration (DUPLICATE_WEBHOOK_CONFIGURATION). Two Webhooks of
// one account with the same key are duplicates; the manager lets the oldest receive notifications
// and keeps the others Inactive. The manager indexes Webhooks by the key, and its attestation
// covers it, so that the dispatcher routes to a webhook only while the manager has checked its
// current configuration for duplicates.
package webhookkey

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"net"
	"net/url"
	"slices"
	"strings"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
)

// Of returns the configuration key of spec with effective client id clientID (spec.clientId, or
// the operator's default): a hex SHA-256 over the events as a set, the normalised URL, the scope,
// groupId, userId, resource type and id, and the client id. It does not hold the account: Webhooks
// are duplicates only within one account, which their namespaces' bindings say.
func Of(spec hooklinev1.WebhookSpec, clientID string) string {
	events := make([]string, 0, len(spec.Events))
	for _, e := range spec.Events {
		events = append(events, string(e))
	}
	slices.Sort(events)
	events = slices.Compact(events)
	var resType, resID string
	if spec.Resource != nil {
		resType, resID = string(spec.Resource.Type), spec.Resource.ID
	}
	h := sha256.New()
	// Each field is length-prefixed, so that no two configurations encode alike.
	for _, f := range append([]string{NormalizeURL(spec.URL), string(spec.Scope), spec.GroupID, spec.UserID, resType, resID, clientID}, events...) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(f)))
		h.Write(n[:])
		h.Write([]byte(f))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// NormalizeURL returns raw with the normalisations of RFC 3986 §6.2.3 that do not change where a
// request goes: scheme and host lower-cased, the scheme's default port removed, an empty path made
// "/", and the trailing dot of a fully qualified host name removed. Path and query are kept as
// they are: receivers may tell them apart. A URL that does not parse is returned unchanged.
func NormalizeURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return raw
	}
	scheme := strings.ToLower(u.Scheme)
	host, port := strings.TrimSuffix(strings.ToLower(u.Hostname()), "."), u.Port()
	if (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
		port = ""
	}
	if strings.Contains(host, ":") || port != "" {
		host = net.JoinHostPort(host, port)
		if port == "" {
			host = strings.TrimSuffix(host, ":")
		}
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	out := scheme + "://" + host + path
	if u.ForceQuery || u.RawQuery != "" {
		out += "?" + u.RawQuery
	}
	return out
}
