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
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/hookline/hookline/internal/notify"
	"github.com/hookline/hookline/internal/testcerts"
	"github.com/hookline/hookline/internal/testlog"
)

var t0 = time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)

// envelope is one message as the test server received it.
type envelope struct {
	From string
	To   []string
	Data []byte
	TLS  bool
	User string
}

// mailServer is a real SMTP server on 127.0.0.1 (emersion/go-smtp) that records what it receives.
type mailServer struct {
	Addr string

	user, password string // AUTH PLAIN is required when user is set
	refuse         string // a recipient refused with 550
	greylist       string // a recipient refused with 450
	filter         string // a message holding it is refused with 554

	mu  sync.Mutex
	got []envelope
}

type serverOpts struct {
	host              string // default 127.0.0.1
	tls               *tls.Config
	allowInsecureAuth bool
	user, password    string
	refuse            string
	greylist          string
	filter            string
}

func startServer(t *testing.T, o serverOpts) *mailServer {
	t.Helper()
	ms := &mailServer{user: o.user, password: o.password, refuse: o.refuse, greylist: o.greylist, filter: o.filter}
	s := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &session{srv: ms, conn: c}, nil
	}))
	s.Domain = "localhost"
	s.TLSConfig = o.tls
	s.AllowInsecureAuth = o.allowInsecureAuth // when false, AUTH is offered only after STARTTLS
	s.ErrorLog = log.New(io.Discard, "", 0)
	s.ReadTimeout, s.WriteTimeout = 10*time.Second, 10*time.Second
	if o.host == "" {
		o.host = "127.0.0.1"
	}
	l, err := net.Listen("tcp", net.JoinHostPort(o.host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	ms.Addr = l.Addr().String()
	go func() { _ = s.Serve(l) }()
	t.Cleanup(func() { _ = s.Close() })
	return ms
}

func (ms *mailServer) received() []envelope {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return slices.Clone(ms.got)
}

type session struct {
	srv  *mailServer
	conn *smtp.Conn
	user string
	env  envelope
}

func (s *session) AuthMechanisms() []string {
	if s.srv.user == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (s *session) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, password string) error {
		if user != s.srv.user || password != s.srv.password {
			return errors.New("invalid credentials")
		}
		s.user = user
		return nil
	}), nil
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	if s.srv.user != "" && s.user == "" {
		return smtp.ErrAuthRequired
	}
	s.env = envelope{From: from}
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if to == s.srv.refuse {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	}
	if to == s.srv.greylist {
		return &smtp.SMTPError{Code: 450, EnhancedCode: smtp.EnhancedCode{4, 2, 0}, Message: "greylisted, try again later"}
	}
	s.env.To = append(s.env.To, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if s.srv.filter != "" && bytes.Contains(b, []byte(s.srv.filter)) {
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "message content rejected"}
	}
	s.env.Data = b
	_, s.env.TLS = s.conn.TLSConnectionState()
	s.env.User = s.user
	s.srv.mu.Lock()
	s.srv.got = append(s.srv.got, s.env)
	s.srv.mu.Unlock()
	return nil
}

func (s *session) Reset()        { s.env = envelope{} }
func (s *session) Logout() error { return nil }

type fixture struct {
	n     *notify.Notifier
	reg   *prometheus.Registry
	clock *clocktesting.FakeClock
	logs  *testlog.Buffer
}

func newNotifier(t *testing.T, cfg notify.Config) *fixture {
	t.Helper()
	f := &fixture{reg: prometheus.NewRegistry(), clock: clocktesting.NewFakeClock(t0), logs: &testlog.Buffer{}}
	if cfg.From == "" {
		cfg.From = "hookline <hookline@example.net>"
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.AllowedDomains == nil {
		cfg.AllowedDomains = notify.AllowedDomains{notify.AnyAccount: {"example.com", "example.org"}}
	}
	cfg.Metrics = notify.NewMetrics(f.reg)
	n, err := notify.New(cfg, f.clock, f.logs.Logger())
	if err != nil {
		t.Fatal(err)
	}
	f.n = n
	return f
}

// count reads hookline_problem_emails_total{kind,outcome}.
func (f *fixture) count(kind notify.Kind, outcome string) float64 {
	return gathered(f.reg, "hookline_problem_emails_total", map[string]string{"kind": string(kind), "outcome": outcome})
}

func (f *fixture) invalid() float64 {
	return gathered(f.reg, "hookline_problem_email_invalid_recipients_total", nil)
}

func gathered(reg *prometheus.Registry, name string, labels map[string]string) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		panic(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return -1 // absent
}

func problem(kind notify.Kind) notify.Problem {
	return notify.Problem{
		Kind: kind, Namespace: "demo", Name: "orders", UID: "0c3f5d2e-7a4b-4c1d-9e8f-1a2b3c4d5e6f",
		URL:       "https://receiver.example.com/hooks/orders",
		AccountID: "acc-1", Since: t0.Add(-3 * time.Hour), ConsecutiveFailures: 7,
		LastError:  "ConnectionFailed: dial tcp 10.0.0.7:443: connect: connection refused",
		QueueDepth: 12,
		To:         []string{"alice@example.com", "Bob <bob@example.org>"},
	}
}

// parsed is a received message, its headers decoded and its quoted-printable body read.
type parsed struct {
	Header  mail.Header
	Subject string
	To      []*mail.Address
	Body    string
}

func parse(t *testing.T, data []byte) parsed {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("not an RFC 5322 message: %v\n%s", err, data)
	}
	subj, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		t.Fatal(err)
	}
	to, err := msg.Header.AddressList("To")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(quotedprintable.NewReader(msg.Body))
	if err != nil {
		t.Fatal(err)
	}
	return parsed{Header: msg.Header, Subject: subj, To: to, Body: string(body)}
}

