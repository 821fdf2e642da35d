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

// Package payload builds the body the dispatcher POSTs to one webhook for one event (docs/architecture.md).
//
// Acrobat-dialect notifications are rebuilt per webhook: hookline's own webhook* fields and accountId
// come first, the platform's top-level fields follow as sent, and the resource object keeps only the
// sections the webhook's conditionalParams ask for, trimmed further when the body would exceed the
// size cap. Envelope-dialect notifications (such as envelopeExpired) are delivered exactly as ingested.
//
// Bodies reach 25 MB (a base64 signed PDF), so the builder never decodes values: it walks the
// notification once, two object levels deep, keeps raw byte ranges, computes every candidate size
// arithmetically and copies each kept range once into a body allocated at its final size.
package payload

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"unicode"
	"unsafe"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/internal/jsonstr"
)

// DefaultMaxBytes is Acrobat Sign's 10 MB payload cap (read as 10 MiB), used when Options.MaxBytes is
// not set.
const DefaultMaxBytes = 10 << 20

// Conditional parameter names, as they appear in conditionalParametersTrimmed. Acrobat Sign does not
// document the exact strings; the flag names are the only ones a receiver can relate to its own
// webhook configuration.
const (
	FlagDetailedInfo     = "includeDetailedInfo"
	FlagParticipantsInfo = "includeParticipantsInfo"
	FlagDocumentsInfo    = "includeDocumentsInfo"
	FlagSignedDocuments  = "includeSignedDocuments"
)

// TrimmedKey is the resource-object key listing the flags dropped by the size cap.
const TrimmedKey = "conditionalParametersTrimmed"

// signedDocumentsEvent is the only event for which Acrobat Sign honours includeSignedDocuments.
const signedDocumentsEvent = "AGREEMENT_WORKFLOW_COMPLETED"

// ErrInvalidNotification wraps every error caused by the event itself (malformed JSON, missing
// resource object, unknown event). Such an event can never be delivered, so callers should drop it
// rather than retry.
var ErrInvalidNotification = errors.New("invalid notification")

// Event is what the builder needs of an ingested event.
type Event struct {
	// ID is the producer's event id; it feeds NotificationID.
	ID string
	// Event is the event name; it selects the dialect, the resource object and whether
	// includeSignedDocuments is honoured.
	Event string
	// AccountID is the event's account, stamped into the Acrobat body as accountId.
	AccountID string
	// Notification is the ingested "notification" object, raw, with every optional section present.
	Notification json.RawMessage
}

// Webhook is what the builder needs of the receiving Webhook.
type Webhook struct {
	// UID is the Webhook's metadata.uid, sent as webhookId.
	UID string
	// Name is the Webhook's metadata.name, sent as webhookName.
	Name string
	// URL is spec.url, echoed in webhookUrlInfo so receivers serving several hooks can tell them apart.
	URL string
	// Scope is spec.scope, sent as webhookScope.
	Scope string
	// Params is spec.conditionalParams; nil asks for the minimal resource object.
	Params *hooklinev1.ConditionalParams
}

// Options tunes Build.
type Options struct {
	// MaxBytes caps the serialized Acrobat body; zero or negative means DefaultMaxBytes. It is a
	// setting so tests can exercise trimming without 10 MB fixtures.
	MaxBytes int
}

// Result is one built notification body.
type Result struct {
	// Body is the request body. For the envelope dialect it aliases Event.Notification (no copy of a
	// possibly 25 MB value); callers must treat it as read-only.
	Body []byte
	// Trimmed lists the flags dropped by the size cap, in drop order; nil when nothing was dropped.
	// The same names appear in the body's conditionalParametersTrimmed.
	Trimmed []string
}

// section is the part of a resource object a member belongs to, which decides whether it is sent.
type section int

const (
	secCore section = iota // id, name, status: always sent
	secDetailed
	secParticipants
	secDocuments
	secSigned
	secOmit // never sent: hookline writes it itself
	numSections
)

// trimOrder is Acrobat Sign's documented drop order: the largest and least essential sections go first.
var trimOrder = [...]section{secSigned, secParticipants, secDocuments, secDetailed}

var flagOf = [numSections]string{
	secDetailed:     FlagDetailedInfo,
	secParticipants: FlagParticipantsInfo,
	secDocuments:    FlagDocumentsInfo,
	secSigned:       FlagSignedDocuments,
}

