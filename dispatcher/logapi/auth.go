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

package logapi

import (
	"context"
	"net/http"
	"sync"
	"time"

	"golang.org/x/sync/semaphore"
	"golang.org/x/time/rate"
	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/client-go/rest"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/internal/keyrate"
	"github.com/hookline/hookline/internal/kubeauth"
)

// ErrUnauthenticated: the API server did not accept the token.
var ErrUnauthenticated = kubeauth.ErrUnauthenticated

// Auth reviews callers' tokens (TokenReview) and their access to Webhooks' subresources
// (SubjectAccessReview) with the API server, remembering each answer for TTL so that a client
// paging through a log costs one review of each kind rather than two per page.
type Auth struct {
	*kubeauth.Reviewer
}

// DefaultAuthTTL is how long a review's answer is reused: a revoked token or RoleBinding takes
// effect within it.
const DefaultAuthTTL = 10 * time.Second

// cacheSize bounds the per-identity rate limiters.
const cacheSize = 4096

// NewAuth reviews with the API server of cfg, through hc; ttl 0 means DefaultAuthTTL.
func NewAuth(cfg *rest.Config, hc *http.Client, ttl time.Duration) (*Auth, error) {
	if ttl <= 0 {
		ttl = DefaultAuthTTL
	}
	rv, err := kubeauth.NewForConfig(cfg, hc, ttl)
	if err != nil {
		return nil, err
	}
	return &Auth{rv}, nil
}

// Authorize reports whether user may get the deliveries of Webhook namespace/name (whether or not
// it exists).
func (a *Auth) Authorize(ctx context.Context, user userOf, namespace, name string) (bool, error) {
	return a.AuthorizeVerb(ctx, user, Verb, Subresource, namespace, name)
}

// AuthorizeVerb reports whether user may verb the subresource of Webhook namespace/name.
func (a *Auth) AuthorizeVerb(ctx context.Context, user userOf, verb, subresource, namespace, name string) (bool, error) {
	return a.Allowed(ctx, user, kubeauth.Attributes{Resource: &authorizationv1.ResourceAttributes{
		Namespace: namespace, Name: name, Verb: verb,
		Group: hooklinev1.GroupVersion.Group, Resource: Resource, Subresource: subresource,
	}})
}

// Limits bounds the read API's load, so that no client can take the dispatcher's CPU, memory or
// store bandwidth from delivery: at most Concurrent requests at once overall (others are answered
// 503 at once rather than queued), and Rate requests per second per identity (Burst at once), 429
// beyond it. A tenant may create as many identities (ServiceAccounts) as it likes, so the
// requests for the Webhooks of one namespace are bounded too, once they are authorized:
// NamespaceConcurrent at once (503 beyond) and NamespaceRate per second (NamespaceBurst at once,
// 429 beyond), whoever asks.
type Limits struct {
	Concurrent          int
	Rate                float64
	Burst               int
	NamespaceConcurrent int
	NamespaceRate       float64
	NamespaceBurst      int
	// OwnerRate and OwnerBurst bound, before any access review, the requests of every identity of
	// one owner together (a ServiceAccount's namespace, or a user: kubeauth.OwnerOf), so that a
	// tenant minting ServiceAccounts cannot multiply the per-identity rate, and with it the access
	// reviews its requests cost. 0: four times Rate and Burst.
	OwnerRate  float64
	OwnerBurst int
	// NewTokenRate and NewTokenBurst bound, per client address, the requests whose token has not
	// been reviewed lately (each costs a TokenReview): 429 beyond.
	NewTokenRate  float64
	NewTokenBurst int
	// BodyWriteGrace and BodyWriteRate bound how long writing a notification's body may take:
	// BodyWriteGrace plus its size at BodyWriteRate bytes a second. A reader taking it slower loses
	// the connection, and with it the request's slots and the body's memory, which it held for the
	// server's WriteTimeout (5 minutes) before. 0: DefaultBodyWriteGrace, DefaultBodyWriteRate.
	BodyWriteGrace time.Duration
	BodyWriteRate  float64
	// BodyBytes bounds the bytes of the bodies being written at once (a larger body takes it
	// whole): 503 beyond. Bodies of large events are tens of MiB, and eight of them at once were
	// 200 MiB of the dispatcher's memory. 0: DefaultBodyBytes.
	BodyBytes int64

	once       sync.Once
	bodies     *semaphore.Weighted
	sem        chan struct{}
	users      *keyrate.Limiters
	owners     *keyrate.Limiters
	namespaces *keyrate.Limiters
	addresses  *keyrate.Limiters
	mu         sync.Mutex
	inNS       map[string]int
}

