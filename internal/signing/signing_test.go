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

package signing_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/hookline/hookline/internal/signing"
)

func secretOf(data map[string]string) *corev1.Secret {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "sig"}, Data: map[string][]byte{}}
	for k, v := range data {
		s.Data[k] = []byte(v)
	}
	return s
}

func key(fill byte, n int) string {
	return signing.SecretPrefix + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{fill}, n))
}

// Every signature must verify with the specification's reference library, with each key alone:
// that is what lets a receiver holding only the old or only the new key accept during a rotation.
func TestSignaturesVerifyWithReferenceLibraryForEveryKey(t *testing.T) {
	oldKey, newKey := key(1, 32), key(2, 24)
	keys, err := signing.FromSecret(secretOf(map[string]string{"current": newKey, "previous": oldKey}))
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 {
		t.Fatalf("got %d keys, want 2", len(keys))
	}
	body := []byte(`{"event":"AGREEMENT_ACTION_COMPLETED","webhookNotificationId":"n-1"}`)
	h := http.Header{}
	now := time.Now()
	keys.Sign(h, "n-1", now, body)
	if got := strings.Count(h.Get(signing.HeaderSignature), "v1,"); got != 2 {
		t.Fatalf("signature header %q has %d entries, want 2", h.Get(signing.HeaderSignature), got)
	}
	for _, k := range []string{oldKey, newKey} {
		wh, err := standardwebhooks.NewWebhook(k)
		if err != nil {
			t.Fatal(err)
		}
		if err := wh.Verify(body, h); err != nil {
			t.Errorf("reference library rejects the signature for a key: %v", err)
		}
	}
	other, _ := standardwebhooks.NewWebhook(key(3, 32))
	if err := other.Verify(body, h); !errors.Is(err, standardwebhooks.ErrNoMatchingSignature) {
		t.Errorf("an unrelated key verified: %v", err)
	}
	tampered := append(bytes.Clone(body), ' ')
	wh, _ := standardwebhooks.NewWebhook(newKey)
	if err := wh.Verify(tampered, h); err == nil {
		t.Error("a changed body verified")
	}
}

// Our signature must equal the reference library's for the same id, time and body.
func TestSignatureEqualsReferenceSign(t *testing.T) {
	k := key(7, 40)
	keys, err := signing.FromSecret(secretOf(map[string]string{"k": k}))
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Unix(1700000000, 0)
	wh, _ := standardwebhooks.NewWebhook(k)
	want, err := wh.Sign("msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", ts, []byte(`{"test": 2432232314}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := keys.Signature("msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", ts, []byte(`{"test": 2432232314}`)); got != want {
		t.Errorf("signature %q, reference %q", got, want)
	}
}

func TestInvalidSecretsAreRejectedWithoutRevealingKeys(t *testing.T) {
	cases := map[string]map[string]string{
		"empty":        {},
		"not base64":   {"k": "whsec_%%%not-base64%%%"},
		"too short":    {"k": key(1, 23)},
		"too long":     {"k": key(1, 65)},
		"one bad of 2": {"good": key(1, 32), "bad": "whsec_c2hvcnQ="},
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := signing.FromSecret(secretOf(data))
			if !errors.Is(err, signing.ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			for _, v := range data {
				if secret := strings.TrimPrefix(v, signing.SecretPrefix); len(secret) > 4 && strings.Contains(err.Error(), secret) {
					t.Errorf("error %q reveals a key", err)
				}
			}
		})
	}
}

// A signing.secretRef may name a Secret that is not a signing Secret (a kubernetes.io/tls one, a
// database password). The error lands in the Webhook's status and Events: it must not reveal the
// Secret's entry names, how many there are or how long their values are.
func TestInvalidSecretsRevealNoEntryNames(t *testing.T) {
	for name, data := range map[string]map[string]string{
		"tls":         {"tls.crt": "-----BEGIN CERTIFICATE-----\nMIIB", "tls.key": "-----BEGIN EC PRIVATE KEY-----\nMHcC"},
		"credentials": {"postgres-admin-password": "hunter2hunter2", "api-token-for-billing": "tok_0123456789"},
		"one good":    {"aaa-good-key": key(1, 32), "zzz-db-password": "hunter2hunter2"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := signing.FromSecret(secretOf(data))
			if !errors.Is(err, signing.ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			msg := err.Error()
			for entry, v := range data {
				if strings.Contains(msg, entry) || strings.Contains(msg, v) {
					t.Errorf("error %q reveals entry %q", msg, entry)
				}
			}
			for _, n := range []string{"14", "16", "2 "} {
				if strings.Contains(msg, n) {
					t.Errorf("error %q reveals a length or count (%q)", msg, n)
				}
			}
			if want := "secret ns/sig must hold 1 to 10 entries, each a \"whsec_<base64>\" key of 24 to 64 bytes, and does not"; !strings.HasSuffix(msg, want) {
				t.Errorf("error %q, want it to end with %q", msg, want)
			}
		})
	}
}

// Every attempt signs its whole body once per key: a Secret of thousands of keys (1 MiB of them)
// made each attempt cost seconds of the dispatcher's CPU, every tenant's. At most MaxKeys.
func TestASecretHoldsAtMostMaxKeys(t *testing.T) {
	data := map[string]string{}
	for i := range signing.MaxKeys {
		data[fmt.Sprintf("k%02d", i)] = key(byte(i+1), 32)
	}
	keys, err := signing.FromSecret(secretOf(data))
	if err != nil || len(keys) != signing.MaxKeys {
		t.Fatalf("%d keys: got %d keys, %v", signing.MaxKeys, len(keys), err)
	}
	data["k99"] = key(99, 32)
	if _, err := signing.FromSecret(secretOf(data)); !errors.Is(err, signing.ErrInvalid) {
		t.Fatalf("%d keys: err = %v, want ErrInvalid", len(data), err)
	}
}

func TestNoKeysSignNothing(t *testing.T) {
	h := http.Header{}
	signing.Keys(nil).Sign(h, "id", time.Now(), []byte("{}"))
	if len(h) != 0 {
		t.Errorf("headers set without keys: %v", h)
	}
}
