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

// Active-active dispatchers: every replica ingests and routes; each delivers the partitions that
// package partition gives it (by account). A note stored by one replica for a webhook another
// delivers is announced to that owner over core NATS, on its partition's subject, which only the
// partition's owner subscribes to.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/event"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/dispatcher/deliver"
	"github.com/hookline/hookline/dispatcher/partition"
	"github.com/hookline/hookline/dispatcher/store"
)

// Partitioning configures active-active delivery.
type Partitioning struct {
	// Partitions, above 0, divides delivery among the dispatchers sharing the NATS cluster: each
	// delivers the partitions assigned to it (package partition) and every one ingests. It is the
	// number of partitions of a new group; an existing group keeps its own. 0 leaves one
	// dispatcher delivering everything (alone, or holding the delivery lease).
	Partitions int
	// Identity names this dispatcher in the group (its pod name).
	Identity string
	// TTL is how long a partition's lease outlives its owner's last renewal: the longest time a
	// dead dispatcher's partitions go undelivered.
	TTL time.Duration
}

// arrivalsSubject is the subject announcing notes of partition p to its owner.
func arrivalsSubject(p int) string { return "hookline.arrivals." + strconv.Itoa(p) }

// arrival is an announcement: From stored Note in UID's queue.
type arrival struct {
	From string     `json:"from"`
	UID  string     `json:"uid"`
	Note store.Note `json:"note"`
}

// partitioned is the app's part in the group: it subscribes to the announcements of the partitions
// it owns and hands partitions to and from the engine.
type partitioned struct {
	group    *partition.Group
	nc       *nats.Conn
	identity string
	engine   *deliver.Engine
	store    *store.Store
	log      logr.Logger
	// stopTimeout bounds how long giving a partition up waits for attempts in flight: below the
	// quarter TTL between an owner's fence and its lease's expiry.
	stopTimeout time.Duration
	// taken carries webhooks to reconcile again (the Syncer's source).
	taken chan event.GenericEvent

	// leaseNC carries the group's lease and membership writes.
	leaseNC *nats.Conn

	mu   sync.Mutex
	subs map[int]*nats.Subscription
	// stopped ends the goroutines that feed taken.
	stopped chan struct{}
}

// joinPartitions joins the group of delivering dispatchers and sets cfg.Engine up for it.
func (a *App) joinPartitions(ctx context.Context, cfg *Config) error {
	pc := cfg.Partitioning
	if pc.Identity == "" {
		return errors.New("active-active delivery needs this dispatcher's identity")
	}
	ttl := pc.TTL
	if ttl <= 0 {
		ttl = 15 * time.Second
	}
	var g *partition.Group
	p := &partitioned{identity: pc.Identity, store: a.Store, log: logr.FromContextOrDiscard(ctx).WithName("partitions"),
		subs: map[int]*nats.Subscription{}, taken: make(chan event.GenericEvent, 1024), stopped: make(chan struct{})}
	p.stopTimeout = min(cfg.DeliveryTimeout+time.Second, ttl/5)
	joined := false
	defer func() {
		if !joined {
			p.close() // the connections opened so far
		}
	}()
	// The leases on a connection of their own: renewals must not wait behind the store's
	// publishes (under load they missed their deadline and the replica stopped its partitions).
	var err error
	if p.leaseNC, err = a.Store.Connect("hookline-dispatcher-partitions"); err != nil {
		return fmt.Errorf("connecting for the partitions' leases: %w", err)
	}
	leases, err := jetstream.New(p.leaseNC)
	if err != nil {
		return err
	}
	err = a.Store.Patiently(ctx, func(ctx context.Context) error {
		var err error
		g, err = partition.Join(logr.NewContext(ctx, p.log), partition.Config{
			JetStream: leases, Identity: pc.Identity, Partitions: pc.Partitions, TTL: ttl,
			Replicas: a.Store.Replicas(), Start: p.start, Stop: p.stop,
			Renewed: func(part int, until time.Time) { p.engine.Extend(part, until) },
			// A rollout from the standby mode: nothing is delivered here until its lease holder
			// has stopped, and no standby takes the lease over meanwhile.
			Fence: store.LeaseFence(leases, store.LeaseConfig{Replicas: a.Store.Replicas(), TTL: ttl}),
		})
		return err
	})
	if err != nil {
		return fmt.Errorf("joining the delivering dispatchers: %w", err)
	}
	p.group = g
	a.logTrimmer.Store(g)
	// A connection of its own: announcements must not wait behind the store's publishes.
	if p.nc, err = a.Store.Connect("hookline-dispatcher-arrivals"); err != nil {
		return fmt.Errorf("connecting for announcements: %w", err)
	}
	if cfg.Registry != nil {
		if err := p.register(cfg.Registry); err != nil {
			return err
		}
	}
	cfg.Engine.Partitions = g.Partitions()
	cfg.Engine.Announce = p.announce
	cfg.Engine.Taken = p.retake
	cfg.Engine.ReleaseSaveTimeout = p.stopTimeout
	a.partitioned = p
	joined = true
	return nil
}

