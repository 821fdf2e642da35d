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

	"github.com/hookline/hookline/internal/deliveries"
	"github.com/hookline/hookline/internal/jsonstr"
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
	dst = jsonstr.Append(dst, string(r.Kind), true)
	dst = append(dst, `,"webhookUid":`...)
	dst = jsonstr.Append(dst, r.WebhookUID, true)
	dst = append(dst, `,"namespace":`...)
	dst = jsonstr.Append(dst, r.Namespace, true)
	dst = append(dst, `,"name":`...)
	dst = jsonstr.Append(dst, r.Name, true)
	dst = append(dst, `,"webhookNotificationId":`...)
	dst = jsonstr.Append(dst, r.NotificationID, true)
	dst = append(dst, `,"eventSeq":`...)
	dst = strconv.AppendUint(dst, r.EventSeq, 10)
	dst = append(dst, `,"eventId":`...)
	dst = jsonstr.Append(dst, r.EventID, true)
	dst = append(dst, `,"event":`...)
	dst = jsonstr.Append(dst, r.EventName, true)
	dst = append(dst, `,"created":"`...)
	dst = r.Created.AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","at":"`...)
	dst = r.At.AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","state":`...)
	dst = jsonstr.Append(dst, string(r.State), true)
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
		dst = jsonstr.Append(dst, r.Reason, true)
	}
	if r.Message != "" {
		dst = append(dst, `,"message":`...)
		dst = jsonstr.Append(dst, r.Message, true)
	}
	if r.HTTPStatus != 0 {
		dst = append(dst, `,"httpStatus":`...)
		dst = strconv.AppendInt(dst, int64(r.HTTPStatus), 10)
	}
	if r.Response != "" {
		dst = append(dst, `,"response":`...)
		dst = jsonstr.Append(dst, r.Response, true)
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
			dst = jsonstr.Append(dst, s, true)
		}
		dst = append(dst, ']')
	}
	if r.Replay != "" {
		dst = append(dst, `,"replay":`...)
		dst = jsonstr.Append(dst, r.Replay, true)
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
