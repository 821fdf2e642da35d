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

package notify

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"net/url"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/internal/safetext"
)

// compose builds the RFC 5322 message about p. The Subject holds no text a tenant chose (only the
// kind and the uid the API server assigned), so that a tenant cannot make the operator's sender
// say what it likes where recipients look first. Every value that reaches a header is cleaned of
// control characters, so that a crafted name cannot add a header or end the header block; the body
// is quoted-printable, so that no line of it can be read as SMTP or MIME structure.
func compose(p Problem, from *mail.Address, to []*mail.Address, now time.Time) ([]byte, error) {
	ns, name := clean(truncate(p.Namespace, 253)), clean(truncate(p.Name, 253))
	var b bytes.Buffer
	header := func(k, v string) { b.WriteString(k + ": " + v + "\r\n") }
	header("From", from.String())
	addrs := make([]string, len(to))
	for i, a := range to {
		addrs[i] = a.String()
	}
	header("To", strings.Join(addrs, ",\r\n ")) // folded: ten long addresses exceed a line's 998 octets
	header("Subject", mime.QEncoding.Encode("utf-8", subject(p.Kind, p.UID)))
	header("Date", now.Format(time.RFC1123Z))
	id, err := messageID(from, now)
	if err != nil {
		return nil, err
	}
	header("Message-ID", id)
	header("MIME-Version", "1.0")
	header("Content-Type", "text/plain; charset=utf-8")
	header("Content-Transfer-Encoding", "quoted-printable")
	// RFC 3834: no out-of-office replies to a robot.
	header("Auto-Submitted", "auto-generated")
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	if _, err := qp.Write([]byte(body(p, ns, name, now))); err != nil {
		return nil, err
	}
	if err := qp.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// uidRE is the form of the uids the API server assigns; anything else stays out of the Subject.
var uidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

func subject(k Kind, uid string) string {
	what := "A webhook keeps failing"
	if k == AutoDisabled {
		what = "A webhook was auto-disabled"
	}
	if !uidRE.MatchString(uid) {
		return "[hookline] " + what
	}
	return fmt.Sprintf("[hookline] %s (uid %s)", what, uid)
}

func messageID(from *mail.Address, now time.Time) (string, error) {
	var r [12]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", err
	}
	domain := "hookline.invalid"
	if i := strings.LastIndexByte(from.Address, '@'); i >= 0 && i < len(from.Address)-1 {
		domain = from.Address[i+1:]
	}
	return fmt.Sprintf("<%s.%s@%s>", now.UTC().Format("20060102T150405Z"), hex.EncodeToString(r[:]), domain), nil
}

func body(p Problem, ns, rawName string, now time.Time) string {
	// A Webhook's name may be dotted ("www.login-acme.example"): shown inert, as the endpoint, and
	// in the commands as NAME, explained, rather than as a link of the tenant's choosing.
	name := dotted.ReplaceAllStringFunc(rawName, func(m string) string { return strings.ReplaceAll(m, ".", "[.]") })
	qns, qname := shellQuote(ns), shellQuote(rawName)
	if name != rawName {
		qname = "NAME"
	}
	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	field := func(label, value string) { fmt.Fprintf(&b, "%-22s %s\n", label+":", value) }
	since := "unknown"
	if !p.Since.IsZero() {
		since = fmt.Sprintf("%s (%s ago)", p.Since.UTC().Format(time.RFC3339), now.Sub(p.Since).Round(time.Minute))
	}
	switch p.Kind {
	case AutoDisabled:
		line("hookline has auto-disabled the webhook %s/%s:", ns, name)
		line("no notification could be delivered to its endpoint for too long. Nothing is")
		line("queued or sent to it any more; events that happen before it is reactivated")
		line("are lost.")
	default:
		line("Deliveries to the webhook %s/%s keep failing.", ns, name)
		line("hookline keeps retrying with growing delays; notifications that cannot be")
		line("delivered in time are dropped, and a webhook without any successful delivery")
		line("for long enough is auto-disabled.")
	}
	line("")
	field("Webhook", ns+"/"+name)
	if p.UID != "" {
		field("UID", clean(p.UID))
	}
	if p.AccountID != "" {
		field("Account", clean(truncate(p.AccountID, 256)))
	}
	if p.URL != "" {
		field("Endpoint", inertText(redactURL(p.URL), p.URL))
	}
	field("Failing since", since)
	field("Consecutive failures", fmt.Sprint(p.ConsecutiveFailures))
	field("Queued notifications", fmt.Sprint(p.QueueDepth))
	if p.LastError != "" {
		field("Last error", inertText(clean(truncate(redactError(p.LastError, p.URL), 1000)), p.URL))
	}
	line("")
	line("What to do:")
	line("1. Make the endpoint answer hookline's POSTs with a 2xx status within the")
	line("   delivery timeout (check its availability, TLS certificate and any firewall")
	line("   in between).")
	if p.Kind == AutoDisabled {
		line("2. Reactivate the webhook; hookline verifies the endpoint again first:")
		line("     kubectl annotate webhook %s -n %s %s=$(date +%%s) --overwrite", qname, qns, hooklinev1.ReactivateAnnotation)
		line("   or, with hookline's CLI:")
		line("     hookline reactivate -n %s %s --wait", qns, qname)
		line("   If the Webhook is managed in Git, commit a new value of its")
		line("   %s annotation instead.", hooklinev1.ReactivateAnnotation)
	} else {
		line("2. Deliveries resume on their own once the endpoint answers; nothing needs")
		line("   reactivating.")
	}
	line("")
	line("Status: kubectl get webhook %s -n %s -o yaml", qname, qns)
	line("    or: hookline status -n %s %s", qns, qname)
	if qname == "NAME" {
		line("where NAME is the Webhook's name above, each [.] written for a dot.")
	}
	line("")
	line("You receive this because your address is in spec.problemNotificationEmails")
	line("of this Webhook; remove it there to stop these messages. Names are written")
	line("with [.] and hxxp so that they are no links: hookline sends no links.")
	return b.String()
}

