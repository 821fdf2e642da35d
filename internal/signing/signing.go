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

// Package signing produces Standard Webhooks signatures (https://www.standardwebhooks.com, v1):
// HMAC-SHA256 over "<msg id>.<unix seconds>.<body>", base64, sent as "v1,<sig>" entries in one
// space-separated webhook-signature header, one entry per key so that keys rotate without downtime.
// Keys come from a Secret named by a Webhook's spec.signing.secretRef.
package signing

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/internal/secretaccess"
)

// Header names of the Standard Webhooks specification.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// Key limits and prefix of the specification ("whsec_" + base64 of 24 to 64 bytes).
const (
	SecretPrefix = "whsec_"
	MinKeyBytes  = 24
	MaxKeyBytes  = 64
	// MaxKeys bounds the keys of one Secret: every attempt signs its whole body once per key, and
	// a rotation needs two.
	MaxKeys = 10
)

// ErrInvalid marks a Secret that exists but does not hold usable signing keys.
var ErrInvalid = errors.New("invalid signing secret")

// Keys are the HMAC keys of one webhook, in signing order.
type Keys [][]byte

// Load reads the Secret ref names in namespace through r (uncached) and parses it. It returns nil,
// nil when ref is nil; a missing or unreadable Secret gives the API error (a
// *secretaccess.NotGrantedError where hookline may not read Secrets), a Secret without valid
// keys an error wrapping ErrInvalid.
func Load(ctx context.Context, r client.Reader, namespace string, s *hooklinev1.WebhookSigning) (Keys, error) {
	if s == nil {
		return nil, nil
	}
	secret, err := secretaccess.Get(ctx, r, namespace, s.SecretRef.Name)
	if err != nil {
		return nil, err
	}
	return FromSecret(secret)
}

// FromSecret parses every value of s as a "whsec_" key, in the order of the Secret's keys. A value
// that is not a valid key makes the whole Secret invalid: signing with fewer keys than the operator
// meant would break receivers in a way that is hard to see. Errors name the Secret only: not its
// entries, their number or their lengths, because they end up in the Webhook's status and Events,
// which people read who may not read the Secret (a reference to, say, a kubernetes.io/tls Secret
// would otherwise reveal what it holds).
func FromSecret(s *corev1.Secret) (Keys, error) {
	names := make([]string, 0, len(s.Data)+len(s.StringData))
	for name := range s.Data {
		names = append(names, name)
	}
	slices.Sort(names)
	if len(names) == 0 {
		return nil, fmt.Errorf("%w: secret %s/%s holds no keys", ErrInvalid, s.Namespace, s.Name)
	}
	invalid := fmt.Errorf("%w: secret %s/%s must hold 1 to %d entries, each a %q key of %d to %d bytes, and does not",
		ErrInvalid, s.Namespace, s.Name, MaxKeys, SecretPrefix+"<base64>", MinKeyBytes, MaxKeyBytes)
	if len(names) > MaxKeys {
		// Every attempt computes one HMAC of the whole body per key.
		return nil, invalid
	}
	keys := make(Keys, 0, len(names))
	for _, name := range names {
		k, err := ParseKey(strings.TrimSpace(string(s.Data[name])))
		if err != nil {
			return nil, invalid
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// ParseKey decodes a "whsec_<base64>" secret. The prefix is optional, as in the reference libraries.
func ParseKey(secret string) ([]byte, error) {
	k, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, SecretPrefix))
	if err != nil {
		return nil, errors.New(`not a "whsec_<base64>" key`)
	}
	if len(k) < MinKeyBytes || len(k) > MaxKeyBytes {
		return nil, fmt.Errorf("key is %d bytes; the specification asks for %d to %d", len(k), MinKeyBytes, MaxKeyBytes)
	}
	return k, nil
}

// Signature returns the webhook-signature value: "v1,<base64>" per key, space-separated.
func (ks Keys) Signature(id string, ts time.Time, body []byte) string {
	prefix := id + "." + strconv.FormatInt(ts.Unix(), 10) + "."
	var b strings.Builder
	for i, k := range ks {
		mac := hmac.New(sha256.New, k)
		mac.Write([]byte(prefix))
		mac.Write(body)
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString("v1,")
		b.WriteString(base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	}
	return b.String()
}

// Sign sets the three headers on h for one attempt: the id is stable across retries (receivers
// dedupe on it), the timestamp is the attempt's. It does nothing without keys.
func (ks Keys) Sign(h http.Header, id string, ts time.Time, body []byte) {
	if len(ks) == 0 {
		return
	}
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	h.Set(HeaderSignature, ks.Signature(id, ts, body))
}
