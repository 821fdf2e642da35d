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

package cachetrim

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
)

// Whoever may write a status (a tenant) may give each condition a message of 32 KiB, the API
// server's bound: the caches keep 4 KiB of it, more than any message hookline writes, which is
// kept whole.
func TestConditionMessagesAreCachedClipped(t *testing.T) {
	ours := "endpoint answered 500, want 2xx: " + strings.Repeat("r", 256)
	forged := strings.Repeat("x", 32<<10)
	conds := func() []metav1.Condition {
		return []metav1.Condition{{Type: hooklinev1.ConditionReady, Message: ours}, {Type: hooklinev1.ConditionVerified, Message: forged}}
	}
	wh := &hooklinev1.Webhook{Status: hooklinev1.WebhookStatus{Conditions: conds()}}
	rp := &hooklinev1.WebhookReplay{Status: hooklinev1.WebhookReplayStatus{Conditions: conds()}}
	for _, obj := range []any{wh, rp} {
		if _, err := Transform(obj); err != nil {
			t.Fatal(err)
		}
	}
	for name, got := range map[string][]metav1.Condition{"webhook": wh.Status.Conditions, "replay": rp.Status.Conditions} {
		if got[0].Message != ours {
			t.Errorf("%s: hookline's own message changed: %q", name, got[0].Message)
		}
		if n := len(got[1].Message); n > MaxMessage || !strings.HasPrefix(got[1].Message, forged[:MaxMessage-8]) {
			t.Errorf("%s: a 32 KiB message cached as %d bytes, want its first %d at most", name, n, MaxMessage)
		}
	}
}
