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

package console

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"time"
)

// Session lifetimes: a session ends after IdleTimeout without a request, and in any case
// AbsoluteTimeout after sign-in, whatever the token's own expiry (the API server may end it sooner:
// a request answered 401 ends the session too).
const (
	IdleTimeout     = 30 * time.Minute
	AbsoluteTimeout = 8 * time.Hour
	// maxSessions bounds the store: sign-ins beyond it first evict expired sessions, then fail,
	// so that a flood of sign-ins cannot exhaust memory.
	maxSessions = 10000
	// maxPerUser and maxPerServiceAccountNamespace bound one signer's share of the store: a new
	// session beyond them ends the oldest of the same user (or of the ServiceAccounts of the same
	// namespace, which a tenant can create at will). Without them one tenant replaying its own
	// token filled the store, and every other user's sign-in failed.
	maxPerUser                    = 5
	maxPerServiceAccountNamespace = 50
)

// Session is one signed-in user. It lives only in the server's memory: the browser holds nothing
// but the session's random id, so the bearer token never reaches the browser after sign-in.
type Session struct {
	// ID is 256 random bits, base64url; the cookie's value.
	ID string
	// CSRF is the synchronizer token every POST form carries, 256 random bits.
	CSRF string
	// Token is the user's Kubernetes bearer token, sent to the API server on the user's behalf.
	Token string
	// User is the name the API server reported for the token (SelfSubjectReview).
	User string
	// Namespaces are the namespaces the user added on the list page, tried when a cluster-wide
	// list is forbidden.
	Namespaces []string
	// Created and LastSeen drive the absolute and idle expiry.
	Created, LastSeen time.Time
	// signer is whom the session counts against (signerOf).
	signer string
}

// SessionStore keeps sessions in memory. A console restart signs everybody out, which is the
// price of storing no token anywhere but in the process.
type SessionStore struct {
	now func() time.Time
	mu  sync.Mutex
	m   map[string]*Session
}

// NewSessionStore returns an empty store that reads time from now (time.Now when nil).
func NewSessionStore(now func() time.Time) *SessionStore {
	if now == nil {
		now = time.Now
	}
	return &SessionStore{now: now, m: map[string]*Session{}}
}

// randomID returns 256 random bits, base64url without padding.
func randomID() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// errStoreFull is returned by Create when maxSessions live sessions exist.
type errStoreFull struct{}

func (errStoreFull) Error() string { return "too many sessions" }

// Create starts a session for a token the API server accepted.
func (s *SessionStore) Create(token, user string) (*Session, error) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	// The signer's own share first: a user at its cap makes room by ending its oldest session,
	// whether or not the store is full.
	signer := signerOf(token, user)
	s.evictOldestLocked(maxPerUser, func(o *Session) bool { return o.signer == signer })
	// A ServiceAccount's session counts against its namespace's share too.
	if ns := serviceAccountNamespace(signer); ns != "" {
		s.evictOldestLocked(maxPerServiceAccountNamespace, func(o *Session) bool { return serviceAccountNamespace(o.signer) == ns })
	}
	if len(s.m) >= maxSessions {
		s.sweepLocked(now)
		if len(s.m) >= maxSessions {
			return nil, errStoreFull{}
		}
	}
	sess := &Session{ID: randomID(), CSRF: randomID(), Token: token, User: user, Created: now, LastSeen: now, signer: signer}
	s.m[sess.ID] = sess
	return sess, nil
}

// signerOf is whom a session of token counts against: the user the API server named, or, on a
// cluster that does not let its users ask who they are (user is ""), the ServiceAccount a
// ServiceAccount token names, else the token itself. Counting every unnamed user as one user
// signed everybody out at the sixth sign-in on such clusters.
//
// A token's claims are read without checking its signature: the API server has just accepted the
// token, and the claims only choose which share the session counts against.
func signerOf(token, user string) string {
	if user != "" {
		return user
	}
	if ns, name := serviceAccountClaims(token); ns != "" && name != "" {
		return "system:serviceaccount:" + ns + ":" + name
	}
	sum := sha256.Sum256([]byte(token))
	return "token:" + hex.EncodeToString(sum[:16])
}

