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

// Package notify e-mails a Webhook's spec.problemNotificationEmails when its deliveries keep
// failing or it is auto-disabled, through a configured SMTP server (a relay such as Postfix, Amazon
// SES, SendGrid or Mailgun on port 587 with STARTTLS).
//
// The addresses are chosen by tenants and the e-mails come from the operator's sender, so the
// notifier must not be a relay a tenant can aim: it mails only domains the operator allows per
// account (Config.AllowedDomains; none by default), keeps every tenant-chosen text out of the
// Subject, shows the endpoint in the body as text no mail client turns into a link, and limits
// e-mails per webhook name and kind, per namespace and overall, keyed so that deleting and
// recreating a Webhook does not start afresh.
//
// It uses the standard library's net/smtp client: it has what a relay needs (STARTTLS, AUTH PLAIN
// that refuses to send the password in the clear except to localhost, per-command validation
// against CR/LF), it is frozen but security-maintained, and it keeps a third-party SMTP client out
// of the dispatcher's binary.
//
// Notify sends synchronously; Enqueue hands a problem to a bounded queue drained by the worker that
// Start runs, so that the delivery path never waits for a mail server.
package notify

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/utils/clock"

	"github.com/hookline/hookline/internal/safetext"
)

// Kind is what went wrong with a webhook.
type Kind string

// Kinds of problems.
const (
	// SustainedFailure: deliveries to the webhook keep failing; hookline keeps retrying.
	SustainedFailure Kind = "SustainedFailure"
	// AutoDisabled: the webhook was auto-disabled; nothing is delivered until it is reactivated.
	AutoDisabled Kind = "AutoDisabled"
)

func (k Kind) valid() bool { return k == SustainedFailure || k == AutoDisabled }

// STARTTLS modes of Config.StartTLS.
const (
	// StartTLSAuto upgrades the connection when the server offers STARTTLS. Without it, net/smtp
	// still refuses to send a password unless the server is localhost.
	StartTLSAuto = "auto"
	// StartTLSAlways fails unless the server offers STARTTLS: use it for any server across a network.
	StartTLSAlways = "always"
	// StartTLSNever never upgrades (a local relay or sidecar on localhost).
	StartTLSNever = "never"
)

// Defaults of the zero Config fields.
const (
	DefaultTimeout        = 30 * time.Second
	DefaultMinInterval    = time.Hour
	DefaultQueueSize      = 256
	DefaultNamespaceLimit = 10
	DefaultTotalLimit     = 100
)

// RateWindow is the period of Config.NamespaceLimit and Config.TotalLimit.
const RateWindow = time.Hour

// errRefused marks send's errors that are the server's permanent refusal (a 5xx reply) of what
// the tenant chose: every recipient, or the message (whose text quotes the receiver's answer). The
// server was asked all the same, which the limits exist to bound. A transient refusal (4xx:
// greylisting, throttling) is not one.
var errRefused = errors.New("refused by the server")

// errEveryRecipientRefused is send's error when the server refused each recipient for good.
var errEveryRecipientRefused = fmt.Errorf("the server refused every recipient (%w)", errRefused)

// permanent wraps err, a reply of the server, as errRefused when it is a permanent refusal.
func permanent(err error) error {
	var te *textproto.Error
	if errors.As(err, &te) && te.Code >= 500 {
		return fmt.Errorf("%w (%w)", err, errRefused)
	}
	return err
}

var (
	// ErrSuppressed is returned by Notify when a rate limit holds the e-mail back: one of the same
	// kind was sent for a webhook of the same namespace and name less than Config.MinInterval ago,
	// or the namespace or the whole dispatcher reached its limit per RateWindow. It is counted,
	// not logged as an error.
	ErrSuppressed = errors.New("problem e-mail suppressed by a rate limit")
	// ErrNoRecipients is returned by Notify when none of Problem.To is a valid address in a domain
	// the operator allows.
	ErrNoRecipients = errors.New("no valid and allowed problem-notification address")
)

