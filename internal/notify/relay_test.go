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

package notify_test

import (
	"context"
	"flag"
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/hookline/hookline/internal/notify"
)

// Only the domains the operator allows for the webhook's account receive mail: a tenant's
// address anywhere else gets nothing, through a real SMTP server.
func TestOnlyAllowedDomainsAreMailed(t *testing.T) {
	g := NewWithT(t)
	srv := startServer(t, serverOpts{})
	f := newNotifier(t, notify.Config{Address: srv.Addr, AllowedDomains: notify.AllowedDomains{
		notify.AnyAccount: {"ops.example.net"},
		"acc-1":           {"example.com"},
	}})
	p := problem(notify.AutoDisabled) // account acc-1
	// A local part that a relay may route elsewhere (quoted, the percent hack, a bang path) is
	// refused whatever its domain; a display name is dropped (it was shown as the sender's words).
	p.To = []string{"alice@example.com", "victim@gmail.example", "bob@example.org", `"On-call: call +1 555 0100" <oncall@OPS.example.net>`,
		`"alice@example.com"@evil.example`, "x@sub.example.com", "victim%mallory.example@example.com", "mallory.example!victim@example.com"}
	g.Expect(f.n.Notify(context.Background(), p)).To(Succeed())
	got := srv.received()
	g.Expect(got).To(HaveLen(1))
	g.Expect(got[0].To).To(ConsistOf("alice@example.com", "oncall@OPS.example.net"))
	g.Expect(addresses(parse(t, got[0].Data).To)).To(ConsistOf("alice@example.com", "oncall@OPS.example.net"))
	g.Expect(string(got[0].Data)).NotTo(ContainSubstring("555 0100"))
	g.Expect(gathered(f.reg, "hookline_problem_email_refused_recipients_total", nil)).To(Equal(3.0))
	g.Expect(gathered(f.reg, "hookline_problem_email_invalid_recipients_total", nil)).To(Equal(3.0))
	g.Expect(f.logs.String()).To(ContainSubstring(`does not allow for this account`))

	// Another account may not use acc-1's domain.
	other := problem(notify.AutoDisabled)
	other.AccountID, other.Namespace = "acc-2", "team-2"
	other.To = []string{"alice@example.com"}
	g.Expect(f.n.Notify(context.Background(), other)).To(MatchError(notify.ErrNoRecipients))
	g.Expect(srv.received()).To(HaveLen(1))

	// No list: nobody is mailed.
	none := newNotifier(t, notify.Config{Address: srv.Addr, AllowedDomains: notify.AllowedDomains{}})
	g.Expect(none.n.Notify(context.Background(), problem(notify.AutoDisabled))).To(MatchError(notify.ErrNoRecipients))
	g.Expect(srv.received()).To(HaveLen(1))
	g.Expect(none.logs.String()).To(ContainSubstring("problem e-mails are sent to no one"))
}

// Deleting and recreating a Webhook (a new uid, the same namespace and name) does not reset its
// limit, new names in one namespace run into the namespace's limit, and all namespaces together
// into the overall one; a window later they may send again.
func TestRateLimitsSurviveRecreationAndCoverNamespaces(t *testing.T) {
	g := NewWithT(t)
	srv := startServer(t, serverOpts{})
	f := newNotifier(t, notify.Config{Address: srv.Addr, MinInterval: time.Hour, NamespaceLimit: 3, TotalLimit: 5})
	ctx := context.Background()
	p := problem(notify.AutoDisabled)
	g.Expect(f.n.Notify(ctx, p)).To(Succeed())

	recreated := p
	recreated.UID = "11111111-2222-4333-8444-555555555555"
	g.Expect(f.n.Notify(ctx, recreated)).To(MatchError(notify.ErrSuppressed), "a recreated Webhook starts afresh")

	for i := range 2 {
		q := p
		q.Name = fmt.Sprintf("renamed-%d", i)
		g.Expect(f.n.Notify(ctx, q)).To(Succeed())
	}
	q := p
	q.Name = "renamed-3"
	g.Expect(f.n.Notify(ctx, q)).To(MatchError(ContainSubstring("per namespace")))
	g.Expect(srv.received()).To(HaveLen(3))

	for i := range 3 {
		q := p
		q.Namespace = fmt.Sprintf("team-%d", i)
		err := f.n.Notify(ctx, q)
		if i < 2 {
			g.Expect(err).To(Succeed())
		} else {
			g.Expect(err).To(MatchError(ContainSubstring("overall")))
		}
	}
	g.Expect(srv.received()).To(HaveLen(5))
	g.Expect(f.count(notify.AutoDisabled, notify.OutcomeSuppressed)).To(Equal(3.0))

	f.clock.Step(notify.RateWindow)
	g.Expect(f.n.Notify(ctx, recreated)).To(Succeed())
	g.Expect(srv.received()).To(HaveLen(6))
}

