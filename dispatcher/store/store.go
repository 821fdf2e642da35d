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

// Package store is the dispatcher's durable state on NATS JetStream: the event log, one FIFO queue of
// notifications per webhook, large event bodies, and per-webhook delivery state.
//
// Layout:
//   - stream HOOKLINE_EVENTS, subject hookline.events: every accepted event, deduplicated on its
//     EventKey (a digest of account and id) within the dedupe window, kept for the retention period (72 h + margin);
//     bodies above the inline limit live in the object store HOOKLINE_BODIES and the stream message
//     names them;
//   - stream HOOKLINE_NOTES, subjects hookline.notes.<webhook uid>: per webhook, a small record per
//     notification (event sequence, creation time), in ingest order; a delivered or dropped
//     notification is removed by purging its webhook's subject up to it, which keeps the queue FIFO
//     and lets one purge cover several deliveries;
//   - key-value bucket HOOKLINE_STATE: per webhook, counters and the failing head's retry state, so
//     that a restart resumes retry schedules;
//   - key-value bucket HOOKLINE_ROUTED: which events have all their notifications queued, for the
//     dedupe window: one record per intake (each opened Store; every event names its intake in a
//     header), saying which of the events it stored are routed (see routed), and a marker under the
//     event's EventKey for a re-post routed by another intake. Notifications carry no message ids
//     (JetStream would remember each one for the whole window, about 190 bytes apiece): a re-posted
//     event is routed again only when it is not recorded as routed, that is when a crash came
//     between storing it and queueing its notifications.
package store

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	utilcache "k8s.io/apimachinery/pkg/util/cache"
)

// Names of the JetStream assets.
const (
	EventsStream   = "HOOKLINE_EVENTS"
	NotesStream    = "HOOKLINE_NOTES"
	BodiesBucket   = "HOOKLINE_BODIES"
	StateBucket    = "HOOKLINE_STATE"
	RoutedBucket   = "HOOKLINE_ROUTED"
	eventsSubject  = "hookline.events"
	notesPrefix    = "hookline.notes."
	bodyHeader     = "Hookline-Body-Object"
	createdHeader  = "Hookline-Created"
	defaultInline  = 512 << 10
	defaultDedupe  = 10 * time.Minute
	defaultRetains = 73 * time.Hour
)

// mediumBlocks is a per-subject message limit no stream reaches. It is set only for its side
// effect: nats-server gives a stream with a per-subject limit 4 MB message blocks instead of the
// 8 MB of an unbounded limits stream, and the stream API has no block size of its own. Each block
// read or written is cached whole, so the blocks held in memory while the queues are read at many
// places at once (docs/performance.md, "Smaller blocks") take half the memory.
const mediumBlocks = math.MaxInt64

// Config says where JetStream is and how to lay the assets out.
type Config struct {
	// URL of an external NATS cluster; empty starts an embedded JetStream server.
	URL string
	// Auth says how to authenticate to the external cluster and trust it.
	Auth Auth
	// DataDir is the embedded server's storage directory.
	DataDir string
	// ListenAddress, when set, lets other processes (nats CLI, a second dispatcher) reach the
	// embedded server, e.g. 127.0.0.1:4222. Empty keeps it in-process only.
	ListenAddress string
	// ListenTokenFile holds the token every client of the embedded server must present; it is
	// required with ListenAddress, because whoever reaches the listener could otherwise read
	// every event (personal data) and delete the queues. Read once at start.
	ListenTokenFile string
	// SyncAlways makes the embedded server fsync every write before acknowledging it. Without it a
	// killed process loses nothing (the data is in the page cache) but a machine crash may lose the
	// last seconds.
	SyncAlways bool
	// Replicas of each stream on an external cluster (1 for the embedded server).
	Replicas int
	// DedupeWindow is how long an event id is remembered for idempotency (at least 10 minutes).
	DedupeWindow time.Duration
	// Retention is how long events and queued notifications are kept at most (longer than the drop
	// age of 72 h).
	Retention time.Duration
	// InlineMax is the largest event stored inside the event log; larger ones go to the object store.
	InlineMax int
	// Log receives the embedded server's log (see natsLogger); the zero Logger discards it.
	Log logr.Logger
	// SharedQueues says that other processes queue notes in the same streams at the same time
	// (active-active dispatchers). The index of recent notes is then fed by a consumer of the
	// notes stream (streamNotes) rather than by this process's publishes, which would miss the
	// notes another dispatcher queued; Store.Announced must be told of the notes announced.
	SharedQueues bool
}

// Auth holds the files that authenticate the dispatcher to an external NATS cluster (mount them
// from Secrets). Credentials never go into the URL, where they would show in process lists.
type Auth struct {
	// CredsFile is a user credentials file (JWT and NKey seed), for clusters in operator mode.
	CredsFile string
	// NKeySeedFile holds an NKey user's seed, for clusters that list NKey users.
	NKeySeedFile string
	// CAFile holds the CA certificates that sign the servers' certificates; setting it requires
	// TLS.
	CAFile string
	// CertFile and KeyFile are a client certificate and key for clusters that verify clients.
	CertFile, KeyFile string
	// TokenFile holds a token, for clusters (or another dispatcher's embedded server, see
	// Config.ListenTokenFile) that authenticate with one.
	TokenFile string
}