// Config is where and how problem e-mails are sent.
type Config struct {
	// Address is the SMTP server, host:port (e.g. smtp.example.com:587).
	Address string
	// From is the sender, an RFC 5322 address such as "hookline <hookline@example.com>". It is both
	// the envelope sender and the From header.
	From string
	// Username, when set, authenticates with AUTH PLAIN, which net/smtp allows only over TLS or to
	// localhost.
	Username string
	// Password is Username's password. Prefer PasswordFile; at most one of the two may be set.
	// Neither is ever logged.
	Password string
	// PasswordFile is a file holding the password (a mounted Secret key), read at each send so that
	// a rotated Secret takes effect without a restart. A trailing newline is ignored.
	PasswordFile string
	// StartTLS is StartTLSAuto (the default when empty), StartTLSAlways or StartTLSNever.
	StartTLS string
	// RootCAs verify the server's certificate; nil means the system pool.
	RootCAs *x509.CertPool
	// LocalName is the name sent with EHLO; empty sends "localhost", as net/smtp does. Some relays
	// want a resolvable name here.
	LocalName string
	// Timeout bounds one e-mail, from dialling to QUIT; 0 means DefaultTimeout.
	Timeout time.Duration
	// MinInterval is the least time between two e-mails of the same kind for the same webhook, so
	// that a flapping webhook does not flood its owners; 0 means DefaultMinInterval, a negative
	// value disables the limit. A webhook is known by namespace and name, not uid: deleting and
	// recreating it does not reset the limit.
	MinInterval time.Duration
	// NamespaceLimit is the most e-mails about the webhooks of one namespace per RateWindow,
	// whatever their names; 0 means DefaultNamespaceLimit, a negative value disables the limit.
	NamespaceLimit int
	// TotalLimit is the most e-mails per RateWindow overall, so that tenants together cannot make
	// the operator's sender a spam source; 0 means DefaultTotalLimit, a negative value disables it.
	TotalLimit int
	// AllowedDomains are the recipient domains allowed per account. Addresses in other domains
	// are skipped and counted; with none allowed, no e-mail is sent.
	AllowedDomains AllowedDomains
	// QueueSize is how many problems Enqueue holds for the worker; 0 means DefaultQueueSize.
	QueueSize int
	// Metrics receives the counters; nil creates unregistered ones.
	Metrics *Metrics
}

// MarshalLog implements logr.Marshaler, so that logging a Config never shows the password.
func (c Config) MarshalLog() any {
	return struct {
		Address, From, Username, Password, PasswordFile, StartTLS, LocalName, AllowedDomains string
		Timeout, MinInterval                                                                 time.Duration
		QueueSize, NamespaceLimit, TotalLimit                                                int
	}{c.Address, c.From, c.Username, redacted(c.Password), c.PasswordFile, c.StartTLS, c.LocalName, c.AllowedDomains.String(),
		c.Timeout, c.MinInterval, c.QueueSize, c.NamespaceLimit, c.TotalLimit}
}

// String keeps the password out of fmt's %v and %+v.
func (c Config) String() string {
	return fmt.Sprintf("{Address:%s From:%s Username:%s Password:%s PasswordFile:%s StartTLS:%s Timeout:%s MinInterval:%s}",
		c.Address, c.From, c.Username, redacted(c.Password), c.PasswordFile, c.StartTLS, c.Timeout, c.MinInterval)
}

// GoString keeps the password out of fmt's %#v.
func (c Config) GoString() string { return "notify.Config" + c.String() }

func redacted(s string) string {
	if s == "" {
		return ""
	}
	return "<redacted>"
}

// Problem is one webhook problem to tell its owners about. Only what the webhook's owners may see
// goes here: never a client certificate, token or other secret.
type Problem struct {
	Kind Kind
	// Namespace, Name and UID identify the Webhook.
	Namespace, Name, UID string
	// URL is spec.url; its user info and query are left out of the e-mail.
	URL string
	// AccountID is the Acrobat Sign account the webhook's namespace is bound to.
	AccountID string
	// Since is when the failing streak began (status.failingSince).
	Since time.Time
	// ConsecutiveFailures counts failed attempts since the last success.
	ConsecutiveFailures int
	// LastError is the reason and message of the last failed attempt.
	LastError string
	// QueueDepth is the number of queued notifications (status.pendingNotifications).
	QueueDepth int
	// To are spec.problemNotificationEmails; invalid ones, and those in domains the operator does
	// not allow for AccountID, are skipped.
	To []string
}

