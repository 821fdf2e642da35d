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

// Package kubeauth asks the API server who a bearer token belongs to (TokenReview) and what that
// user may do (SubjectAccessReview), remembering each answer for a while. The dispatcher's read API
// and both binaries' metrics endpoints authenticate and authorize their callers with it, so that
// Kubernetes RBAC alone decides who reads what.
package kubeauth

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"golang.org/x/time/rate"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilcache "k8s.io/apimachinery/pkg/util/cache"
	authenticationclient "k8s.io/client-go/kubernetes/typed/authentication/v1"
	authorizationclient "k8s.io/client-go/kubernetes/typed/authorization/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
)

// ErrUnauthenticated: the API server did not accept the token.
var ErrUnauthenticated = errors.New("token not authenticated")

// ErrBusy: the token is not known, and as many new tokens as may be reviewed have been lately.
var ErrBusy = errors.New("too many new tokens to review; retry shortly")

// Reviews of new tokens: NewTokenRate a second, NewTokenBurst at once. Anyone who can reach an
// endpoint can send a new random token with every request, and each would cost a TokenReview of
// the API server, asked with the dispatcher's own identity. A token the API server accepted within
// GoodFor is not new: its answer is still reviewed again after the TTL (so that a revocation takes
// effect), but outside this budget, so that a flood of random tokens never locks out the users
// already known.
const (
	NewTokenRate  = 50
	NewTokenBurst = 100
	GoodFor       = time.Hour
)

// Challenge is the WWW-Authenticate value of a 401 from an endpoint that takes Kubernetes bearer
// tokens (RFC 9110 requires one).
const Challenge = `Bearer realm="hookline"`

// cacheSize bounds the remembered answers of each kind.
const cacheSize = 4096

// Reviewer reviews tokens and access with the API server, remembering each answer (allowed or not)
// for its TTL: a revoked token or RoleBinding takes effect within it. Tokens are remembered by their
// SHA-256 digest only.
type Reviewer struct {
	authn  authenticationclient.TokenReviewsGetter
	authz  authorizationclient.SubjectAccessReviewsGetter
	ttl    time.Duration
	tokens *utilcache.LRUExpireCache
	access *utilcache.LRUExpireCache
	// reviews bounds the TokenReviews of new tokens; good holds the digests of the tokens
	// accepted within GoodFor.
	reviews *rate.Limiter
	good    *goodTokens
}

// newReviewer reviews through authn and authz, remembering answers for ttl (above 0) by clk.
func newReviewer(authn authenticationclient.TokenReviewsGetter, authz authorizationclient.SubjectAccessReviewsGetter, ttl time.Duration, clk utilcache.Clock) *Reviewer {
	return &Reviewer{authn: authn, authz: authz, ttl: ttl,
		tokens:  utilcache.NewLRUExpireCacheWithClock(cacheSize, clk),
		access:  utilcache.NewLRUExpireCacheWithClock(cacheSize, clk),
		reviews: rate.NewLimiter(NewTokenRate, NewTokenBurst),
		good:    newGoodTokens(cacheSize, clk)}
}

// NewForConfig reviews with the API server of cfg, through hc, remembering answers for ttl
// (above 0).
func NewForConfig(cfg *rest.Config, hc *http.Client, ttl time.Duration) (*Reviewer, error) {
	authn, err := authenticationclient.NewForConfigAndClient(cfg, hc)
	if err != nil {
		return nil, err
	}
	authz, err := authorizationclient.NewForConfigAndClient(cfg, hc)
	if err != nil {
		return nil, err
	}
	return newReviewer(authn, authz, ttl, clock.RealClock{}), nil
}

// ClientAddress is the address r came from, as a limit's key: an IPv4 address, or an IPv6 /64
// (one host commonly holds a whole /64).
func ClientAddress(r *http.Request) string {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return AddressKey(ap.Addr())
}

// AddressKey is a's key as ClientAddress makes it.
func AddressKey(a netip.Addr) string {
	if a = a.Unmap(); a.Is6() {
		return netip.PrefixFrom(a, 64).Masked().String()
	}
	return a.String()
}