// classify places a resource-object key. The section keys are sections in every family: a family
// without the matching flag never sends them, rather than letting includeDetailedInfo leak, say, a
// signed PDF a producer attached to the wrong object.
//
// Keys compare in any letter case: a receiver decoding keys case-insensitively (Go's encoding/json)
// reads "SignedDocumentInfo" as the signed documents, which must then be trimmed as they are.
func classify(key []byte) section {
	for _, c := range sectionKeys {
		// Longer in bytes too: "ſ" (U+017F) and the Kelvin sign fold to "s" and "k".
		if len(key) >= len(c.key) && len(key) <= 3*len(c.key) && strings.EqualFold(string(key), c.key) {
			return c.sec
		}
	}
	return secDetailed
}

// sectionKeys are the resource-object keys of a section of their own.
var sectionKeys = []struct {
	key string
	sec section
}{
	{"id", secCore}, {"name", secCore}, {"status", secCore},
	{"participantSetsInfo", secParticipants}, {"documentsInfo", secDocuments}, {"signedDocumentInfo", secSigned},
	{TrimmedKey, secOmit},
}

// resourceKeys names each Acrobat family's resource object, as Acrobat Sign's JSON spells it.
var resourceKeys = map[hooklinev1.Family]string{
	hooklinev1.FamilyAgreement:       "agreement",
	hooklinev1.FamilyWidget:          "widget",
	hooklinev1.FamilyMegaSign:        "megaSign",
	hooklinev1.FamilyLibraryDocument: "libraryDocument",
}

// ResourceKey is the key of an Acrobat family's resource object in a notification ("agreement",
// …); "" for a family without one (the envelope dialect).
func ResourceKey(fam hooklinev1.Family) string { return resourceKeys[fam] }

// reservedKeys are the top-level keys hookline sets itself.
var reservedKeys = []string{"webhookId", "webhookName", "webhookNotificationId", "webhookUrlInfo", "webhookScope", "accountId"}

// ReservedKey reports whether a top-level key of a notification reads as one hookline sets
// itself in Acrobat Sign notifications (reservedKey).
func ReservedKey(key string) bool { return reservedKey([]byte(key)) }

// FoldKey is key with each character replaced by the least of its case-folding orbit: two keys
// that strings.EqualFold (and decoders matching keys case-insensitively, such as Go's
// encoding/json) take for one have the same FoldKey, so a set of them finds duplicates in linear
// time.
func FoldKey(key string) string {
	var b strings.Builder
	b.Grow(len(key))
	for _, r := range key {
		least := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			least = min(least, f)
		}
		b.WriteRune(least)
	}
	return b.String()
}

// reservedKey reports whether a top-level key is one hookline sets itself, in any letter case; a
// producer's copy is dropped so a receiver never sees two conflicting values or a forged webhook
// identity. Case matters: decoders such as Go's encoding/json match keys case-insensitively (with
// Unicode folding) and keep the last one, so "WEBHOOKID" after ours would win.
func reservedKey(key []byte) bool {
	for _, k := range reservedKeys {
		if len(key) >= len(k) && strings.EqualFold(string(key), k) {
			return true
		}
	}
	return false
}

// requested returns the sections the webhook asked for, per the family's flags (spec §1.3).
func requested(fam hooklinev1.Family, event string, p *hooklinev1.ConditionalParams) (want [numSections]bool) {
	want[secCore] = true
	if p == nil {
		return want
	}
	switch fam {
	case hooklinev1.FamilyAgreement:
		if a := p.Agreement; a != nil {
			want[secDetailed] = a.IncludeDetailedInfo
			want[secParticipants] = a.IncludeParticipantsInfo
			want[secDocuments] = a.IncludeDocumentsInfo
			want[secSigned] = a.IncludeSignedDocuments && event == signedDocumentsEvent
		}
	case hooklinev1.FamilyWidget:
		if w := p.Widget; w != nil {
			want[secDetailed] = w.IncludeDetailedInfo
			want[secParticipants] = w.IncludeParticipantsInfo
			want[secDocuments] = w.IncludeDocumentsInfo
		}
	case hooklinev1.FamilyMegaSign:
		if m := p.MegaSign; m != nil {
			want[secDetailed] = m.IncludeDetailedInfo
		}
	case hooklinev1.FamilyLibraryDocument:
		if l := p.LibraryDocument; l != nil {
			want[secDetailed] = l.IncludeDetailedInfo
			want[secDocuments] = l.IncludeDocumentsInfo
		}
	}
	return want
}

// member is one key/value pair of a notification object, kept as raw bytes.
type member struct {
	rawKey []byte // as sent, quotes and escapes included: copied to the output untouched
	name   []byte // unquoted, unescaped key, for matching
	val    []byte
	sec    section
}

// size is the member's serialized length without separators.
func (m *member) size() int { return len(m.rawKey) + 1 + len(m.val) }

