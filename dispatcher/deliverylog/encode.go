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
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/hookline/hookline/internal/deliveries"
)

// appendRecord appends r's JSON to dst: the bytes json.Marshal(r) gives (TestAppendRecord compares
// them), without reflection. The writer encodes every record, and encoding/json's reflection was
// most of the writer's own CPU. A field added to deliveries.Record must be added here (the test
// fails until it is).
func appendRecord(dst []byte, r *deliveries.Record) ([]byte, error) {
	if !jsonTime(r.Created) || !jsonTime(r.At) {
		// Outside what Time.MarshalJSON accepts: let it say why.
		b, err := json.Marshal(r)
		return append(dst, b...), err
	}
	dst = append(dst, `{"kind":`...)
	dst = appendString(dst, string(r.Kind))
	dst = append(dst, `,"webhookUid":`...)
	dst = appendString(dst, r.WebhookUID)
	dst = append(dst, `,"namespace":`...)
	dst = appendString(dst, r.Namespace)
	dst = append(dst, `,"name":`...)
	dst = appendString(dst, r.Name)
	dst = append(dst, `,"webhookNotificationId":`...)
	dst = appendString(dst, r.NotificationID)
	dst = append(dst, `,"eventSeq":`...)
	dst = strconv.AppendUint(dst, r.EventSeq, 10)
	dst = append(dst, `,"eventId":`...)
	dst = appendString(dst, r.EventID)
	dst = append(dst, `,"event":`...)
	dst = appendString(dst, r.EventName)
	dst = append(dst, `,"created":"`...)
	dst = r.Created.AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","at":"`...)
	dst = r.At.AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","state":`...)
	dst = appendString(dst, string(r.State))
	if r.Attempt != 0 {
		dst = append(dst, `,"attempt":`...)
		dst = strconv.AppendInt(dst, int64(r.Attempt), 10)
	}
	if r.DurationMillis != 0 {
		dst = append(dst, `,"durationMillis":`...)
		dst = strconv.AppendInt(dst, r.DurationMillis, 10)
	}
	if r.Reason != "" {
		dst = append(dst, `,"reason":`...)
		dst = appendString(dst, r.Reason)
	}
	if r.Message != "" {
		dst = append(dst, `,"message":`...)
		dst = appendString(dst, r.Message)
	}
	if r.HTTPStatus != 0 {
		dst = append(dst, `,"httpStatus":`...)
		dst = strconv.AppendInt(dst, int64(r.HTTPStatus), 10)
	}
	if r.Response != "" {
		dst = append(dst, `,"response":`...)
		dst = appendString(dst, r.Response)
	}
	if r.BytesSent != 0 {
		dst = append(dst, `,"bytesSent":`...)
		dst = strconv.AppendInt(dst, int64(r.BytesSent), 10)
	}
	if len(r.Trimmed) > 0 {
		dst = append(dst, `,"trimmed":[`...)
		for i, s := range r.Trimmed {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, s)
		}
		dst = append(dst, ']')
	}
	if r.Replay != "" {
		dst = append(dst, `,"replay":`...)
		dst = appendString(dst, r.Replay)
	}
	return append(dst, '}'), nil
}

// jsonTime reports whether Time.MarshalJSON encodes t as AppendFormat(RFC3339Nano) does: it refuses
// years outside 0–9999 and zone offsets of a day or more.
func jsonTime(t time.Time) bool {
	_, offset := t.Zone()
	y := t.Year()
	return y >= 0 && y <= 9999 && offset > -24*60*60 && offset < 24*60*60
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string the way encoding/json does: HTML-safe (<, > and & as
// \u00XX), control characters escaped, invalid UTF-8 as U+FFFD, U+2028 and U+2029 escaped.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' && b != '<' && b != '>' && b != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case c == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case c == '\u2028' || c == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[c&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
