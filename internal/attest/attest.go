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

// Package attest lets the manager prove to the dispatcher which endpoint an intent verification
// covered. Anyone who may patch webhooks/status can write "Active" into a Webhook's status; only
// the operator's components hold the attestation key, so only they can write an attestation that
// verifies. The dispatcher delivers only when the attestation covers the webhook's current uid,
// url, effective client id and client certificate, and the manager has checked its current
// configuration for duplicates (package webhookkey).
//
// An attestation holds three HMAC-SHA256 tags: one over the endpoint (uid, url, client id), one
// over the endpoint and the client certificate's fingerprint, and one over the endpoint and the
// configuration key. The first lets the dispatcher keep queueing while a rotated certificate waits
// for its verification; only the second lets it send. The third says that no older Webhook of the
// account has the same configuration: a change of events, scope or resource voids it until the
// manager has checked the new configuration, without a new verification (verifying and checking
// for duplicates are separate steps, so the first two tags carry over). A fourth tag, over the
// endpoint and the verification's time (a v3), lets the dispatcher trust status.lastVerifiedTime,
// from which it counts the auto-disable rule's days: written by anyone else, it could postpone an
// auto-disable for ever.
package attest

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"os"
	"strconv"
	"strings"
	"time"
)

// MinKeyBytes is the shortest key accepted: 256 bits, the size of SHA-256's output.
const MinKeyBytes = 32

// version prefixes every attestation, so that a change of scheme is never mistaken for a forgery.
// v1 attestations (endpoint and certificate tags only) still prove a verification, so that an
// upgrade re-attests every webhook without verifying it again; they cover no configuration. A v3
// is a v2 with a fourth tag over the verification's time (versionTimed).
const (
	version      = "v2"
	versionTimed = "v3"
	versionV1    = "v1"
)

// Domain separators of the four tags.
const (
	domainEndpoint      = "hookline.io/attestation/v1/endpoint"
	domainCertificate   = "hookline.io/attestation/v1/certificate"
	domainConfiguration = "hookline.io/attestation/v2/configuration"
	domainVerified      = "hookline.io/attestation/v3/verified"
)

// Subject is what a verification covered.
type Subject struct {
	// UID is the Webhook's metadata.uid: an attestation never carries over to another object,
	// including one recreated with the same name.
	UID string
	// URL is spec.url as verified.
	URL string
	// ClientID is the effective client id (spec.clientId, or the operator's default).
	ClientID string
	// CertFingerprint is clientcert.Fingerprint of the client certificate presented; empty for
	// none.
	CertFingerprint string
	// Configuration is webhookkey.Of the Webhook's spec: the manager found no older Webhook of
	// the account with the same one.
	Configuration string
	// VerifiedAt is when the endpoint was verified (status.lastVerifiedTime), to the second; zero
	// when the attestation is not to cover a time. The dispatcher starts the auto-disable rule's
	// 7 days from it, so that a time written into the status by anyone else must not count.
	VerifiedAt time.Time
}

// Coverage says how much of a Subject an attestation covers.
type Coverage int

const (
	// None: the attestation is missing, forged, made with another key, or for another endpoint.
	None Coverage = iota
	// Endpoint: it covers uid, url and client id, but was made with another client certificate.
	Endpoint
	// Full: it covers the whole Subject.
	Full
)

// Key is the attestation key. It is never printed: String and GoString redact it.
type Key struct {
	secret []byte
}

// New returns a Key holding a copy of secret, which must have at least MinKeyBytes bytes.
func New(secret []byte) (*Key, error) {
	if len(secret) < MinKeyBytes {
		return nil, fmt.Errorf("attestation key has %d bytes, want at least %d random bytes", len(secret), MinKeyBytes)
	}
	return &Key{secret: append([]byte(nil), secret...)}, nil
}

// Load reads a Key from path: the file's bytes as they are (mount it from a Secret). Errors name
// the file, never its content.
func Load(path string) (*Key, error) {
	if path == "" {
		return nil, errors.New("--attestation-key-file is required: the manager and the dispatcher share a key " +
			"(a file of at least 32 random bytes, mounted from a Secret) that proves which endpoint was verified")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading attestation key: %w", err)
	}
	k, err := New(b)
	if err != nil {
		return nil, fmt.Errorf("attestation key file %s: %w", path, err)
	}
	return k, nil
}

// EnsureKeyFile creates path holding MinKeyBytes random bytes, readable by its owner only, unless
// it exists already: local stacks (make run, benchmarks) give their manager and dispatcher a key
// this way.
func EnsureKeyFile(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("creating attestation key file: %w", err)
	}
	secret := make([]byte, MinKeyBytes)
	_, _ = rand.Read(secret) // crypto/rand.Read never fails (it crashes the program instead)
	if _, err := f.Write(secret); err != nil {
		_ = f.Close()
		return fmt.Errorf("writing attestation key file: %w", err)
	}
	return f.Close()
}

// Derive returns a key of its own for purpose (HMAC-SHA256 of the purpose under the attestation
// key): other secrets the dispatcher needs, such as the delivery log's cursor key, come from the
// one Secret already shared, while the attestation key itself is used for nothing else.
func (k *Key) Derive(purpose string) []byte {
	m := hmac.New(sha256.New, k.secret)
	m.Write([]byte(purpose))
	return m.Sum(nil)
}