// Default limits.
const (
	DefaultConcurrent = 8
	DefaultRate       = 10
	DefaultBurst      = 20
	// A namespace may hold a quarter of the slots, and twice one identity's rate.
	DefaultNamespaceConcurrent = DefaultConcurrent / 4
	DefaultNamespaceRate       = 2 * DefaultRate
	DefaultNamespaceBurst      = 2 * DefaultBurst
	// A client address may bring ten new tokens a second: the console's users all come from its
	// address, each token reviewed again at most once per DefaultAuthTTL.
	DefaultNewTokenRate  = 10
	DefaultNewTokenBurst = 50
	// A body is written within 10 s plus its size at 1 MiB/s: a 25 MiB event's within 35 s.
	DefaultBodyWriteGrace = 10 * time.Second
	DefaultBodyWriteRate  = 1 << 20
	DefaultBodyBytes      = 64 << 20
)

func (l *Limits) init() {
	l.once.Do(func() {
		if l.Concurrent <= 0 {
			l.Concurrent = DefaultConcurrent
		}
		if l.Rate <= 0 {
			l.Rate = DefaultRate
		}
		if l.Burst <= 0 {
			l.Burst = DefaultBurst
		}
		if l.NamespaceConcurrent <= 0 {
			l.NamespaceConcurrent = max(l.Concurrent/4, 1)
		}
		if l.NamespaceRate <= 0 {
			l.NamespaceRate = 2 * l.Rate
		}
		if l.NamespaceBurst <= 0 {
			l.NamespaceBurst = 2 * l.Burst
		}
		if l.OwnerRate <= 0 {
			l.OwnerRate = 4 * l.Rate
		}
		if l.OwnerBurst <= 0 {
			l.OwnerBurst = 4 * l.Burst
		}
		if l.NewTokenRate <= 0 {
			l.NewTokenRate = DefaultNewTokenRate
		}
		if l.NewTokenBurst <= 0 {
			l.NewTokenBurst = DefaultNewTokenBurst
		}
		if l.BodyWriteGrace <= 0 {
			l.BodyWriteGrace = DefaultBodyWriteGrace
		}
		if l.BodyWriteRate <= 0 {
			l.BodyWriteRate = DefaultBodyWriteRate
		}
		if l.BodyBytes <= 0 {
			l.BodyBytes = DefaultBodyBytes
		}
		l.bodies = semaphore.NewWeighted(l.BodyBytes)
		l.sem = make(chan struct{}, l.Concurrent)
		// An identity or namespace idle for a minute starts again with a full bucket.
		l.users = keyrate.New(rate.Limit(l.Rate), l.Burst, time.Minute, cacheSize)
		l.owners = keyrate.New(rate.Limit(l.OwnerRate), l.OwnerBurst, time.Minute, cacheSize)
		l.namespaces = keyrate.New(rate.Limit(l.NamespaceRate), l.NamespaceBurst, time.Minute, cacheSize)
		l.addresses = keyrate.New(rate.Limit(l.NewTokenRate), l.NewTokenBurst, time.Minute, cacheSize)
		l.inNS = map[string]int{}
	})
}

// allowNewToken spends one of address's reviews of new tokens.
func (l *Limits) allowNewToken(address string) bool {
	l.init()
	return l.addresses.Get(address).Allow()
}

// writeBody takes n bytes of the bodies' budget (all of it for a larger body) and returns when a
// body of n bytes must be written by, and the release; false when the budget is taken.
func (l *Limits) writeBody(n int) (deadline time.Time, release func(), ok bool) {
	l.init()
	w := min(int64(n), l.BodyBytes)
	if !l.bodies.TryAcquire(w) {
		return time.Time{}, nil, false
	}
	d := l.BodyWriteGrace + time.Duration(float64(n)/l.BodyWriteRate*float64(time.Second))
	return time.Now().Add(d), func() { l.bodies.Release(w) }, true
}

// enter takes a request slot; false when all are taken.
func (l *Limits) enter() (release func(), ok bool) {
	l.init()
	select {
	case l.sem <- struct{}{}:
		return func() { <-l.sem }, true
	default:
		return nil, false
	}
}

// enterNamespace takes one of namespace's request slots and spends one of its requests; it
// returns why not (busy: all its slots are taken) when it cannot.
func (l *Limits) enterNamespace(namespace string) (release func(), busy, ok bool) {
	l.init()
	lim := l.namespaces.Get(namespace)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.inNS[namespace] >= l.NamespaceConcurrent {
		return nil, true, false
	}
	if !lim.Allow() {
		return nil, false, false
	}
	l.inNS[namespace]++
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.inNS[namespace]--; l.inNS[namespace] <= 0 {
			delete(l.inNS, namespace)
		}
	}, false, true
}

// allow spends one of user's requests, and one of its owner's.
func (l *Limits) allow(user, owner string) bool {
	l.init()
	return l.users.Get(user).Allow() && l.owners.Get(owner).Allow()
}