// MaxMembers is the most members an object whose members are listed (the event, its
// initiator and resource, the notification and its resource object) may have. Acrobat Sign's
// objects have a few dozen; without a bound, a 25 MB body of five-byte members ({"":0,"":0,…})
// made the listing 25 times its size in memory, before anything refused it.
const MaxMembers = 1000

// MaxKeyBytes is the longest key, as sent between its quotes, that Members accepts. Acrobat
// Sign's keys have a few dozen bytes. Without a bound a 25 MB body made of one escaped key was
// decoded and copied three times over (75 MB beyond the body, which the ingest's in-flight bound
// counts) before its event was refused for an unknown key.
const MaxKeyBytes = 1024

// ErrKeyTooLong is returned by Members for a key of more than MaxKeyBytes.
var ErrKeyTooLong = fmt.Errorf("object key longer than %d bytes", MaxKeyBytes)

// parseMembers scans the object b (exactly one object, whitespace around it allowed) one level
// deep. More than MaxMembers members are refused as they are met. A key longer than MaxKeyBytes
// is refused when strict, and otherwise kept with no name: it cannot be any name the builder
// looks for, so it is passed on as sent without decoding it (events stored before the bound).
func parseMembers(b []byte, dst []member, strict bool) ([]member, error) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return nil, errAt(i, "expected a JSON object")
	}
	n := 0
	i, err := walkObject(b, i, 1, func(rawKey, val []byte) error {
		if n++; n > MaxMembers {
			// rawKey is b[k:…]: its capacity says where it starts.
			return errAt(cap(b)-cap(rawKey), fmt.Sprintf("object has more than %d members", MaxMembers))
		}
		name := rawKey[1 : len(rawKey)-1]
		if len(name) > MaxKeyBytes {
			if strict {
				return &keyTooLong{off: cap(b) - cap(rawKey)}
			}
			dst = append(dst, member{rawKey: rawKey, val: val})
			return nil
		}
		if bytes.IndexByte(name, '\\') >= 0 {
			// Escaped keys are rare; only they pay for a decode, and the scanner has vetted them.
			var s string
			if err := json.Unmarshal(rawKey, &s); err != nil {
				return err
			}
			name = []byte(s)
		}
		dst = append(dst, member{rawKey: rawKey, name: name, val: val})
		return nil
	})
	if err != nil {
		return nil, err
	}
	if i = skipSpace(b, i); i != len(b) {
		return nil, errAt(i, trailingData)
	}
	return dst, nil
}

// Prepared is an event read once for building every webhook's body: the notification's members
// are located (byte ranges into the notification, never copies) and sized per section, so a
// fan-out of a 25 MB event to many webhooks scans it once and each body costs one copy of what it
// keeps. A Prepared is immutable and safe for concurrent use.
type Prepared struct {
	ev     Event
	fam    hooklinev1.Family
	top    []member
	res    int // index of the resource object in top
	fields []member
	st     sectionStats
}

// Prepare reads ev's notification. Errors wrap ErrInvalidNotification.
func Prepare(ev Event) (*Prepared, error) {
	fam, ok := hooklinev1.FamilyOf(ev.Event)
	if !ok || hooklinev1.IsWildcard(ev.Event) {
		return nil, fmt.Errorf("%w: unknown event %q", ErrInvalidNotification, ev.Event)
	}
	p := &Prepared{ev: ev, fam: fam, res: -1}
	if fam == hooklinev1.FamilyEnvelope {
		// Validated although ingest already did, so a corrupted stored event fails here, not at the
		// receiver; the scan is cheap next to the network.
		if err := validObject(ev.Notification); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrInvalidNotification, ev.Event, err)
		}
		return p, nil
	}
	resKey := resourceKeys[fam]
	// Parsed into scratch room from a pool and copied out at the end at their exact size: every
	// event is prepared once, and the room (5 KB) was most of what preparing it allocated.
	scratch := scratchPool.Get().(*scratchMembers)
	defer scratch.put()
	var err error
	if p.top, err = parseMembers(ev.Notification, scratch.top[:0], false); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalidNotification, ev.Event, err)
	}
	scratch.top = p.top[:0] // keep what grew
	for i := range p.top {
		m := &p.top[i]
		switch {
		case reservedKey(m.name):
			m.sec = secOmit
		case string(m.name) == resKey:
			if p.res >= 0 {
				return nil, fmt.Errorf("%w: %s: duplicate %q object", ErrInvalidNotification, ev.Event, resKey)
			}
			p.res = i
		}
	}
	if p.res < 0 {
		return nil, fmt.Errorf("%w: %s: notification has no %q object", ErrInvalidNotification, ev.Event, resKey)
	}
	if p.fields, err = parseMembers(p.top[p.res].val, scratch.fields[:0], false); err != nil {
		return nil, fmt.Errorf("%w: %s: %q: %v", ErrInvalidNotification, ev.Event, resKey, err)
	}
	scratch.fields = p.fields[:0]
	for i := range p.fields {
		f := &p.fields[i]
		f.sec = classify(f.name)
		p.st.size[f.sec] += f.size()
		p.st.count[f.sec]++
	}
	// A Prepared lives as long as its event in the delivery engine's cache: keep only the members,
	// not the scratch room (64 members, 5 KB, where a typical event has a dozen).
	p.top, p.fields = slices.Clone(p.top), slices.Clone(p.fields)
	return p, nil
}

