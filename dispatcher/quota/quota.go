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

// Package quota bounds the event bytes that each account keeps in the shared event store.
//
// Every account's events share one JetStream store, kept for the retention (73 h). Without a
// bound per account, a producer holding a token for one account could fill the store with valid
// events, and every other account's posts would then be refused until its events expired. Usage
// counts the bytes each account stored, by the hour they were stored in, and refuses an event that
// would take an account above the limit; an hour's bytes stop counting once every event of that
// hour has left the store.
//
// Every dispatcher that ingests (active-active replicas, and each run of one process) writes what
// it counted into the key-value bucket HOOKLINE_USAGE, one key per account and intake, and reads
// the other intakes' keys, so that the limit holds across replicas and restarts. What an intake
// counted since its last write (at most FlushEvery) is what a crash forgets, and what another
// replica does not see yet.
package quota

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/nats-io/nats.go/jetstream"
)

// Bucket is the key-value bucket that holds each intake's usage.
const Bucket = "HOOKLINE_USAGE"

// DefaultFlushEvery is how often an intake writes the usage it counted.
const DefaultFlushEvery = 2 * time.Second

// slot is the time an hour's count covers.
const slot = time.Hour

// Config sets a Usage up.
type Config struct {
	// Limit is the most event bytes one account may keep stored; it must be positive.
	Limit int64
	// Retention is how long the store keeps an event: an hour's bytes count until every event of
	// it is past the retention.
	Retention time.Duration
	// Replicas of the bucket on a clustered JetStream (1 for the embedded server).
	Replicas int
	// FlushEvery is how often counts are written to the bucket; 0 means DefaultFlushEvery.
	FlushEvery time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Log receives write and watch failures.
	Log logr.Logger
}

// hours is a count of bytes per hour, oldest first; an hour is its start in Unix hours.
type hours []hourBytes

type hourBytes struct {
	hour  int64
	bytes int64
}

// Usage counts, per account, the event bytes stored within the retention. It is safe for
// concurrent use.
type Usage struct {
	cfg    Config
	kv     jetstream.KeyValue
	intake string
	// watch follows the other intakes' keys; Open read what they held then.
	watch jetstream.KeyWatcher

	mu sync.Mutex
	// own holds this intake's counts by account key (see accountKey); dirty, the accounts whose
	// counts changed since the last write.
	own   map[string]hours
	dirty map[string]bool
	// others holds every other intake's last written counts, by account key and intake.
	others map[string]map[string]hours
}

// Open creates (or finds) the bucket on js and returns a Usage counting for a new intake. Start
// must be running for the counts to reach, and come from, other intakes.
func Open(ctx context.Context, js jetstream.JetStream, cfg Config) (*Usage, error) {
	if cfg.Limit <= 0 {
		return nil, errors.New("quota: the limit must be positive")
	}
	if cfg.Retention <= 0 {
		return nil, errors.New("quota: the retention must be positive")
	}
	cfg.FlushEvery = cmp.Or(cfg.FlushEvery, DefaultFlushEvery)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      Bucket,
		Description: "hookline: event bytes stored per account, by intake and hour",
		History:     1,
		// A key no intake writes any more holds only hours past the retention after this.
		TTL:      cfg.Retention + 2*slot,
		Storage:  jetstream.FileStorage,
		Replicas: max(cfg.Replicas, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("key-value bucket %s: %w", Bucket, err)
	}
	u := &Usage{
		cfg: cfg, kv: kv, intake: "in-" + strings.ToLower(rand.Text()),
		own: map[string]hours{}, dirty: map[string]bool{}, others: map[string]map[string]hours{},
	}
	// What every other intake counted, before the first event is counted: a dispatcher that
	// started taking events before it knew would let an account at its quota store more.
	// The watch lives until Start ends (it stops it), not with ctx: a watch ended by ctx before
	// Start noticed that ctx ended would make Start return without its last write.
	if u.watch, err = kv.WatchAll(context.WithoutCancel(ctx)); err != nil {
		return nil, fmt.Errorf("watching %s: %w", Bucket, err)
	}
	for {
		select {
		case <-ctx.Done():
			_ = u.watch.Stop()
			return nil, fmt.Errorf("reading %s: %w", Bucket, ctx.Err())
		case e, ok := <-u.watch.Updates():
			if !ok {
				return nil, fmt.Errorf("reading %s: the watch ended", Bucket)
			}
			if e == nil { // the values stored when the watch began are all in
				return u, nil
			}
			u.learn(e)
		}
	}
}

// Limit is the most event bytes one account may keep stored.
func (u *Usage) Limit() int64 { return u.cfg.Limit }