// rateKey is what MinInterval applies to: a webhook by namespace and name, which a tenant cannot
// renew by recreating the object, and a kind.
type rateKey struct {
	namespace, name string
	kind            Kind
}

// Notifier sends problem e-mails. Its methods are safe for concurrent use.
type Notifier struct {
	cfg     Config
	from    *mail.Address
	host    string
	clk     clock.PassiveClock
	log     logr.Logger
	metrics *Metrics
	queue   chan Problem

	mu   sync.Mutex
	last map[rateKey]time.Time // when the last e-mail of a key was sent, or is being sent
	// perNamespace and total hold the times of the e-mails sent (or being sent) within the last
	// RateWindow, oldest first.
	perNamespace map[string][]time.Time
	total        []time.Time
	// queued counts each namespace's problems in queue, which holds at most queueShare of one
	// namespace: a tenant whose many webhooks fail at once must not fill it for everybody.
	queued map[string]int
}

// New checks cfg and returns a Notifier. clk dates the messages and drives the rate limit.
func New(cfg Config, clk clock.PassiveClock, log logr.Logger) (*Notifier, error) {
	host, port, err := net.SplitHostPort(cfg.Address)
	if err != nil || host == "" || port == "" {
		return nil, fmt.Errorf("SMTP address %q: want host:port", cfg.Address)
	}
	from, err := parseAddress(cfg.From)
	if err != nil {
		return nil, fmt.Errorf("sender address %q: %w", cfg.From, err)
	}
	switch cfg.StartTLS {
	case "":
		cfg.StartTLS = StartTLSAuto
	case StartTLSAuto, StartTLSAlways, StartTLSNever:
	default:
		return nil, fmt.Errorf("STARTTLS mode %q: want %s, %s or %s", cfg.StartTLS, StartTLSAuto, StartTLSAlways, StartTLSNever)
	}
	if cfg.Password != "" && cfg.PasswordFile != "" {
		return nil, errors.New("set the SMTP password or the password file, not both")
	}
	if cfg.Username == "" && (cfg.Password != "" || cfg.PasswordFile != "") {
		return nil, errors.New("an SMTP password needs a username")
	}
	if strings.ContainsAny(cfg.Username+cfg.LocalName, "\r\n") {
		return nil, errors.New("the SMTP username and local name must not contain line breaks")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MinInterval == 0 {
		cfg.MinInterval = DefaultMinInterval
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = DefaultQueueSize
	}
	if cfg.NamespaceLimit == 0 {
		cfg.NamespaceLimit = DefaultNamespaceLimit
	}
	if cfg.TotalLimit == 0 {
		cfg.TotalLimit = DefaultTotalLimit
	}
	if cfg.AllowedDomains.Empty() {
		log.Info("No recipient domain is allowed (--problem-email-allowed-domains): problem e-mails are sent to no one")
	}
	m := cfg.Metrics
	if m == nil {
		m = NewMetrics(nil)
	}
	return &Notifier{
		cfg: cfg, from: from, host: host, clk: clk, log: log, metrics: m,
		queue: make(chan Problem, cfg.QueueSize),
		last:  map[rateKey]time.Time{}, perNamespace: map[string][]time.Time{}, queued: map[string]int{},
	}, nil
}

// NeedLeaderElection implements manager.LeaderElectionRunnable: the worker sends what this
// process enqueues, as the status Reporter writes what this process delivers.
func (n *Notifier) NeedLeaderElection() bool { return false }

// Start drains the queue of Enqueue until ctx ends (manager.Runnable). What is still queued then is
// counted as dropped.
func (n *Notifier) Start(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			for {
				select {
				case p := <-n.queue:
					n.dequeued(p)
					n.metrics.count(p.Kind, OutcomeDropped)
				default:
					return nil
				}
			}
		case p := <-n.queue:
			n.dequeued(p)
			if ctx.Err() != nil { // select picks at random among ready cases
				n.metrics.count(p.Kind, OutcomeDropped)
				continue
			}
			_ = n.notify(ctx, p, true) // notify logs and counts its outcome
		}
	}
}

