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

// Package tenancy binds namespaces to Acrobat Sign accounts. A namespace labelled
// hookline.io/account=<accountId> belongs to that account; hookline.io/group=<groupId> further
// restricts its webhooks to that group's events. Labelling namespaces needs cluster rights, so a
// tenant cannot subscribe to another account's events.
package tenancy

// Namespace labels.
const (
	AccountLabel = "hookline.io/account"
	GroupLabel   = "hookline.io/group"
)

// Binding is the account (and optional group) a namespace is bound to.
type Binding struct {
	AccountID string
	// GroupID is empty unless the namespace is restricted to one group.
	GroupID string
}

// FromLabels returns the binding the labels declare, and false when the namespace is not bound.
func FromLabels(labels map[string]string) (Binding, bool) {
	acc := labels[AccountLabel]
	if acc == "" {
		return Binding{}, false
	}
	return Binding{AccountID: acc, GroupID: labels[GroupLabel]}, true
}