// options returns the nats.Options that a's files call for. Files are read when connecting, so a
// rotated Secret applies at the next reconnection.
func (a Auth) options() ([]nats.Option, error) {
	var opts []nats.Option
	if n := countSet(a.CredsFile, a.NKeySeedFile, a.TokenFile); n > 1 {
		return nil, errors.New("NATS: give one of a credentials file, an NKey seed file and a token file, not several")
	}
	if a.TokenFile != "" {
		if _, err := readToken(a.TokenFile); err != nil {
			return nil, err
		}
		// Read at each connection, so that a rotated Secret applies at the next reconnection.
		file := a.TokenFile
		opts = append(opts, nats.TokenHandler(func() string {
			t, _ := readToken(file)
			return t
		}))
	}
	if a.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(a.CredsFile))
	}
	if a.NKeySeedFile != "" {
		opt, err := nats.NkeyOptionFromSeed(a.NKeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("NATS NKey seed file: %w", err)
		}
		opts = append(opts, opt)
	}
	if (a.CertFile == "") != (a.KeyFile == "") {
		return nil, errors.New("NATS: a client certificate needs both a certificate and a key file")
	}
	if a.CertFile != "" {
		opts = append(opts, nats.ClientCert(a.CertFile, a.KeyFile))
	}
	if a.CAFile != "" {
		opts = append(opts, nats.RootCAs(a.CAFile))
	}
	return opts, nil
}

func countSet(ss ...string) int {
	n := 0
	for _, s := range ss {
		if s != "" {
			n++
		}
	}
	return n
}

// minTokenLength is the shortest token accepted for the embedded server's listener: a guessable
// token is no authentication.
const minTokenLength = 32

// readToken reads a NATS token from path: the file's content without surrounding white space.
func readToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("NATS token file: %w", err)
	}
	t := strings.TrimSpace(string(b))
	switch {
	case t == "":
		return "", fmt.Errorf("NATS token file %s is empty", path)
	case strings.IndexFunc(t, func(r rune) bool { return r < 0x21 || r == 0x7f }) >= 0:
		return "", fmt.Errorf("NATS token file %s: the token must not contain white space or control characters", path)
	}
	return t, nil
}

// readListenToken reads the token of the embedded server's listener, which hookline chooses the
// rules for: long enough not to be guessed, and not a bcrypt hash, which nats-server would
// compare the clients' tokens against instead of taking it as the token.
func readListenToken(path string) (string, error) {
	t, err := readToken(path)
	switch {
	case err != nil:
		return "", err
	case len(t) < minTokenLength:
		return "", fmt.Errorf("NATS token file %s: the token must be at least %d characters (e.g. openssl rand -hex 32)", path, minTokenLength)
	case strings.HasPrefix(t, "$2"):
		return "", fmt.Errorf("NATS token file %s: give the token itself, not a bcrypt hash", path)
	}
	return t, nil
}

// Connect connects to the external cluster at url with a's credentials; name identifies the
// connection in the cluster's monitoring. It reconnects forever.
func (a Auth) Connect(url, name string) (*nats.Conn, error) {
	opts, err := a.options()
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(url, append(opts, nats.Name(name), nats.MaxReconnects(-1))...)
	if err != nil {
		return nil, fmt.Errorf("connecting to NATS: %w", err)
	}
	return nc, nil
}

// Store is an open connection to the dispatcher's JetStream assets.
type Store struct {
	cfg    Config
	srv    *server.Server
	nc     *nats.Conn
	js     jetstream.JetStream
	events jetstream.Stream
	notes  jetstream.Stream
	bodies jetstream.ObjectStore
	// bodiesStream is the bodies' object store's stream.
	bodiesStream jetstream.Stream
	state        jetstream.KeyValue
	routed       jetstream.KeyValue
	// large holds the sequences of the large events this process stored and has not marked
	// routed yet, for the dedupe window (at most largePending of them): their marks go under their
	// keys too (MarkRouted). One whose routing failed is forgotten with the window.
	large *utilcache.LRUExpireCache
	// rt records which events this process stored are routed (HOOKLINE_ROUTED).
	rt     *routed
	recent noteIndex
	// following stops the consumer feeding a streamNotes index; its connection is followConn.
	following  func()
	followConn *nats.Conn
	// dial opens a connection to the same server as nc's (Connect).
	dial func(name string) (*nats.Conn, error)
	// sweep answers the reads of backlogged queues from one sequential read of the notes stream
	// (single writer only); its fetches use sweepConn.
	sweep       *sweep
	sweepMu     sync.Mutex
	sweepConn   *nats.Conn
	sweepClosed bool
	// indexReads, sweepReads and streamReads count the queue reads answered by the index, by the
	// sweep and by JetStream.
	indexReads, sweepReads, streamReads atomic.Uint64
	// storedUpTo is the highest note sequence acknowledged to this process (single writer).
	storedUpTo atomic.Uint64
	// settled knows which notes are settled, for Compact (single writer only).
	settled *settledNotes
	// compactedRemovals and queueRemovals count the removals of settled notes by Compact and by
	// Remove.
	compactedRemovals, queueRemovals atomic.Uint64
}

// QueueReads returns how many queue reads (LoadNotes) the index of recent notes answered, how many
// the sweep did and how many JetStream did, since the store opened: the last kind walks the notes
// stream, so a high share of it is what to look at when the store's CPU grows.
func (s *Store) QueueReads() (index, sweep, stream uint64) {
	return s.indexReads.Load(), s.sweepReads.Load(), s.streamReads.Load()
}

// SweepMisses returns, by reason (MissReasons), how many queue reads the sweep left to JetStream
// since the store opened; nil when the store has no sweep (shared queues).
func (s *Store) SweepMisses() map[string]uint64 {
	if s.sweep == nil {
		return nil
	}
	return s.sweep.missCounts()
}