// Enqueue hands p to the worker without waiting. A problem that would be suppressed is counted so
// at once; when the queue is full, p is dropped, counted and logged; when p's namespace holds its
// share of the queue, p is left out. It reports whether p was dealt with (queued, or held back by
// its webhook's or namespace's rate limit): false means that it is for the caller to try again, as
// a full queue, or the overall limit reached, may be other namespaces' doing, not a reason to lose
// this e-mail (an auto-disable's is sent once).
func (n *Notifier) Enqueue(p Problem) bool {
	if !p.Kind.valid() {
		n.log.Error(nil, "Unknown problem kind; not enqueued", "kind", p.Kind, "webhook", p.Namespace+"/"+p.Name)
		return false
	}
	switch limit := n.suppressed(p); limit {
	case "":
	case limitTotal:
		return false // for the caller to try again: not counted (it is, every few seconds)
	default:
		n.metrics.count(p.Kind, OutcomeSuppressed)
		n.log.V(1).Info("Problem e-mail suppressed by a rate limit", "webhook", clean(p.Namespace)+"/"+clean(p.Name), "kind", p.Kind, "limit", limit)
		return true
	}
	if !n.admit(p.Namespace) {
		// Not dropped: the namespace's own problems fill its share, so this one is tried again once
		// they are sent (or held back by the namespace's limit then).
		n.log.V(1).Info("Problem e-mail not queued: the namespace's share of the queue is full", "webhook", clean(p.Namespace)+"/"+clean(p.Name), "kind", p.Kind, "share", n.queueShare())
		return false
	}
	p.To = slices.Clone(p.To) // the caller may hand us a slice of a cached object
	select {
	case n.queue <- p:
		return true
	default:
		n.dequeued(p)
		n.metrics.count(p.Kind, OutcomeDropped)
		n.log.Info("Problem e-mail queue full; dropping", "webhook", p.Namespace+"/"+p.Name, "kind", p.Kind, "queueSize", cap(n.queue))
		return false
	}
}

// queueShare is the most problems of one namespace the queue holds: an eighth of the queue, or its
// limit per RateWindow if lower (it could send no more).
func (n *Notifier) queueShare() int {
	share := max(1, cap(n.queue)/8)
	if n.cfg.NamespaceLimit > 0 {
		return min(n.cfg.NamespaceLimit, share)
	}
	return share
}

// admit counts a problem of namespace ns into the queue, unless the namespace holds its share.
func (n *Notifier) admit(ns string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.queued[ns] >= n.queueShare() {
		return false
	}
	n.queued[ns]++
	return true
}

// dequeued counts p out of the queue.
func (n *Notifier) dequeued(p Problem) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.queued[p.Namespace]--; n.queued[p.Namespace] <= 0 {
		delete(n.queued, p.Namespace)
	}
}

// Notify sends one e-mail about p to all its valid recipients in allowed domains, unless a rate
// limit holds it back (ErrSuppressed). It logs and counts its outcome; it returns ErrNoRecipients,
// without counting an e-mail or using up a limit, when no address of p.To is valid and allowed. A
// send that failed uses up no limit either, unless the server refused every recipient, or the
// message, for good (5xx).
func (n *Notifier) Notify(ctx context.Context, p Problem) error { return n.notify(ctx, p, false) }