func addresses(as []*mail.Address) []string {
	out := make([]string, 0, len(as))
	for _, a := range as {
		out = append(out, a.Address)
	}
	return out
}

func TestAutoDisabledReachesEveryRecipient(t *testing.T) {
	g := NewWithT(t)
	srv := startServer(t, serverOpts{})
	f := newNotifier(t, notify.Config{Address: srv.Addr})

	g.Expect(f.n.Notify(context.Background(), problem(notify.AutoDisabled))).To(Succeed())

	got := srv.received()
	g.Expect(got).To(HaveLen(1))
	g.Expect(got[0].From).To(Equal("hookline@example.net"))
	g.Expect(got[0].To).To(ConsistOf("alice@example.com", "bob@example.org"))
	m := parse(t, got[0].Data)
	g.Expect(m.Subject).To(Equal("[hookline] A webhook was auto-disabled (uid 0c3f5d2e-7a4b-4c1d-9e8f-1a2b3c4d5e6f)"))
	from, err := m.Header.AddressList("From")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(from).To(ConsistOf(&mail.Address{Name: "hookline", Address: "hookline@example.net"}))
	g.Expect(addresses(m.To)).To(ConsistOf("alice@example.com", "bob@example.org"))
	date, err := m.Header.Date()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(date.Equal(t0)).To(BeTrue(), "Date %s comes from the injected clock", date)
	g.Expect(m.Header.Get("Message-ID")).To(MatchRegexp(`^<[^<>@\s]+@example\.net>$`))
	g.Expect(m.Header.Get("Auto-Submitted")).To(Equal("auto-generated"))
	g.Expect(m.Header.Get("Content-Type")).To(Equal("text/plain; charset=utf-8"))
	g.Expect(m.Body).To(ContainSubstring("auto-disabled the webhook demo/orders"))
	g.Expect(m.Body).To(ContainSubstring("2026-07-01T09:00:00Z (3h0m0s ago)"))
	g.Expect(m.Body).To(ContainSubstring("connect: connection refused"))
	g.Expect(m.Body).To(ContainSubstring("hxxps://receiver[.]example[.]com/hooks/orders"))
	g.Expect(m.Body).To(ContainSubstring("acc-1"))
	g.Expect(m.Body).To(ContainSubstring("kubectl annotate webhook orders -n demo hookline.io/reactivate=$(date +%s) --overwrite"))
	g.Expect(m.Body).To(ContainSubstring("hookline reactivate -n demo orders"))
	g.Expect(f.count(notify.AutoDisabled, notify.OutcomeSent)).To(Equal(1.0))
	g.Expect(f.count(notify.SustainedFailure, notify.OutcomeSent)).To(Equal(0.0))
}

func TestSustainedFailureMessage(t *testing.T) {
	g := NewWithT(t)
	srv := startServer(t, serverOpts{})
	f := newNotifier(t, notify.Config{Address: srv.Addr})

	g.Expect(f.n.Notify(context.Background(), problem(notify.SustainedFailure))).To(Succeed())

	got := srv.received()
	g.Expect(got).To(HaveLen(1))
	g.Expect(got[0].To).To(ConsistOf("alice@example.com", "bob@example.org"))
	m := parse(t, got[0].Data)
	g.Expect(m.Subject).To(Equal("[hookline] A webhook keeps failing (uid 0c3f5d2e-7a4b-4c1d-9e8f-1a2b3c4d5e6f)"))
	g.Expect(m.Body).To(ContainSubstring("Deliveries to the webhook demo/orders keep failing"))
	g.Expect(m.Body).To(MatchRegexp(`Consecutive failures:\s+7`))
	g.Expect(m.Body).To(MatchRegexp(`Queued notifications:\s+12`))
	g.Expect(m.Body).To(ContainSubstring("connect: connection refused"))
	g.Expect(m.Body).NotTo(ContainSubstring("kubectl annotate"), "nothing to reactivate yet")
	g.Expect(f.count(notify.SustainedFailure, notify.OutcomeSent)).To(Equal(1.0))
}