// Open starts (or connects to) JetStream and creates or updates the assets.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.DedupeWindow <= 0 {
		cfg.DedupeWindow = defaultDedupe
	}
	if cfg.Retention <= 0 {
		cfg.Retention = defaultRetains
	}
	if cfg.InlineMax <= 0 {
		cfg.InlineMax = defaultInline
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	s := &Store{cfg: cfg}
	var err error
	if cfg.URL == "" {
		var token string
		if s.srv, token, err = startEmbedded(cfg); err != nil {
			return nil, err
		}
		s.dial = func(name string) (*nats.Conn, error) {
			opts := []nats.Option{nats.InProcessServer(s.srv), nats.Name(name)}
			if token != "" {
				opts = append(opts, nats.Token(token))
			}
			nc, err := nats.Connect("", opts...)
			if err != nil {
				return nil, fmt.Errorf("connecting to NATS: %w", err)
			}
			return nc, nil
		}
	} else {
		s.dial = func(name string) (*nats.Conn, error) { return cfg.Auth.Connect(cfg.URL, name) }
	}
	s.nc, err = s.dial("hookline-dispatcher")
	if err != nil {
		s.Close()
		return nil, err
	}
	jsOpts := []jetstream.JetStreamOpt{jetstream.WithPublishAsyncMaxPending(4096)}
	if !cfg.SharedQueues {
		// Shared queues are indexed from the stream's consumer, not from this process's publishes.
		jsOpts = append(jsOpts, jetstream.WithPublishAsyncAckHandler(s.noteStored))
	}
	if s.js, err = jetstream.New(s.nc, jsOpts...); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.ensureAssetsRetrying(ctx); err != nil {
		s.Close()
		return nil, err
	}
	s.rt = newRouted(s.js, s.routed, cfg.DedupeWindow)
	s.large = utilcache.NewLRUExpireCache(largePending)
	if !cfg.SharedQueues {
		s.recent = newRecentNotes()
		// Every note the engine knows of is acknowledged (it is told after), or was stored
		// before this store opened.
		s.storedUpTo.Store(s.notes.CachedInfo().State.LastSeq)
		s.sweep = newSweep(s.sweepFetch, s.storedUpTo.Load)
		s.settled = newSettledNotes(s.notes.CachedInfo().State.FirstSeq)
		return s, nil
	}
	if err := s.follow(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// assetsPatience bounds how long Open waits for a cluster that cannot answer yet.
const assetsPatience = 2 * time.Minute

// ensureAssetsRetrying creates the assets, waiting out a cluster that is electing leaders (a node
// just died) instead of failing the dispatcher's start.
func (s *Store) ensureAssetsRetrying(ctx context.Context) error {
	return s.Patiently(ctx, s.ensureAssets)
}

// Patiently runs f, a JetStream request that is safe to repeat (creating a stream or bucket), until
// it succeeds: on an external cluster for up to two minutes, each try bounded to 2 s, because a
// cluster electing leaders after a node died answers nothing for a few seconds and a dispatcher
// taking over then must not fail its start; with the embedded server, once.
func (s *Store) Patiently(ctx context.Context, f func(context.Context) error) error {
	if s.cfg.URL == "" {
		return f(ctx)
	}
	deadline := time.Now().Add(assetsPatience)
	for {
		// A request to a stream without a leader waits for JetStream's whole API timeout; ask
		// again sooner, elections take a few seconds.
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := f(actx)
		cancel()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// startEmbedded starts the embedded server and returns it with the token its clients present
// ("" when it does not listen).
func startEmbedded(cfg Config) (*server.Server, string, error) {
	if cfg.DataDir == "" {
		return nil, "", errors.New("embedded JetStream needs a data directory")
	}
	opts := &server.Options{
		ServerName: "hookline-dispatcher",
		JetStream:  true,
		StoreDir:   cfg.DataDir,
		DontListen: cfg.ListenAddress == "",
		SyncAlways: cfg.SyncAlways,
		NoSigs:     true,
		NoLog:      cfg.Log.GetSink() == nil,
	}
	var token string
	if cfg.ListenAddress != "" {
		if cfg.ListenTokenFile == "" {
			return nil, "", errors.New("--nats-listen-address needs --nats-listen-token-file: whoever reaches the listener could read every event and delete the queues")
		}
		var err error
		if token, err = readListenToken(cfg.ListenTokenFile); err != nil {
			return nil, "", err
		}
		host, port, err := splitHostPort(cfg.ListenAddress)
		if err != nil {
			return nil, "", err
		}
		opts.Host, opts.Port = host, port
		// Every client, the in-process one included, presents the token.
		opts.Authorization = token
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, "", fmt.Errorf("embedded JetStream: %w", err)
	}
	if !opts.NoLog {
		srv.SetLoggerV2(natsLogger{cfg.Log}, cfg.Log.V(2).Enabled(), false, false)
	}
	go srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		return nil, "", errors.New("embedded JetStream did not start within 30s")
	}
	return srv, token, nil
}

func splitHostPort(addr string) (string, int, error) {
	i := strings.LastIndex(addr, ":")
	if i < 0 {
		return "", 0, fmt.Errorf("listen address %q has no port", addr)
	}
	port, err := strconv.Atoi(addr[i+1:])
	if err != nil {
		return "", 0, fmt.Errorf("listen address %q: %w", addr, err)
	}
	return addr[:i], port, nil
}

func (s *Store) ensureAssets(ctx context.Context) error {
	var err error
	s.events, err = s.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:              EventsStream,
		Description:       "hookline: accepted events",
		Subjects:          []string{eventsSubject},
		Storage:           jetstream.FileStorage,
		Retention:         jetstream.LimitsPolicy,
		MaxAge:            s.cfg.Retention,
		Duplicates:        s.cfg.DedupeWindow,
		MaxMsgsPerSubject: mediumBlocks,
		Replicas:          s.cfg.Replicas,
		AllowDirect:       s.directGet(),
	})
	if err != nil {
		return fmt.Errorf("stream %s: %w", EventsStream, err)
	}
	s.notes, err = s.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        NotesStream,
		Description: "hookline: per-webhook notification queues",
		Subjects:    []string{notesPrefix + "*"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      s.cfg.Retention,
		// Notifications are published without message ids (see HOOKLINE_ROUTED): keep the
		// smallest window JetStream allows.
		Duplicates:        time.Second,
		MaxMsgsPerSubject: mediumBlocks,
		Replicas:          s.cfg.Replicas,
		AllowDirect:       s.directGet(),
	})
	if err != nil {
		return fmt.Errorf("stream %s: %w", NotesStream, err)
	}
	s.bodies, err = s.js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket:      BodiesBucket,
		Description: "hookline: event bodies above the inline limit",
		TTL:         s.cfg.Retention,
		Storage:     jetstream.FileStorage,
		Replicas:    s.cfg.Replicas,
	})
	if err != nil {
		return fmt.Errorf("object store %s: %w", BodiesBucket, err)
	}
	// Its stream, for purging the markers of deleted duplicates' bodies (purgeBodyMarker) without
	// looking it up at each.
	if s.bodiesStream, err = s.js.Stream(ctx, "OBJ_"+BodiesBucket); err != nil {
		return fmt.Errorf("object store %s: %w", BodiesBucket, err)
	}
	s.state, err = s.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      StateBucket,
		Description: "hookline: per-webhook delivery state",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    s.cfg.Replicas,
	})
	if err != nil {
		return fmt.Errorf("key-value bucket %s: %w", StateBucket, err)
	}
	s.routed, err = s.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      RoutedBucket,
		Description: "hookline: events whose notifications are queued",
		History:     1,
		TTL:         s.cfg.DedupeWindow,
		Storage:     jetstream.FileStorage,
		Replicas:    s.cfg.Replicas,
	})
	if err != nil {
		return fmt.Errorf("key-value bucket %s: %w", RoutedBucket, err)
	}
	return nil
}