// notify is Notify; admitted says that Enqueue found the overall limit not reached when it queued
// p, and told its caller so: p is not held back by that limit now (its caller recorded it as sent),
// so the limit may be passed by what was queued at once when it was reached.
func (n *Notifier) notify(ctx context.Context, p Problem, admitted bool) error {
	if !p.Kind.valid() {
		return fmt.Errorf("unknown problem kind %q", p.Kind)
	}
	log := n.log.WithValues("webhook", clean(p.Namespace)+"/"+clean(p.Name), "kind", p.Kind)
	now := n.clk.Now()
	release, limit := n.reserve(p, now, admitted)
	if limit != "" {
		n.metrics.count(p.Kind, OutcomeSuppressed)
		log.V(1).Info("Problem e-mail suppressed by a rate limit", "limit", limit)
		return fmt.Errorf("%w (%s)", ErrSuppressed, limit)
	}
	to := n.recipients(p, log)
	if len(to) == 0 {
		release()
		return ErrNoRecipients
	}
	msg, err := compose(p, n.from, to, now)
	if err == nil {
		err = n.send(logr.NewContext(ctx, log), to, msg)
	}
	if err != nil {
		if !errors.Is(err, errRefused) {
			// The server or the network failed, or refused for now: a later problem may try again
			// at once. A server that refused every recipient for good (unknown mailboxes in an
			// allowed domain), or the message (a content filter tripped by the receiver's text),
			// was asked all the same, which the limits exist to bound: a tenant must not have it
			// asked without end.
			release()
		}
		n.metrics.count(p.Kind, OutcomeFailed)
		log.Error(err, "Sending problem e-mail failed", "server", n.cfg.Address)
		return fmt.Errorf("sending problem e-mail for webhook %s/%s: %w", clean(p.Namespace), clean(p.Name), err)
	}
	n.metrics.count(p.Kind, OutcomeSent)
	log.Info("Sent problem e-mail", "recipients", len(to))
	return nil
}

// Rate limits, as named in logs and errors.
const (
	limitWebhook   = "one e-mail of this kind per webhook name and minimum interval"
	limitNamespace = "e-mails per namespace and hour"
	limitTotal     = "e-mails per hour overall"
)

// suppressed returns the rate limit that Notify(p) would now be held back by, or "".
func (n *Notifier) suppressed(p Problem) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.limitedLocked(p, n.clk.Now(), false)
}

// limitedLocked returns the rate limit that holds an e-mail about p back at now, or "". It drops
// the window entries older than RateWindow on the way.
func (n *Notifier) limitedLocked(p Problem, now time.Time, admitted bool) string {
	if n.cfg.MinInterval >= 0 {
		if t, ok := n.last[rateKey{p.Namespace, p.Name, p.Kind}]; ok && now.Sub(t) < n.cfg.MinInterval {
			return limitWebhook
		}
	}
	if n.cfg.NamespaceLimit > 0 {
		ns := recent(n.perNamespace[p.Namespace], now)
		if len(ns) == 0 {
			delete(n.perNamespace, p.Namespace)
		} else {
			n.perNamespace[p.Namespace] = ns
		}
		if len(ns) >= n.cfg.NamespaceLimit {
			return limitNamespace
		}
	}
	if n.cfg.TotalLimit > 0 {
		n.total = recent(n.total, now)
		if len(n.total) >= n.cfg.TotalLimit && !admitted {
			return limitTotal
		}
	}
	return ""
}

// recent returns the times of ts (oldest first) within RateWindow before now.
func recent(ts []time.Time, now time.Time) []time.Time {
	i := 0
	for i < len(ts) && now.Sub(ts[i]) >= RateWindow {
		i++
	}
	return ts[i:]
}

