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

package dispatcher_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/dispatcher"
	"github.com/hookline/hookline/internal/notify"
)

// mailbox is an SMTP server on 127.0.0.1 that keeps every message it is given.
type mailbox struct {
	addr string
	mu   sync.Mutex
	msgs []mailed
}

type mailed struct {
	to      []string
	subject string
	body    string
}

func startMailbox(t *testing.T) *mailbox {
	t.Helper()
	mb := &mailbox{}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &mailSession{mb: mb}, nil }))
	srv.Domain = "localhost"
	srv.ErrorLog = log.New(io.Discard, "", 0)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mb.addr = l.Addr().String()
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return mb
}

func (mb *mailbox) got() []mailed {
	mb.mu.Lock()
	defer mb.mu.Unlock()
	return append([]mailed(nil), mb.msgs...)
}

type mailSession struct {
	mb *mailbox
	to []string
}

func (s *mailSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *mailSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}
func (s *mailSession) Data(r io.Reader) error {
	m, err := mail.ReadMessage(r)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(m.Body)
	if err != nil {
		return err
	}
	s.mb.mu.Lock()
	s.mb.msgs = append(s.mb.msgs, mailed{to: s.to, subject: m.Header.Get("Subject"), body: string(body)})
	s.mb.mu.Unlock()
	return nil
}
func (s *mailSession) Reset()        { s.to = nil }
func (s *mailSession) Logout() error { return nil }

// A webhook failing through Acrobat Sign's whole schedule sends its problemNotificationEmails one
// "keeps failing" e-mail once the streak is an hour old (not one per attempt), then one
// "auto-disabled" e-mail at the drop — through a real SMTP server.
func TestProblemEmailsOnSustainedFailureAndAutoDisable(t *testing.T) {
	g := NewWithT(t)
	mb := startMailbox(t)
	recipients := []hooklinev1.Email{"ops@example.com", "oncall@example.org"}
	_, _, wh, _ := runFailingSchedule(t, "acc-problems", time.Now().Add(5*24*time.Hour),
		func(c *dispatcher.Config, spec *hooklinev1.WebhookSpec) {
			c.Problems = notify.Config{Address: mb.addr, From: "hookline@example.com", StartTLS: notify.StartTLSNever,
				AllowedDomains: notify.AllowedDomains{"acc-problems": {"example.com", "example.org"}}}
			c.ProblemAfter = time.Hour
			spec.ProblemNotificationEmails = recipients
		})
	g.Eventually(func() int { return len(mb.got()) }).WithTimeout(10*time.Second).Should(Equal(2), func() string { return fmt.Sprintf("%+v", mb.got()) })
	g.Consistently(func() int { return len(mb.got()) }).WithTimeout(500*time.Millisecond).Should(Equal(2),
		"one e-mail per failing streak and one for the auto-disable")
	msgs := mb.got()
	for _, m := range msgs {
		g.Expect(m.to).To(ConsistOf("ops@example.com", "oncall@example.org"))
		g.Expect(m.subject).To(ContainSubstring(string(wh.UID)))
	}
	g.Expect(strings.ToLower(msgs[0].subject)).To(ContainSubstring("failing"))
	g.Expect(msgs[0].body).To(ContainSubstring("NonSuccessStatus"))
	g.Expect(strings.ToLower(msgs[1].subject)).To(ContainSubstring("disabled"))
	g.Expect(msgs[1].body).To(ContainSubstring(hooklinev1.ReactivateAnnotation))
}

// The "keeps failing" e-mail is sent once per failing streak even across a dispatcher restart: the
// streak it reported is saved with the delivery state.
func TestSustainedFailureIsMailedOnceAcrossRestarts(t *testing.T) {
	g := NewWithT(t)
	mb := startMailbox(t)
	start := time.Now()
	clk := clocktesting.NewFakeClock(start)
	ns := newNamespace(t, "acc-problems-restart", "")
	rc := newReceiver(t)
	rc.now = clk.Now
	rc.set(fail500)
	dir := t.TempDir()
	o := stackOptions{namespaces: []string{ns}, clock: clk, dir: dir, mutate: func(c *dispatcher.Config) {
		c.Problems = notify.Config{Address: mb.addr, From: "hookline@example.com", StartTLS: notify.StartTLSNever,
			AllowedDomains: notify.AllowedDomains{notify.AnyAccount: {"example.com"}}}
		c.ProblemAfter = time.Hour
	}}
	s := startStack(t, o)
	spec := accountSpec(rc.URL)
	spec.ProblemNotificationEmails = []hooklinev1.Email{"ops@example.com"}
	wh := s.activeWebhook(t, ns, "failing", spec)
	s.mustPost(t, event("restart-1", "acc-problems-restart"))

	// Attempts at 0, 1, 3, 7, 15, 31 and 63 minutes; the streak is an hour old at the last one.
	// Each failure is settled (and shown in status) before the clock moves on: a failure settled
	// after its retry's slot has passed is retried a RetryBase later instead (slots missed are not
	// made up), which is not what this test is about.
	settled := func(k int) {
		t.Helper()
		g.Eventually(func() int { return len(rc.got()) }).WithTimeout(10*time.Second).Should(Equal(k+1), "attempt %d", k)
		g.Eventually(func(g Gomega) {
			g.Expect(deref(getWebhook(g, wh).Status.ConsecutiveFailures)).To(BeEquivalentTo(k + 1))
		}).WithTimeout(10*time.Second).WithPolling(20*time.Millisecond).Should(Succeed(), "attempt %d", k)
	}
	attemptAt := func(k int, minutes int) {
		t.Helper()
		clk.SetTime(start.Add(time.Duration(minutes)*time.Minute + timerLateness))
		settled(k)
	}
	settled(0)
	for k, minutes := range acrobatSchedule[:6] {
		attemptAt(k+1, minutes)
	}
	g.Eventually(func() int { return len(mb.got()) }).WithTimeout(10 * time.Second).Should(Equal(1))

	s.stop()
	s = startStack(t, o)
	s.waitRouted(t, wh)
	attemptAt(7, acrobatSchedule[6]) // 127 minutes: still failing, same streak
	g.Consistently(func() int { return len(mb.got()) }).WithTimeout(time.Second).Should(Equal(1),
		"the restarted dispatcher mailed the same failing streak again")
}

