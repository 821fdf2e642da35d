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

package route

import (
	"runtime"
	"slices"
	"testing"
	"time"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
)

// TestSeedNotificationMatrix encodes the seeds' "Webhook notifications" tables: sender A sends an
// agreement that user B signs and user C receives as CC (or as a sharee). Only the sender's own
// USER webhook, webhooks of the sender's group and account, and RESOURCE webhooks on the agreement
// fire; the signer's and CC's own webhooks never do, unless they are the same ACCOUNT or GROUP
// webhook as the sender's.
func TestSeedNotificationMatrix(t *testing.T) {
	agreement := hooklinev1.WebhookResource{Type: hooklinev1.ResourceAgreement, ID: "agr-1"}
	events := []hooklinev1.EventName{"AGREEMENT_ALL"}
	target := func(uid, account string, scope hooklinev1.Scope, id string) *Target {
		t := &Target{UID: uid, AccountID: account, Scope: scope, Events: events}
		switch scope {
		case hooklinev1.ScopeGroup:
			t.GroupID = id
		case hooklinev1.ScopeUser:
			t.UserID = id
		case hooklinev1.ScopeResource:
			r := agreement
			t.Resource = &r
		}
		return t
	}
	// The event: A (account acc-A, group grp-A) sends agreement agr-1.
	sent := func(account string) *Event {
		return &Event{Name: "AGREEMENT_ACTION_REQUESTED", AccountID: account, GroupID: "grp-A", UserID: "user-A", Resource: agreement}
	}

	cases := []struct {
		name    string
		event   *Event
		targets []*Target
		want    []string
	}{
		{
			name:  "A, B and C in different accounts",
			event: sent("acc-A"),
			targets: []*Target{
				target("A-account", "acc-A", hooklinev1.ScopeAccount, ""),
				target("A-group", "acc-A", hooklinev1.ScopeGroup, "grp-A"),
				target("A-user", "acc-A", hooklinev1.ScopeUser, "user-A"),
				target("A-resource", "acc-A", hooklinev1.ScopeResource, ""),
				target("B-account", "acc-B", hooklinev1.ScopeAccount, ""),
				target("B-group", "acc-B", hooklinev1.ScopeGroup, "grp-B"),
				target("B-user", "acc-B", hooklinev1.ScopeUser, "user-B"),
				target("C-account", "acc-C", hooklinev1.ScopeAccount, ""),
				target("C-group", "acc-C", hooklinev1.ScopeGroup, "grp-C"),
				target("C-user", "acc-C", hooklinev1.ScopeUser, "user-C"),
				// B's account even holds a RESOURCE webhook with the same id: other accounts never fire.
				target("B-resource", "acc-B", hooklinev1.ScopeResource, ""),
			},
			want: []string{"A-account", "A-group", "A-user", "A-resource"},
		},
		{
			name:  "A, B and C in the same account and group",
			event: sent("acc-A"),
			targets: []*Target{
				target("account", "acc-A", hooklinev1.ScopeAccount, ""),
				target("group-A", "acc-A", hooklinev1.ScopeGroup, "grp-A"),
				target("A-user", "acc-A", hooklinev1.ScopeUser, "user-A"),
				target("A-resource", "acc-A", hooklinev1.ScopeResource, ""),
				target("B-user", "acc-A", hooklinev1.ScopeUser, "user-B"),
				target("C-user", "acc-A", hooklinev1.ScopeUser, "user-C"),
			},
			want: []string{"account", "group-A", "A-user", "A-resource"},
		},
		{
			name:  "same account, B and C in other groups",
			event: sent("acc-A"),
			targets: []*Target{
				target("account", "acc-A", hooklinev1.ScopeAccount, ""),
				target("group-A", "acc-A", hooklinev1.ScopeGroup, "grp-A"),
				target("group-B", "acc-A", hooklinev1.ScopeGroup, "grp-B"),
				target("group-C", "acc-A", hooklinev1.ScopeGroup, "grp-C"),
				target("B-user", "acc-A", hooklinev1.ScopeUser, "user-B"),
			},
			want: []string{"account", "group-A"},
		},
		{
			name:  "group-bound namespace sees only its group",
			event: sent("acc-A"),
			targets: []*Target{
				{UID: "ns-grp-A-account", AccountID: "acc-A", NamespaceGroup: "grp-A", Scope: hooklinev1.ScopeAccount, Events: events},
				{UID: "ns-grp-B-account", AccountID: "acc-A", NamespaceGroup: "grp-B", Scope: hooklinev1.ScopeAccount, Events: events},
			},
			want: []string{"ns-grp-A-account"},
		},
		{
			name:  "resource webhook on another agreement or type",
			event: sent("acc-A"),
			targets: []*Target{
				{UID: "other-id", AccountID: "acc-A", Scope: hooklinev1.ScopeResource, Events: events,
					Resource: &hooklinev1.WebhookResource{Type: hooklinev1.ResourceAgreement, ID: "agr-2"}},
				{UID: "other-type", AccountID: "acc-A", Scope: hooklinev1.ScopeResource, Events: events,
					Resource: &hooklinev1.WebhookResource{Type: hooklinev1.ResourceWidget, ID: "agr-1"}},
			},
			want: nil,
		},
		{
			name:  "event names filter",
			event: sent("acc-A"),
			targets: []*Target{
				{UID: "requested", AccountID: "acc-A", Scope: hooklinev1.ScopeAccount, Events: []hooklinev1.EventName{"AGREEMENT_ACTION_REQUESTED"}},
				{UID: "completed", AccountID: "acc-A", Scope: hooklinev1.ScopeAccount, Events: []hooklinev1.EventName{"AGREEMENT_ACTION_COMPLETED"}},
				{UID: "widgets", AccountID: "acc-A", Scope: hooklinev1.ScopeAccount, Events: []hooklinev1.EventName{"WIDGET_ALL"}},
			},
			want: []string{"requested"},
		},
		{
			name:  "group and user scopes never match an event without group or user",
			event: &Event{Name: "AGREEMENT_CREATED", AccountID: "acc-A", Resource: agreement},
			targets: []*Target{
				{UID: "group-empty", AccountID: "acc-A", Scope: hooklinev1.ScopeGroup, Events: events},
				{UID: "user-empty", AccountID: "acc-A", Scope: hooklinev1.ScopeUser, Events: events},
				{UID: "account", AccountID: "acc-A", Scope: hooklinev1.ScopeAccount, Events: events},
			},
			want: []string{"account"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tb := NewTable()
			for _, tg := range tc.targets {
				tb.Set(tg)
			}
			var got []string
			for _, tg := range tb.Match(tc.event) {
				got = append(got, tg.UID)
			}
			slices.Sort(got)
			want := slices.Clone(tc.want)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("receivers = %v, want %v", got, want)
			}
		})
	}
}