func TestRateLimitPerWebhookAndKind(t *testing.T) {
	g := NewWithT(t)
	srv := startServer(t, serverOpts{})
	f := newNotifier(t, notify.Config{Address: srv.Addr, MinInterval: time.Hour})
	ctx := context.Background()
	p := problem(notify.SustainedFailure)

	g.Expect(f.n.Notify(ctx, p)).To(Succeed())
	f.clock.Step(59 * time.Minute)
	g.Expect(f.n.Notify(ctx, p)).To(MatchError(notify.ErrSuppressed))
	g.Expect(srv.received()).To(HaveLen(1))
	g.Expect(f.count(notify.SustainedFailure, notify.OutcomeSuppressed)).To(Equal(1.0))

	// The limit is per webhook and per kind.
	g.Expect(f.n.Notify(ctx, problem(notify.AutoDisabled))).To(Succeed())
	other := p
	other.UID, other.Name = "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a", "invoices"
	g.Expect(f.n.Notify(ctx, other)).To(Succeed())
	g.Expect(srv.received()).To(HaveLen(3))

	// Enqueue counts a suppression at once instead of queueing it.
	f.n.Enqueue(p)
	g.Expect(f.count(notify.SustainedFailure, notify.OutcomeSuppressed)).To(Equal(2.0))

	f.clock.Step(time.Minute)
	g.Expect(f.n.Notify(ctx, p)).To(Succeed())
	g.Expect(srv.received()).To(HaveLen(4))
	g.Expect(f.count(notify.SustainedFailure, notify.OutcomeSent)).To(Equal(3.0))

}

func TestFailedSendDoesNotUseUpTheInterval(t *testing.T) {
	g := NewWithT(t)
	f := newNotifier(t, notify.Config{Address: closedAddress(t), MinInterval: time.Hour})
	p := problem(notify.AutoDisabled)

	g.Expect(f.n.Notify(context.Background(), p)).To(MatchError(ContainSubstring("connection refused")))
	// Nothing was sent, so the next problem tries again instead of being suppressed for an hour.
	g.Expect(f.n.Notify(context.Background(), p)).To(MatchError(ContainSubstring("connection refused")))
	g.Expect(f.count(notify.AutoDisabled, notify.OutcomeFailed)).To(Equal(2.0))
	g.Expect(f.count(notify.AutoDisabled, notify.OutcomeSuppressed)).To(Equal(0.0))
}

func TestHeaderInjectionIsNeutralised(t *testing.T) {
	g := NewWithT(t)
	srv := startServer(t, serverOpts{})
	f := newNotifier(t, notify.Config{Address: srv.Addr})
	p := problem(notify.AutoDisabled)
	p.Namespace = "demo\nX-Injected: yes"
	p.Name = "orders\r\nBcc: evil@attacker.example\r\n\r\nforged body"
	p.To = []string{"alice@example.com", "bob@example.org\r\nBcc: evil@attacker.example", "carol@example.com>\r\nRCPT TO:<evil@attacker.example"}

	g.Expect(f.n.Notify(context.Background(), p)).To(Succeed())

	got := srv.received()
	g.Expect(got).To(HaveLen(1))
	g.Expect(got[0].To).To(ConsistOf("alice@example.com"))
	m := parse(t, got[0].Data)
	g.Expect(m.Header).NotTo(HaveKey("Bcc"))
	g.Expect(m.Header).NotTo(HaveKey("X-Injected"))
	g.Expect(m.Subject).To(Equal("[hookline] A webhook was auto-disabled (uid 0c3f5d2e-7a4b-4c1d-9e8f-1a2b3c4d5e6f)"))
	g.Expect(addresses(m.To)).To(ConsistOf("alice@example.com"))
	header := string(got[0].Data[:bytes.Index(got[0].Data, []byte("\r\n\r\n"))])
	for _, l := range strings.Split(header, "\r\n") {
		g.Expect(l).NotTo(Or(HavePrefix("Bcc:"), HavePrefix("X-Injected:"), HavePrefix("forged")))
	}
	g.Expect(f.invalid()).To(Equal(2.0))
	// The crafted addresses are logged quoted, on one line.
	g.Expect(f.logs.String()).To(ContainSubstring(`bob@example.org\\r\\nBcc: evil@attacker.example`))
}

