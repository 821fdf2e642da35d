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

package dispatcher

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"time"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/dispatcher/ingest"
	"github.com/hookline/hookline/dispatcher/logapi"
	"github.com/hookline/hookline/dispatcher/payload"
	"github.com/hookline/hookline/dispatcher/route"
	"github.com/hookline/hookline/dispatcher/store"
	"github.com/hookline/hookline/internal/deliveries"
	"github.com/hookline/hookline/internal/samples"
)

var _ logapi.Tester = (*Intake)(nil)

// SendTest stores a test event of the named event (one of the webhook's subscriptions; a
// wildcard stands for its family's sample) for webhook uid's account, and queues its notification
// for that webhook alone: it is never routed, so no other webhook of the account receives it,
// whatever it subscribes to. The event is built from the built-in samples, its id begins with
// deliveries.TestEventPrefix (which the ingest API refuses from producers, and which replays
// skip), and it is delivered like any other notification (signing, retries, trimming).
func (d *Intake) SendTest(ctx context.Context, uid, name string) (deliveries.TestReceipt, error) {
	// Held until the note is queued, as Accept holds its routes: a webhook withdrawn meanwhile has
	// its queue cleared only after.
	t, release, ok := d.Table.Hold(uid)
	if !ok {
		return deliveries.TestReceipt{}, logapi.ErrTestNotActive
	}
	defer release()
	if d.Engine.Disabled(uid) {
		return deliveries.TestReceipt{}, logapi.ErrTestNotActive
	}
	now := d.Clock.Now()
	id := deliveries.TestEventPrefix + rand.Text()
	raw, ev, err := testEvent(name, &t, id, now)
	if err != nil {
		return deliveries.TestReceipt{}, err
	}
	key := store.EventKey(t.AccountID, id)
	seq, _, err := d.Store.PutEvent(ctx, key, raw, now)
	if err != nil {
		return deliveries.TestReceipt{}, err
	}
	d.Engine.CacheEvent(seq, ev, now, len(raw), uid)
	n := store.Note{EventSeq: seq, Created: now, EventID: id, EventName: ev.Event}
	if err := d.enqueue(ctx, []store.Enqueue{{UID: uid, Note: n}}); err != nil {
		return deliveries.TestReceipt{}, fmt.Errorf("queueing test notification %s: %w", id, err)
	}
	// Marked routed, so that nothing routes the stored event to the account's other webhooks.
	if err := d.Store.MarkRouted(ctx, key, seq); err != nil {
		d.Log.Error(err, "Recording that a test event is routed", "event", id)
	}
	return deliveries.TestReceipt{EventID: id, Event: ev.Event, NotificationID: payload.NotificationID(uid, t.AccountID, id)}, nil
}

// resourceIDPath is where a notification of the family fam names its resource: its resource
// object's id, or an envelope's data.basicInfo.envelopeId.
func resourceIDPath(fam hooklinev1.Family) []string {
	if key := payload.ResourceKey(fam); key != "" {
		return []string{key, "id"}
	}
	return []string{"data", "basicInfo", "envelopeId"}
}

// setID sets the member at path below m to id when it is there.
func setID(m map[string]any, id string, path ...string) {
	if len(path) == 0 {
		return
	}
	for _, k := range path[:len(path)-1] {
		next, ok := m[k].(map[string]any)
		if !ok {
			return
		}
		m = next
	}
	if last := path[len(path)-1]; m[last] != nil {
		m[last] = id
	}
}

// testEvent makes the sample of name's family into an event of t's account with the given id:
// the namespace's group, and t's own group, user or resource for those scopes, so that the body
// is what t would receive for such an event.
func testEvent(name string, t *route.Target, id string, now time.Time) ([]byte, *ingest.Event, error) {
	sample, concrete, ok := samples.ForEvent(name)
	if !ok || !hooklinev1.SubscriptionMatches(t.Events, name) {
		return nil, nil, &logapi.TestRequestError{Message: fmt.Sprintf("event %q: choose one of the webhook's events (%v)", name, t.Events)}
	}
	b, err := samples.Event(sample)
	if err != nil {
		return nil, nil, err
	}
	var ev map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber() // numbers stay as the sample writes them
	if err := dec.Decode(&ev); err != nil {
		return nil, nil, err
	}
	ev["id"], ev["event"], ev["accountId"], ev["occurredAt"] = id, concrete, t.AccountID, now.UTC().Format(time.RFC3339)
	if n, ok := ev["notification"].(map[string]any); ok {
		n["event"] = concrete
	}
	switch {
	case t.NamespaceGroup != "":
		ev["groupId"] = t.NamespaceGroup
	case t.Scope == hooklinev1.ScopeGroup:
		ev["groupId"] = t.GroupID
	}
	if in, ok := ev["initiator"].(map[string]any); ok && t.Scope == hooklinev1.ScopeUser {
		in["userId"] = t.UserID
	}
	if res, ok := ev["resource"].(map[string]any); ok && t.Scope == hooklinev1.ScopeResource && t.Resource != nil && string(t.Resource.Type) == res["type"] {
		res["id"] = t.Resource.ID
		// The notification names the same resource (ingest refuses them apart): the resource
		// object's id, or the envelope's data.basicInfo.envelopeId.
		if n, ok := ev["notification"].(map[string]any); ok {
			if fam, ok := hooklinev1.FamilyOf(concrete); ok {
				setID(n, t.Resource.ID, resourceIDPath(fam)...)
			}
		}
	}
	raw, err := json.Marshal(ev)
	if err != nil {
		return nil, nil, err
	}
	parsed, err := ingest.Parse(raw)
	if err != nil {
		return nil, nil, &logapi.TestRequestError{Message: fmt.Sprintf("event %q: the sample does not make a valid event: %v", name, err)}
	}
	return raw, parsed, nil
}