// reserve records an e-mail about p at now unless a rate limit holds it back (then it returns the
// limit); recording before sending keeps two concurrent calls from both sending. release undoes
// the record when nothing was sent.
func (n *Notifier) reserve(p Problem, now time.Time, admitted bool) (release func(), limit string) {
	k := rateKey{p.Namespace, p.Name, p.Kind}
	n.mu.Lock()
	defer n.mu.Unlock()
	if limit := n.limitedLocked(p, now, admitted); limit != "" {
		return nil, limit
	}
	// Forget expired records, so that the maps do not keep every webhook that ever failed.
	if len(n.last) >= 1024 {
		for key, t := range n.last {
			if now.Sub(t) >= max(n.cfg.MinInterval, 0) {
				delete(n.last, key)
			}
		}
	}
	if len(n.perNamespace) >= 1024 {
		for ns, ts := range n.perNamespace {
			if len(recent(ts, now)) == 0 {
				delete(n.perNamespace, ns)
			}
		}
	}
	prev, had := n.last[k]
	n.last[k] = now
	if n.cfg.NamespaceLimit > 0 {
		n.perNamespace[p.Namespace] = append(n.perNamespace[p.Namespace], now)
	}
	if n.cfg.TotalLimit > 0 {
		n.total = append(n.total, now)
	}
	return func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		if n.last[k].Equal(now) {
			if had {
				n.last[k] = prev
			} else {
				delete(n.last, k)
			}
		}
		n.perNamespace[p.Namespace] = dropOne(n.perNamespace[p.Namespace], now)
		if len(n.perNamespace[p.Namespace]) == 0 {
			delete(n.perNamespace, p.Namespace)
		}
		n.total = dropOne(n.total, now)
	}, ""
}

// dropOne removes one entry equal to t from ts.
func dropOne(ts []time.Time, t time.Time) []time.Time {
	for i := len(ts) - 1; i >= 0; i-- {
		if ts[i].Equal(t) {
			return append(ts[:i], ts[i+1:]...)
		}
	}
	return ts
}

// recipients parses p.To, skipping (and counting) what is not a single valid address or is in a
// domain the operator does not allow for p's account, and dropping duplicates.
func (n *Notifier) recipients(p Problem, log logr.Logger) []*mail.Address {
	var out []*mail.Address
	seen := map[string]bool{}
	for _, raw := range p.To {
		a, err := parseRecipient(raw)
		if err != nil {
			n.metrics.invalidRecipients.Inc()
			// Quoted, so that a crafted address cannot forge log lines.
			log.Info("Skipping an invalid problem-notification address", "address", strconv.Quote(truncate(raw, 256)), "reason", err.Error())
			continue
		}
		domain := a.Address[strings.LastIndexByte(a.Address, '@')+1:]
		if !n.cfg.AllowedDomains.Allows(p.AccountID, domain) {
			n.metrics.refusedRecipients.Inc()
			log.Info("Skipping a problem-notification address in a domain the operator does not allow for this account (--problem-email-allowed-domains)",
				"domain", strconv.Quote(truncate(domain, 256)), "account", strconv.Quote(truncate(p.AccountID, 256)))
			continue
		}
		if k := strings.ToLower(a.Address); !seen[k] {
			seen[k] = true
			out = append(out, a)
		}
	}
	return out
}

// parseAddress accepts exactly one RFC 5322 address with no control characters anywhere: a CR or
// LF would let a crafted value add headers or SMTP commands.
func parseAddress(s string) (*mail.Address, error) {
	if strings.IndexFunc(s, safetext.IsControl) >= 0 {
		return nil, errors.New("contains control characters")
	}
	a, err := mail.ParseAddress(s)
	if err != nil {
		return nil, err
	}
	if strings.IndexFunc(a.Address, safetext.IsControl) >= 0 || strings.IndexFunc(a.Name, safetext.IsControl) >= 0 {
		return nil, errors.New("contains control characters")
	}
	return a, nil
}