// Footprint is the memory p holds besides the event's bytes, which its members point into: what a
// cache of prepared events counts against its budget. (A key with escapes has its decoded name
// copied; such keys are rare and not counted.)
func (p *Prepared) Footprint() int {
	return int(unsafe.Sizeof(*p)) + (cap(p.top)+cap(p.fields))*int(unsafe.Sizeof(member{}))
}

// scratchMembers is the room Prepare parses members into before copying them out.
type scratchMembers struct {
	top, fields []member
}

var scratchPool = sync.Pool{New: func() any {
	return &scratchMembers{top: make([]member, 0, 24), fields: make([]member, 0, 40)}
}}

// maxScratchMembers bounds the room a scratch keeps for the next event: an event with thousands of
// members does not pin that much memory in the pool.
const maxScratchMembers = 256

// put clears the scratch (its members point into the event, which must not be kept alive by the
// pool) and returns it to the pool.
func (s *scratchMembers) put() {
	if cap(s.top) > maxScratchMembers || cap(s.fields) > maxScratchMembers {
		return
	}
	clear(s.top[:cap(s.top)])
	clear(s.fields[:cap(s.fields)])
	s.top, s.fields = s.top[:0], s.fields[:0]
	scratchPool.Put(s)
}

// plan is what one webhook's body is made of.
type plan struct {
	head    []byte
	incl    [numSections]bool
	trimmed []string
	total   int
}

// plan decides, by arithmetic alone, which sections wh's body keeps and how large it is.
func (p *Prepared) plan(wh Webhook, notificationID string, opt Options) plan {
	maxBytes := opt.MaxBytes
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	// Everything outside the resource object has a fixed size; sum it once.
	pl := plan{head: header(wh, notificationID, p.ev.AccountID)}
	fixed := len(pl.head) + 1 // the closing brace
	for i := range p.top {
		m := &p.top[i]
		switch {
		case m.sec == secOmit:
		case i == p.res:
			fixed += 1 + len(m.rawKey) + 1 // ,"agreement": — the object itself is sized below
		default:
			fixed += 1 + m.size()
		}
	}
	// A flag counts as sent, and later as trimmed, only when it contributes content.
	want := requested(p.fam, p.ev.Event, wh.Params)
	for s := secCore; s < secOmit; s++ {
		pl.incl[s] = want[s] && p.st.count[s] > 0
	}
	pl.total = fixed + p.st.objectSize(&pl.incl, nil)
	for _, s := range trimOrder {
		if pl.total <= maxBytes {
			break
		}
		if !pl.incl[s] {
			continue
		}
		pl.incl[s] = false
		pl.trimmed = append(pl.trimmed, flagOf[s])
		pl.total = fixed + p.st.objectSize(&pl.incl, pl.trimmed)
	}
	// Past this point the body is best effort: still too large with every section dropped, it goes
	// out anyway, as Acrobat Sign sends rather than withholds a notification.
	return pl
}

// BodySize is how many bytes Build allocates for wh's body: 0 for the envelope dialect, whose body
// is the notification itself. It lets a caller reserve memory before building.
func (p *Prepared) BodySize(wh Webhook, notificationID string, opt Options) int {
	if p.fam == hooklinev1.FamilyEnvelope {
		return 0
	}
	return p.plan(wh, notificationID, opt).total
}

// Build returns the body POSTed to wh, carrying notificationID as webhookNotificationId (see
// NotificationID).
func (p *Prepared) Build(wh Webhook, notificationID string, opt Options) Result {
	if p.fam == hooklinev1.FamilyEnvelope {
		return Result{Body: p.ev.Notification}
	}
	pl := p.plan(wh, notificationID, opt)
	out := make([]byte, 0, pl.total)
	out = append(out, pl.head...)
	for i := range p.top {
		m := &p.top[i]
		if m.sec == secOmit {
			continue
		}
		out = append(out, ',')
		out = append(out, m.rawKey...)
		out = append(out, ':')
		if i == p.res {
			out = appendObject(out, p.fields, &pl.incl, pl.trimmed)
		} else {
			out = append(out, m.val...)
		}
	}
	out = append(out, '}')
	return Result{Body: out, Trimmed: pl.trimmed}
}