// accountKey is the part of a bucket key that names an account: a digest, as an account id may
// hold any character and a key may not.
func accountKey(account string) string {
	sum := sha256.Sum256([]byte(account))
	return hex.EncodeToString(sum[:12])
}

// current is the hour now falls in.
func (u *Usage) current(now time.Time) int64 { return now.Unix() / int64(slot/time.Second) }

// expires is when the bytes of hour h stop counting.
func (u *Usage) expires(h int64) time.Time {
	return time.Unix((h+1)*int64(slot/time.Second), 0).Add(u.cfg.Retention)
}

// counts says whether hour h's bytes still count at now.
func (u *Usage) counts(h int64, now time.Time) bool { return now.Before(u.expires(h)) }

// Add counts n more bytes stored for account whatever the limit: what an accepted event queued
// besides itself (its notifications).
func (u *Usage) Add(account string, n int64) {
	if n <= 0 {
		return
	}
	now := u.cfg.Now()
	key := accountKey(account)
	u.mu.Lock()
	defer u.mu.Unlock()
	u.addLocked(key, n, now)
}

// addLocked counts n bytes for key in now's hour.
func (u *Usage) addLocked(key string, n int64, now time.Time) {
	h := u.current(now)
	own := u.prune(u.own[key], now)
	if len(own) > 0 && own[len(own)-1].hour == h {
		own[len(own)-1].bytes += n
	} else {
		own = append(own, hourBytes{hour: h, bytes: n})
	}
	u.own[key] = own
	u.dirty[key] = true
}

// Reserve counts n bytes of an event about to be stored for account. When the account's stored
// bytes and n would pass the limit it counts nothing and returns false, with how long until
// enough of the account's bytes leave the store.
func (u *Usage) Reserve(account string, n int64) (ok bool, retryAfter time.Duration) {
	now := u.cfg.Now()
	key := accountKey(account)
	u.mu.Lock()
	defer u.mu.Unlock()
	total := u.totalLocked(key, now)
	if total+n > u.cfg.Limit {
		// Hours leave oldest first: wait for as many as it takes.
		for _, hb := range u.liveLocked(key, now) {
			total -= hb.bytes
			if total+n <= u.cfg.Limit {
				return false, u.expires(hb.hour).Sub(now)
			}
		}
		return false, u.cfg.Retention // n alone passes the limit
	}
	u.addLocked(key, n, now)
	return true, 0
}

// Release gives back n bytes that Reserve counted for account for an event that was not stored
// (refused, or a re-post of a stored one).
func (u *Usage) Release(account string, n int64) {
	key := accountKey(account)
	u.mu.Lock()
	defer u.mu.Unlock()
	own := u.own[key]
	// The newest hours first: the reservation was made moments ago.
	for i := len(own) - 1; i >= 0 && n > 0; i-- {
		d := min(n, own[i].bytes)
		own[i].bytes -= d
		n -= d
	}
	u.dirty[key] = true
}

// Stored returns the bytes account keeps stored as far as this intake knows: its own counts and
// the other intakes' last written ones.
func (u *Usage) Stored(account string) int64 {
	now := u.cfg.Now()
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.totalLocked(accountKey(account), now)
}

// totalLocked returns the bytes of key that count at now, from every intake: what every event
// that is accepted asks, without the copy and sort liveLocked makes for a refusal's wait.
func (u *Usage) totalLocked(key string, now time.Time) int64 {
	var total int64
	u.eachLiveLocked(key, now, func(hb hourBytes) { total += hb.bytes })
	return total
}

// liveLocked returns the hours of key that count at now, from every intake, merged and oldest
// first.
func (u *Usage) liveLocked(key string, now time.Time) hours {
	var all hours
	u.eachLiveLocked(key, now, func(hb hourBytes) { all = append(all, hb) })
	slices.SortFunc(all, func(a, b hourBytes) int { return cmp.Compare(a.hour, b.hour) })
	return all
}

// eachLiveLocked calls f with each hour of key, of every intake, that has bytes counting at now.
func (u *Usage) eachLiveLocked(key string, now time.Time, f func(hourBytes)) {
	each := func(hs hours) {
		for _, hb := range hs {
			if hb.bytes > 0 && u.counts(hb.hour, now) {
				f(hb)
			}
		}
	}
	each(u.own[key])
	for _, hs := range u.others[key] {
		each(hs)
	}
}

// prune drops the hours of hs that no longer count at now.
func (u *Usage) prune(hs hours, now time.Time) hours {
	i := 0
	for i < len(hs) && !u.counts(hs[i].hour, now) {
		i++
	}
	return hs[i:]
}

