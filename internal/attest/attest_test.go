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

package attest

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func key(t *testing.T, b byte) *Key {
	t.Helper()
	k, err := New(bytes.Repeat([]byte{b}, MinKeyBytes))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestCheck(t *testing.T) {
	k := key(t, 1)
	s := Subject{UID: "uid-1", URL: "https://example.com/hook", ClientID: "client", CertFingerprint: "ab12", Configuration: "key-1"}
	att := k.Sign(s)
	parts := strings.Split(att, ".")
	if len(att) > 128 {
		t.Fatalf("attestation has %d bytes; status.attestation allows 128", len(att))
	}
	other := func(f func(*Subject)) Subject { c := s; f(&c); return c }
	for name, tc := range map[string]struct {
		key  *Key
		s    Subject
		att  string
		want Coverage
	}{
		"same subject":          {k, s, att, Full},
		"another certificate":   {k, other(func(c *Subject) { c.CertFingerprint = "" }), att, Endpoint},
		"another url":           {k, other(func(c *Subject) { c.URL += "x" }), att, None},
		"another client id":     {k, other(func(c *Subject) { c.ClientID = "other" }), att, None},
		"another uid":           {k, other(func(c *Subject) { c.UID = "uid-2" }), att, None},
		"fields shifted":        {k, Subject{UID: "uid-1", URL: "https://example.com/hookc", ClientID: "lient", CertFingerprint: "ab12"}, att, None},
		"another key":           {key(t, 2), s, att, None},
		"no key":                {nil, s, att, None},
		"empty":                 {k, s, "", None},
		"unkeyed fingerprint":   {k, s, "0123456789abcdef0123456789abcdef", None},
		"other version":         {k, s, "v3" + strings.TrimPrefix(att, "v2"), None},
		"endpoint tag only":     {k, s, strings.Join(parts[:2], "."), None},
		"certificate tag moved": {k, s, strings.Join([]string{"v2", parts[2], parts[1], parts[3]}, "."), None},
		"another configuration": {k, other(func(c *Subject) { c.Configuration = "key-2" }), att, Full},
		// An attestation of before the configuration tag still proves the verification.
		"v1":                   {k, s, strings.Join([]string{"v1", parts[1], parts[2]}, "."), Full},
		"v1 with a fourth tag": {k, s, strings.Join([]string{"v1", parts[1], parts[2], parts[3]}, "."), None},
	} {
		t.Run(name, func(t *testing.T) {
			if got := tc.key.Check(tc.s, tc.att); got != tc.want {
				t.Fatalf("Check = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestCoversConfiguration(t *testing.T) {
	k := key(t, 1)
	s := Subject{UID: "uid-1", URL: "https://example.com/hook", ClientID: "client", CertFingerprint: "ab12", Configuration: "key-1"}
	att := k.Sign(s)
	parts := strings.Split(att, ".")
	other := func(f func(*Subject)) Subject { c := s; f(&c); return c }
	for name, tc := range map[string]struct {
		key  *Key
		s    Subject
		att  string
		want bool
	}{
		"same subject":          {k, s, att, true},
		"another certificate":   {k, other(func(c *Subject) { c.CertFingerprint = "" }), att, true},
		"another configuration": {k, other(func(c *Subject) { c.Configuration = "key-2" }), att, false},
		"another url":           {k, other(func(c *Subject) { c.URL += "x" }), att, false},
		"another uid":           {k, other(func(c *Subject) { c.UID = "uid-2" }), att, false},
		"configuration shifted": {k, Subject{UID: "uid-1", URL: "https://example.com/hook", ClientID: "clientk", Configuration: "ey-1"}, att, false},
		"another key":           {key(t, 2), s, att, false},
		"no key":                {nil, s, att, false},
		"v1":                    {k, s, strings.Join([]string{"v1", parts[1], parts[2]}, "."), false},
		"v1 label on v2":        {k, s, "v1" + strings.TrimPrefix(att, "v2"), false},
		"tags swapped":          {k, s, strings.Join([]string{"v2", parts[1], parts[3], parts[2]}, "."), false},
	} {
		t.Run(name, func(t *testing.T) {
			if got := tc.key.CoversConfiguration(tc.s, tc.att); got != tc.want {
				t.Fatalf("CoversConfiguration = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestReattest(t *testing.T) {
	k := key(t, 1)
	s := Subject{UID: "uid-1", URL: "https://example.com/hook", ClientID: "client", CertFingerprint: "ab12", Configuration: "key-1"}
	att := k.Sign(s)
	changed := s
	changed.Configuration, changed.CertFingerprint = "key-2", "" // the certificate is unknown
	again := k.Reattest(att, changed)
	if !k.CoversConfiguration(changed, again) || k.CoversConfiguration(s, again) {
		t.Fatal("a re-attestation must cover the new configuration only")
	}
	if k.Check(s, again) != Full {
		t.Fatal("a re-attestation must keep the certificate the verification covered")
	}
	v1 := "v1" + strings.TrimPrefix(strings.Join(strings.Split(att, ".")[:3], "."), "v2")
	if !k.CoversConfiguration(s, k.Reattest(v1, s)) {
		t.Fatal("a v1 attestation of the endpoint must be re-attestable")
	}
	for name, bad := range map[string]string{"empty": "", "other url": k.Sign(Subject{UID: "uid-1", URL: "https://example.com/other", ClientID: "client"})} {
		if got := k.Reattest(bad, s); got != "" {
			t.Errorf("%s: Reattest = %q, want \"\"", name, got)
		}
	}
}

func TestKeyIsNeverPrinted(t *testing.T) {
	secret := bytes.Repeat([]byte("s"), MinKeyBytes)
	k, err := New(secret)
	if err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{fmt.Sprint(k), fmt.Sprintf("%v %+v %#v %s", k, k, k, k)} {
		if strings.Contains(out, string(secret)) || strings.Contains(out, string(secret[:4])) {
			t.Fatalf("key printed: %s", out)
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	short := filepath.Join(dir, "short")
	if err := os.WriteFile(short, []byte("too-short-secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(short); err == nil || strings.Contains(err.Error(), "too-short-secret") {
		t.Fatalf("Load(short key) = %v, want an error that does not quote the key", err)
	}
	if _, err := Load(""); err == nil || !strings.Contains(err.Error(), "--attestation-key-file") {
		t.Fatalf("Load(\"\") = %v, want an error naming the flag", err)
	}
	if _, err := Load(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("Load(missing file) succeeded")
	}
	good := filepath.Join(dir, "good")
	if err := os.WriteFile(good, bytes.Repeat([]byte{7}, 48), 0o600); err != nil {
		t.Fatal(err)
	}
	k, err := Load(good)
	if err != nil {
		t.Fatal(err)
	}
	if k.Check(Subject{UID: "u"}, k.Sign(Subject{UID: "u"})) != Full {
		t.Fatal("a loaded key does not check its own attestation")
	}
}

func TestEnsureKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "key")
	if err := EnsureKeyFile(path); err != nil {
		t.Fatal(err)
	}
	first, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); len(first) != MinKeyBytes || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file has %d bytes and mode %v, want %d and 0600", len(first), fi.Mode().Perm(), MinKeyBytes)
	}
	if err := EnsureKeyFile(path); err != nil {
		t.Fatal(err)
	}
	if again, _ := os.ReadFile(path); !bytes.Equal(first, again) {
		t.Fatal("EnsureKeyFile replaced an existing key")
	}
	if _, err := Load(path); err != nil {
		t.Fatal(err)
	}
}

// A derived key depends on the attestation key and the purpose, is stable, and is not the
// attestation key.
func TestDerive(t *testing.T) {
	a, b := key(t, 1), key(t, 2)
	const purpose = "hookline delivery log cursor"
	da := a.Derive(purpose)
	if len(da) != 32 || !bytes.Equal(da, a.Derive(purpose)) {
		t.Fatalf("derived key not stable: %x", da)
	}
	if bytes.Equal(da, b.Derive(purpose)) || bytes.Equal(da, a.Derive("another purpose")) {
		t.Fatal("derived keys of other keys or purposes are equal")
	}
	if bytes.Contains(da, a.secret[:8]) {
		t.Fatal("derived key contains the attestation key")
	}
}

// A v3 covers the verification's time: a time written into the status by anyone else is not
// covered, and a re-attestation keeps the time tag of the verification it carries over.
func TestVerifiedAtIsCovered(t *testing.T) {
	k := key(t, 1)
	at := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	s := Subject{UID: "uid-1", URL: "https://example.com/hook", ClientID: "client", CertFingerprint: "ab12", Configuration: "key-1", VerifiedAt: at}
	att := k.Sign(s)
	if !strings.HasPrefix(att, "v3.") || !Timed(att) || len(att) > 160 {
		t.Fatalf("a timed attestation is a v3 of at most 160 bytes (status.attestation): %q, %d bytes", att, len(att))
	}
	if k.Check(s, att) != Full || !k.CoversConfiguration(s, att) || !k.CoversVerifiedAt(s, att) {
		t.Fatal("a v3 must cover its whole subject")
	}
	other := func(f func(*Subject)) Subject { c := s; f(&c); return c }
	for name, c := range map[string]Subject{
		"a later time":        other(func(c *Subject) { c.VerifiedAt = time.Date(2999, 1, 1, 0, 0, 0, 0, time.UTC) }),
		"a second later":      other(func(c *Subject) { c.VerifiedAt = at.Add(time.Second) }),
		"no time":             other(func(c *Subject) { c.VerifiedAt = time.Time{} }),
		"another url":         other(func(c *Subject) { c.URL += "x" }),
		"another uid":         other(func(c *Subject) { c.UID = "uid-2" }),
		"another key's words": s,
	} {
		kk := k
		if name == "another key's words" {
			kk = key(t, 2)
		}
		if kk.CoversVerifiedAt(c, att) {
			t.Errorf("%s: covered", name)
		}
	}
	if !k.CoversVerifiedAt(other(func(c *Subject) { c.VerifiedAt = at.Add(400 * time.Millisecond) }), att) {
		t.Error("the time is covered to the second, as the status keeps it")
	}
	parts := strings.Split(att, ".")
	if k.CoversVerifiedAt(s, strings.Join(parts[:4], ".")) || k.CoversVerifiedAt(s, strings.Join([]string{"v3", parts[1], parts[2], parts[4], parts[3]}, ".")) {
		t.Error("a v2, or a v3 with its tags swapped, covers no time")
	}
	untimed := k.Sign(other(func(c *Subject) { c.VerifiedAt = time.Time{} }))
	if Timed(untimed) || k.CoversVerifiedAt(s, untimed) {
		t.Error("an attestation signed without a time covers none")
	}
	changed := other(func(c *Subject) { c.Configuration, c.VerifiedAt = "key-2", time.Date(2999, 1, 1, 0, 0, 0, 0, time.UTC) })
	again := k.Reattest(att, changed)
	if !k.CoversConfiguration(changed, again) || k.CoversVerifiedAt(changed, again) || !k.CoversVerifiedAt(other(func(c *Subject) { c.Configuration = "key-2" }), again) {
		t.Error("a re-attestation covers the new configuration and the original time, not another")
	}
}