func TestInvalidAddressesAreSkipped(t *testing.T) {
	g := NewWithT(t)
	srv := startServer(t, serverOpts{refuse: "gone@example.com"})
	f := newNotifier(t, notify.Config{Address: srv.Addr})
	p := problem(notify.SustainedFailure)
	p.To = []string{"not an address", "", "alice@example.com", "a@b@c", "two@example.com, three@example.com", "ALICE@example.com", "gone@example.com", "dave@example.com"}

	g.Expect(f.n.Notify(context.Background(), p)).To(Succeed())

	got := srv.received()
	g.Expect(got).To(HaveLen(1))
	g.Expect(got[0].To).To(ConsistOf("alice@example.com", "dave@example.com"), "the server's refusal of one address costs the others nothing")
	g.Expect(f.invalid()).To(Equal(4.0))
	g.Expect(f.count(notify.SustainedFailure, notify.OutcomeSent)).To(Equal(1.0))
	g.Expect(f.logs.String()).To(ContainSubstring("refused a problem-notification address"))

	// No valid address at all: nothing is sent, nothing is counted as an e-mail...
	p = problem(notify.AutoDisabled)
	p.To = []string{"nope", "\r\n"}
	g.Expect(f.n.Notify(context.Background(), p)).To(MatchError(notify.ErrNoRecipients))
	g.Expect(srv.received()).To(HaveLen(1))
	g.Expect(f.invalid()).To(Equal(6.0))
	g.Expect(f.count(notify.AutoDisabled, notify.OutcomeSent) + f.count(notify.AutoDisabled, notify.OutcomeFailed)).To(BeZero())
	// ...and the interval is not used up: once the address is fixed, the e-mail goes out.
	p.To = []string{"erin@example.com"}
	g.Expect(f.n.Notify(context.Background(), p)).To(Succeed())
	g.Expect(srv.received()).To(HaveLen(2))
}

func TestSecretsOfTheEndpointAreNotMailed(t *testing.T) {
	g := NewWithT(t)
	srv := startServer(t, serverOpts{})
	f := newNotifier(t, notify.Config{Address: srv.Addr})
	p := problem(notify.AutoDisabled)
	p.URL = "https://receiver.example.com/hooks/orders?token=s3cr3t-t0ken&x=1"
	p.LastError = `ConnectionFailed: Post "https://receiver.example.com/hooks/orders?token=s3cr3t-t0ken&x=1": dial tcp: i/o timeout`

	g.Expect(f.n.Notify(context.Background(), p)).To(Succeed())

	got := srv.received()
	g.Expect(got).To(HaveLen(1))
	g.Expect(string(got[0].Data)).NotTo(ContainSubstring("s3cr3t"))
	m := parse(t, got[0].Data)
	g.Expect(m.Body).NotTo(ContainSubstring("s3cr3t"))
	g.Expect(m.Body).To(ContainSubstring("hxxps://receiver[.]example[.]com/hooks/orders?… (query not shown)"))
	g.Expect(m.Body).To(ContainSubstring("dial tcp: i/o timeout"))
}

// A receiver writes what it likes into the error a failed delivery reports (here Go's "malformed
// HTTP response" quoting its status line): none of it becomes a link or reorders the line in the
// e-mail, which says that hookline sends no links. Before, only the endpoint's own host and
// http(s):// were written inert, and a mail client linked "www.evil.example/login".
func TestReceiverTextInTheErrorIsNoLink(t *testing.T) {
	g := NewWithT(t)
	srv := startServer(t, serverOpts{})
	f := newNotifier(t, notify.Config{Address: srv.Addr})
	p := problem(notify.SustainedFailure)
	p.LastError = `ConnectionFailed: net/http: Transport failed to read from server: malformed HTTP response ` +
		`"HTTP/1.1 Deliveries suspended - re-authorise at www.evil.example/login or 203.0.113.7, ask help@evil.example ` + "\u202e" + `gnp.exe"`

	g.Expect(f.n.Notify(context.Background(), p)).To(Succeed())

	got := srv.received()
	g.Expect(got).To(HaveLen(1))
	m := parse(t, got[0].Data)
	g.Expect(m.Body).To(ContainSubstring("re-authorise at www[.]evil[.]example/login or 203[.]0[.]113[.]7, ask help[at]evil[.]example gnp[.]exe"))
	for _, linkable := range []string{"www.evil.example", "evil.example", "203.0.113.7", "help@", "\u202e"} {
		g.Expect(m.Body).NotTo(ContainSubstring(linkable))
	}

	// A scheme in capitals before a host written as one number (a TLS certificate's name, quoted
	// in the handshake's error), and names joined by the dots browsers read as dots.
	p.Name, p.UID = "second", "uid-second" // one e-mail per webhook name and interval
	p.LastError = "TLSError: certificate is valid for Deliveries suspended - re-authorise at HTTPS://1249767123/login, not x; " +
		"malformed HTTP version \"Http://login\u3002acme-sso\uff0eexample/reauth\""
	g.Expect(f.n.Notify(context.Background(), p)).To(Succeed())
	g.Eventually(srv.received).Should(HaveLen(2))
	m = parse(t, srv.received()[1].Data)
	g.Expect(m.Body).To(ContainSubstring("hxxpS://1249767123/login"))
	g.Expect(m.Body).To(ContainSubstring("hxxp://login[.]acme-sso[.]example/reauth"))
	for _, linkable := range []string{"HTTPS://", "Http://", "\u3002", "\uff0e"} {
		g.Expect(m.Body).NotTo(ContainSubstring(linkable))
	}

	// A certificate's names (Go's parser takes any ASCII in a DNS name, and the handshake's error
	// lists them): a Windows network path, whose opening sends the reader's credentials to its
	// host, another scheme, and names joined by the other characters IDNA reads as dots.
	p.Name, p.UID = "third", "uid-third"
	p.LastError = `TLSError: certificate is valid for \\1249767123\reauth, file://1249767123/x, file:/\1249767123/y, ` +
		"https:/1249767123/login, _https://1249767123/z, login\u2024acme-sso\ufe52example, not C:\\inetpub"
	g.Expect(f.n.Notify(context.Background(), p)).To(Succeed())
	g.Eventually(srv.received).Should(HaveLen(3))
	m = parse(t, srv.received()[2].Data)
	g.Expect(m.Body).To(ContainSubstring(`[\][\]1249767123\reauth, file:[//]1249767123/x, file:[//]1249767123/y, ` +
		`https:[/]1249767123/login, _https:[//]1249767123/z, login[.]acme-sso[.]example, not C:\inetpub`))
	for _, linkable := range []string{`\\`, "file:/", "https:/", "\u2024", "\ufe52"} {
		g.Expect(m.Body).NotTo(ContainSubstring(linkable))
	}
}