// announce tells partition part's owner that n was stored in uid's queue. A lost announcement
// delays the note until the owner's next recount of the store (deliver.recountInterval).
func (p *partitioned) announce(part int, uid string, n store.Note) {
	raw, err := json.Marshal(arrival{From: p.identity, UID: uid, Note: n})
	if err == nil {
		err = p.nc.Publish(arrivalsSubject(part), raw)
	}
	if err != nil {
		p.log.V(1).Info("Announcing a note failed; its owner finds it at its next recount", "uid", uid, "error", err.Error())
	}
}

// arrived takes in an announcement. Only the uid and the note's sequence and identity matter: the
// engine reads notes from the store, never from the message. The store learns of the note first,
// so that its index answers no read of the queue without it.
func (p *partitioned) arrived(m *nats.Msg) {
	var a arrival
	if err := json.Unmarshal(m.Data, &a); err != nil || a.UID == "" || a.From == p.identity {
		return
	}
	p.store.Announced(a.UID, a.Note.Seq)
	p.engine.Arrived(a.UID, a.Note)
}

// start makes this dispatcher deliver partition part: announcements first, so that none stored
// after the engine counts the store is missed.
func (p *partitioned) start(part int, token uint64) {
	sub, err := p.nc.Subscribe(arrivalsSubject(part), p.arrived)
	if err != nil {
		p.log.Error(err, "Subscribing to a partition's announcements; its notes are found at each recount", "partition", part)
	} else {
		p.mu.Lock()
		p.subs[part] = sub
		p.mu.Unlock()
	}
	p.engine.Acquire(part, token)
	p.log.Info("Delivering partition", "partition", part)
}

// stop makes this dispatcher stop delivering partition part; it returns once no attempt for it
// starts any more.
func (p *partitioned) stop(part int) {
	ctx, cancel := context.WithTimeout(context.Background(), p.stopTimeout)
	defer cancel()
	p.engine.Release(ctx, part)
	p.mu.Lock()
	sub := p.subs[part]
	delete(p.subs, part)
	p.mu.Unlock()
	if sub != nil {
		_ = sub.Unsubscribe()
	}
	p.log.Info("Stopped delivering partition", "partition", part)
}

// retake has the webhooks whose delivery this dispatcher just took over reconciled again: a change
// made while nobody delivered them (INACTIVE, a reactivation) is acted on by their new owner. It
// never blocks the engine.
func (p *partitioned) retake(uids []string) {
	var evs []event.GenericEvent
	for _, uid := range uids {
		if wh, ok := p.engine.Webhook(uid); ok {
			evs = append(evs, event.GenericEvent{Object: &hooklinev1.Webhook{ObjectMeta: metav1.ObjectMeta{Namespace: wh.Namespace, Name: wh.Name}}})
		}
	}
	go func() {
		for _, ev := range evs {
			select {
			case p.taken <- ev:
			case <-p.stopped:
				return
			}
		}
	}()
}

// run takes part in the group until ctx ends, then gives every partition up.
func (p *partitioned) run(ctx context.Context) {
	defer close(p.stopped)
	p.group.Run(ctx)
}

// ready fails until this dispatcher is a current member of the group (its first pass, or NATS out
// of reach): the others do not count it yet, or no longer, and it may deliver nothing.
func (p *partitioned) ready(*http.Request) error {
	if !p.group.Member() {
		return errors.New("not a current member of the delivering dispatchers")
	}
	// Ready also while a dispatcher in the standby mode delivers (Group.BlockedBy): its events
	// are stored and wait until that one stops, and a rollout from the standby mode needs this
	// replica ready to go on replacing the old ones.
	return nil
}

// register exports the partitions this dispatcher delivers and the members it sees.
func (p *partitioned) register(reg prometheus.Registerer) error {
	return errors.Join(
		reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "hookline_partitions_owned",
			Help: "Partitions of the accounts this dispatcher delivers (active-active dispatchers).",
		}, func() float64 { return float64(len(p.group.Owned())) })),
		reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "hookline_partition_members",
			Help: "Dispatchers this one sees sharing the partitions, itself included.",
		}, func() float64 { return float64(len(p.group.Members())) })),
	)
}

// close ends the announcements' and the leases' connections, after run returned (either may be
// nil when joining failed).
func (p *partitioned) close() {
	p.nc.Close()
	p.leaseNC.Close()
}
