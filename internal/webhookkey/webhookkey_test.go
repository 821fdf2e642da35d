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

package webhookkey

import (
	"testing"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
)

func TestNormalizeURL(t *testing.T) {
	for raw, want := range map[string]string{
		"https://Receiver.Example.COM:443/Hooks?a=B": "https://receiver.example.com/Hooks?a=B",
		"HTTP://receiver.example.com.:80":            "http://receiver.example.com/",
		"https://receiver.example.com:8443/x":        "https://receiver.example.com:8443/x",
		"http://receiver.example.com:443/x":          "http://receiver.example.com:443/x",
		"https://[::1]:443/x":                        "https://[::1]/x",
		"https://[::1]:9443/x":                       "https://[::1]:9443/x",
		"https://h/%2F?":                             "https://h/%2F?",
		"not a url":                                  "not a url",
	} {
		if got := NormalizeURL(raw); got != want {
			t.Errorf("NormalizeURL(%q) = %q, want %q", raw, got, want)
		}
	}
}

func TestOf(t *testing.T) {
	base := hooklinev1.WebhookSpec{URL: "https://r.example.com/h", Scope: hooklinev1.ScopeResource,
		Resource: &hooklinev1.WebhookResource{Type: hooklinev1.ResourceAgreement, ID: "agr-1"},
		Events:   []hooklinev1.EventName{"AGREEMENT_ALL", "WIDGET_ALL"}}
	same := base
	same.URL, same.Events = "HTTPS://R.example.com.:443/h", []hooklinev1.EventName{"WIDGET_ALL", "AGREEMENT_ALL"}
	same.State = hooklinev1.StateInactive // not part of the configuration
	if Of(base, "c") != Of(same, "c") {
		t.Error("event order and URL spelling must not change the key")
	}
	for name, mutate := range map[string]func(*hooklinev1.WebhookSpec){
		"path":   func(s *hooklinev1.WebhookSpec) { s.URL = "https://r.example.com/H" },
		"events": func(s *hooklinev1.WebhookSpec) { s.Events = []hooklinev1.EventName{"AGREEMENT_ALL"} },
		"resource": func(s *hooklinev1.WebhookSpec) {
			s.Resource = &hooklinev1.WebhookResource{Type: hooklinev1.ResourceAgreement, ID: "agr-2"}
		},
		"type": func(s *hooklinev1.WebhookSpec) {
			s.Resource = &hooklinev1.WebhookResource{Type: hooklinev1.ResourceWidget, ID: "agr-1"}
		},
		"scope": func(s *hooklinev1.WebhookSpec) { s.Scope, s.Resource = hooklinev1.ScopeAccount, nil },
	} {
		other := base
		mutate(&other)
		if Of(base, "c") == Of(other, "c") {
			t.Errorf("a different %s must change the key", name)
		}
	}
	if Of(base, "c") == Of(base, "d") {
		t.Error("a different client id must change the key")
	}
	// Fields must not run into each other.
	a := hooklinev1.WebhookSpec{URL: "https://h/", Scope: hooklinev1.ScopeUser, UserID: "ab"}
	b := hooklinev1.WebhookSpec{URL: "https://h/", Scope: hooklinev1.ScopeUser, UserID: "a"}
	if Of(a, "b") == Of(b, "bb") {
		t.Error("field boundaries must be encoded")
	}
}