// parseRecipient is parseAddress for a tenant's recipient: a plain local part only (a relay may
// route "victim%other.example@allowed.example" or "other.example!victim@allowed.example", the
// percent hack and bang paths, past the domain allowlist, which reads only what follows the last
// @), and the address alone, without the display name or comment it came with (shown to the
// recipient in the To header as the sender's words).
func parseRecipient(s string) (*mail.Address, error) {
	a, err := parseAddress(s)
	if err != nil {
		return nil, err
	}
	if local := a.Address[:strings.LastIndexByte(a.Address, '@')]; strings.ContainsAny(local, `%!"/@\`) {
		return nil, errors.New("the part before the @ may not route the mail elsewhere (%, !, /, quotes)")
	}
	return &mail.Address{Address: a.Address}, nil
}

// send delivers msg to the recipients through the configured server, within Config.Timeout.
// The logger comes with ctx (logr.NewContext).
func (n *Notifier) send(ctx context.Context, to []*mail.Address, msg []byte) (err error) {
	log := logr.FromContextOrDiscard(ctx)
	ctx, cancel := context.WithTimeout(ctx, n.cfg.Timeout)
	defer cancel()
	defer func() {
		// The connection's deadline may expire a moment before ctx does: say which limit was hit
		// either way, so that callers can test for context.DeadlineExceeded or Canceled.
		switch {
		case err == nil:
		case ctx.Err() != nil:
			if !errors.Is(err, ctx.Err()) {
				err = fmt.Errorf("%w: %w", ctx.Err(), err)
			}
		case errors.Is(err, os.ErrDeadlineExceeded):
			err = fmt.Errorf("%w (timeout %s): %w", context.DeadlineExceeded, n.cfg.Timeout, err)
		}
	}()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", n.cfg.Address)
	if err != nil {
		return err
	}
	defer conn.Close()
	// net/smtp knows no context: a deadline bounds a slow server, and cancelling ctx (shutdown)
	// expires it at once.
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	c, err := smtp.NewClient(conn, n.host)
	if err != nil {
		return fmt.Errorf("greeting: %w", err)
	}
	defer c.Close()
	if n.cfg.LocalName != "" {
		if err := c.Hello(n.cfg.LocalName); err != nil {
			return fmt.Errorf("EHLO: %w", err)
		}
	}
	if n.cfg.StartTLS != StartTLSNever {
		offered, _ := c.Extension("STARTTLS")
		switch {
		case offered:
			tc := &tls.Config{ServerName: n.host, RootCAs: n.cfg.RootCAs, MinVersion: tls.VersionTLS12}
			if err := c.StartTLS(tc); err != nil {
				return fmt.Errorf("STARTTLS: %w", err)
			}
		case n.cfg.StartTLS == StartTLSAlways:
			return errors.New("the server does not offer STARTTLS, which is required")
		}
	}
	if n.cfg.Username != "" {
		if ok, _ := c.Extension("AUTH"); !ok {
			return errors.New("the server does not offer AUTH, but a username is configured")
		}
		password, err := n.password()
		if err != nil {
			return err
		}
		// PlainAuth refuses to send the password unless the connection is TLS or to localhost, so an
		// attacker stripping STARTTLS from the server's answer gets nothing.
		if err := c.Auth(smtp.PlainAuth("", n.cfg.Username, password, n.host)); err != nil {
			return fmt.Errorf("authenticating: %w", err)
		}
	}
	if err := c.Mail(n.from.Address); err != nil {
		return fmt.Errorf("MAIL FROM: %w", err)
	}
	accepted, transient := 0, false
	for _, a := range to {
		if err := c.Rcpt(a.Address); err != nil {
			// A refused recipient (unknown mailbox, relay denied for that domain) must not cost the
			// others their e-mail; anything else is a broken session.
			var te *textproto.Error
			if !errors.As(err, &te) {
				return fmt.Errorf("RCPT TO: %w", err)
			}
			log.Info("The SMTP server refused a problem-notification address", "address", a.Address, "reply", te.Error())
			transient = transient || te.Code < 500
			continue
		}
		accepted++
	}
	switch {
	case accepted == 0 && transient:
		return errors.New("the server refused every recipient, some for now")
	case accepted == 0:
		return errEveryRecipientRefused
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("DATA: %w", permanent(err))
	}
	if _, err := w.Write(msg); err != nil {
		return fmt.Errorf("writing the message: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("ending the message: %w", permanent(err))
	}
	// The server has taken the message; a failed QUIT changes nothing for its recipients.
	_ = c.Quit()
	return nil
}

func (n *Notifier) password() (string, error) {
	if n.cfg.PasswordFile == "" {
		return n.cfg.Password, nil
	}
	b, err := os.ReadFile(n.cfg.PasswordFile)
	if err != nil {
		// The path is not secret; the error from os names it and nothing of the content.
		return "", fmt.Errorf("reading the SMTP password file: %w", err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}