// Build returns the body POSTed to wh for ev, carrying notificationID as webhookNotificationId (see
// NotificationID). Errors wrap ErrInvalidNotification. To build for several webhooks, Prepare once.
func Build(ev Event, wh Webhook, notificationID string, opt Options) (Result, error) {
	p, err := Prepare(ev)
	if err != nil {
		return Result{}, err
	}
	return p.Build(wh, notificationID, opt), nil
}

// sectionStats totals a resource object's members per section, so each trimming step is sized by
// arithmetic instead of by serializing again.
type sectionStats struct {
	size  [numSections]int
	count [numSections]int
}

// objectSize is the serialized size of the resource object with the included sections and the
// trimmed list.
func (st *sectionStats) objectSize(incl *[numSections]bool, trimmed []string) int {
	n, members := 2, 0 // braces
	for s := secCore; s < secOmit; s++ {
		if incl[s] {
			n += st.size[s]
			members += st.count[s]
		}
	}
	if len(trimmed) > 0 {
		n += len(trimmedMember(nil, trimmed))
		members++
	}
	if members > 1 {
		n += members - 1 // commas
	}
	return n
}

// trimmedMember appends "conditionalParametersTrimmed":[...]. The names are constants that need no
// escaping.
func trimmedMember(dst []byte, trimmed []string) []byte {
	dst = append(dst, `"`+TrimmedKey+`":[`...)
	for i, t := range trimmed {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, '"')
		dst = append(dst, t...)
		dst = append(dst, '"')
	}
	return append(dst, ']')
}

// appendObject writes the filtered resource object: kept members in input order, then the trimmed list.
func appendObject(dst []byte, fields []member, incl *[numSections]bool, trimmed []string) []byte {
	dst = append(dst, '{')
	first := true
	for i := range fields {
		f := &fields[i]
		if f.sec == secOmit || !incl[f.sec] {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, f.rawKey...)
		dst = append(dst, ':')
		dst = append(dst, f.val...)
	}
	if len(trimmed) > 0 {
		if !first {
			dst = append(dst, ',')
		}
		dst = trimmedMember(dst, trimmed)
	}
	return append(dst, '}')
}

// header renders the opening brace and hookline's fields, which lead the body so a receiver can
// route and dedupe before reading a large payload.
func header(wh Webhook, notificationID, accountID string) []byte {
	// URLs keep their '&' readable; escaping is for HTML embedding, not for webhook bodies.
	b := make([]byte, 0, 128+len(wh.UID)+len(wh.Name)+len(notificationID)+len(wh.URL)+len(wh.Scope)+len(accountID))
	b = append(b, `{"webhookId":`...)
	b = jsonstr.Append(b, wh.UID, false)
	b = append(b, `,"webhookName":`...)
	b = jsonstr.Append(b, wh.Name, false)
	b = append(b, `,"webhookNotificationId":`...)
	b = jsonstr.Append(b, notificationID, false)
	b = append(b, `,"webhookUrlInfo":{"url":`...)
	b = jsonstr.Append(b, wh.URL, false)
	b = append(b, `},"webhookScope":`...)
	b = jsonstr.Append(b, wh.Scope, false)
	b = append(b, `,"accountId":`...)
	return jsonstr.Append(b, accountID, false)
}

// NotificationID is the stable webhookNotificationId for (webhook, event). Receivers dedupe on it,
// so it must be identical on every retry and after a dispatcher restart: it is derived, never stored.
// It is UUID-shaped (version 5 and RFC 4122 variant bits over the first 16 bytes of a SHA-256), as
// Acrobat Sign's ids are UUIDs and receivers may validate them as such. The NUL separators keep
// ("a", "bc") and ("ab", "c") apart.
func NotificationID(webhookUID, accountID, eventID string) string {
	h := sha256.New()
	h.Write([]byte(webhookUID))
	h.Write([]byte{0})
	h.Write([]byte(accountID))
	h.Write([]byte{0})
	h.Write([]byte(eventID))
	var sum [sha256.Size]byte
	u := h.Sum(sum[:0])[:16]
	u[6] = u[6]&0x0f | 0x50
	u[8] = u[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], u[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], u[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], u[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], u[8:10])
	s[23] = '-'
	hex.Encode(s[24:36], u[10:16])
	return string(s[:])
}