// directGet says whether streams allow direct gets. On a clustered stream any replica answers a
// direct get, followers included, and a follower may not have the latest writes yet: a queue read
// from a lagging follower would look shorter than it is. Single-replica streams have no followers.
func (s *Store) directGet() bool { return s.cfg.Replicas == 1 }

// EventKey is an event's idempotency key: the one name under which JetStream deduplicates the
// event (its message id) and under which its routed marker is kept. It is a digest of the account
// and the id, length-prefixed so that no (account, id) pair can be spelled as another: the raw
// "account/id" was not one key but two, as the NATS client trims a message id header ("dup-7 " was
// a duplicate of "dup-7" in JetStream's eyes and a new event in the marker's), and "a/b"+"c" read
// the same as "a"+"b/c".
func EventKey(accountID, id string) string {
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	h.Write(n[:binary.PutUvarint(n[:], uint64(len(accountID)))])
	h.Write([]byte(accountID))
	h.Write([]byte(id))
	var sum [sha256.Size]byte
	return "ev-" + hex.EncodeToString(h.Sum(sum[:0])[:16])
}

// largePending bounds Store.large: each is an event over InlineMax stored within the dedupe
// window and not routed yet; past it the oldest lose only their marker under the key.
const largePending = 4096

// MarkRouted records that the notifications of event seq, whose idempotency key is key (EventKey),
// are queued, and returns once that is stored. An event this process stored and has not marked yet
// goes into its intake's record (see routed), with the marks of concurrent callers; any other (the
// re-post of an event stored by another intake, or by an earlier run) gets a marker of its own
// under key, as every event did before the records.
//
// A large event's mark goes under its key as well: a re-post of it reads that before uploading its
// body (PutEvent), when the record, found by the sequence the upload's publish returns, cannot be
// read yet. Without it every re-post of a routed large event wrote its whole body into the store
// and deleted it again, uncounted by any quota.
func (s *Store) MarkRouted(ctx context.Context, key string, seq uint64) error {
	if ok, err := s.rt.markRouted(ctx, seq); ok && !errors.Is(err, errRecordFull) {
		if _, large := s.large.Get(seq); err != nil || !large {
			return err
		}
	}
	if _, err := s.routed.Put(ctx, key, nil); err != nil {
		return err
	}
	s.large.Remove(seq)
	return nil
}

// Routed reports whether MarkRouted was called for the event seq, whose key is key, within the
// dedupe window.
func (s *Store) Routed(ctx context.Context, key string, seq uint64) (bool, error) {
	r, err := s.Routing(ctx, key, seq)
	return r.Routed, err
}

// Routing is where the routing of a stored event stands, for a re-post of it.
type Routing struct {
	Routed bool
	// StoredAt is when the event was stored, and Mine whether this process stored it (set when it
	// is not routed: the time tells a routing under way elsewhere from one a crash left undone).
	StoredAt time.Time
	Mine     bool
}

// Routing is Routed, and when not routed, when and by whom the event was stored: read from the
// stream's message, which holds a large event's body by name only.
func (s *Store) Routing(ctx context.Context, key string, seq uint64) (Routing, error) {
	_, err := s.routed.Get(ctx, key)
	if err == nil {
		return Routing{Routed: true}, nil
	}
	if !errors.Is(err, jetstream.ErrKeyNotFound) {
		return Routing{}, err
	}
	m, err := s.events.GetMsg(ctx, seq)
	if err != nil {
		return Routing{}, fmt.Errorf("loading event %d: %w", seq, err)
	}
	id := m.Header.Get(intakeHeader)
	// JetStream's time of the message, not the intake's stamp: taken after a large body's upload,
	// and by one clock for every dispatcher.
	r := Routing{StoredAt: m.Time, Mine: id != "" && id == s.rt.id}
	if id == "" {
		return r, nil // stored before intakes had records: its marker would have said
	}
	r.Routed, err = s.rt.isRouted(ctx, id, seq)
	return r, err
}