func TestTableSetReplacesAndDeletes(t *testing.T) {
	tb := NewTable()
	tb.Set(&Target{UID: "u", AccountID: "a", Scope: hooklinev1.ScopeAccount, Events: []hooklinev1.EventName{"AGREEMENT_ALL"}})
	tb.Set(&Target{UID: "u", AccountID: "b", Scope: hooklinev1.ScopeAccount, Events: []hooklinev1.EventName{"AGREEMENT_ALL"}})
	if n := len(tb.Match(&Event{Name: "AGREEMENT_CREATED", AccountID: "a"})); n != 0 {
		t.Fatalf("moved target still matches its old account (%d)", n)
	}
	if n := len(tb.Match(&Event{Name: "AGREEMENT_CREATED", AccountID: "b"})); n != 1 {
		t.Fatalf("target not matched in its new account (%d)", n)
	}
	tb.Withdraw("u")
	if tb.Len() != 0 {
		t.Fatal("delete left the target behind")
	}
}

// Withdraw returns only once every Route call that could have returned the target is released: the
// syncer relies on it to cancel or remove a queue with no late notification slipping in behind.
func TestWithdrawWaitsForRoutesInProgress(t *testing.T) {
	tb := NewTable()
	tb.Set(&Target{UID: "u", AccountID: "a", Scope: hooklinev1.ScopeAccount, Events: []hooklinev1.EventName{"AGREEMENT_ALL"}})
	targets, release := tb.Route(&Event{Name: "AGREEMENT_CREATED", AccountID: "a"})
	if len(targets) != 1 {
		t.Fatalf("routed to %d targets, want 1", len(targets))
	}
	withdrawn := make(chan struct{})
	go func() { tb.Withdraw("u"); close(withdrawn) }()
	// Once the target has left the table, Withdraw can only be waiting for the release.
	for tb.Len() != 0 {
		runtime.Gosched()
	}
	select {
	case <-withdrawn:
		t.Fatal("Withdraw returned while a Route call still held the target")
	default:
	}
	release()
	<-withdrawn
	if targets, release := tb.Route(&Event{Name: "AGREEMENT_CREATED", AccountID: "a"}); len(targets) != 0 {
		t.Fatalf("a withdrawn target is still routed to")
	} else {
		release()
	}
	tb.Withdraw("u") // absent: returns at once
}

