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

package dispatcher_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/hookline/hookline/dispatcher"
	"github.com/hookline/hookline/internal/testcerts"
	"github.com/hookline/hookline/internal/testsupport"
)

// The ingest API over TLS: producers' tokens never cross the network in clear text, plain HTTP is
// refused, and a renewed certificate (cert-manager rewriting the Secret's files) is served without
// a restart.
func TestIngestOverTLSWithCertificateRotation(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, "acc-tls-ingest", "")
	rc := newReceiver(t)
	s := startStack(t, stackOptions{namespaces: []string{ns}})
	s.activeWebhook(t, ns, "tls-ingest", accountSpec(rc.URL))

	ca, err := testcerts.NewCA("ingest-ca")
	g.Expect(err).NotTo(HaveOccurred())
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	issue := func() *testcerts.Leaf {
		leaf, err := ca.Server()
		g.Expect(err).NotTo(HaveOccurred())
		// Like the kubelet updating a Secret volume: the new files appear whole.
		for path, data := range map[string][]byte{certFile: leaf.CertPEM, keyFile: leaf.KeyPEM} {
			tmp := path + ".new"
			g.Expect(os.WriteFile(tmp, data, 0o600)).To(Succeed())
			g.Expect(os.Rename(tmp, path)).To(Succeed())
		}
		return leaf
	}
	first := issue()

	addr := testsupport.FreeAddr(t)
	srv := dispatcher.NewIngestServer(addr, s.app.Ingest, nil)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- dispatcher.ServeIngest(ctx, srv, certFile, keyFile) }()
	t.Cleanup(func() {
		cancel()
		_ = srv.Shutdown(context.Background())
		g.Expect(<-served).To(Succeed(), "a shut-down server is not an error")
	})

	httpc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}
	servedCert := func() ([]byte, error) {
		resp, err := httpc.Get("https://" + addr + "/healthz")
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		return resp.TLS.PeerCertificates[0].Raw, nil
	}
	g.Eventually(servedCert).WithTimeout(10 * time.Second).Should(Equal(first.TLS.Certificate[0]))

	req, _ := http.NewRequest(http.MethodPost, "https://"+addr+"/v1/events", bytes.NewReader(event("tls-1", "acc-tls-ingest")))
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := httpc.Do(req)
	g.Expect(err).NotTo(HaveOccurred())
	_ = resp.Body.Close()
	g.Expect(resp.StatusCode).To(Equal(http.StatusAccepted))
	g.Eventually(func() int { return len(rc.got()) }).WithTimeout(10 * time.Second).Should(Equal(1))

	// HTTP/1.1 only, as the read API: a client without a token could hold HTTP/2 streams open (a
	// window of 0), and with them its connections busy, out of reach of the listener's bounds.
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool(), NextProtos: []string{"h2", "http/1.1"}})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(conn.ConnectionState().NegotiatedProtocol).To(Equal("http/1.1"))
	_ = conn.Close()
	if conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool(), NextProtos: []string{"h2"}}); err == nil {
		g.Expect(conn.ConnectionState().NegotiatedProtocol).NotTo(Equal("h2"))
		_ = conn.Close()
	}

	// Plain HTTP gets no further than Go's "HTTP request to an HTTPS server" answer.
	plain, err := http.Post("http://"+addr+"/v1/events", "application/json", bytes.NewReader(event("tls-2", "acc-tls-ingest")))
	g.Expect(err).NotTo(HaveOccurred())
	_ = plain.Body.Close()
	g.Expect(plain.StatusCode).To(Equal(http.StatusBadRequest))

	second := issue()
	g.Eventually(servedCert).WithTimeout(30*time.Second).WithPolling(200*time.Millisecond).Should(Equal(second.TLS.Certificate[0]),
		"the renewed certificate is served without a restart")
	g.Consistently(func() int { return len(rc.got()) }).WithTimeout(300*time.Millisecond).Should(Equal(1), "the plain-HTTP event was not taken")
}
