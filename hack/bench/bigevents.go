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

package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
)

// bigRSSGoal is the dispatcher's peak RSS that the big-events scenario must stay under (issue 10:
// the chart's limit is 512 Mi, and one producer must not come near it).
const bigRSSGoal = 300

// bigSizes are the big-events scenario's sizes: the signed document (trimmed by the 10 MiB cap)
// and an attachment outside the resource object (which the cap cannot trim, so every body carries
// it), concurrent events, and webhooks of the fan-out.
type bigSizes struct {
	signed, attachment int
	concurrent, fanout int
}

func bigEventSizes(o options) bigSizes {
	if o.smoke {
		return bigSizes{signed: 96 << 10, attachment: 32 << 10, concurrent: 4, fanout: 10}
	}
	// 17 MiB of PDF and 1 MiB of attachment are 24 MiB of base64, just under the 25 MiB limit.
	return bigSizes{signed: 17 << 20, attachment: 1 << 20, concurrent: 16, fanout: 100}
}

// bigEvent returns an AGREEMENT_WORKFLOW_COMPLETED event with a signed PDF and an attachment of the
// given sizes, as a producer would post it. The base64 text is made once per size.
func bigEvent(id, acc string, z bigSizes) []byte {
	pdf := bigText(z.signed)
	att := bigText(z.attachment)
	var b bytes.Buffer
	b.Grow(len(pdf) + len(att) + 1024)
	fmt.Fprintf(&b, `{"id":%q,"event":"AGREEMENT_WORKFLOW_COMPLETED","accountId":%q,"groupId":"grp-1",`, id, acc)
	fmt.Fprintf(&b, `"initiator":{"userId":"user-1"},"resource":{"type":"AGREEMENT","id":"agr-%s"},`, id)
	fmt.Fprintf(&b, `"notification":{"event":"AGREEMENT_WORKFLOW_COMPLETED","eventDate":"2026-11-25T10:00:00Z",`)
	b.WriteString(`"benchAttachment":"`)
	b.WriteString(att)
	fmt.Fprintf(&b, `","agreement":{"id":"agr-%s","name":"Signed contract","status":"SIGNED","signedDocumentInfo":{"document":"`, id)
	b.WriteString(pdf)
	b.WriteString(`"}}}}`)
	return b.Bytes()
}

var bigTexts sync.Map // size → base64 string

func bigText(n int) string {
	if v, ok := bigTexts.Load(n); ok {
		return v.(string)
	}
	raw := make([]byte, n)
	for i := range raw {
		raw[i] = byte(i*7 + i>>9)
	}
	s := base64.StdEncoding.EncodeToString(raw)
	bigTexts.Store(n, s)
	return s
}

// postPatiently posts body until it is accepted, waiting as each 503 or 429 says (Retry-After), and a
// second after a connection error, as a well-behaved producer does; it returns how many times it was told to wait.
func (p *poster) postPatiently(url string, body []byte) (int, error) {
	for waits := 0; ; waits++ {
		req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return waits, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+benchToken)
		resp, err := p.client.Do(req)
		if err != nil {
			// A refusal answered before the body was read closes the connection: the client may
			// see its write fail instead of the 503. A producer retries connection errors too.
			if waits > 600 {
				return waits, err
			}
			time.Sleep(time.Second)
			continue
		}
		var buf bytes.Buffer
		_, _ = buf.ReadFrom(resp.Body)
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusAccepted:
			return waits, nil
		case http.StatusServiceUnavailable, http.StatusTooManyRequests:
			secs, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
			if waits > 600 {
				return waits, fmt.Errorf("still refused after %d waits: %d %s", waits, resp.StatusCode, buf.Bytes())
			}
			time.Sleep(time.Duration(max(secs, 1)) * time.Second)
		default:
			return waits, fmt.Errorf("status %d: %s", resp.StatusCode, buf.Bytes())
		}
	}
}

// bigEvents is the memory scenario of issue 10: concurrent events of the largest size from one
// producer, then one such event to many webhooks of one account. It reports the dispatcher's peak
// RSS of each phase; all deliveries are checked like every other scenario's.
func bigEvents(ctx context.Context, s *stack, p *poster, o options, pid int) (row, error) {
	z := bigEventSizes(o)
	signed := func(spec *hooklinev1.WebhookSpec) {
		spec.ConditionalParams = &hooklinev1.ConditionalParams{Agreement: &hooklinev1.AgreementConditionalParams{
			IncludeDetailedInfo: true, IncludeSignedDocuments: true}}
	}
	if _, _, err := s.createGroup(ctx, "m", 1, 1, signed); err != nil {
		return row{}, err
	}
	if _, _, err := s.createGroup(ctx, "n", 1, z.fanout, signed); err != nil {
		return row{}, err
	}
	s.routed(p, "m", 1, 1)
	s.routed(p, "n", 1, z.fanout)
	size := len(bigEvent("x", account("m", 0), z))

	// Phase 1: concurrent ingests.
	resetPeakRSS(pid)
	before := s.sink.count.Load()
	start := time.Now()
	var waits atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for i := range z.concurrent {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := p.postPatiently(s.ingestURL, bigEvent(fmt.Sprintf("big-%d", i), account("m", 0), z))
			waits.Add(int64(n))
			if err != nil {
				firstErr.CompareAndSwap(nil, err)
			}
		}()
	}
	wg.Wait()
	if e, ok := firstErr.Load().(error); ok {
		return row{}, e
	}
	ingested := time.Since(start)
	if err := waitDelivered(s.sink, before+int64(z.concurrent), waitFor(o)); err != nil {
		return row{}, err
	}
	_, peakIngest, _ := procStats(pid)

	// Phase 2: one event to every webhook of account n.
	resetPeakRSS(pid)
	before = s.sink.count.Load()
	start2 := time.Now()
	if _, err := p.postPatiently(s.ingestURL, bigEvent("big-fanout", account("n", 0), z)); err != nil {
		return row{}, err
	}
	if err := waitDelivered(s.sink, before+int64(z.fanout), waitFor(o)); err != nil {
		return row{}, err
	}
	fanout := time.Since(start2)
	_, peakFanout, _ := procStats(pid)

	verdict := "met"
	if max(peakIngest, peakFanout) >= bigRSSGoal {
		verdict = "NOT MET"
	}
	r := row{offered: float64(z.concurrent) / ingested.Seconds(), delivered: float64(z.concurrent+z.fanout) / (ingested + fanout).Seconds(),
		peakRSS: max(peakIngest, peakFanout)}
	r.note = fmt.Sprintf("%d concurrent %.1f MB events: peak RSS %.0f MB, %d waits on 503 (Retry-After), all in %.1fs; "+
		"1 event → %d webhooks: peak RSS %.0f MB, delivered in %.1fs; goal < %d MB: %s",
		z.concurrent, float64(size)/1e6, peakIngest, waits.Load(), ingested.Seconds(), z.fanout, peakFanout, fanout.Seconds(), bigRSSGoal, verdict)
	return r, nil
}