// JetStream returns the store's JetStream context, for assets kept beside the store's own (the
// delivery log).
func (s *Store) JetStream() jetstream.JetStream { return s.js }

// Connect opens another connection to the store's server, for a component whose traffic must not
// queue behind the store's: one connection is one ordered pipe each way, so a component publishing
// thousands of messages a second on the store's connection delays the store's acknowledgements
// and reads (the delivery log did). The caller closes it, before Close.
func (s *Store) Connect(name string) (*nats.Conn, error) { return s.dial(name) }

// Retention is how long events are kept.
func (s *Store) Retention() time.Duration { return s.cfg.Retention }

// Replicas is the number of replicas of each stream.
func (s *Store) Replicas() int { return s.cfg.Replicas }

// Reachable returns an error while the connection to NATS is down (reconnecting): nothing can be
// stored then, so the ingest API answers 503 until it is back.
func (s *Store) Reachable() error {
	if st := s.nc.Status(); st != nats.CONNECTED {
		return fmt.Errorf("the connection to NATS is %s", strings.ToLower(st.String()))
	}
	return nil
}

// follow starts the index of shared queues at the notes stream's end, on a connection of its own:
// every note of every dispatcher comes through it, and must not queue in front of the store's
// requests.
func (s *Store) follow(ctx context.Context) error {
	info, err := s.notes.Info(ctx)
	if err != nil {
		return fmt.Errorf("stream %s: %w", NotesStream, err)
	}
	idx := newStreamNotes(info.State.LastSeq)
	if s.followConn, err = s.dial("hookline-dispatcher-queues"); err != nil {
		return err
	}
	if s.following, err = followStream(ctx, s.followConn, idx); err != nil {
		return err
	}
	s.recent = idx
	return nil
}

// Announced tells the store that the engine is about to learn of note seq in uid's queue, which
// another dispatcher stored and announced (Config.SharedQueues): reads of uid's queue include it.
func (s *Store) Announced(uid string, seq uint64) {
	if idx, ok := s.recent.(*streamNotes); ok {
		idx.announced(uid, seq)
	}
}

// Close disconnects and stops the embedded server.
func (s *Store) Close() {
	if s.following != nil {
		s.following()
	}
	if s.followConn != nil {
		s.followConn.Close()
	}
	s.sweepMu.Lock()
	sweepConn := s.sweepConn
	s.sweepConn, s.sweepClosed = nil, true
	s.sweepMu.Unlock()
	if sweepConn != nil {
		sweepConn.Close()
	}
	if s.nc != nil {
		s.nc.Close()
	}
	if s.srv != nil {
		s.srv.Shutdown()
		s.srv.WaitForShutdown()
	}
}

// PutEvent stores raw under the idempotency key msgID (EventKey). It returns the event's sequence and whether
// the key was already stored within the dedupe window (then seq is the original's, or 0 for a large event found
// routed before its body was uploaded).
func (s *Store) PutEvent(ctx context.Context, msgID string, raw []byte, now time.Time) (seq uint64, duplicate bool, err error) {
	msg := &nats.Msg{Subject: eventsSubject, Header: nats.Header{}}
	msg.Header.Set(createdHeader, strconv.FormatInt(now.UnixNano(), 10))
	if len(raw) > s.cfg.InlineMax {
		// A re-post of a large event already routed is told so before its body is uploaded: the
		// upload would be deleted at once, and each deletion leaves a marker in the object store for
		// the retention (a producer re-posting large events left one per re-post).
		if _, err := s.routed.Get(ctx, msgID); err == nil {
			return 0, true, nil
		}
		name := "event-" + strconv.FormatInt(now.UnixNano(), 36) + "-" + hashName(msgID)
		if _, err := s.bodies.PutBytes(ctx, name, raw); err != nil {
			return 0, false, fmt.Errorf("storing event body: %w", err)
		}
		msg.Header.Set(bodyHeader, name)
	} else {
		msg.Data = raw
	}
	msg.Header.Set(intakeHeader, s.rt.id)
	tok := s.rt.begin()
	ack, err := s.js.PublishMsg(ctx, msg, jetstream.WithMsgID(msgID))
	if err != nil {
		s.rt.end(tok, msg, msgID, 0, false, err)
		return 0, false, fmt.Errorf("storing event: %w", err)
	}
	s.rt.end(tok, msg, msgID, ack.Sequence, ack.Duplicate, nil)
	if msg.Header.Get(bodyHeader) != "" && !ack.Duplicate {
		s.large.Add(ack.Sequence, struct{}{}, s.cfg.DedupeWindow)
	}
	if name := msg.Header.Get(bodyHeader); ack.Duplicate && name != "" {
		// The original already holds the body; this copy is not referenced. Its deletion marker
		// goes too: kept, it stayed for the retention, one per re-post.
		if s.bodies.Delete(ctx, name) == nil {
			s.purgeBodyMarker(ctx, name)
		}
	}
	return ack.Sequence, ack.Duplicate, nil
}

// purgeBodyMarker removes what the object store keeps of the deleted body name: the message saying
// it was deleted, on the bucket's metadata subject for it.
func (s *Store) purgeBodyMarker(ctx context.Context, name string) {
	err := s.bodiesStream.Purge(ctx, jetstream.WithPurgeSubject("$O."+BodiesBucket+".M."+base64.URLEncoding.EncodeToString([]byte(name))))
	if err != nil {
		s.cfg.Log.V(1).Info("Removing the marker of a deleted event body", "name", name, "error", err.Error())
	}
}

