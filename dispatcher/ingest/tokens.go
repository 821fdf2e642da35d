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

package ingest

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/yaml"
)

// TokenFile is the format of the tokens file, mounted from a Secret:
//
//	tokens:
//	- name: esign-platform      # shown in logs and metrics; the token itself never is
//	  token: <random string>
//	  accounts: [acc-1, acc-2]  # or ["*"] for every account
type TokenFile struct {
	Tokens []TokenEntry `json:"tokens"`
}

// TokenEntry grants one bearer token the right to post events for some accounts.
type TokenEntry struct {
	Name     string   `json:"name"`
	Token    string   `json:"token"`
	Accounts []string `json:"accounts"`
}

// Principal is an authenticated producer.
type Principal struct {
	Name     string
	accounts []string
	// digest is the token's SHA-256: what tells producers apart (names are labels for people, and
	// two tokens may carry one).
	digest [32]byte
}

// MayPost reports whether the producer may post events of account.
func (p *Principal) MayPost(account string) bool {
	return slices.Contains(p.accounts, "*") || slices.Contains(p.accounts, account)
}

// Tokens authenticates bearer tokens. Tokens are kept only as SHA-256 digests, so that lookups need
// no comparison of secret bytes and a heap dump shows no token.
//
// A tokens file that fails to reload fails closed: every token is refused (Invalid says why) until
// a valid file is read again. Keeping the last good set would keep a token valid that the new file
// revokes, and an unreadable file does not say which tokens it removed.
type Tokens struct {
	path string

	mu      sync.RWMutex
	byHash  map[[32]byte]*Principal
	modTime time.Time
	invalid error // the last reload's error; every token is refused while it is set

	reloadErrors prometheus.Counter
}

// LoadTokens reads path. Reload picks up later changes (a Secret update).
func LoadTokens(path string) (*Tokens, error) {
	t := &Tokens{path: path}
	if err := t.Reload(); err != nil {
		return nil, err
	}
	return t, nil
}

// StaticTokens builds a token set from entries, for tests and embedding.
func StaticTokens(entries ...TokenEntry) (*Tokens, error) {
	t := &Tokens{}
	m, err := index(entries)
	if err != nil {
		return nil, err
	}
	t.byHash = m
	return t, nil
}

// Reload re-reads the file when it changed since the last read, or when the last read failed. On
// failure every token is refused until a later reload succeeds.
func (t *Tokens) Reload() error {
	if t.path == "" {
		return nil
	}
	st, err := os.Stat(t.path)
	if err != nil {
		return t.fail(fmt.Errorf("tokens file: %w", err))
	}
	t.mu.RLock()
	same := st.ModTime().Equal(t.modTime) && t.byHash != nil
	t.mu.RUnlock()
	if same {
		return nil
	}
	m, err := readTokens(t.path)
	if err != nil {
		return t.fail(err)
	}
	t.mu.Lock()
	t.byHash, t.modTime, t.invalid = m, st.ModTime(), nil
	t.mu.Unlock()
	return nil
}

func readTokens(path string) (map[[32]byte]*Principal, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokens file: %w", err)
	}
	var f TokenFile
	if err := yaml.UnmarshalStrict(raw, &f); err != nil {
		return nil, fmt.Errorf("tokens file %s: %w", path, err)
	}
	m, err := index(f.Tokens)
	if err != nil {
		return nil, fmt.Errorf("tokens file %s: %w", path, err)
	}
	return m, nil
}

// fail drops every token after a failed reload, so that none the operator meant to revoke stays
// valid; the next valid read restores them.
func (t *Tokens) fail(err error) error {
	t.mu.Lock()
	t.byHash, t.modTime, t.invalid = nil, time.Time{}, err
	t.mu.Unlock()
	if t.reloadErrors != nil {
		t.reloadErrors.Inc()
	}
	return err
}

// Invalid returns why the tokens file is not in force (every token is refused), or nil.
func (t *Tokens) Invalid() error {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.invalid
}

// Check is a readiness check: it fails while the tokens file is invalid, so that a load balancer
// sends producers to a replica that can take their events.
func (t *Tokens) Check(*http.Request) error {
	if err := t.Invalid(); err != nil {
		return fmt.Errorf("no ingest token is accepted: %w", err)
	}
	return nil
}

// Register adds the tokens file's metrics to reg: hookline_ingest_tokens_reload_errors_total and
// hookline_ingest_tokens_file_valid.
func (t *Tokens) Register(reg prometheus.Registerer) error {
	t.reloadErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "hookline_ingest_tokens_reload_errors_total",
		Help: "Failed reads of the ingest tokens file; while the last one failed, every token is refused.",
	})
	valid := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "hookline_ingest_tokens_file_valid",
		Help: "1 when the ingest tokens file was read successfully, 0 while it is invalid and every token is refused.",
	}, func() float64 {
		if t.Invalid() != nil {
			return 0
		}
		return 1
	})
	for _, c := range []prometheus.Collector{t.reloadErrors, valid} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// Watch reloads the file every interval until stop is closed, reporting errors to onErr.
func (t *Tokens) Watch(stop <-chan struct{}, interval time.Duration, onErr func(error)) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
			if err := t.Reload(); err != nil {
				onErr(err)
			}
		}
	}
}

// Authenticate returns the producer a token belongs to, or nil.
func (t *Tokens) Authenticate(token string) *Principal {
	if token == "" {
		return nil
	}
	h := sha256.Sum256([]byte(token))
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.byHash[h]
}

func index(entries []TokenEntry) (map[[32]byte]*Principal, error) {
	m := make(map[[32]byte]*Principal, len(entries))
	for i, e := range entries {
		if len(e.Token) < 16 {
			return nil, fmt.Errorf("token %d (%q) is shorter than 16 characters", i, e.Name)
		}
		if len(e.Accounts) == 0 {
			return nil, fmt.Errorf("token %d (%q) lists no accounts", i, e.Name)
		}
		h := sha256.Sum256([]byte(e.Token))
		if _, dup := m[h]; dup {
			return nil, errors.New("the same token appears twice")
		}
		m[h] = &Principal{Name: e.Name, accounts: slices.Clone(e.Accounts), digest: h}
	}
	return m, nil
}
