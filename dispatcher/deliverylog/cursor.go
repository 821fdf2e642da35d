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

package deliverylog

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"math"
	"slices"
	"time"

	"github.com/hookline/hookline/internal/deliveries"
)

const (
	cursorVersion = 2 // 2: positions name a record's place in its message
	digestLen     = 16
	macLen        = 16
)

// cursor is where the next page starts: the snapshot the first page fixed, and the position of
// the last item handed out.
type cursor struct {
	bound uint64 // the stream's last sequence at the first page
	snap  int64  // the time of the first page
	pos   position
}

// filterDigest names the selection a cursor belongs to: the webhook and every filter (not the page
// size, which may change from page to page). Lists are sets: their order does not matter.
func filterDigest(uid string, q deliveries.Query) [digestLen]byte {
	h := sha256.New()
	var buf []byte
	str := func(s string) {
		buf = binary.AppendUvarint(buf[:0], uint64(len(s)))
		h.Write(buf)
		h.Write([]byte(s))
	}
	list := func(ss []string) {
		ss = slices.Clone(ss)
		slices.Sort(ss)
		ss = slices.Compact(ss)
		buf = binary.AppendUvarint(buf[:0], uint64(len(ss)))
		h.Write(buf)
		for _, s := range ss {
			str(s)
		}
	}
	str(uid)
	states := make([]string, len(q.States))
	for i, s := range q.States {
		states[i] = string(s)
	}
	list(states)
	list(q.EventNames)
	list(q.NotificationIDs)
	list(q.EventIDs)
	// A time given relative to the first page is hashed as given: resolved, it differed from
	// page to page, and every next page was refused.
	for _, t := range []struct {
		at  time.Time
		ago *time.Duration
	}{{q.Since, q.SinceAgo}, {q.Until, q.UntilAgo}} {
		if t.ago != nil {
			buf = append(binary.AppendVarint(buf[:0], int64(*t.ago)), 'r')
		} else {
			buf = binary.AppendVarint(buf[:0], unixOrZero(t.at))
		}
		h.Write(buf)
	}
	var d [digestLen]byte
	copy(d[:], h.Sum(nil))
	return d
}

func unixOrZero(t interface {
	IsZero() bool
	UnixNano() int64
}) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func (l *Log) encodeCursor(c cursor, digest [digestLen]byte) string {
	b := make([]byte, 0, 64)
	b = append(b, cursorVersion)
	b = append(b, digest[:]...)
	b = binary.AppendUvarint(b, c.bound)
	b = binary.AppendVarint(b, c.snap)
	b = binary.AppendVarint(b, c.pos.t)
	b = append(b, c.pos.class)
	b = binary.AppendUvarint(b, c.pos.n)
	b = binary.AppendUvarint(b, uint64(c.pos.i))
	b = append(b, l.mac(b)...)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (l *Log) mac(b []byte) []byte {
	m := hmac.New(sha256.New, l.cfg.CursorKey)
	m.Write(b)
	return m.Sum(nil)[:macLen]
}

// decodeCursor checks s's signature and that it was handed out for the same selection.
func (l *Log) decodeCursor(s string, digest [digestLen]byte) (cursor, error) {
	b, err := base64.RawURLEncoding.Strict().DecodeString(s) // Strict: no unused bits to change unnoticed
	if err != nil || len(b) < 1+digestLen+macLen {
		return cursor{}, ErrBadCursor
	}
	body, sum := b[:len(b)-macLen], b[len(b)-macLen:]
	if !hmac.Equal(sum, l.mac(body)) || body[0] != cursorVersion || [digestLen]byte(body[1:1+digestLen]) != digest {
		return cursor{}, ErrBadCursor
	}
	p := body[1+digestLen:]
	var c cursor
	var k int
	if c.bound, k = binary.Uvarint(p); k <= 0 {
		return cursor{}, ErrBadCursor
	}
	p = p[k:]
	if c.snap, k = binary.Varint(p); k <= 0 {
		return cursor{}, ErrBadCursor
	}
	p = p[k:]
	if c.pos.t, k = binary.Varint(p); k <= 0 || len(p) <= k {
		return cursor{}, ErrBadCursor
	}
	c.pos.class, p = p[k], p[k+1:]
	if c.pos.n, k = binary.Uvarint(p); k <= 0 || len(p) <= k {
		return cursor{}, ErrBadCursor
	}
	p = p[k:]
	i, k := binary.Uvarint(p)
	if k <= 0 || k != len(p) || i > math.MaxUint32 {
		return cursor{}, ErrBadCursor
	}
	c.pos.i = uint32(i)
	return c, nil
}
