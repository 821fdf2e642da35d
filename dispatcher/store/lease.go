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

package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookline/hookline/dispatcher/kvlease"
)

// LeaseBucket holds the delivery lease of dispatchers sharing an external NATS cluster.
const (
	LeaseBucket = "HOOKLINE_LEASE"
	leaseKey    = "delivery"
)

// ErrLeaseLost says that the delivery lease could not be renewed in time or was taken over.
var ErrLeaseLost = errors.New("delivery lease lost")

// LeaseConfig configures the delivery lease.
type LeaseConfig struct {
	// URL of the NATS cluster and how to authenticate to it (the store's).
	URL  string
	Auth Auth
	// Replicas of the lease bucket.
	Replicas int
	// Identity names this dispatcher (its pod name). A dispatcher restarting under the same
	// identity takes its own lease back at once instead of waiting for it to expire.
	Identity string
	// TTL is how long a lease outlives its holder's last renewal; renewals come every TTL/4.
	TTL time.Duration
}

// Lease is the delivery lease: of the dispatchers sharing one NATS cluster, only the holder
// delivers, so that per-webhook order holds and no notification is sent twice by two replicas.
// The others wait, ready to take over within TTL of the holder's death.
//
// The lease is a key in a key-value bucket whose entries expire TTL after their last write. The
// holder renews with a compare-and-set on the revision it wrote last; a failed compare means
// somebody else holds the key now. A holder that cannot renew for TTL minus a safety margin gives
// up (Lost is closed) before the key can expire, so two holders never overlap.
type Lease struct {
	cfg LeaseConfig
	nc  *nats.Conn
	kv  jetstream.KeyValue
	log logr.Logger
	rev uint64
	// renewed is when the last successful write was sent: the store's expiry counts from a moment
	// no earlier than that.
	renewed time.Time
	lost    chan struct{}
	once    sync.Once
	err     error
	// mu guards renewed's writes once Keep runs, and covers, told of each renewal's deadline.
	mu     sync.Mutex
	covers func(until time.Time)
}

// covered is how long after a renewal was sent the holder may go on: a quarter TTL less than the
// store keeps it, for clocks that run at slightly different rates.
func (l *Lease) covered() time.Duration { return l.cfg.TTL * 3 / 4 }

// Covers has f told, now and after every renewal, until when the lease covers new deliveries:
// three quarters of the TTL after the last renewal was sent. A deliverer that checks it before
// each attempt stops in time even when the process is paused (a stopped container, a long
// collection) past the deadline and resumes before Keep notices.
func (l *Lease) Covers(f func(until time.Time)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.covers = f
	f(l.renewed.Add(l.covered()))
}

// renewedAt records a successful write sent at sent and returns the deadline it gives.
func (l *Lease) renewedAt(sent time.Time) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.renewed = sent
	deadline := sent.Add(l.covered())
	if l.covers != nil {
		l.covers(deadline)
	}
	return deadline
}

// AcquireLease connects to the cluster and blocks until this dispatcher holds the delivery lease
// (or ctx ends). Call Keep to renew it.
func AcquireLease(ctx context.Context, cfg LeaseConfig) (*Lease, error) {
	log := logr.FromContextOrDiscard(ctx) // the lease logs with ctx's logger for its lifetime
	if cfg.TTL <= 0 {
		return nil, errors.New("the delivery lease needs a TTL")
	}
	if cfg.Identity == "" {
		return nil, errors.New("the delivery lease needs an identity")
	}
	nc, err := cfg.Auth.Connect(cfg.URL, "hookline-dispatcher-lease")
	if err != nil {
		return nil, err
	}
	l := &Lease{cfg: cfg, nc: nc, log: log, lost: make(chan struct{})}
	if err := l.acquire(ctx); err != nil {
		nc.Close()
		return nil, err
	}
	return l, nil
}

func (l *Lease) acquire(ctx context.Context) error {
	js, err := jetstream.New(l.nc)
	if err != nil {
		return err
	}
	replicas := max(l.cfg.Replicas, 1)
	retry := time.NewTicker(max(l.cfg.TTL/8, 50*time.Millisecond))
	defer retry.Stop()
	waitingFor := ""
	for {
		if l.kv == nil {
			if l.kv, err = l.bucket(ctx, js, replicas); err != nil {
				l.kv = nil
				l.log.Info("Delivery lease bucket unavailable; retrying", "error", err.Error())
			}
		}
		if l.kv != nil {
			held, holder, err := l.try(ctx)
			switch {
			case held:
				l.log.Info("Holding the delivery lease", "identity", l.cfg.Identity)
				return nil
			case err != nil:
				l.log.Info("Delivery lease unavailable; retrying", "error", err.Error())
			case holder != waitingFor:
				waitingFor = holder
				l.log.Info("Standing by: another dispatcher delivers", "holder", holder, "ttl", l.cfg.TTL)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-retry.C:
		}
	}
}

// bucket opens the lease bucket, creating it with this dispatcher's TTL if it does not exist. An
// existing bucket's TTL wins over ours: the key expires after the bucket's TTL, so renewing and
// giving up must follow it. (Were a new dispatcher to shorten the TTL during a rollout, the running
// holder would keep renewing on the old, longer schedule and a standby could take over while it
// still delivers.) To change the TTL, delete the bucket while no dispatcher runs.
func (l *Lease) bucket(ctx context.Context, js jetstream.JetStream, replicas int) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, LeaseBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      LeaseBucket,
			Description: "hookline: which dispatcher delivers",
			History:     1,
			TTL:         l.cfg.TTL,
			Storage:     jetstream.FileStorage,
			Replicas:    replicas,
		})
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = js.KeyValue(ctx, LeaseBucket) // another dispatcher was quicker
		}
	}
	if err != nil {
		return nil, err
	}
	st, err := kv.Status(ctx)
	if err != nil {
		return nil, err
	}
	if ttl := st.TTL(); ttl > 0 && ttl != l.cfg.TTL {
		l.log.Info("Using the lease bucket's TTL, not --lease-ttl", "bucketTTL", ttl, "flag", l.cfg.TTL)
		l.cfg.TTL = ttl
	}
	return kv, nil
}