// clean makes s safe for a header or a single body line: valid UTF-8 without control characters
// (CR and LF above all) or bidirectional formatting characters (which reorder what a reader sees).
func clean(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.Map(func(r rune) rune {
		if safetext.IsControl(r) || safetext.IsBidi(r) {
			return -1
		}
		return r
	}, s)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// redactURL shows where the endpoint is but not what may authenticate to it: a query string often
// carries a token, so it is replaced, as user info and the fragment are dropped.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(not shown: not a valid URL)"
	}
	u.User = nil
	u.Fragment, u.RawFragment = "", ""
	if u.RawQuery != "" || u.ForceQuery {
		u.RawQuery, u.ForceQuery = "", false
		return clean(u.String()) + "?… (query not shown)"
	}
	return clean(u.String())
}

// inert writes the endpoint's scheme and host in s so that no mail client turns them into a link
// ("hxxps://receiver[.]example[.]com/..."): the endpoint is the tenant's choice, and an e-mail
// from the operator's sender must not carry a link of a tenant's choosing.
func inert(s, rawURL string) string {
	u, err := url.Parse(rawURL)
	if err == nil && u.Hostname() != "" {
		s = strings.ReplaceAll(s, u.Hostname(), strings.ReplaceAll(u.Hostname(), ".", "[.]"))
	}
	return scheme.ReplaceAllStringFunc(s, func(m string) string { return "hxxp" + m[4:] })
}

// scheme matches a URL scheme a mail client links, in any case ("HTTPS://", "Http://").
var scheme = regexp.MustCompile(`(?i)\bhttps?://`)

// dotted matches what a mail client may take for a host name or an address: two or more labels
// joined by dots ("www.evil.example", "10.0.0.1"), every character IDNA maps to a dot included
// (ideographic, fullwidth and halfwidth full stops, one dot leader, small full stop), or the part
// after an @.
var dotted = regexp.MustCompile(`[\p{L}\p{N}_-]+(?:[.\x{3002}\x{FF0E}\x{FF61}\x{2024}\x{FE52}][\p{L}\p{N}_-]+)+`)

// dots are the characters dotted joins labels with.
var dots = strings.NewReplacer(".", "[.]", "\u3002", "[.]", "\uFF0E", "[.]", "\uFF61", "[.]", "\u2024", "[.]", "\uFE52", "[.]")

// anyScheme matches any URL scheme of two characters or more (a drive letter is no scheme)
// followed by slashes or backslashes, as many as parsers take ("file://", "file:/\\", "https:/"),
// after anything that cannot be part of a scheme ("_https://" too); those left after inert's hxxp
// are written scheme:[//], with as many slashes as there were separators.
var anyScheme = regexp.MustCompile(`(?i)(^|[^a-z0-9+.\-])([a-z][a-z0-9+.\-]+):([/\\]+)`)

// uncPath matches the start of a Windows network path (\\host\share), which mail clients link
// and whose opening sends the reader's credentials to the host.
var uncPath = regexp.MustCompile(`\\{2,}`)

// inertText is inert for text a receiver may have written (an error message quoting its answer,
// a TLS certificate's names among it): every dotted name in it is written with [.], every @ as
// [at], http(s) schemes as hxxp, any other (and http(s) with one slash) as scheme:[//], and each
// backslash of a network path's \\ as [\], not only the endpoint's, so that no mail client makes
// a link of "re-authorise at www.evil.example/login", of "HTTPS://1249767123/login" (a host
// written as one number), of "file:/\1249767123/x" or of "\\1249767123\reauth".
func inertText(s, rawURL string) string {
	s = inert(s, rawURL)
	s = anyScheme.ReplaceAllStringFunc(s, func(m string) string {
		sub := anyScheme.FindStringSubmatch(m)
		before, name, sep := sub[1], sub[2], sub[3]
		if strings.EqualFold(name, "hxxp") || strings.EqualFold(name, "hxxps") {
			return m
		}
		return before + name + ":[" + strings.Repeat("/", len(sep)) + "]"
	})
	s = uncPath.ReplaceAllStringFunc(s, func(m string) string { return strings.Repeat(`[\]`, len(m)) })
	s = dotted.ReplaceAllStringFunc(s, dots.Replace)
	return strings.ReplaceAll(s, "@", "[at]")
}

// redactError removes the endpoint's query and user info from an error message, which Go's HTTP
// client prefixes with the full URL.
func redactError(msg, rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return msg
	}
	if u.RawQuery != "" {
		msg = strings.ReplaceAll(msg, u.RawQuery, "…")
	}
	if u.User != nil {
		msg = strings.ReplaceAll(msg, u.User.String()+"@", "")
	}
	return msg
}

var shellSafe = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

// shellQuote quotes s for a POSIX shell unless it is plainly safe, as Kubernetes names are, so that
// a command copied from the e-mail runs what it says.
func shellQuote(s string) string {
	if shellSafe.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