// A tenant names its Webhook, or the path of its endpoint, like a host ("www.login-acme.example"):
// neither becomes a link in the e-mail, and the commands name the Webhook as NAME, explained.
func TestDottedNamesInTheEmailAreNoLinks(t *testing.T) {
	g := NewWithT(t)
	srv := startServer(t, serverOpts{})
	f := newNotifier(t, notify.Config{Address: srv.Addr})
	p := problem(notify.AutoDisabled)
	p.Name = "www.login-acme.example"
	p.URL = "https://hooks.example.com/www.evil.example/login"
	g.Expect(f.n.Notify(context.Background(), p)).To(Succeed())
	got := srv.received()
	g.Expect(got).To(HaveLen(1))
	m := parse(t, got[0].Data)
	for _, linkable := range []string{"www.login-acme.example", "login-acme.example", "www.evil.example", "hooks.example.com", "https://"} {
		g.Expect(m.Body).NotTo(ContainSubstring(linkable))
	}
	g.Expect(m.Body).To(ContainSubstring("www[.]login-acme[.]example"))
	g.Expect(m.Body).To(ContainSubstring("hookline reactivate -n demo NAME --wait"))
	g.Expect(m.Body).To(ContainSubstring("where NAME is the Webhook's name above"))
}

// closedAddress is a 127.0.0.1 port nobody listens on.
func closedAddress(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

func TestServerDown(t *testing.T) {
	g := NewWithT(t)
	f := newNotifier(t, notify.Config{Address: closedAddress(t)})

	err := f.n.Notify(context.Background(), problem(notify.AutoDisabled))
	g.Expect(err).To(MatchError(ContainSubstring("connection refused")))
	g.Expect(f.count(notify.AutoDisabled, notify.OutcomeFailed)).To(Equal(1.0))

	// Through the queue: Enqueue returns at once, the worker counts the failure.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- f.n.Start(ctx) }()
	f.n.Enqueue(problem(notify.SustainedFailure))
	g.Eventually(func() float64 { return f.count(notify.SustainedFailure, notify.OutcomeFailed) }).
		WithTimeout(10 * time.Second).Should(Equal(1.0))
	cancel()
	g.Eventually(done).WithTimeout(5 * time.Second).Should(Receive(BeNil()))
}

// silentServer accepts connections and never says a word, like a black-holed relay.
func silentServer(t *testing.T) (addr string, accepted <-chan struct{}) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan struct{}, 16)
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			ch <- struct{}{}
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return l.Addr().String(), ch
}

func TestSilentServerTimesOut(t *testing.T) {
	g := NewWithT(t)
	addr, _ := silentServer(t)
	f := newNotifier(t, notify.Config{Address: addr, Timeout: 200 * time.Millisecond})

	done := make(chan error, 1)
	go func() { done <- f.n.Notify(context.Background(), problem(notify.AutoDisabled)) }()
	var err error
	g.Eventually(done).WithTimeout(10 * time.Second).Should(Receive(&err))
	g.Expect(err).To(MatchError(context.DeadlineExceeded))
	g.Expect(f.count(notify.AutoDisabled, notify.OutcomeFailed)).To(Equal(1.0))
}