// try takes the lease when it is free or still ours from a previous run.
func (l *Lease) try(ctx context.Context) (held bool, holder string, err error) {
	sent := time.Now()
	rev, holder, err := kvlease.Take(ctx, l.kv, leaseKey, l.cfg.Identity)
	if err != nil || holder != "" {
		return false, holder, err
	}
	l.rev, l.renewed = rev, sent
	return true, "", nil
}

// Keep renews the lease until ctx ends; start it right after AcquireLease, and call Release once
// delivery has stopped. If the
// lease is lost, Lost is closed and Err says why: the caller must stop delivering at once.
func (l *Lease) Keep(ctx context.Context) {
	every := l.cfg.TTL / 4
	// Give up a quarter TTL before the key could expire: the store's clock and ours may run at
	// slightly different rates, and delivery must have stopped before another dispatcher can take
	// over.
	deadline := l.renewed.Add(l.covered())
	t := time.NewTicker(max(every/4, 10*time.Millisecond))
	defer t.Stop()
	next := l.renewed.Add(every)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		if now.After(deadline) {
			l.fail(fmt.Errorf("%w: not renewed within %s", ErrLeaseLost, l.covered()))
			return
		}
		if now.Before(next) {
			continue
		}
		// Never waiting past the deadline: a renewal that hangs must not keep this holder
		// delivering after the key may have expired.
		rctx, cancel := context.WithDeadline(ctx, minTime(now.Add(every), deadline))
		rev, err := kvlease.Renew(rctx, l.kv, leaseKey, l.cfg.Identity, l.rev)
		cancel()
		switch {
		case err == nil:
			l.rev = rev
			deadline = l.renewedAt(now)
			next = now.Add(every)
		case errors.Is(err, kvlease.ErrTaken):
			l.fail(fmt.Errorf("%w: taken over by another dispatcher", ErrLeaseLost))
			return
		case !time.Now().Before(deadline):
			l.fail(fmt.Errorf("%w: not renewed within %s (%v)", ErrLeaseLost, l.covered(), err))
			return
		default:
			// The cluster may be electing a leader; try again on the next tick until the deadline.
			l.log.Info("Renewing the delivery lease failed; retrying", "error", err.Error())
		}
	}
}

func (l *Lease) fail(err error) {
	l.once.Do(func() {
		l.err = err
		close(l.lost)
	})
}

// Release gives the lease up so that a standby takes over without waiting for the TTL. Call it
// after Keep has returned and delivery has stopped.
func (l *Lease) Release() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := kvlease.Release(ctx, l.kv, leaseKey, l.cfg.Identity, l.rev); err != nil {
		l.log.Info("Releasing the delivery lease failed; it expires on its own", "error", err.Error())
	} else {
		l.log.Info("Released the delivery lease")
	}
	l.fail(errors.New("delivery lease released"))
	l.nc.Close()
}

// Lost is closed when the lease is lost or released.
func (l *Lease) Lost() <-chan struct{} { return l.lost }

// Err says why the lease ended, once Lost is closed.
func (l *Lease) Err() error {
	<-l.lost
	return l.err
}

// PartitionedHolder is the delivery lease's holder while active-active dispatchers deliver: a
// dispatcher in the standby mode (of an older release, during a rollout from one mode to the other)
// waits for it as for any holder, so that the two kinds never deliver at once.
const PartitionedHolder = "hookline-active-active"

// LeaseFence returns the fence of active-active dispatchers (partition.Config.Fence) on js: each call
// marks the delivery lease as held by PartitionedHolder (creating it, or renewing it when another
// active-active dispatcher did) and returns the holder when a dispatcher in the standby mode holds
// it instead. The mark expires like a lease, TTL after the last active-active dispatcher's renewal.
func LeaseFence(js jetstream.JetStream, cfg LeaseConfig) func(ctx context.Context) (string, error) {
	l := &Lease{cfg: cfg, log: logr.Discard()}
	return func(ctx context.Context) (string, error) {
		if l.kv == nil {
			kv, err := l.bucket(ctx, js, max(cfg.Replicas, 1))
			if err != nil {
				return "", err
			}
			l.kv = kv
		}
		// Every active-active dispatcher writes the same name: Take renews the mark another one
		// wrote as its own.
		_, holder, err := kvlease.Take(ctx, l.kv, leaseKey, PartitionedHolder)
		return holder, err
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
