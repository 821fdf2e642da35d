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
	"crypto/tls"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
	. "github.com/onsi/gomega"

	"github.com/hookline/hookline/internal/testcerts"
	"github.com/hookline/hookline/internal/testsupport/freeport"
)

// An external cluster that requires TLS with client certificates and an NKey user: without the
// files the store (and the lease) cannot connect; with them they can, and nothing secret is in
// the URL.
func TestExternalClusterWithTLSAndNKey(t *testing.T) {
	g := NewWithT(t)
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		g.Expect(os.WriteFile(p, data, 0o600)).To(Succeed())
		return p
	}
	ca, err := testcerts.NewCA("nats-ca")
	g.Expect(err).NotTo(HaveOccurred())
	srvCert, err := ca.Server()
	g.Expect(err).NotTo(HaveOccurred())
	client, err := ca.Client("hookline-dispatcher")
	g.Expect(err).NotTo(HaveOccurred())
	user, err := nkeys.CreateUser()
	g.Expect(err).NotTo(HaveOccurred())
	pub, err := user.PublicKey()
	g.Expect(err).NotTo(HaveOccurred())
	seed, err := user.Seed()
	g.Expect(err).NotTo(HaveOccurred())

	ap, err := netip.ParseAddrPort(freeport.Addr(t))
	g.Expect(err).NotTo(HaveOccurred())
	port := int(ap.Port())
	srv, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: filepath.Join(dir, "js"), NoSigs: true, NoLog: true,
		Nkeys: []*server.NkeyUser{{Nkey: pub}},
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{srvCert.TLS}, ClientCAs: ca.Pool(),
			ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12},
		TLS: true, TLSVerify: true, TLSTimeout: 2,
	})
	g.Expect(err).NotTo(HaveOccurred())
	go srv.Start()
	t.Cleanup(srv.Shutdown)
	g.Expect(srv.ReadyForConnections(10 * time.Second)).To(BeTrue())
	url := "tls://127.0.0.1:" + strconv.Itoa(port)
	auth := Auth{
		NKeySeedFile: write("nkey.seed", seed), CAFile: write("ca.crt", ca.PEM()),
		CertFile: write("tls.crt", client.CertPEM), KeyFile: write("tls.key", client.KeyPEM),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	for name, bad := range map[string]Auth{
		"no credentials":     {CAFile: auth.CAFile, CertFile: auth.CertFile, KeyFile: auth.KeyFile},
		"no client cert":     {NKeySeedFile: auth.NKeySeedFile, CAFile: auth.CAFile},
		"untrusted server":   {NKeySeedFile: auth.NKeySeedFile, CertFile: auth.CertFile, KeyFile: auth.KeyFile},
		"cert without a key": {NKeySeedFile: auth.NKeySeedFile, CAFile: auth.CAFile, CertFile: auth.CertFile},
	} {
		_, err := Open(ctx, Config{URL: url, Auth: bad})
		g.Expect(err).To(HaveOccurred(), name)
	}

	s, err := Open(ctx, Config{URL: url, Auth: auth})
	g.Expect(err).NotTo(HaveOccurred())
	defer s.Close()
	seq, _, err := s.PutEvent(ctx, "acc/e1", []byte(`{"id":"e1"}`), time.Now())
	g.Expect(err).NotTo(HaveOccurred())
	raw, _, err := s.GetEvent(ctx, seq)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(raw)).To(Equal(`{"id":"e1"}`))

	lease, err := AcquireLease(ctx, LeaseConfig{URL: url, Auth: auth, Identity: "d0", TTL: 2 * time.Second})
	g.Expect(err).NotTo(HaveOccurred())
	lease.Release()
}