func TestStopAbortsAStuckSend(t *testing.T) {
	g := NewWithT(t)
	addr, accepted := silentServer(t)
	f := newNotifier(t, notify.Config{Address: addr, Timeout: time.Hour, QueueSize: 4})

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- f.n.Start(ctx) }()
	p := problem(notify.AutoDisabled)
	f.n.Enqueue(p)
	g.Eventually(accepted).WithTimeout(10 * time.Second).Should(Receive())
	queued := p
	queued.Name = "queued"
	f.n.Enqueue(queued) // waits behind the stuck one

	cancel()
	g.Eventually(done).WithTimeout(5 * time.Second).Should(Receive(BeNil()))
	g.Expect(f.count(notify.AutoDisabled, notify.OutcomeFailed)).To(Equal(1.0))
	g.Expect(f.count(notify.AutoDisabled, notify.OutcomeDropped)).To(Equal(1.0), "what is still queued at shutdown is counted as dropped")
}

func TestEnqueueNeverBlocks(t *testing.T) {
	g := NewWithT(t)
	srv := startServer(t, serverOpts{})
	f := newNotifier(t, notify.Config{Address: srv.Addr, QueueSize: 2})

	// No worker yet: two fit, the rest are dropped at once, and Enqueue says so (the caller tries
	// them again later).
	for _, uid := range []string{"a", "b", "c", "d", "e"} {
		p := problem(notify.SustainedFailure)
		p.UID, p.Name, p.Namespace = uid, "wh-"+uid, "ns-"+uid // each namespace well within its share
		g.Expect(f.n.Enqueue(p)).To(Equal(uid == "a" || uid == "b"), uid)
	}
	g.Expect(f.count(notify.SustainedFailure, notify.OutcomeDropped)).To(Equal(3.0))
	g.Expect(f.logs.String()).To(ContainSubstring("queue full"))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- f.n.Start(ctx) }()
	g.Eventually(func() float64 { return f.count(notify.SustainedFailure, notify.OutcomeSent) }).
		WithTimeout(10 * time.Second).Should(Equal(2.0))
	g.Expect(srv.received()).To(HaveLen(2))
	cancel()
	g.Eventually(done).WithTimeout(5 * time.Second).Should(Receive(BeNil()))
}

// tlsServer starts a server offering STARTTLS with a certificate of a throw-away CA.
func tlsServer(t *testing.T, user, password string) (*mailServer, *testcerts.CA) {
	t.Helper()
	ca, err := testcerts.NewCA("smtp-test-ca")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Server()
	if err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, serverOpts{
		tls:  &tls.Config{Certificates: []tls.Certificate{leaf.TLS}, MinVersion: tls.VersionTLS12},
		user: user, password: password,
	})
	return srv, ca
}

func TestAuthOverStartTLS(t *testing.T) {
	g := NewWithT(t)
	const password = "p4ss-W0rd-never-logged"
	srv, ca := tlsServer(t, "hookline", password)
	pwFile := filepath.Join(t.TempDir(), "password")
	g.Expect(os.WriteFile(pwFile, []byte(password+"\n"), 0o600)).To(Succeed())

	for name, cfg := range map[string]notify.Config{
		"password":      {Password: password},
		"password file": {PasswordFile: pwFile},
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			before := len(srv.received())
			cfg.Address, cfg.Username, cfg.StartTLS, cfg.RootCAs = srv.Addr, "hookline", notify.StartTLSAlways, ca.Pool()
			f := newNotifier(t, cfg)
			f.logs.Logger().Info("Problem e-mails", "config", cfg) // as a main would log its settings

			g.Expect(f.n.Notify(context.Background(), problem(notify.AutoDisabled))).To(Succeed())
			g.Expect(f.n.Notify(context.Background(), problem(notify.SustainedFailure))).To(Succeed())

			got := srv.received()[before:]
			g.Expect(got).To(HaveLen(2))
			g.Expect(got[0].TLS).To(BeTrue())
			g.Expect(got[0].User).To(Equal("hookline"))
			g.Expect(got[0].To).To(ConsistOf("alice@example.com", "bob@example.org"))
			logs := f.logs.String()
			g.Expect(logs).To(ContainSubstring("Sent problem e-mail"))
			if cfg.Password != "" {
				g.Expect(logs).To(ContainSubstring(`"Password"="<redacted>"`))
			}
			g.Expect(logs).NotTo(ContainSubstring(password))
		})
	}
}