// GetEvent loads the raw event with sequence seq and its acceptance time.
func (s *Store) GetEvent(ctx context.Context, seq uint64) ([]byte, time.Time, error) {
	return s.GetEventWithin(ctx, seq, nil)
}

// GetEventWithin is GetEvent for a reader that bounds the memory of large events: when the event is
// kept in the object store (larger than InlineMax), reserve (unless nil) is told its size before it
// is read, and may wait for room or refuse (its error is returned).
func (s *Store) GetEventWithin(ctx context.Context, seq uint64, reserve func(size int64) error) ([]byte, time.Time, error) {
	m, err := s.events.GetMsg(ctx, seq)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("loading event %d: %w", seq, err)
	}
	created := m.Time
	if ns, err := strconv.ParseInt(m.Header.Get(createdHeader), 10, 64); err == nil {
		created = time.Unix(0, ns)
	}
	if name := m.Header.Get(bodyHeader); name != "" {
		raw, err := s.getBody(ctx, name, reserve)
		if err != nil {
			return nil, time.Time{}, fmt.Errorf("loading body of event %d: %w", seq, err)
		}
		return raw, created, nil
	}
	return m.Data, created, nil
}

// FirstEventSeq returns the sequence of the oldest event still stored. The event log loses events
// only oldest first, to its retention (MaxAge): every event below it is gone, every one from it on
// is there. One stream-info round trip, where GetEvent would read each event.
func (s *Store) FirstEventSeq(ctx context.Context) (uint64, error) {
	info, err := s.events.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("reading the event log's state: %w", err)
	}
	return info.State.FirstSeq, nil
}

// Gone reports whether an error of GetEvent says that the event is no longer stored (its retention
// passed), rather than that the store could not answer now.
func Gone(err error) bool {
	return errors.Is(err, jetstream.ErrMsgNotFound) || errors.Is(err, jetstream.ErrObjectNotFound)
}

// getBody reads an object into a buffer of its exact size: ObjectStore.GetBytes grows one as it
// reads, which for a 25 MB event allocates about twice that. Its size is told to reserve (unless
// nil) before any of it is read: a Get starts the object's chunks flowing at once.
func (s *Store) getBody(ctx context.Context, name string, reserve func(size int64) error) ([]byte, error) {
	if reserve != nil {
		info, err := s.bodies.GetInfo(ctx, name)
		if err != nil {
			return nil, err
		}
		if err := reserve(int64(info.Size)); err != nil {
			return nil, err
		}
	}
	obj, err := s.bodies.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	defer obj.Close()
	info, err := obj.Info()
	if err != nil {
		return nil, err
	}
	buf := make([]byte, info.Size)
	if _, err := io.ReadFull(obj, buf); err != nil {
		return nil, err
	}
	return buf, nil
}

// Note is one queued notification: a webhook's reference to an event.
type Note struct {
	// Seq is the note's sequence in the notes stream (set when published or loaded).
	Seq uint64
	// EventSeq is the event's sequence in the event log.
	EventSeq uint64
	// Created is when the event was accepted, or, for a replay, when the replay queued it: the
	// notification's 72-hour clock starts here.
	Created time.Time
	// EventID and EventName identify the event without reading it, so that the delivery log can
	// record a notification cancelled or dropped with its queue. Empty in notes queued before
	// they were recorded.
	EventID, EventName string
	// Replay names the WebhookReplay that queued this note again; empty for the original.
	Replay string
}

// encodeNote writes the two numbers every note has, then the optional strings, each length-prefixed;
// a note of an older version ends after the numbers and decodes with empty strings.
func encodeNote(n Note) []byte {
	b := make([]byte, 0, 2*binary.MaxVarintLen64+3+len(n.EventID)+len(n.EventName)+len(n.Replay))
	b = binary.AppendUvarint(b, n.EventSeq)
	b = binary.AppendVarint(b, n.Created.UnixNano())
	if n.EventID == "" && n.EventName == "" && n.Replay == "" {
		return b
	}
	for _, s := range []string{n.EventID, n.EventName, n.Replay} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}

var errCorruptNote = errors.New("corrupt note")

// eventNames holds one copy of each event name decoded: every note carries one.
var eventNames internTable

func decodeNote(b []byte) (Note, error) {
	ev, k := binary.Uvarint(b)
	if k <= 0 {
		return Note{}, errCorruptNote
	}
	b = b[k:]
	ts, j := binary.Varint(b)
	if j <= 0 {
		return Note{}, errCorruptNote
	}
	b = b[j:]
	n := Note{EventSeq: ev, Created: time.Unix(0, ts)}
	if len(b) == 0 {
		return n, nil
	}
	var strs [3]string
	for i := range strs {
		l, k := binary.Uvarint(b)
		if k <= 0 || l > uint64(len(b)-k) {
			return Note{}, errCorruptNote
		}
		if i == 1 {
			strs[i] = eventNames.get(b[k : k+int(l)])
		} else {
			strs[i] = string(b[k : k+int(l)])
		}
		b = b[k+int(l):]
	}
	n.EventID, n.EventName, n.Replay = strs[0], strs[1], strs[2]
	return n, nil
}

func notesSubject(uid string) string { return notesPrefix + uid }

// Enqueue is one notification to queue for webhook UID.
type Enqueue struct {
	UID  string
	Note Note
}

// EnqueueResult tells where an Enqueue landed.
type EnqueueResult struct {
	Seq uint64
}

// enqueueBatch bounds the notes published at once without waiting for their acknowledgements,
// well under the connection's limit of outstanding asynchronous publishes (4096), which many
// concurrent callers share: past it a publish fails ("stalled with too many outstanding async
// published messages") although JetStream is healthy.
const enqueueBatch = 512

