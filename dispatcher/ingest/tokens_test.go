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

package ingest_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hookline/hookline/dispatcher/ingest"
)

const (
	tokenA = "token-a-0123456789abcdef"
	tokenB = "token-b-0123456789abcdef"
	tokenC = "token-c-0123456789abcdef"
)

func TestStaticTokensRejectsBadEntries(t *testing.T) {
	for _, tc := range []struct {
		name    string
		entries []ingest.TokenEntry
		wantErr string // substring of the error
	}{
		{"token of 15 characters", []ingest.TokenEntry{{Name: "short", Token: "0123456789abcde", Accounts: []string{"acc-1"}}}, "shorter than 16"},
		{"empty token", []ingest.TokenEntry{{Name: "empty", Token: "", Accounts: []string{"acc-1"}}}, "shorter than 16"},
		{"no accounts", []ingest.TokenEntry{{Name: "nobody", Token: tokenA}}, "no accounts"},
		{"empty account list", []ingest.TokenEntry{{Name: "nobody", Token: tokenA, Accounts: []string{}}}, "no accounts"},
		{"duplicate token", []ingest.TokenEntry{
			{Name: "first", Token: tokenA, Accounts: []string{"acc-1"}},
			{Name: "second", Token: tokenA, Accounts: []string{"acc-2"}},
		}, "twice"},
		{"bad entry after a good one", []ingest.TokenEntry{
			{Name: "good", Token: tokenA, Accounts: []string{"acc-1"}},
			{Name: "bad", Token: "short", Accounts: []string{"acc-1"}},
		}, `"bad"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ingest.StaticTokens(tc.entries...)
			if err == nil {
				t.Fatalf("StaticTokens succeeded, want an error containing %q", tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("StaticTokens error %q does not contain %q", err, tc.wantErr)
			}
		})
	}

	// 16 characters is the minimum, not too short.
	if _, err := ingest.StaticTokens(ingest.TokenEntry{Name: "min", Token: "0123456789abcdef", Accounts: []string{"acc-1"}}); err != nil {
		t.Errorf("StaticTokens with a 16-character token: %v", err)
	}
}

func TestAuthenticateAndMayPost(t *testing.T) {
	accountsA := []string{"acc-1", "acc-2"}
	toks, err := ingest.StaticTokens(
		ingest.TokenEntry{Name: "producer-a", Token: tokenA, Accounts: accountsA},
		ingest.TokenEntry{Name: "everything", Token: tokenB, Accounts: []string{"*"}},
		ingest.TokenEntry{Name: "producer-c", Token: tokenC, Accounts: []string{"acc-9"}},
	)
	if err != nil {
		t.Fatal(err)
	}
	// The token set must not alias the caller's slices.
	accountsA[0] = "acc-9"

	for _, tc := range []struct {
		token    string
		wantName string // "" for nil
		may      []string
		mayNot   []string
	}{
		{token: tokenA, wantName: "producer-a", may: []string{"acc-1", "acc-2"}, mayNot: []string{"acc-3", "acc-9", "*", "ACC-1", ""}},
		{token: tokenB, wantName: "everything", may: []string{"acc-1", "acc-9", "anything"}},
		{token: tokenC, wantName: "producer-c", may: []string{"acc-9"}, mayNot: []string{"acc-1", "acc-2"}},
		{token: ""},
		{token: "token-z-0123456789abcdef"},
		{token: tokenA + " "},
		{token: strings.ToUpper(tokenA)},
		{token: tokenA[:len(tokenA)-1]},
	} {
		t.Run(tc.wantName+"/"+tc.token, func(t *testing.T) {
			p := toks.Authenticate(tc.token)
			if tc.wantName == "" {
				if p != nil {
					t.Fatalf("Authenticate(%q) = %q, want nil", tc.token, p.Name)
				}
				return
			}
			if p == nil {
				t.Fatalf("Authenticate(%q) = nil, want %q", tc.token, tc.wantName)
			}
			if p.Name != tc.wantName {
				t.Errorf("Authenticate(%q) = %q, want %q", tc.token, p.Name, tc.wantName)
			}
			for _, acc := range tc.may {
				if !p.MayPost(acc) {
					t.Errorf("%s.MayPost(%q) = false, want true", p.Name, acc)
				}
			}
			for _, acc := range tc.mayNot {
				if p.MayPost(acc) {
					t.Errorf("%s.MayPost(%q) = true, want false", p.Name, acc)
				}
			}
		})
	}
}

// writeTokens writes content to path and sets its modification time explicitly, so that tests
// need not sleep for the clock to move.
func writeTokens(t *testing.T, path, content string, mtime time.Time) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

func TestLoadTokensAndReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.yaml")
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	writeTokens(t, path, `
tokens:
- name: esign-platform
  token: `+tokenA+`
  accounts: [acc-1, acc-2]
`, t0)

	toks, err := ingest.LoadTokens(path)
	if err != nil {
		t.Fatalf("LoadTokens: %v", err)
	}
	if p := toks.Authenticate(tokenA); p == nil || p.Name != "esign-platform" || !p.MayPost("acc-2") || p.MayPost("acc-3") {
		t.Fatalf("after LoadTokens, Authenticate(tokenA) = %+v, want esign-platform for acc-1 and acc-2", p)
	}
	if p := toks.Authenticate(tokenB); p != nil {
		t.Fatalf("Authenticate(tokenB) = %q before it is in the file", p.Name)
	}

	// Nothing changed: Reload is a no-op.
	if err := toks.Reload(); err != nil {
		t.Fatalf("Reload of an unchanged file: %v", err)
	}

	// A Secret update: tokenA is rotated out, tokenB comes in with every account.
	writeTokens(t, path, `
tokens:
- name: rotated
  token: `+tokenB+`
  accounts: ["*"]
`, t0.Add(time.Minute))
	if err := toks.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if p := toks.Authenticate(tokenA); p != nil {
		t.Errorf("after Reload, the removed token still authenticates as %q", p.Name)
	}
	if p := toks.Authenticate(tokenB); p == nil || p.Name != "rotated" || !p.MayPost("acc-77") {
		t.Errorf("after Reload, Authenticate(tokenB) = %+v, want rotated for every account", p)
	}

	// A broken update is reported with the file name and fails closed: the update may have been
	// meant to revoke tokenB, so no token is accepted until a valid file is read.
	writeTokens(t, path, "tokens: [this is: not valid\n", t0.Add(2*time.Minute))
	err = toks.Reload()
	if err == nil {
		t.Fatal("Reload of a malformed file succeeded")
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("Reload error %q does not name %s", err, path)
	}
	if p := toks.Authenticate(tokenB); p != nil {
		t.Errorf("after a failed Reload, Authenticate(tokenB) = %q, want no token accepted", p.Name)
	}
	if toks.Invalid() == nil || toks.Check(nil) == nil {
		t.Errorf("after a failed Reload, Invalid() = %v and Check() = %v, want both to report the file", toks.Invalid(), toks.Check(nil))
	}

	// Fixed: the file is in force again.
	writeTokens(t, path, `
tokens:
- name: fixed
  token: `+tokenC+`
  accounts: ["acc-1"]
`, t0.Add(3*time.Minute))
	if err := toks.Reload(); err != nil {
		t.Fatalf("Reload of the fixed file: %v", err)
	}
	if p := toks.Authenticate(tokenC); p == nil || p.Name != "fixed" {
		t.Errorf("after the fix, Authenticate(tokenC) = %+v, want fixed", p)
	}
	if p := toks.Authenticate(tokenB); p != nil {
		t.Errorf("after the fix, the revoked token authenticates as %q", p.Name)
	}
	if toks.Invalid() != nil || toks.Check(nil) != nil {
		t.Errorf("after the fix, Invalid() = %v, Check() = %v, want nil", toks.Invalid(), toks.Check(nil))
	}

	// A removed file is an error too, naming the file.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := toks.Reload(); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("Reload of a missing file = %v, want an error naming %s", err, path)
	}
}

func TestLoadTokensRejectsBadFiles(t *testing.T) {
	for _, tc := range []struct {
		name, content, wantErr string
	}{
		{"malformed YAML", "tokens: [this is: not valid\n", ""},
		{"not a token list", "tokens: 5\n", ""},
		{"unknown top-level field", "tokens: []\nextra: 1\n", "extra"},
		{"unknown entry field", "tokens:\n- name: a\n  token: " + tokenA + "\n  accounts: [acc-1]\n  acounts: [acc-2]\n", "acounts"},
		{"short token", "tokens:\n- name: a\n  token: short\n  accounts: [acc-1]\n", "shorter than 16"},
		{"no accounts", "tokens:\n- name: a\n  token: " + tokenA + "\n", "no accounts"},
		{"duplicate token", "tokens:\n- name: a\n  token: " + tokenA + "\n  accounts: [acc-1]\n- name: b\n  token: " + tokenA + "\n  accounts: [acc-2]\n", "twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "tokens.yaml")
			writeTokens(t, path, tc.content, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
			toks, err := ingest.LoadTokens(path)
			if err == nil {
				t.Fatal("LoadTokens succeeded, want an error")
			}
			if toks != nil {
				t.Errorf("LoadTokens returned tokens along with error %v", err)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the file %s", err, path)
			}
			if tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q does not contain %q", err, tc.wantErr)
			}
		})
	}

	missing := filepath.Join(t.TempDir(), "absent.yaml")
	if _, err := ingest.LoadTokens(missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("LoadTokens of a missing file = %v, want an error naming %s", err, missing)
	}
}
