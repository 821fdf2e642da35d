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
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	. "github.com/onsi/gomega"

	"github.com/hookline/hookline/internal/testsupport/freeport"
)

// freeAddr returns a 127.0.0.1 address nobody listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	return freeport.Addr(t)
}

// The embedded server's listener does not open without a token, and once open it refuses every
// client without the token: an unauthenticated client can neither read the stored events nor
// delete a stream. With the token, a client (the nats CLI, a second dispatcher) gets in.
func TestEmbeddedListenerRequiresAuthentication(t *testing.T) {
	g := NewWithT(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	_, err := Open(ctx, Config{DataDir: t.TempDir(), ListenAddress: freeAddr(t)})
	g.Expect(err).To(MatchError(ContainSubstring("--nats-listen-token-file")))
	for name, token := range map[string]string{"short": "secret", "bcrypt hash": "$2a$11$" + strings.Repeat("x", 53), "spaces": strings.Repeat("a b", 12)} {
		_, err := Open(ctx, Config{DataDir: t.TempDir(), ListenAddress: freeAddr(t), ListenTokenFile: writeToken(t, token)})
		g.Expect(err).To(MatchError(ContainSubstring("NATS token file")), name)
	}

	at := natsURL(t)
	// natsURL's store holds an event.
	s, err := Open(ctx, Config{URL: at.URL, Auth: at.Auth})
	g.Expect(err).NotTo(HaveOccurred())
	defer s.Close()
	_, _, err = s.PutEvent(ctx, "acc/e1", []byte(`{"id":"e1","personal":"data"}`), time.Now())
	g.Expect(err).NotTo(HaveOccurred())

	for name, opts := range map[string][]nats.Option{
		"no token":    nil,
		"wrong token": {nats.Token(strings.Repeat("x", 40))},
		"user":        {nats.UserInfo("hookline", "hookline")},
	} {
		nc, err := nats.Connect(at.URL, append(opts, nats.MaxReconnects(0))...)
		if err == nil {
			// Should the server accept the connection at first, no request may succeed.
			js, _ := jetstream.New(nc)
			_, serr := js.Stream(ctx, EventsStream)
			derr := js.DeleteStream(ctx, EventsStream)
			nc.Close()
			t.Fatalf("%s: connected (stream: %v, delete: %v)", name, serr, derr)
		}
		g.Expect(strings.ToLower(err.Error())).To(ContainSubstring("authorization violation"), name)
	}

	// The stream is intact, and the token opens the door.
	nc, err := nats.Connect(at.URL, nats.Token(strings.Repeat("t0ken", 8)))
	g.Expect(err).NotTo(HaveOccurred())
	defer nc.Close()
	js, err := jetstream.New(nc)
	g.Expect(err).NotTo(HaveOccurred())
	st, err := js.Stream(ctx, EventsStream)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(st.CachedInfo().State.Msgs).To(BeEquivalentTo(1))

	_, err = Open(ctx, Config{URL: at.URL, Auth: Auth{TokenFile: at.Auth.TokenFile, NKeySeedFile: "/seed"}})
	g.Expect(err).To(MatchError(ContainSubstring("not several")))
}
