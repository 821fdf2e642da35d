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
			c.Problems = notify.Config{Address: mb.addr, From: "hookline@example.com", StartTLS: notify.StartTLSNever}
			c.ProblemAfter = time.Hour
			spec.ProblemNotificationEmails = recipients
		})
	g.Eventually(func() int { return len(mb.got()) }).WithTimeout(10*time.Second).Should(Equal(2), func() string { return fmt.Sprintf("%+v", mb.got()) })
	g.Consistently(func() int { return len(mb.got()) }).WithTimeout(500*time.Millisecond).Should(Equal(2),
		"one e-mail per failing streak and one for the auto-disable")
	msgs := mb.got()
	for _, m := range msgs {
		g.Expect(m.to).To(ConsistOf("ops@example.com", "oncall@example.org"))
		g.Expect(m.subject).To(ContainSubstring(wh.Namespace + "/" + wh.Name))
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
		c.Problems = notify.Config{Address: mb.addr, From: "hookline@example.com", StartTLS: notify.StartTLSNever}
		c.ProblemAfter = time.Hour
	}}
	s := startStack(t, o)
	spec := accountSpec(rc.URL)
	spec.ProblemNotificationEmails = []hooklinev1.Email{"ops@example.com"}
	wh := s.activeWebhook(t, ns, "failing", spec)
	s.mustPost(t, event("restart-1", "acc-problems-restart"))

	// Attempts at 0, 1, 3, 7, 15, 31 and 63 minutes; the streak is an hour old at the last one.
	attemptAt := func(k int, minutes int) {
		t.Helper()
		clk.SetTime(start.Add(time.Duration(minutes)*time.Minute + timerLateness))
		g.Eventually(func() int { return len(rc.got()) }).WithTimeout(10*time.Second).Should(Equal(k+1), "attempt %d", k)
		g.Eventually(func(g Gomega) {
			g.Expect(deref(getWebhook(g, wh).Status.ConsecutiveFailures)).To(BeEquivalentTo(k + 1))
		}).WithTimeout(10 * time.Second).WithPolling(20 * time.Millisecond).Should(Succeed())
	}
	g.Eventually(func() int { return len(rc.got()) }).WithTimeout(10 * time.Second).Should(Equal(1))
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
