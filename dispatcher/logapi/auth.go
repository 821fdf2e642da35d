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
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilcache "k8s.io/apimachinery/pkg/util/cache"
	"k8s.io/client-go/kubernetes"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
)

// ErrUnauthenticated: the API server did not accept the token.
var ErrUnauthenticated = errors.New("token not authenticated")

// Auth reviews callers' tokens (TokenReview) and access (SubjectAccessReview) with the API server,
// remembering each answer for TTL so that a client paging through a log costs one review of each
// kind rather than two per page. Tokens are remembered by their SHA-256 digest only.
type Auth struct {
	client kubernetes.Interface
	ttl    time.Duration
	tokens *utilcache.LRUExpireCache
	access *utilcache.LRUExpireCache
}

// DefaultAuthTTL is how long a review's answer is reused: a revoked token or RoleBinding takes
// effect within it.
const DefaultAuthTTL = 10 * time.Second

// cacheSize bounds the remembered answers of each kind.
const cacheSize = 4096

// NewAuth reviews through cs; ttl 0 means DefaultAuthTTL.
func NewAuth(cs kubernetes.Interface, ttl time.Duration) *Auth {
	if ttl <= 0 {
		ttl = DefaultAuthTTL
	}
	return &Auth{client: cs, ttl: ttl, tokens: utilcache.NewLRUExpireCache(cacheSize), access: utilcache.NewLRUExpireCache(cacheSize)}
}

// tokenAnswer is a remembered TokenReview.
type tokenAnswer struct {
	user userOf
	ok   bool
}

// Authenticate returns the user token belongs to; ErrUnauthenticated when the API server does not
// accept it (remembered as well, so that a client repeating a bad token costs no more reviews).
func (a *Auth) Authenticate(ctx context.Context, token string) (userOf, error) {
	key := sha256.Sum256([]byte(token))
	if v, ok := a.tokens.Get(key); ok {
		ans := v.(tokenAnswer)
		if !ans.ok {
			return userOf{}, ErrUnauthenticated
		}
		return ans.user, nil
	}
	tr, err := a.client.AuthenticationV1().TokenReviews().Create(ctx,
		&authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
	if err != nil {
		return userOf{}, fmt.Errorf("TokenReview: %w", err)
	}
	ans := tokenAnswer{user: tr.Status.User, ok: tr.Status.Authenticated && tr.Status.User.Username != ""}
	a.tokens.Add(key, ans, a.ttl)
	if !ans.ok {
		return userOf{}, ErrUnauthenticated
	}
	return ans.user, nil
}

// Authorize reports whether user may get the deliveries of Webhook namespace/name (whether or not
// it exists).
func (a *Auth) Authorize(ctx context.Context, user userOf, namespace, name string) (bool, error) {
	return a.AuthorizeVerb(ctx, user, Verb, Subresource, namespace, name)
}

// AuthorizeVerb reports whether user may verb the subresource of Webhook namespace/name.
func (a *Auth) AuthorizeVerb(ctx context.Context, user userOf, verb, subresource, namespace, name string) (bool, error) {
	key := accessKey(user, verb+"/"+subresource, namespace, name)
	if v, ok := a.access.Get(key); ok {
		return v.(bool), nil
	}
	extra := map[string]authorizationv1.ExtraValue{}
	for k, v := range user.Extra {
		extra[k] = authorizationv1.ExtraValue(v)
	}
	sar, err := a.client.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
		Spec: authorizationv1.SubjectAccessReviewSpec{
			User: user.Username, UID: user.UID, Groups: user.Groups, Extra: extra,
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace: namespace, Name: name, Verb: verb,
				Group: hooklinev1.GroupVersion.Group, Resource: Resource, Subresource: subresource,
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return false, fmt.Errorf("SubjectAccessReview: %w", err)
	}
	a.access.Add(key, sar.Status.Allowed, a.ttl)
	return sar.Status.Allowed, nil
}

// accessKey digests everything an access review depends on, unambiguously (length-prefixed).
func accessKey(u userOf, attributes, namespace, name string) [32]byte {
	h := sha256.New()
	put := func(s string) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	put(u.Username)
	put(u.UID)
	put(attributes)
	put(namespace)
	put(name)
	for _, g := range u.Groups {
		put("g")
		put(g)
	}
	keys := make([]string, 0, len(u.Extra))
	for k := range u.Extra {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		put("x")
		put(k)
		for _, v := range u.Extra[k] {
			put(v)
		}
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// Limits bounds the read API's load, so that no client can take the dispatcher's CPU, memory or
// store bandwidth from delivery: at most Concurrent requests at once overall (others are answered
// 503 at once rather than queued), and Rate requests per second per identity (Burst at once), 429
// beyond it.
type Limits struct {
	Concurrent int
	Rate       float64
	Burst      int

	once     sync.Once
	sem      chan struct{}
	limiters *utilcache.LRUExpireCache
}

// Default limits.
const (
	DefaultConcurrent = 8
	DefaultRate       = 10
	DefaultBurst      = 20
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
		l.sem = make(chan struct{}, l.Concurrent)
		l.limiters = utilcache.NewLRUExpireCache(cacheSize)
	})
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

// allow spends one of user's requests.
func (l *Limits) allow(user string) bool {
	l.init()
	v, ok := l.limiters.Get(user)
	if !ok {
		v = rate.NewLimiter(rate.Limit(l.Rate), l.Burst)
		// An identity idle for a minute starts again with a full bucket.
		l.limiters.Add(user, v, time.Minute)
	}
	return v.(*rate.Limiter).Allow()
}