// A tenant cannot use problem e-mails as an open relay from the operator's sender: of the
// addresses it puts in problemNotificationEmails only those in the domains the operator allows
// for its account get mail, the Subject carries none of the tenant's text (webhook name, URL),
// the endpoint in the body is no link, and deleting and recreating the Webhook does not reset the
// rate limit — against the real API server, dispatcher and SMTP server, the Webhook written by the
// tenant through RBAC.
func TestProblemEmailsAreNoOpenRelay(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	mb := startMailbox(t)
	start := time.Now()
	clk := clocktesting.NewFakeClock(start)
	const account = "acc-relay"
	ns := newNamespace(t, account, "")
	tenant := tenantClient(t, ns, "tenant-"+ns)
	rc := newReceiver(t)
	rc.now = clk.Now
	rc.set(fail500)
	s := startStack(t, stackOptions{namespaces: []string{ns}, clock: clk, mutate: func(c *dispatcher.Config) {
		c.Problems = notify.Config{Address: mb.addr, From: "hookline@operator.example", StartTLS: notify.StartTLSNever,
			AllowedDomains: notify.AllowedDomains{account: {"example.com"}}}
		c.ProblemAfter = time.Minute
	}})

	const name = "urgent.reset-your-password.evil.example"
	spec := accountSpec(rc.URL + "/login-here")
	spec.ProblemNotificationEmails = []hooklinev1.Email{"ops@example.com", "victim@elsewhere.example"}
	create := func() *hooklinev1.Webhook {
		t.Helper()
		wh := &hooklinev1.Webhook{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: spec}
		g.Expect(tenant.Create(ctx, wh)).To(Succeed())
		g.Eventually(func(g Gomega) {
			g.Expect(getWebhook(g, wh).Status.State).To(Equal(hooklinev1.ObservedActive))
		}).WithTimeout(20 * time.Second).WithPolling(50 * time.Millisecond).Should(Succeed())
		s.waitRouted(t, wh)
		return wh
	}
	// failFor makes the webhook's next two attempts fail a minute apart: a streak as old as
	// ProblemAfter.
	failFor := func(wh *hooklinev1.Webhook, id string) {
		t.Helper()
		before := len(rc.got())
		s.mustPost(t, event(id, account))
		g.Eventually(func() int { return len(rc.got()) }).WithTimeout(10 * time.Second).Should(Equal(before + 1))
		g.Eventually(func(g Gomega) {
			g.Expect(deref(getWebhook(g, wh).Status.ConsecutiveFailures)).To(BeEquivalentTo(1))
		}).WithTimeout(10 * time.Second).WithPolling(20 * time.Millisecond).Should(Succeed())
		clk.Step(time.Minute + timerLateness)
		g.Eventually(func() int { return len(rc.got()) }).WithTimeout(10 * time.Second).Should(Equal(before + 2))
	}

	wh := create()
	failFor(wh, "relay-1")
	g.Eventually(func() int { return len(mb.got()) }).WithTimeout(10 * time.Second).Should(Equal(1))
	m := mb.got()[0]
	g.Expect(m.to).To(ConsistOf("ops@example.com"), "only the operator's allowed domain is mailed")
	g.Expect(m.subject).To(Equal("[hookline] A webhook keeps failing (uid " + string(wh.UID) + ")"))
	for _, tenantText := range []string{"evil", "reset-your-password", "login-here", "127.0.0.1", ns} {
		g.Expect(m.subject).NotTo(ContainSubstring(tenantText))
	}
	g.Expect(m.body).NotTo(ContainSubstring("http://"), "no link of the tenant's choosing")
	g.Expect(m.body).To(ContainSubstring("hxxp://127[.]0[.]0[.]1"))
	g.Expect(s.metric(t, "hookline_problem_email_refused_recipients_total")).To(BeNumerically(">=", 1))

	// Delete and recreate the Webhook (a new uid) and let it fail again: no second e-mail.
	g.Expect(tenant.Delete(ctx, wh)).To(Succeed())
	g.Eventually(func() bool {
		_, ok := s.app.Engine.Status(string(wh.UID))
		return ok
	}).WithTimeout(10*time.Second).Should(BeFalse(), "the dispatcher forgets the deleted Webhook")
	again := create()
	g.Expect(again.UID).NotTo(Equal(wh.UID))
	failFor(again, "relay-2")
	// The reporter did ask for the e-mail (counted as suppressed) and none went out.
	g.Eventually(func() float64 { return s.metric(t, "hookline_problem_emails_total") }).
		WithTimeout(10 * time.Second).Should(BeNumerically(">=", 2))
	g.Consistently(func() int { return len(mb.got()) }).WithTimeout(time.Second).Should(Equal(1),
		"recreating the Webhook reset the problem e-mail limit")
}