// A tenant whose Webhook stops being routable (it may write the Webhook's status.state) has it
// withdrawn, and the withdrawal waits for the events in flight that may have routed to it. One
// barrier for all accounts made every account's new events wait behind it, for as long as the
// slowest event in flight took to be queued. Now only its account's (and those sharing its
// barrier by hash) wait.
func TestAWithdrawalHoldsUpNoOtherAccountsEvents(t *testing.T) {
	tb := NewTable()
	tenant := "acc-tenant"
	other := ""
	for i := 0; other == ""; i++ {
		if a := "acc-other-" + string(rune('a'+i%26)) + string(rune('a'+i/26)); tb.holdsOf(a) != tb.holdsOf(tenant) {
			other = a
		}
	}
	events := []hooklinev1.EventName{"AGREEMENT_ALL"}
	tb.Set(&Target{UID: "wh-tenant", AccountID: tenant, Scope: hooklinev1.ScopeAccount, Events: events})
	tb.Set(&Target{UID: "wh-other", AccountID: other, Scope: hooklinev1.ScopeAccount, Events: events})
	ev := func(account string) *Event {
		return &Event{Name: "AGREEMENT_CREATED", AccountID: account, Resource: hooklinev1.WebhookResource{Type: hooklinev1.ResourceAgreement, ID: "agr-1"}}
	}
	// An event of the tenant's account is being queued.
	targets, release := tb.Route(ev(tenant))
	if len(targets) != 1 {
		t.Fatalf("routed to %d targets, want the tenant's", len(targets))
	}
	withdrawn := make(chan struct{})
	go func() { tb.Withdraw("wh-tenant"); close(withdrawn) }()
	// Other accounts' events are routed meanwhile, again and again while the withdrawal waits:
	// with one barrier for all, one of them soon waited behind it.
	routed := make(chan struct{})
	go func() {
		for range 100_000 {
			_, r := tb.Route(ev(other))
			r()
		}
		close(routed)
	}()
	select {
	case <-routed:
	case <-withdrawn:
		t.Fatal("the withdrawal ended before the tenant's event was queued")
	case <-time.After(10 * time.Second):
		t.Fatal("another account's event waited for the tenant's withdrawal")
	}
	select {
	case <-withdrawn:
		t.Fatal("the withdrawal did not wait for the tenant's event in flight")
	default:
	}
	release()
	<-withdrawn
}

// A target moved to another account (its namespace rebound) waits, like a withdrawal, for the
// events of its old account in flight that routed to it: a later Withdraw waits on the new
// account's barrier only, and would not see them.
func TestMovingATargetWaitsForItsOldAccountsEventsInFlight(t *testing.T) {
	tb := NewTable()
	events := []hooklinev1.EventName{"AGREEMENT_ALL"}
	tb.Set(&Target{UID: "wh", AccountID: "acc-old", Scope: hooklinev1.ScopeAccount, Events: events})
	targets, release := tb.Route(&Event{Name: "AGREEMENT_CREATED", AccountID: "acc-old",
		Resource: hooklinev1.WebhookResource{Type: hooklinev1.ResourceAgreement, ID: "agr-1"}})
	if len(targets) != 1 {
		t.Fatalf("routed to %d targets, want 1", len(targets))
	}
	moved := make(chan struct{})
	go func() {
		tb.Set(&Target{UID: "wh", AccountID: "acc-new", Scope: hooklinev1.ScopeAccount, Events: events})
		close(moved)
	}()
	for range 10_000 {
		select {
		case <-moved:
			t.Fatal("the move did not wait for the old account's event in flight")
		default:
			runtime.Gosched()
		}
	}
	release()
	<-moved
}