// serviceAccountClaims returns the namespace and name of the ServiceAccount a Kubernetes
// ServiceAccount token (JWT) names: bound tokens carry them under "kubernetes.io", legacy Secret
// tokens as "kubernetes.io/serviceaccount/..." claims. Empty for any other token.
func serviceAccountClaims(token string) (namespace, name string) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", ""
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", ""
	}
	var c struct {
		Subject string `json:"sub"`
		Bound   struct {
			Namespace      string `json:"namespace"`
			ServiceAccount struct {
				Name string `json:"name"`
			} `json:"serviceaccount"`
		} `json:"kubernetes.io"`
		LegacyNamespace string `json:"kubernetes.io/serviceaccount/namespace"`
		LegacyName      string `json:"kubernetes.io/serviceaccount/service-account.name"`
	}
	if json.Unmarshal(payload, &c) != nil {
		return "", ""
	}
	namespace, name = c.LegacyNamespace, c.LegacyName
	if c.Bound.Namespace != "" {
		namespace, name = c.Bound.Namespace, c.Bound.ServiceAccount.Name
	}
	// Only a token whose subject is that ServiceAccount, as the API server's issuer writes it:
	// another issuer's token that carries such claims is not one.
	if c.Subject != "system:serviceaccount:"+namespace+":"+name {
		return "", ""
	}
	return namespace, name
}

// evictOldestLocked ends the oldest sessions that match until fewer than limit are left, to make
// room for one more.
func (s *SessionStore) evictOldestLocked(limit int, match func(*Session) bool) {
	var mine []*Session
	for _, o := range s.m {
		if match(o) {
			mine = append(mine, o)
		}
	}
	if len(mine) < limit {
		return
	}
	slices.SortFunc(mine, func(a, b *Session) int { return a.Created.Compare(b.Created) })
	for _, o := range mine[:len(mine)-limit+1] {
		delete(s.m, o.ID)
	}
}

// Get returns a copy of the live session with this id and marks it used; an expired session is
// removed and reported as absent.
func (s *SessionStore) Get(id string) (Session, bool) { return s.get(id, true) }

// Peek is Get without marking the session used: for what a page does on its own (its reloads), so
// that a tab left open does not keep its session alive past the idle timeout.
func (s *SessionStore) Peek(id string) (Session, bool) { return s.get(id, false) }

func (s *SessionStore) get(id string, use bool) (Session, bool) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.m[id]
	if !ok {
		return Session{}, false
	}
	if expired(sess, now) {
		delete(s.m, id)
		return Session{}, false
	}
	if use {
		sess.LastSeen = now
	}
	c := *sess
	c.Namespaces = append([]string(nil), sess.Namespaces...)
	return c, true
}

// AddNamespace records a namespace the user asked to see, at most 20 per session.
func (s *SessionStore) AddNamespace(id, ns string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.m[id]
	if !ok {
		return
	}
	for _, n := range sess.Namespaces {
		if n == ns {
			return
		}
	}
	if len(sess.Namespaces) >= 20 {
		sess.Namespaces = sess.Namespaces[1:]
	}
	sess.Namespaces = append(sess.Namespaces, ns)
}

// Delete ends a session (sign-out, or a token the API server no longer accepts).
func (s *SessionStore) Delete(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, id)
}

// Len returns the number of sessions held, expired ones not yet swept included.
func (s *SessionStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

// Sweep removes expired sessions; the server calls it periodically so that forgotten sessions do
// not keep tokens in memory longer than their idle timeout.
func (s *SessionStore) Sweep() {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweepLocked(now)
}

func (s *SessionStore) sweepLocked(now time.Time) {
	for id, sess := range s.m {
		if expired(sess, now) {
			delete(s.m, id)
		}
	}
}

func expired(s *Session, now time.Time) bool {
	return now.Sub(s.LastSeen) >= IdleTimeout || now.Sub(s.Created) >= AbsoluteTimeout
}

// equalTokens compares two secrets in constant time; empty never matches.
func equalTokens(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