// BearerToken returns the token of r's "Authorization: Bearer" header.
func BearerToken(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// tokenAnswer is a remembered TokenReview.
type tokenAnswer struct {
	user authenticationv1.UserInfo
	ok   bool
}

// Known reports whether token is not new: its review is remembered (authenticating it costs no
// TokenReview), or the API server accepted it within GoodFor.
func (r *Reviewer) Known(token string) bool {
	key := sha256.Sum256([]byte(token))
	if _, ok := r.tokens.Get(key); ok {
		return true
	}
	return r.good.has(key)
}

// Authenticate returns the user token belongs to; ErrUnauthenticated when the API server does not
// accept it (remembered as well, so that a client repeating a bad token costs no more reviews);
// ErrBusy when the token is new and the budget of reviews of new tokens is spent.
func (r *Reviewer) Authenticate(ctx context.Context, token string) (authenticationv1.UserInfo, error) {
	key := sha256.Sum256([]byte(token))
	if v, ok := r.tokens.Get(key); ok {
		ans := v.(tokenAnswer)
		if !ans.ok {
			return authenticationv1.UserInfo{}, ErrUnauthenticated
		}
		return ans.user, nil
	}
	if !r.good.has(key) && !r.reviews.Allow() {
		return authenticationv1.UserInfo{}, ErrBusy
	}
	tr, err := r.authn.TokenReviews().Create(ctx,
		&authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
	if err != nil {
		return authenticationv1.UserInfo{}, fmt.Errorf("TokenReview: %w", err)
	}
	ans := tokenAnswer{user: tr.Status.User, ok: tr.Status.Authenticated && tr.Status.User.Username != ""}
	r.tokens.Add(key, ans, r.ttl)
	if ans.ok {
		r.good.add(key, ans.user.Username)
	} else {
		r.good.remove(key) // revoked: new again
	}
	if !ans.ok {
		return authenticationv1.UserInfo{}, ErrUnauthenticated
	}
	return ans.user, nil
}

// Attributes is what an access review asks about: a resource (Resource) or a path on the server
// (NonResource), exactly one of them.
type Attributes struct {
	Resource    *authorizationv1.ResourceAttributes
	NonResource *authorizationv1.NonResourceAttributes
}

// Allowed reports whether user may do what attrs describe.
func (r *Reviewer) Allowed(ctx context.Context, user authenticationv1.UserInfo, attrs Attributes) (bool, error) {
	if (attrs.Resource == nil) == (attrs.NonResource == nil) {
		return false, errors.New("an access review needs either resource or non-resource attributes")
	}
	key := accessKey(user, attrs)
	if v, ok := r.access.Get(key); ok {
		return v.(bool), nil
	}
	extra := map[string]authorizationv1.ExtraValue{}
	for k, v := range user.Extra {
		extra[k] = authorizationv1.ExtraValue(v)
	}
	sar, err := r.authz.SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
		Spec: authorizationv1.SubjectAccessReviewSpec{
			User: user.Username, UID: user.UID, Groups: user.Groups, Extra: extra,
			ResourceAttributes: attrs.Resource, NonResourceAttributes: attrs.NonResource,
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return false, fmt.Errorf("SubjectAccessReview: %w", err)
	}
	r.access.Add(key, sar.Status.Allowed, r.ttl)
	return sar.Status.Allowed, nil
}

// accessKey digests everything an access review depends on, unambiguously (length-prefixed).
func accessKey(u authenticationv1.UserInfo, attrs Attributes) [32]byte {
	h := sha256.New()
	put := func(s string) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	put(u.Username)
	put(u.UID)
	if a := attrs.Resource; a != nil {
		put("resource")
		for _, s := range []string{a.Group, a.Version, a.Resource, a.Subresource, a.Verb, a.Namespace, a.Name} {
			put(s)
		}
	} else {
		put("path")
		put(attrs.NonResource.Path)
		put(attrs.NonResource.Verb)
	}
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