// String implements fmt.Stringer without revealing the key.
func (k *Key) String() string { return "attest.Key(redacted)" }

// GoString implements fmt.GoStringer without revealing the key.
func (k *Key) GoString() string { return k.String() }

// Sign returns the attestation of s: a v3, covering s.VerifiedAt, when it is set.
func (k *Key) Sign(s Subject) string {
	tags := []string{version, k.tag(domainEndpoint, s), k.tag(domainCertificate, s), k.tag(domainConfiguration, s)}
	if !s.VerifiedAt.IsZero() {
		tags[0] = versionTimed
		tags = append(tags, k.tag(domainVerified, s))
	}
	return strings.Join(tags, ".")
}

// Timed reports whether att is of the scheme that covers the verification's time (a v3), whether
// or not the time it covers is the one now in the status.
func Timed(att string) bool {
	parts := strings.Split(att, ".")
	return len(parts) == 5 && parts[0] == versionTimed
}

// CoversVerifiedAt reports whether att covers s's endpoint and s.VerifiedAt: the manager
// verified s's endpoint at that time. A nil Key covers nothing.
func (k *Key) CoversVerifiedAt(s Subject, att string) bool {
	if k == nil || s.VerifiedAt.IsZero() || !Timed(att) {
		return false
	}
	parts := strings.Split(att, ".")
	return equal(parts[1], k.tag(domainEndpoint, s)) && equal(parts[4], k.tag(domainVerified, s))
}

// Check reports how much of s's verification (endpoint and certificate) the attestation att
// covers, whatever configuration it was made for. A nil Key covers nothing.
func (k *Key) Check(s Subject, att string) Coverage {
	if k == nil {
		return None
	}
	parts := strings.Split(att, ".")
	current := len(parts) == 4 && parts[0] == version || Timed(att)
	legacy := len(parts) == 3 && parts[0] == versionV1
	if !current && !legacy {
		return None
	}
	if !equal(parts[1], k.tag(domainEndpoint, s)) {
		return None
	}
	if !equal(parts[2], k.tag(domainCertificate, s)) {
		return Endpoint
	}
	return Full
}

// Reattest returns att, which must cover s's endpoint, made to cover s's configuration as well;
// its certificate tag is kept, whichever certificate it covers, and so is its time tag (a v3),
// whichever time it covers (s.VerifiedAt is not used). The manager uses it when it has checked a
// changed configuration for duplicates but cannot read the client certificate to sign the whole
// Subject again, and when it attests again a verification whose time it cannot vouch for anew. It
// returns "" when att does not cover s's endpoint.
func (k *Key) Reattest(att string, s Subject) string {
	if k.Check(s, att) == None {
		return ""
	}
	parts := strings.Split(att, ".")
	if Timed(att) {
		return strings.Join([]string{versionTimed, parts[1], parts[2], k.tag(domainConfiguration, s), parts[4]}, ".")
	}
	return strings.Join([]string{version, parts[1], parts[2], k.tag(domainConfiguration, s)}, ".")
}

// CoversConfiguration reports whether att covers s's endpoint and configuration: the manager
// checked this configuration of this Webhook for duplicates and found it the oldest. A nil Key
// covers nothing.
func (k *Key) CoversConfiguration(s Subject, att string) bool {
	if k == nil {
		return false
	}
	parts := strings.Split(att, ".")
	return (len(parts) == 4 && parts[0] == version || Timed(att)) &&
		equal(parts[1], k.tag(domainEndpoint, s)) && equal(parts[3], k.tag(domainConfiguration, s))
}

// tag is the HMAC of s's fields under domain: the endpoint's three, and the certificate's
// fingerprint for domainCertificate or the configuration key for domainConfiguration. Each field
// is length-prefixed, so no two subjects encode alike whatever their bytes.
func (k *Key) tag(domain string, s Subject) string {
	mac := hmac.New(sha256.New, k.secret)
	fields := []string{domain, s.UID, s.URL, s.ClientID}
	switch domain {
	case domainCertificate:
		fields = append(fields, s.CertFingerprint)
	case domainConfiguration:
		fields = append(fields, s.Configuration)
	case domainVerified:
		fields = append(fields, strconv.FormatInt(s.VerifiedAt.Unix(), 10))
	}
	for _, f := range fields {
		write(mac, f)
	}
	sum := mac.Sum(nil)
	if domain == domainConfiguration || domain == domainVerified {
		// 128 bits, so that the attestation stays short (a v3 takes 136 bytes of
		// status.attestation's 160): forging it would take 2^128 tries, each one an object written
		// for the dispatcher to check.
		sum = sum[:16]
	}
	return base64.RawURLEncoding.EncodeToString(sum)
}

func write(h hash.Hash, field string) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(field)))
	h.Write(n[:])
	h.Write([]byte(field))
}

// equal compares two tags in constant time.
func equal(a, b string) bool { return hmac.Equal([]byte(a), []byte(b)) }