func TestAuthFailures(t *testing.T) {
	const password = "right-password"
	srv, ca := tlsServer(t, "hookline", password)
	for name, tc := range map[string]struct {
		cfg     notify.Config
		wantErr string
	}{
		"wrong password": {
			cfg:     notify.Config{Username: "hookline", Password: "wrong-password", RootCAs: ca.Pool()},
			wantErr: "authenticating",
		},
		"untrusted certificate": {
			cfg:     notify.Config{Username: "hookline", Password: password}, // system roots
			wantErr: "certificate signed by unknown authority",
		},
		"STARTTLS refused by configuration, so no AUTH offered": {
			cfg:     notify.Config{Username: "hookline", Password: password, StartTLS: notify.StartTLSNever},
			wantErr: "does not offer AUTH",
		},
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			tc.cfg.Address = srv.Addr
			f := newNotifier(t, tc.cfg)
			err := f.n.Notify(context.Background(), problem(notify.AutoDisabled))
			g.Expect(err).To(MatchError(ContainSubstring(tc.wantErr)))
			g.Expect(f.count(notify.AutoDisabled, notify.OutcomeFailed)).To(Equal(1.0))
			g.Expect(f.logs.String()).NotTo(ContainSubstring("wrong-password"))
			g.Expect(f.logs.String()).NotTo(ContainSubstring(password))
		})
	}
	g := NewWithT(t)
	g.Expect(srv.received()).To(BeEmpty())
}

// TestNoPasswordInTheClear plays an attacker who strips STARTTLS from the server's answer and
// offers AUTH on the plain connection: with StartTLS "auto" the password must still not be sent.
// net/smtp lets a password travel in the clear to localhost only, and recognises localhost by name,
// so the server listens on another loopback address.
func TestNoPasswordInTheClear(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("no second loopback address here: %v", err)
	}
	_ = l.Close()
	g := NewWithT(t)
	const password = "would-travel-in-the-clear"
	srv := startServer(t, serverOpts{host: "127.0.0.2", allowInsecureAuth: true, user: "hookline", password: password})
	f := newNotifier(t, notify.Config{Address: srv.Addr, Username: "hookline", Password: password})

	err = f.n.Notify(context.Background(), problem(notify.AutoDisabled))
	g.Expect(err).To(MatchError(ContainSubstring("unencrypted connection")))
	g.Expect(srv.received()).To(BeEmpty())
	g.Expect(f.logs.String()).NotTo(ContainSubstring(password))
}

func TestStartTLSAlwaysNeedsTheOffer(t *testing.T) {
	g := NewWithT(t)
	srv := startServer(t, serverOpts{}) // no STARTTLS
	f := newNotifier(t, notify.Config{Address: srv.Addr, StartTLS: notify.StartTLSAlways})
	err := f.n.Notify(context.Background(), problem(notify.AutoDisabled))
	g.Expect(err).To(MatchError(ContainSubstring("does not offer STARTTLS")))
	g.Expect(srv.received()).To(BeEmpty())

	// auto sends in the clear to such a server, and upgrades when offered.
	f = newNotifier(t, notify.Config{Address: srv.Addr})
	g.Expect(f.n.Notify(context.Background(), problem(notify.AutoDisabled))).To(Succeed())
	g.Expect(srv.received()).To(HaveLen(1))
	g.Expect(srv.received()[0].TLS).To(BeFalse())

	tsrv, ca := tlsServer(t, "", "")
	f = newNotifier(t, notify.Config{Address: tsrv.Addr, RootCAs: ca.Pool()})
	g.Expect(f.n.Notify(context.Background(), problem(notify.AutoDisabled))).To(Succeed())
	g.Expect(tsrv.received()).To(HaveLen(1))
	g.Expect(tsrv.received()[0].TLS).To(BeTrue())
}

func TestNewChecksTheConfig(t *testing.T) {
	for name, cfg := range map[string]notify.Config{
		"no port":                {Address: "smtp.example.com", From: "h@example.com"},
		"no sender":              {Address: "smtp.example.com:587"},
		"bad sender":             {Address: "smtp.example.com:587", From: "hookline"},
		"sender with line break": {Address: "smtp.example.com:587", From: "h@example.com\r\nBcc: x@example.com"},
		"bad STARTTLS mode":      {Address: "smtp.example.com:587", From: "h@example.com", StartTLS: "sometimes"},
		"two passwords":          {Address: "smtp.example.com:587", From: "h@example.com", Username: "u", Password: "p", PasswordFile: "/f"},
		"password without user":  {Address: "smtp.example.com:587", From: "h@example.com", Password: "p"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := notify.New(cfg, clocktesting.NewFakeClock(t0), logr.Discard())
			NewWithT(t).Expect(err).To(HaveOccurred())
		})
	}
}

func TestMetricsAreRegistered(t *testing.T) {
	g := NewWithT(t)
	reg := prometheus.NewRegistry()
	notify.NewMetrics(reg)
	g.Expect(gathered(reg, "hookline_problem_emails_total", map[string]string{"kind": "AutoDisabled", "outcome": "failed"})).To(Equal(0.0))
	g.Expect(gathered(reg, "hookline_problem_email_invalid_recipients_total", nil)).To(Equal(0.0))
	g.Expect(gathered(reg, "hookline_problem_email_refused_recipients_total", nil)).To(Equal(0.0))
}

