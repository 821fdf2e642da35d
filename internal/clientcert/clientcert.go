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

// Package clientcert loads the client certificate a Webhook presents for two-way TLS from its
// kubernetes.io/tls Secret.
package clientcert

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/internal/secretaccess"
)

// ErrInvalid marks a Secret that exists but holds no usable certificate and key.
var ErrInvalid = errors.New("invalid client certificate")

// Load reads the Secret ref names in namespace through r (uncached: only "get" on Secrets is
// granted) and parses it. It returns nil, nil when ref is nil; a Secret that is missing or
// unreadable gives the API error (a *secretaccess.NotGrantedError where hookline may not read
// Secrets), one without a usable pair an error wrapping ErrInvalid.
func Load(ctx context.Context, r client.Reader, namespace string, ref *hooklinev1.SecretReference) (*tls.Certificate, error) {
	if ref == nil {
		return nil, nil
	}
	secret, err := secretaccess.Get(ctx, r, namespace, ref.Name)
	if err != nil {
		return nil, err
	}
	return FromSecret(secret)
}

// FromSecret parses the tls.crt / tls.key pair of s. Errors name the Secret, never its content.
func FromSecret(s *corev1.Secret) (*tls.Certificate, error) {
	crt, key := s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey]
	if len(crt) == 0 || len(key) == 0 {
		return nil, fmt.Errorf("%w: secret %s/%s lacks %s or %s", ErrInvalid, s.Namespace, s.Name, corev1.TLSCertKey, corev1.TLSPrivateKeyKey)
	}
	pair, err := tls.X509KeyPair(crt, key)
	if err != nil {
		return nil, fmt.Errorf("%w: secret %s/%s does not hold a valid certificate and key pair", ErrInvalid, s.Namespace, s.Name)
	}
	return &pair, nil
}

// Fingerprint identifies a certificate chain without revealing the key: the SHA-256 of its DER leaf.
func Fingerprint(c *tls.Certificate) string {
	if c == nil || len(c.Certificate) == 0 {
		return ""
	}
	sum := sha256.Sum256(c.Certificate[0])
	return hex.EncodeToString(sum[:])
}