// NeedLeaderElection implements manager.LeaderElectionRunnable: every dispatcher that ingests
// counts.
func (u *Usage) NeedLeaderElection() bool { return false }

// Start writes this intake's counts every FlushEvery and follows the other intakes' until ctx
// ends; it then writes once more. It implements manager.Runnable.
func (u *Usage) Start(ctx context.Context) error {
	w := u.watch
	defer func() {
		if w != nil {
			_ = w.Stop()
		}
	}()
	updates := w.Updates()
	tick := time.NewTicker(u.cfg.FlushEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			// The counts of the last moments, with a context of their own: ctx is done.
			fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			u.Flush(fctx)
			cancel()
			return nil
		case <-tick.C:
			u.Flush(ctx)
			u.forget()
			if w == nil {
				// The watch ended (NATS lost a node, or this connection): watch again, which
				// hands every intake's counts anew. Nothing else stops meanwhile: the counts
				// known are used, and this intake's are written as before.
				if nw, err := u.kv.WatchAll(context.WithoutCancel(ctx)); err != nil {
					u.cfg.Log.Info("Watching the other dispatchers' counts again failed; retrying", "error", err.Error())
				} else {
					w, updates = nw, nw.Updates()
				}
			}
		case e, ok := <-updates:
			if !ok {
				u.cfg.Log.Info("The watch of the other dispatchers' counts ended; watching again at the next write")
				_ = w.Stop()
				w, updates = nil, nil
				continue
			}
			if e != nil {
				u.learn(e)
			}
		}
	}
}

// Flush writes the counts that changed since the last write.
func (u *Usage) Flush(ctx context.Context) {
	now := u.cfg.Now()
	u.mu.Lock()
	writes := make(map[string][]byte, len(u.dirty))
	for key := range u.dirty {
		own := u.prune(u.own[key], now)
		if len(own) == 0 {
			delete(u.own, key)
		} else {
			u.own[key] = own
		}
		writes[key] = encode(own)
	}
	clear(u.dirty)
	u.mu.Unlock()
	for key, v := range writes {
		if _, err := u.kv.Put(ctx, u.intake+"."+key, v); err != nil {
			u.cfg.Log.Error(err, "Writing an account's stored event bytes; trying again at the next write")
			u.mu.Lock()
			u.dirty[key] = true
			u.mu.Unlock()
		}
	}
}

// learn takes another intake's written counts.
func (u *Usage) learn(e jetstream.KeyValueEntry) {
	intake, key, ok := strings.Cut(e.Key(), ".")
	if !ok || intake == u.intake {
		return
	}
	var hs hours
	if e.Operation() == jetstream.KeyValuePut {
		var err error
		if hs, err = decode(e.Value()); err != nil {
			u.cfg.Log.Error(err, "Reading another dispatcher's stored event bytes; ignoring them", "key", e.Key())
			return
		}
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	byIntake := u.others[key]
	if len(hs) == 0 {
		delete(byIntake, intake)
		if len(byIntake) == 0 {
			delete(u.others, key)
		}
		return
	}
	if byIntake == nil {
		byIntake = map[string]hours{}
		u.others[key] = byIntake
	}
	byIntake[intake] = hs
}

// forget drops the other intakes' counts that no longer count, so that the counts of intakes
// that ended (earlier runs, replicas scaled away) do not stay in memory.
func (u *Usage) forget() {
	now := u.cfg.Now()
	u.mu.Lock()
	defer u.mu.Unlock()
	for key, byIntake := range u.others {
		for intake, hs := range byIntake {
			if hs = u.prune(hs, now); len(hs) == 0 {
				delete(byIntake, intake)
			} else {
				byIntake[intake] = hs
			}
		}
		if len(byIntake) == 0 {
			delete(u.others, key)
		}
	}
}

// encode writes hs as pairs of uvarints (hour, bytes), leaving out empty hours.
func encode(hs hours) []byte {
	out := make([]byte, 0, len(hs)*2*binary.MaxVarintLen64)
	for _, hb := range hs {
		if hb.bytes > 0 {
			out = binary.AppendUvarint(out, uint64(hb.hour))
			out = binary.AppendUvarint(out, uint64(hb.bytes))
		}
	}
	return out
}

// decode reads what encode wrote.
func decode(b []byte) (hours, error) {
	var hs hours
	for len(b) > 0 {
		h, n := binary.Uvarint(b)
		if n <= 0 {
			return nil, errors.New("malformed hour")
		}
		b = b[n:]
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return nil, errors.New("malformed byte count")
		}
		b = b[n:]
		hs = append(hs, hourBytes{hour: int64(h), bytes: int64(v)})
	}
	return hs, nil
}
