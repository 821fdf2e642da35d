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

// Package secretaccess reads the Secrets Webhooks name. hookline may get Secrets only in the
// namespaces where the operator bound the ClusterRole hookline-secret-reader (Helm:
// secretAccess.namespaces), so a refusal is not a broken Webhook but a missing opt-in, and the
// error says what to do about it.
package secretaccess

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// NotGrantedError is returned when hookline's ServiceAccount may not get Secrets in a namespace.
// It wraps the API server's Forbidden error.
type NotGrantedError struct {
	Namespace string
	Err       error
}

// Error tells the operator how to grant access; it does not repeat the API server's text, which
// names the ServiceAccount and the request but not the remedy.
func (e *NotGrantedError) Error() string {
	return fmt.Sprintf("hookline may not read Secrets in namespace %s: grant it there with the Helm value "+
		"secretAccess.namespaces, or a RoleBinding of the ClusterRole hookline-secret-reader to hookline's "+
		"ServiceAccounts (docs/operations.md, \"Secret access\")", e.Namespace)
}

// Unwrap returns the API server's error, so apierrors.IsForbidden still holds.
func (e *NotGrantedError) Unwrap() error { return e.Err }

// MaxBytes bounds what a Secret a Webhook names may hold, its entries' names and values together:
// a client certificate chain with its key and CA, or a few signing keys, take a few KiB. The
// dispatcher keeps what it reads for every Webhook that names it, and a tenant may write Secrets of
// 1 MiB in its namespace and name them from as many Webhooks as it likes.
const MaxBytes = 64 << 10

// ErrTooLarge marks a Secret holding more than MaxBytes.
var ErrTooLarge = errors.New("secret too large")

// CheckSize returns an error wrapping ErrTooLarge when s holds more than MaxBytes. It names the
// Secret and the bound, not the Secret's size or entries.
func CheckSize(s *corev1.Secret) error {
	n := 0
	for k, v := range s.Data {
		n += len(k) + len(v)
	}
	for k, v := range s.StringData {
		n += len(k) + len(v)
	}
	if n > MaxBytes {
		return fmt.Errorf("%w: secret %s/%s holds more than %d KiB, more than a client certificate or signing keys need", ErrTooLarge, s.Namespace, s.Name, MaxBytes>>10)
	}
	return nil
}

// Get reads Secret namespace/name through r (uncached: only get on Secrets is granted, never list
// or watch). A Forbidden answer becomes a *NotGrantedError; other errors are the API server's, and
// a Secret holding more than MaxBytes gives an error wrapping ErrTooLarge.
func Get(ctx context.Context, r client.Reader, namespace, name string) (*corev1.Secret, error) {
	secret := &corev1.Secret{}
	if err := r.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, secret); err != nil {
		if apierrors.IsForbidden(err) {
			return nil, &NotGrantedError{Namespace: namespace, Err: err}
		}
		return nil, err
	}
	if err := CheckSize(secret); err != nil {
		return nil, err
	}
	return secret, nil
}