// EnqueueAll queues the notifications and waits until JetStream has stored every one of them. On an
// error some of them may be stored nonetheless: the caller must tell the engine to look at the
// store queues of every item (deliver.Engine.Recheck), or those notes would wait for the next one.
func (s *Store) EnqueueAll(ctx context.Context, items []Enqueue) ([]EnqueueResult, error) {
	call := s.recent.begin()
	out := make([]EnqueueResult, len(items))
	stored := func(i int, seq uint64) {
		out[i] = EnqueueResult{Seq: seq}
		s.acked(seq)
		s.recent.add(items[i].UID, items[i].Note, seq)
	}
	if err := s.enqueueAll(ctx, items, stored); err != nil {
		s.recent.fail(call, items)
		return nil, err
	}
	s.recent.done(call)
	return out, nil
}

// enqueueAll publishes items and calls stored with each one's index and sequence as JetStream
// acknowledges it.
func (s *Store) enqueueAll(ctx context.Context, items []Enqueue, stored func(i int, seq uint64)) error {
	for start := 0; start < len(items); start += enqueueBatch {
		batch := items[start:min(start+enqueueBatch, len(items))]
		futures := make([]jetstream.PubAckFuture, len(batch))
		for i, it := range batch {
			f, err := s.js.PublishAsync(notesSubject(it.UID), encodeNote(it.Note))
			if err != nil {
				return fmt.Errorf("queueing notification: %w", err)
			}
			futures[i] = f
		}
		for i, f := range futures {
			select {
			case ack := <-f.Ok():
				stored(start+i, ack.Sequence)
			case err := <-f.Err():
				return fmt.Errorf("queueing notification: %w", err)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return nil
}

// noteStored records a stored note in the index of recent notes as its acknowledgement arrives, on
// the one goroutine that handles the acknowledgements, in the stream's order. EnqueueAll records
// each note again once its caller sees the acknowledgement (a no-op then), before the engine
// learns of it; but under load the callers are scheduled late and out of order, and every note
// recorded late is a hole that keeps other queues' reads from the index meanwhile.
func (s *Store) noteStored(_ jetstream.JetStream, m *nats.Msg, ack *jetstream.PubAck) {
	uid, ok := strings.CutPrefix(m.Subject, notesPrefix)
	if !ok {
		return
	}
	s.acked(ack.Sequence)
	if n, err := decodeNote(m.Data); err == nil {
		s.recent.add(uid, n, ack.Sequence)
	}
}

// acked records that note seq is stored (storedUpTo).
func (s *Store) acked(seq uint64) {
	for {
		cur := s.storedUpTo.Load()
		if seq <= cur || s.storedUpTo.CompareAndSwap(cur, seq) {
			return
		}
	}
}

// LoadNotes returns up to max notes queued for uid with sequence ≥ from, in order.
func (s *Store) LoadNotes(ctx context.Context, uid string, from uint64, max int) ([]Note, error) {
	notes, _, err := s.loadNotes(ctx, uid, from, max)
	return notes, err
}

// loadNotes is LoadNotes; indexed says whether the index answered.
func (s *Store) loadNotes(ctx context.Context, uid string, from uint64, max int) (notes []Note, indexed bool, err error) {
	if notes, ok := s.recent.load(uid, from, max); ok {
		s.indexReads.Add(1)
		return notes, true, nil
	}
	if s.sweep != nil {
		if notes, ok := s.sweep.load(ctx, uid, from, max); ok {
			s.sweepReads.Add(1)
			return notes, true, nil
		}
	}
	s.streamReads.Add(1)
	mark := s.recent.mark(uid)
	notes, err = s.readNotes(ctx, uid, from, max)
	if err == nil && len(notes) < max {
		s.recent.readAll(uid, from, notes, mark)
	}
	s.loaded(uid, notes, max)
	return notes, false, err
}

// loaded tells the sweep how far a queue's reader has read from the stream (the delivery engine's
// reads ask for a read-ahead, other readers for more than a sweep holds). Reads the index answers
// are not told: they are the hot path, and a queue the index keeps up with has no backlog to sweep.
func (s *Store) loaded(uid string, notes []Note, max int) {
	if s.sweep != nil && len(notes) > 0 && max <= sweepPerQueue {
		s.sweep.loaded(uid, notes[len(notes)-1].Seq+1)
	}
}

// readNotes reads LoadNotes' answer from JetStream, one direct get per note.
func (s *Store) readNotes(ctx context.Context, uid string, from uint64, max int) ([]Note, error) {
	var out []Note
	subj := notesSubject(uid)
	for len(out) < max {
		m, err := s.notes.GetMsg(ctx, from, jetstream.WithGetMsgSubject(subj))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return out, fmt.Errorf("loading notifications of %s: %w", uid, err)
		}
		n, err := decodeNote(m.Data)
		if err != nil {
			return out, fmt.Errorf("notification %d of %s: %w", m.Sequence, uid, err)
		}
		n.Seq = m.Sequence
		out = append(out, n)
		from = m.Sequence + 1
	}
	return out, nil
}

// sweepFetch reads up to n notes of every queue from sequence from on, for the sweep: over a
// connection of its own (a batch of thousands of notes must not queue in front of the
// acknowledgements the index of recent notes waits for), through a consumer made for this fetch
// and deleted after it. A consumer left on the notes stream between fetches costs far more than
// making one: every purge of more than one note (the acker's, thousands a second in a drain)
// makes nats-server count the consumer's pending messages again, walking the message block the
// consumer is in — 23 % of the dispatcher's CPU in a drain of 100,000 notifications.
func (s *Store) sweepFetch(ctx context.Context, from uint64, n int) ([]sweptNote, error) {
	// sweepMu guards the connection against Close only, which must not wait for a fetch.
	s.sweepMu.Lock()
	if s.sweepConn == nil && !s.sweepClosed {
		nc, err := s.dial("hookline-dispatcher-sweep")
		if err != nil {
			s.sweepMu.Unlock()
			return nil, err
		}
		s.sweepConn = nc
	}
	nc := s.sweepConn
	s.sweepMu.Unlock()
	if nc == nil {
		return nil, errors.New("store closed")
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	cons, err := js.CreateConsumer(ctx, NotesStream, jetstream.ConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   from,
		AckPolicy:     jetstream.AckNonePolicy,
		MemoryStorage: true,
		// Deleted below; the threshold is for a delete that did not arrive.
		InactiveThreshold: 30 * time.Second,
	})
	if err != nil {
		return nil, fmt.Errorf("sweeping stream %s: %w", NotesStream, err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = js.DeleteConsumer(dctx, NotesStream, cons.CachedInfo().Name)
	}()
	batch, err := cons.FetchNoWait(n)
	if err != nil {
		return nil, fmt.Errorf("sweeping stream %s: %w", NotesStream, err)
	}
	out := make([]sweptNote, 0, n)
	var delivered uint64
	for m := range batch.Messages() {
		meta, err := m.Metadata()
		if err != nil || meta.Sequence.Consumer != delivered+1 {
			// A message the consumer delivered did not arrive (AckNone: it is not sent
			// again): the batch ends before the gap, and the next fetch starts there.
			for range batch.Messages() {
			}
			return out, fmt.Errorf("sweeping stream %s: a delivery is missing after %d", NotesStream, delivered)
		}
		delivered = meta.Sequence.Consumer
		note, err := decodeNote(m.Data())
		note.Seq = meta.Sequence.Stream
		out = append(out, sweptNote{uid: strings.TrimPrefix(m.Subject(), notesPrefix), note: note, ok: err == nil})
	}
	if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
		return out, fmt.Errorf("sweeping stream %s: %w", NotesStream, err)
	}
	return out, nil
}

// Remove deletes uid's notes with sequence ≤ upTo: the delivered or dropped head and anything
// before it.
func (s *Store) Remove(ctx context.Context, uid string, upTo uint64) error {
	if err := s.notes.Purge(ctx, jetstream.WithPurgeSubject(notesSubject(uid)), jetstream.WithPurgeSequence(upTo+1)); err != nil {
		return err
	}
	s.queueRemovals.Add(1)
	s.removed(uid, upTo)
	return nil
}

// LastNoteSeq returns the sequence of uid's newest queued note, or 0 when none is queued.
func (s *Store) LastNoteSeq(ctx context.Context, uid string) (uint64, error) {
	m, err := s.notes.GetLastMsgForSubject(ctx, notesSubject(uid))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return m.Sequence, nil
}

// RemoveQueue deletes every note of uid (INACTIVE, disabled, deleted).
func (s *Store) RemoveQueue(ctx context.Context, uid string) error {
	s.recent.purging(uid)
	if s.sweep != nil {
		s.sweep.purging(uid)
		defer s.sweep.purged(uid)
	}
	err := s.notes.Purge(ctx, jetstream.WithPurgeSubject(notesSubject(uid)))
	var after uint64
	if _, shared := s.recent.(*streamNotes); shared && err == nil {
		// The purged notes lie at or below the stream's end now; the index must not take them
		// from its consumer for queued ones.
		if info, ierr := s.notes.Info(ctx); ierr == nil {
			after = info.State.LastSeq
		}
	}
	s.recent.purged(uid, after)
	return err
}

// Queues returns the number of queued notes per webhook uid.
func (s *Store) Queues(ctx context.Context) (map[string]uint64, error) {
	info, err := s.notes.Info(ctx, jetstream.WithSubjectFilter(notesPrefix+"*"))
	if err != nil {
		return nil, err
	}
	out := make(map[string]uint64, len(info.State.Subjects))
	for subj, n := range info.State.Subjects {
		out[strings.TrimPrefix(subj, notesPrefix)] = n
	}
	return out, nil
}

// ErrStateChanged is PutState's answer when the stored state is not the revision it expected:
// somebody else wrote (or deleted) it since.
var ErrStateChanged = errors.New("the stored delivery state changed since it was read")

// GetState returns the stored state of uid and its revision, or nil and 0.
func (s *Store) GetState(ctx context.Context, uid string) ([]byte, uint64, error) {
	e, err := s.state.Get(ctx, uid)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	return e.Value(), e.Revision(), nil
}

// PutState stores the state of uid if the stored one is still revision rev (0: none is stored),
// and returns the new revision; otherwise it stores nothing and returns ErrStateChanged. A write
// that a lost connection delayed (the client sends it again after reconnecting) therefore cannot
// overwrite what was written after it was read.
func (s *Store) PutState(ctx context.Context, uid string, v []byte, rev uint64) (uint64, error) {
	var err error
	var next uint64
	if rev == 0 {
		next, err = s.state.Create(ctx, uid, v)
	} else {
		next, err = s.state.Update(ctx, uid, v, rev)
	}
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return 0, fmt.Errorf("%w: %w", ErrStateChanged, err)
	}
	return next, err
}

// DeleteState forgets uid.
func (s *Store) DeleteState(ctx context.Context, uid string) error {
	err := s.state.Purge(ctx, uid)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	return err
}

// StateKeys lists the webhook uids that have stored state.
func (s *Store) StateKeys(ctx context.Context) ([]string, error) {
	keys, err := s.state.ListKeys(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for k := range keys.Keys() {
		out = append(out, k)
	}
	return out, nil
}

// hashName shortens an idempotency key into a safe object name.
func hashName(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:12])
}