// A tenant whose many webhooks fail at once fills no more than its namespace's share of the one
// e-mail queue (its limit per window): another namespace's auto-disable still finds room, and
// what was left out is for the caller to try again, not dropped.
func TestOneNamespaceHoldsItsShareOfTheQueue(t *testing.T) {
	g := NewWithT(t)
	srv := startServer(t, serverOpts{})
	f := newNotifier(t, notify.Config{Address: srv.Addr, QueueSize: 16, NamespaceLimit: 2, TotalLimit: -1})
	for i := range 20 {
		p := problem(notify.SustainedFailure)
		p.Namespace, p.Name = "flood", fmt.Sprintf("wh-%d", i)
		g.Expect(f.n.Enqueue(p)).To(Equal(i < 2), "flood's webhook %d", i)
	}
	victim := problem(notify.AutoDisabled)
	victim.Namespace = "victim"
	g.Expect(f.n.Enqueue(victim)).To(BeTrue(), "the victim finds room")
	g.Expect(f.count(notify.SustainedFailure, notify.OutcomeDropped)).To(Equal(0.0), "left out, not dropped")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = f.n.Start(ctx) }()
	g.Eventually(srv.received).WithTimeout(10 * time.Second).Should(HaveLen(3))
	// Sent, the flood's share is free again; its limit per window now holds the rest back.
	again := problem(notify.SustainedFailure)
	again.Namespace, again.Name = "flood", "wh-19"
	g.Eventually(func() bool { return f.n.Enqueue(again) }).WithTimeout(10 * time.Second).Should(BeTrue())
	g.Eventually(func() float64 { return f.count(notify.SustainedFailure, notify.OutcomeSuppressed) }).
		WithTimeout(10 * time.Second).Should(Equal(1.0))
	g.Expect(srv.received()).To(HaveLen(3))

	// A limit per window larger than an eighth of the queue does not widen the share.
	wide := newNotifier(t, notify.Config{Address: srv.Addr, QueueSize: 16, NamespaceLimit: 300, TotalLimit: -1})
	for i := range 4 {
		p := problem(notify.SustainedFailure)
		p.Namespace, p.Name = "flood", fmt.Sprintf("wh-%d", i)
		g.Expect(wide.n.Enqueue(p)).To(Equal(i < 2), "flood's webhook %d with a wide limit", i)
	}
}

// A server that refuses every recipient for good (unknown mailboxes in an allowed domain), or the
// message, was asked all the same: that uses up the webhook's interval and the namespace's limit,
// as a sent e-mail does, so a tenant cannot have the operator's relay asked without end. A server
// that could not be reached (TestFailedSendDoesNotUseUpTheInterval), or refused for now, uses up
// nothing.
func TestARefusedRecipientUsesUpTheLimits(t *testing.T) {
	g := NewWithT(t)
	srv := startServer(t, serverOpts{refuse: "nobody@example.com"})
	f := newNotifier(t, notify.Config{Address: srv.Addr, MinInterval: time.Hour, NamespaceLimit: 2})
	ctx := context.Background()
	p := problem(notify.AutoDisabled)
	p.To = []string{"nobody@example.com"}
	g.Expect(f.n.Notify(ctx, p)).To(MatchError(ContainSubstring("refused every recipient")))
	g.Expect(f.n.Notify(ctx, p)).To(MatchError(notify.ErrSuppressed), "the interval is used up")
	q := p
	q.Name = "other"
	g.Expect(f.n.Notify(ctx, q)).To(MatchError(ContainSubstring("refused every recipient")))
	r := p
	r.Name, r.To = "third", []string{"alice@example.com"}
	g.Expect(f.n.Notify(ctx, r)).To(MatchError(ContainSubstring("per namespace")), "the namespace's limit is used up")
	g.Expect(srv.received()).To(BeEmpty())
	g.Expect(f.count(notify.AutoDisabled, notify.OutcomeFailed)).To(Equal(2.0))

	// A message refused for good for its text (a content filter, tripped by the receiver's words
	// quoted in it) was asked too; a recipient refused for now (greylisting) uses up nothing.
	filtered := startServer(t, serverOpts{filter: "trip-the-filter", greylist: "later@example.com"})
	f = newNotifier(t, notify.Config{Address: filtered.Addr, MinInterval: time.Hour, NamespaceLimit: 2})
	p = problem(notify.AutoDisabled)
	p.LastError = "ConnectionFailed: trip-the-filter"
	g.Expect(f.n.Notify(ctx, p)).To(MatchError(ContainSubstring("554")))
	g.Expect(f.n.Notify(ctx, p)).To(MatchError(notify.ErrSuppressed), "the interval is used up")
	q = p
	q.Name, q.To, q.LastError = "greylisted", []string{"later@example.com"}, "ConnectionFailed"
	g.Expect(f.n.Notify(ctx, q)).To(MatchError(ContainSubstring("some for now")))
	g.Expect(f.n.Notify(ctx, q)).To(MatchError(ContainSubstring("some for now")), "nothing used up: tried again")
}
