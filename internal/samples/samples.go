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

// Package samples embeds one ingest event (the body of POST /v1/events) per event family, so that
// tests, `hookline emit --sample NAME` and `make run` exercise the same realistic notifications
// instead of each inventing its own.
//
// The Acrobat-dialect samples carry every optional section of their resource object, because the
// dispatcher, not the producer, decides per webhook which sections go out. The envelope sample
// wraps the envelopeExpired notification of events/seed002_envelope_expired_notification.json unchanged, byte for byte, since that dialect is delivered as ingested.
package samples

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
)

//go:embed events/*.json
var eventFS embed.FS

// seedEnvelopeFile is kept apart from the samples: it is a bare notification, not an ingest event,
// and exists only so tests can compare delivered bytes with the seed's.
const seedEnvelopeFile = "seed002_envelope_expired_notification.json"

// names is computed once: the embedded set cannot change at run time.
var names = func() []string {
	entries, err := fs.ReadDir(eventFS, "events")
	if err != nil {
		// The embed directive guarantees the directory; failing here means a broken build.
		panic(fmt.Sprintf("samples: reading embedded events: %v", err))
	}
	out := make([]string, 0, len(entries))
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() || n == seedEnvelopeFile || !strings.HasSuffix(n, ".json") {
			continue
		}
		out = append(out, strings.TrimSuffix(n, ".json"))
	}
	sort.Strings(out)
	return out
}()

// Names returns the sample names, sorted, for listing in the CLI and iterating in tests. The
// caller owns the returned slice.
func Names() []string {
	return append([]string(nil), names...)
}

// Event returns the ingest event JSON of the named sample. The bytes are a fresh copy so callers
// may modify them (e.g. to change the id) without affecting other users of the sample.
func Event(name string) ([]byte, error) {
	// Reject path tricks and the raw seed file: only listed names are samples.
	i := sort.SearchStrings(names, name)
	if i == len(names) || names[i] != name {
		return nil, fmt.Errorf("unknown sample %q (known: %s)", name, strings.Join(names, ", "))
	}
	b, err := eventFS.ReadFile(path.Join("events", name+".json"))
	if err != nil {
		return nil, fmt.Errorf("reading sample %q: %w", name, err)
	}
	return b, nil
}

// SeedEnvelopeNotification returns the envelopeExpired notification object of
// events/seed002_envelope_expired_notification.json exactly as the file holds it, from its opening to its closing brace: the bytes an envelope-dialect delivery of the
// envelope_expired sample must reproduce. Whitespace after the closing brace is cut, so an editor
// adding a final newline to the file cannot break the comparison.
func SeedEnvelopeNotification() []byte {
	b, err := eventFS.ReadFile(path.Join("events", seedEnvelopeFile))
	if err != nil {
		panic(fmt.Sprintf("samples: reading embedded seed notification: %v", err))
	}
	return bytes.TrimRight(b, " \t\r\n")
}

// ForEvent returns the sample of name's family, for a test notification of name: the sample's
// own event when it is one of that family's (agreement_action_completed for AGREEMENT_ALL), else
// the first sample of the family. concrete is the event the sample should then be made into:
// name itself, or the sample's event for a wildcard (name ending in _ALL). ok is false when no
// sample has name's family.
func ForEvent(name string) (sample, concrete string, ok bool) {
	fam, ok := hooklinev1.FamilyOf(name)
	if !ok {
		return "", "", false
	}
	for _, n := range names {
		ev := eventOf(n)
		if f, ok := hooklinev1.FamilyOf(ev); ok && f == fam {
			if strings.HasSuffix(name, "_ALL") {
				return n, ev, true
			}
			return n, name, true
		}
	}
	return "", "", false
}

// eventOf reads the event name of sample n (names are sorted, so each family's first sample is
// the same every time).
func eventOf(n string) string {
	b, err := eventFS.ReadFile(path.Join("events", n+".json"))
	if err != nil {
		return ""
	}
	var ev struct {
		Event string `json:"event"`
	}
	_ = json.Unmarshal(b, &ev)
	return ev.Event
}