// Other namespaces' e-mails fill the overall limit (a tenant with ten namespaces of failing
// receivers can): a victim's auto-disable e-mail is then not lost but left for its caller to try
// again, and queued once the window has room; what a webhook's or namespace's own limit holds back
// is dealt with (suppressed).
func TestTheOverallLimitDelaysAnotherNamespacesEmailInsteadOfLosingIt(t *testing.T) {
	g := NewWithT(t)
	srv := startServer(t, serverOpts{})
	f := newNotifier(t, notify.Config{Address: srv.Addr, MinInterval: time.Hour, NamespaceLimit: 3, TotalLimit: 4})
	ctx := context.Background()
	for i := range 4 {
		q := problem(notify.SustainedFailure)
		q.Namespace = fmt.Sprintf("flood-%d", i)
		g.Expect(f.n.Notify(ctx, q)).To(Succeed())
	}
	victim := problem(notify.AutoDisabled)
	victim.Namespace = "victim"
	g.Expect(f.n.Enqueue(victim)).To(BeFalse(), "held back by other namespaces: for the caller to try again")
	again := problem(notify.SustainedFailure)
	again.Namespace = "flood-0"
	g.Expect(f.n.Enqueue(again)).To(BeTrue(), "held back by its own webhook's interval: dealt with")

	f.clock.Step(notify.RateWindow)
	g.Expect(f.n.Enqueue(victim)).To(BeTrue(), "the window has room again")
}

// Problems queued at once while the overall limit had room are all sent, each caller having been
// told its e-mail was queued: the worker does not hold one back by the limit the others reached
// meanwhile (it was counted as sent, and lost).
func TestWhatTheQueueAdmittedIsSent(t *testing.T) {
	g := NewWithT(t)
	srv := startServer(t, serverOpts{})
	f := newNotifier(t, notify.Config{Address: srv.Addr, MinInterval: time.Hour, NamespaceLimit: 3, TotalLimit: 2})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first := problem(notify.SustainedFailure)
	first.Namespace = "first"
	g.Expect(f.n.Notify(ctx, first)).To(Succeed())
	for _, ns := range []string{"a", "b"} {
		q := problem(notify.AutoDisabled)
		q.Namespace = ns
		g.Expect(f.n.Enqueue(q)).To(BeTrue(), ns)
	}
	go func() { _ = f.n.Start(ctx) }()
	g.Eventually(srv.received).WithTimeout(10 * time.Second).Should(HaveLen(3))
}

func TestAllowedDomainsFlag(t *testing.T) {
	g := NewWithT(t)
	var a notify.AllowedDomains
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.Var(&a, "problem-email-allowed-domains", "")
	g.Expect(fs.Parse([]string{
		"--problem-email-allowed-domains=Example.COM, ops.example.net.",
		"--problem-email-allowed-domains=acc-1=customer.example;acc-2=b.example,c.example",
	})).To(Succeed())
	g.Expect(a).To(Equal(notify.AllowedDomains{
		"*": {"example.com", "ops.example.net"}, "acc-1": {"customer.example"}, "acc-2": {"b.example", "c.example"},
	}))
	g.Expect(a.Allows("acc-9", "EXAMPLE.com")).To(BeTrue())
	g.Expect(a.Allows("acc-1", "customer.example")).To(BeTrue())
	g.Expect(a.Allows("acc-2", "customer.example")).To(BeFalse())
	g.Expect(a.String()).To(Equal("*=example.com,ops.example.net;acc-1=customer.example;acc-2=b.example,c.example"))
	for _, bad := range []string{"acc-1=", "=example.com", "exa mple.com", "*.example.com", "localhost", "acc 1=example.com"} {
		var b notify.AllowedDomains
		g.Expect(b.Set(bad)).To(MatchError(ContainSubstring("problem e-mail allowed domains")), bad)
	}
}
