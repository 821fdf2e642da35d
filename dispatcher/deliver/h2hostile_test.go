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

package deliver

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/hookline/hookline/internal/echo"
	"github.com/hookline/hookline/internal/verify"
)

// streamStarver is a receiver speaking HTTP/2 that answers one request per connection, echoing
// the client id, then sets SETTINGS_MAX_CONCURRENT_STREAMS to 0 and keeps the connection open:
// the client may send nothing more on it, and a client that opens a new connection whenever its
// connections are at their limit opens one per request.
type streamStarver struct {
	URL   string
	Roots *x509.CertPool
	certs []*x509.Certificate
	open  atomic.Int64
	ln    net.Listener
	wg    sync.WaitGroup
	// after, when set, writes more frames once the answer is written.
	after func(fr *http2.Framer) error
	// ping, when set, is how often the receiver PINGs each connection.
	ping time.Duration
	// settings are the client's SETTINGS, as last received.
	mu       sync.Mutex
	settings map[http2.SettingID]uint32
}

// starverOption configures a streamStarver before it serves.
type starverOption func(*streamStarver)

func newStreamStarver(t *testing.T, opts ...starverOption) *streamStarver {
	t.Helper()
	// httptest's certificate (127.0.0.1), served by a listener of our own.
	certSrv := httptest.NewUnstartedServer(nil)
	certSrv.StartTLS()
	cert := certSrv.TLS.Certificates[0]
	roots := x509.NewCertPool()
	roots.AddCert(certSrv.Certificate())
	certSrv.Close()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	s := &streamStarver{URL: "https://" + ln.Addr().String() + "/hook", Roots: roots, ln: ln, certs: []*x509.Certificate{certSrv.Certificate()},
		settings: map[http2.SettingID]uint32{}}
	for _, o := range opts {
		o(s)
	}
	var conns sync.Map
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Store(c, true)
			s.open.Add(1)
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer s.open.Add(-1)
				defer conns.Delete(c)
				defer c.Close()
				s.serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		conns.Range(func(c, _ any) bool { _ = c.(net.Conn).Close(); return true })
		s.wg.Wait()
	})
	return s
}

// Open is how many connections the receiver holds open.
func (s *streamStarver) Open() int { return int(s.open.Load()) }

func (s *streamStarver) serve(c net.Conn) {
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(c, preface); err != nil || string(preface) != http2.ClientPreface {
		return
	}
	var wmu sync.Mutex // the pings' writes and the answers' (a Framer writes from one buffer)
	fr := http2.NewFramer(c, c)
	write := func(f func() error) error {
		wmu.Lock()
		defer wmu.Unlock()
		return f()
	}
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if write(func() error { return fr.WriteSettings(http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: 100}) }) != nil {
		return
	}
	if s.ping > 0 {
		done := make(chan struct{})
		defer close(done)
		go func() {
			tick := time.NewTicker(s.ping)
			defer tick.Stop()
			for {
				select {
				case <-done:
					return
				case <-tick.C:
					if write(func() error { return fr.WritePing(false, [8]byte{1}) }) != nil {
						return
					}
				}
			}
		}()
	}
	var hbuf bytes.Buffer
	enc := hpack.NewEncoder(&hbuf)
	starved := false
	clientID := ""
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return
		}
		end := false
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if f.IsAck() {
				continue
			}
			s.mu.Lock()
			_ = f.ForeachSetting(func(st http2.Setting) error { s.settings[st.ID] = st.Val; return nil })
			s.mu.Unlock()
			if write(fr.WriteSettingsAck) != nil {
				return
			}
		case *http2.MetaHeadersFrame:
			for _, hf := range f.Fields {
				if strings.EqualFold(hf.Name, echo.CanonicalHeader) {
					clientID = hf.Value
				}
			}
			end = f.StreamEnded()
		case *http2.DataFrame:
			end = f.StreamEnded()
		}
		if !end {
			continue
		}
		// The limit first, so that the client knows it when it reads the answer.
		if !starved {
			starved = true
			if write(func() error { return fr.WriteSettings(http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: 0}) }) != nil {
				return
			}
		}
		hbuf.Reset()
		_ = enc.WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
		_ = enc.WriteField(hpack.HeaderField{Name: strings.ToLower(echo.CanonicalHeader), Value: clientID})
		if write(func() error {
			return fr.WriteHeaders(http2.HeadersFrameParam{StreamID: f.Header().StreamID, BlockFragment: hbuf.Bytes(), EndStream: true, EndHeaders: true})
		}) != nil {
			return
		}
		if s.after != nil && write(func() error { return s.after(fr) }) != nil {
			return
		}
	}
}

// setting is the client's last value of SETTINGS id, and whether it sent one.
func (s *streamStarver) setting(id http2.SettingID) (uint32, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.settings[id]
	return v, ok
}

// A receiver that forbids new requests on each connection once it answered one (HTTP/2
// SETTINGS_MAX_CONCURRENT_STREAMS 0) had the sender open a connection per delivery and keep each
// for the transport's 90 s idle timeout: tens of thousands at the rate one account delivers.
// Now an account holds at most its bound per receiver address; past it, the connection silent
// longest is closed for a new one if it has been silent for longer than an attempt lasts, and
// otherwise the delivery fails (to be retried), naming the cause. The account's other receivers
// and another account's deliveries go on meanwhile, and every connection is counted out once
// closed.
func TestAReceiverForbiddingNewStreamsCannotPileUpConnections(t *testing.T) {
	g := NewWithT(t)
	const perHost = 8
	rc := newStreamStarver(t)
	good := newEchoingReceiver(t)
	roots := rc.Roots.Clone()
	roots.AddCert(good.Certificate())
	s := NewSender(2*time.Second, false, roots, loopback)
	s.conns = newConnLimit(perHost, 4*perHost, 0, time.Hour) // nothing is silent for long enough until said
	s.base = s.newTransport(nil)
	evil := withAccount(context.Background(), "acc-evil")
	failed := 0
	for range 50 {
		a := s.Send(evil, rc.URL, "id", "", nil, []byte(`{}`), nil)
		if !a.OK {
			failed++
			g.Expect(a.Reason).To(Equal(verify.ReasonConnectionFailed))
			g.Expect(a.Message).To(ContainSubstring("holds %d connections for account acc-evil to 127.0.0.1:", perHost))
		}
	}
	g.Expect(rc.Open()).To(BeNumerically("<=", perHost), "connections held open for one account and receiver")
	g.Expect(failed).To(Equal(50-perHost), "each delivery past the bound fails")

	// The same account's other receiver, and another account, deliver meanwhile.
	for _, ctx := range []context.Context{evil, withAccount(context.Background(), "acc-good")} {
		for range 3 {
			a := s.Send(ctx, good.URL, "id", "", nil, []byte(`{}`), nil)
			g.Expect(a.OK).To(BeTrue(), "%+v", a)
		}
	}

	// Once its connections have been silent for longer than an attempt lasts, they give way, one
	// for each new one.
	s.conns.setSilent(50 * time.Millisecond)
	g.Eventually(func() bool { return s.Send(evil, rc.URL, "id", "", nil, []byte(`{}`), nil).OK }).
		WithTimeout(5 * time.Second).WithPolling(20 * time.Millisecond).Should(BeTrue())
	g.Eventually(rc.Open).WithTimeout(5 * time.Second).Should(BeNumerically("<=", perHost))

	// Closed, every connection is counted out (the last answer's stream may still be ending when
	// the idle ones are first closed).
	g.Eventually(func() int {
		s.base.CloseIdleConnections()
		return s.conns.counted("acc-evil") + s.conns.counted("acc-good")
	}).
		WithTimeout(5 * time.Second).Should(BeZero())
}

// The account's bound in all holds across receiver addresses: a tenant's webhooks pointing at
// many names of one hostile receiver gain nothing past it.
func TestAnAccountsConnectionsAreBoundedAcrossReceivers(t *testing.T) {
	g := NewWithT(t)
	const perHost, perAccount = 4, 6
	var receivers []*streamStarver
	roots := x509.NewCertPool()
	for range 3 {
		rc := newStreamStarver(t)
		receivers = append(receivers, rc)
		for _, c := range rc.certs {
			roots.AddCert(c)
		}
	}
	s := NewSender(2*time.Second, false, roots, loopback)
	s.conns = newConnLimit(perHost, perAccount, 0, time.Hour)
	s.base = s.newTransport(nil)
	evil := withAccount(context.Background(), "acc-evil")
	var last Attempt
	for range 5 {
		for _, rc := range receivers {
			last = s.Send(evil, rc.URL, "id", "", nil, []byte(`{}`), nil)
		}
	}
	open := 0
	for _, rc := range receivers {
		open += rc.Open()
	}
	g.Expect(open).To(Equal(perAccount), "connections held open for one account")
	g.Expect(last.Message).To(ContainSubstring("holds %d connections for account acc-evil in all", perAccount))
}

// A connection claimed for closing writes nothing more: a request that picked it at that moment
// fails having written nothing, which net/http retries on another connection, instead of being
// cut after it was sent (and perhaps processed, then sent again).
func TestAClaimedConnectionWritesNothing(t *testing.T) {
	g := NewWithT(t)
	client, server := net.Pipe()
	t.Cleanup(func() { _ = server.Close() })
	l := newConnLimit(1, 1, 0, 0)
	g.Expect(l.reserve("acc", "addr")).To(Succeed())
	lc := &limitedConn{Conn: client, l: l, account: "acc", addr: "addr"}
	lc.active.Store(l.now() - 1)
	l.accounts["acc"].hosts["addr"].open[lc] = struct{}{}
	// The bound is reached: the silent connection is claimed for the new dial.
	g.Expect(l.reserve("acc", "addr")).To(Succeed())
	n, err := lc.Write([]byte("POST"))
	g.Expect(n).To(BeZero())
	g.Expect(err).To(MatchError(net.ErrClosed))
}

// What a receiver speaking HTTP/2 may send the dispatcher is bounded by what it is told: windows
// that cover what Send reads of an answer (Go's default let each stream buffer 4 MiB the sender never
// reads, 30 streams at a time per account, and the connection 1 GiB), and frames of 16 KiB. A larger
// frame, such as one of a type nobody knows with a 1 MiB payload sent after each answer (read and
// ignored, it would keep a 1 MiB read buffer for the connection's life, on each of the thousands of
// connections an account may hold), closes the connection.
func TestAReceiversLargeFramesCloseItsConnection(t *testing.T) {
	g := NewWithT(t)
	rc := newStreamStarver(t, func(s *streamStarver) {
		s.after = func(fr *http2.Framer) error { return fr.WriteRawFrame(0xfa, 0, 0, make([]byte, 1<<20)) }
	})
	s := NewSender(2*time.Second, false, rc.Roots, loopback)
	evil := withAccount(context.Background(), "acc-evil")
	for range 5 {
		a := s.Send(evil, rc.URL, "id", "", nil, []byte(`{}`), nil)
		g.Expect(a.OK).To(BeTrue(), "%+v", a)
	}
	size, sent := rc.setting(http2.SettingMaxFrameSize)
	g.Expect(sent).To(BeTrue(), "SETTINGS_MAX_FRAME_SIZE sent")
	g.Expect(size).To(BeEquivalentTo(16<<10), "SETTINGS_MAX_FRAME_SIZE")
	window, sent := rc.setting(http2.SettingInitialWindowSize)
	g.Expect(sent).To(BeTrue(), "SETTINGS_INITIAL_WINDOW_SIZE sent")
	g.Expect(window).To(BeNumerically("<=", echo.MaxBody+drainMax), "SETTINGS_INITIAL_WINDOW_SIZE")
	// Each connection received its frame: the client closed every one of them.
	g.Eventually(rc.Open).WithTimeout(5 * time.Second).Should(BeZero())
}

// A receiver behind one address PINGs each of the connections it starved (SETTINGS_MAX_CONCURRENT_STREAMS
// 0): the client answers every PING, and each answer, like the PING, counted as the connection
// carrying something, so that none was ever silent long enough to give way to a new one. The
// account's other receivers then could not connect (its bound in all was taken). A connection's
// activity is now the dispatcher's own requests on it.
func TestAReceiversPingsDoNotKeepItsConnections(t *testing.T) {
	g := NewWithT(t)
	const perAccount = 4
	rc := newStreamStarver(t, func(s *streamStarver) { s.ping = 50 * time.Millisecond })
	good := newEchoingReceiver(t)
	roots := rc.Roots.Clone()
	roots.AddCert(good.Certificate())
	s := NewSender(2*time.Second, false, roots, loopback)
	s.conns = newConnLimit(perAccount, perAccount, 0, time.Hour)
	s.base = s.newTransport(nil)
	evil := withAccount(context.Background(), "acc-evil")
	for range perAccount {
		g.Expect(s.Send(evil, rc.URL, "id", "", nil, []byte(`{}`), nil).OK).To(BeTrue())
	}
	g.Expect(rc.Open()).To(Equal(perAccount))
	s.conns.setSilent(300 * time.Millisecond)
	// Pinged every 50 ms, the starved connections carry no request of the dispatcher's:
	// once silent for that long, one gives way to the account's other receiver.
	g.Eventually(func() Attempt { return s.Send(evil, good.URL, "id", "", nil, []byte(`{}`), nil) }).
		WithTimeout(5 * time.Second).WithPolling(100 * time.Millisecond).Should(HaveField("OK", BeTrue()))
}

// The process holds at most its bound of connections, whatever the number of accounts: several
// accounts whose receivers starve their connections each held their own bound, about 40 KB a
// connection, in the memory every tenant shares. At the bound, an account holding less than its
// share has the oldest connection of the account holding the most closed for it, and one holding
// its share or more is refused.
func TestConnectionsAreBoundedForTheWholeProcess(t *testing.T) {
	g := NewWithT(t)
	const inAll = 8
	evilRC, otherRC := newStreamStarver(t), newStreamStarver(t)
	good := newEchoingReceiver(t)
	roots := evilRC.Roots.Clone()
	for _, c := range otherRC.certs {
		roots.AddCert(c)
	}
	roots.AddCert(good.Certificate())
	s := NewSender(2*time.Second, false, roots, loopback)
	s.conns = newConnLimit(2*inAll, 2*inAll, inAll, time.Hour) // nothing is silent for long enough
	s.base = s.newTransport(nil)
	send := func(account, url string) Attempt {
		return s.Send(withAccount(context.Background(), account), url, "id", "", nil, []byte(`{}`), nil)
	}
	for range inAll {
		g.Expect(send("acc-evil", evilRC.URL).OK).To(BeTrue())
	}
	g.Expect(evilRC.Open()).To(Equal(inAll))
	a := send("acc-evil", evilRC.URL)
	g.Expect(a.OK).To(BeFalse(), "the process's bound is reached, and acc-evil holds more than its share")
	g.Expect(a.Message).To(ContainSubstring("for all accounts, and %d or more for account acc-evil, its share", inAll))

	// Another account holds less than its share: acc-evil's oldest connection gives way.
	for range 3 {
		a := send("acc-good", good.URL)
		g.Expect(a.OK).To(BeTrue(), "%+v", a)
	}
	g.Eventually(evilRC.Open).WithTimeout(5 * time.Second).Should(Equal(inAll - 1))

	// A third account's starving receiver takes connections from the account holding the most
	// until it holds its share (8 of 8 among three accounts: 2), then is refused.
	ok := 0
	for range 5 {
		if send("acc-other", otherRC.URL).OK {
			ok++
		}
	}
	g.Expect(ok).To(Equal(inAll / 3))
	g.Expect(s.conns.counted("acc-evil") + s.conns.counted("acc-good") + s.conns.counted("acc-other")).To(Equal(inAll))
	g.Expect(send("acc-good", good.URL).OK).To(BeTrue(), "acc-good keeps its connection")

	// Once silent, any account's connections give way to any account's dial, past its share too.
	s.conns.setSilent(50 * time.Millisecond)
	g.Eventually(func() bool { return send("acc-evil", evilRC.URL).OK }).
		WithTimeout(5 * time.Second).WithPolling(20 * time.Millisecond).Should(BeTrue())
	g.Expect(s.conns.counted("acc-evil") + s.conns.counted("acc-good") + s.conns.counted("acc-other")).To(BeNumerically("<=", inAll))
}

// An account whose webhooks point at many receivers holds a connection to each for reuse: idle,
// with no request on them, they give way to its deliveries to further receivers once idle for a
// moment. Before, a connection counted as busy for as long as an attempt may last after a request
// took it (there was no telling when the request ended), so a fan-out to more receivers than the
// bound had its deliveries refused, each a failed attempt blamed on the receiver.
func TestIdleConnectionsGiveWayToAnAccountsOtherReceivers(t *testing.T) {
	g := NewWithT(t)
	const perAccount = 4
	roots := x509.NewCertPool()
	var urls []string
	for range perAccount + 2 {
		rc := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set(echo.Header, r.Header.Get(echo.Header))
		}))
		t.Cleanup(rc.Close)
		roots.AddCert(rc.Certificate())
		urls = append(urls, rc.URL)
	}
	s := NewSender(2*time.Second, false, roots, loopback)
	s.conns = newConnLimit(perAccount, perAccount, 0, time.Hour)
	s.conns.setIdle(50*time.Millisecond, time.Hour) // a request that never ended holds its connection
	s.base = s.newTransport(nil)
	acc := withAccount(context.Background(), "acc-fanout")
	for _, u := range urls[:perAccount] {
		g.Expect(s.Send(acc, u, "id", "", nil, []byte(`{}`), nil).OK).To(BeTrue())
	}
	g.Expect(s.conns.counted("acc-fanout")).To(Equal(perAccount))
	for _, u := range urls[perAccount:] {
		g.Eventually(func() Attempt { return s.Send(acc, u, "id", "", nil, []byte(`{}`), nil) }).
			WithTimeout(5 * time.Second).WithPolling(20 * time.Millisecond).Should(HaveField("OK", BeTrue()))
	}
	g.Expect(s.conns.counted("acc-fanout")).To(Equal(perAccount))
}

// At the process's bound with no connection to take for it (every account holds as few as it
// does), an account's attempt is not its receiver's failure: nothing is sent, and the engine tries
// again shortly instead of counting a failed attempt against the webhook.
func TestABusyProcessIsNoReceiversFailure(t *testing.T) {
	g := NewWithT(t)
	const inAll = 4
	rc := newStreamStarver(t)
	s := NewSender(2*time.Second, false, rc.Roots, loopback)
	s.conns = newConnLimit(inAll, inAll, inAll, time.Hour)
	s.base = s.newTransport(nil)
	send := func(account string) Attempt {
		return s.Send(withAccount(context.Background(), account), rc.URL, "id", "", nil, []byte(`{}`), nil)
	}
	for i := range inAll {
		g.Expect(send(fmt.Sprintf("acc-%d", i)).OK).To(BeTrue())
	}
	before := testutil.ToFloat64(connectionsRefused.WithLabelValues("process"))
	a := send("acc-late")
	g.Expect(a.OK).To(BeFalse())
	g.Expect(a.Retry).To(BeTrue(), "%+v", a)
	g.Expect(a.Message).To(ContainSubstring("none can be given to account acc-late"))
	g.Expect(rc.Open()).To(Equal(inAll))
	g.Expect(testutil.ToFloat64(connectionsRefused.WithLabelValues("process"))-before).To(BeNumerically(">=", 1),
		"counted (hookline_receiver_connections_refused_total{bound=\"process\"})")
}

// The bounds per address and per account follow the account's concurrency: an operator raising
// it to 300 for webhooks sharing one receiver needs 300 connections there at once, which a bound
// of 256 refused at every burst.
func TestConnectionBoundsFollowTheAccountsConcurrency(t *testing.T) {
	g := NewWithT(t)
	s := NewSender(2*time.Second, false, nil, loopback)
	s.LimitConnections(0, 30)
	g.Expect([]int{s.conns.perHost, s.conns.perAccount, s.conns.inAll}).To(Equal([]int{DefaultConnsPerHost, DefaultConnsPerAccount, DefaultConnsInAll}))
	s.LimitConnections(10000, 300)
	g.Expect([]int{s.conns.perHost, s.conns.perAccount, s.conns.inAll}).To(Equal([]int{2400, 9600, 10000}))
}

// A connection is in use from its dial on, until a request has taken it and given it back: its TLS
// handshake, which runs after the dial, may last longer than a connection may stay idle, and a
// connection closed for another then failed an honest receiver's attempt.
func TestADialledConnectionIsInUseUntilARequestGaveItBack(t *testing.T) {
	g := NewWithT(t)
	l := newConnLimit(1, 1, 0, time.Hour)
	l.setIdle(0, time.Hour) // idle at once once no request is on it
	dial := l.dialer(func(context.Context, string, string) (net.Conn, error) {
		c, peer := net.Pipe()
		t.Cleanup(func() { _ = c.Close(); _ = peer.Close() })
		return c, nil
	})
	ctx := withAccount(context.Background(), "acc")
	first, err := dial(ctx, "tcp", "receiver:443")
	g.Expect(err).NotTo(HaveOccurred())
	before := testutil.ToFloat64(connectionsRefused.WithLabelValues("address"))
	_, err = dial(ctx, "tcp", "receiver:443")
	g.Expect(err).To(MatchError(ContainSubstring("holds 1 connections")), "the first, still in its handshake, is in use")
	g.Expect(testutil.ToFloat64(connectionsRefused.WithLabelValues("address"))-before).To(Equal(1.0), "counted")
	lc := first.(*limitedConn)
	lc.take()
	lc.giveBack()
	_, err = dial(ctx, "tcp", "receiver:443")
	g.Expect(err).NotTo(HaveOccurred(), "given back, it gives way")
}

// newEchoingReceiver is a well-behaved receiver speaking HTTP/2 over TLS: it echoes the client id.
func newEchoingReceiver(t *testing.T) *httptest.Server {
	t.Helper()
	good := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(echo.Header, r.Header.Get(echo.Header))
	}))
	good.EnableHTTP2 = true
	good.StartTLS()
	t.Cleanup(good.Close)
	return good
}

// newWedger is a receiver speaking HTTP/2 that answers each connection's first request with 200,
// no echo and one byte of a body it never ends, then stops reading and floods PINGs: the client
// answers each PING under its connection's write lock, its writes block once the socket's buffers
// are full, and its stream's reset at the deadline waits for that lock for ever.
func newWedger(t *testing.T) (url string, roots *x509.CertPool) {
	t.Helper()
	certSrv := httptest.NewUnstartedServer(nil)
	certSrv.StartTLS()
	cert := certSrv.TLS.Certificates[0]
	roots = x509.NewCertPool()
	roots.AddCert(certSrv.Certificate())
	certSrv.Close()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer func() { _ = c.Close() }()
				if _, err := io.ReadFull(c, make([]byte, len(http2.ClientPreface))); err != nil {
					return
				}
				fr := http2.NewFramer(c, c)
				fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
				_ = fr.WriteSettings(http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: 100})
				var sid uint32
				for sid == 0 {
					f, err := fr.ReadFrame()
					if err != nil {
						return
					}
					switch f := f.(type) {
					case *http2.SettingsFrame:
						if !f.IsAck() {
							_ = fr.WriteSettingsAck()
						}
					case *http2.MetaHeadersFrame:
						if f.StreamEnded() {
							sid = f.StreamID
						}
					case *http2.DataFrame:
						if f.StreamEnded() {
							sid = f.StreamID
						}
					}
				}
				var hb bytes.Buffer
				_ = hpack.NewEncoder(&hb).WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
				_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: sid, BlockFragment: hb.Bytes(), EndHeaders: true})
				_ = fr.WriteData(sid, false, []byte("x"))
				var pings bytes.Buffer
				pf := http2.NewFramer(&pings, nil)
				for range 4000 {
					_ = pf.WritePing(false, [8]byte{1})
				}
				for {
					if _, err := c.Write(pings.Bytes()); err != nil {
						return
					}
				}
			}()
		}
	}()
	return "https://" + ln.Addr().String() + "/hook", roots
}

// A receiver that wedges its HTTP/2 connection (it stops reading and floods PINGs) cannot hold an
// attempt past its deadline: Send closes the connection wedgeGrace after the deadline. Before, the
// attempt never returned, holding its account's slot and its body for as long as the receiver
// liked (found by a review helper).
//
// The receiver's flood wedges the connection well within the 3 s deadline, so the attempt ends
// wedgeGrace past it; the bound is below the HTTP/2 write timeout (10 s), the other way out.
func TestAReceiverThatStopsReadingCannotHoldAnAttempt(t *testing.T) {
	const timeout = 3 * time.Second
	url, roots := newWedger(t)
	s := NewSender(timeout, false, roots, loopback)
	done := make(chan Attempt, 1)
	start := time.Now()
	go func() {
		done <- s.Send(withAccount(context.Background(), "acc"), url, "id", "", nil, []byte(`{}`), nil)
	}()
	select {
	case a := <-done:
		if a.OK || a.Reason != verify.ReasonTimeout {
			t.Fatalf("attempt = %+v, want a timeout", a)
		}
		// Not before: the request was wedged, and only the connection's close ended it.
		if took := time.Since(start); took < timeout+wedgeGrace-200*time.Millisecond {
			t.Fatalf("Send returned after %s: the receiver did not wedge the connection", took)
		}
	case <-time.After(timeout + wedgeGrace + 2*time.Second): // a bound for a failing test, not a wait
		t.Fatalf("Send (timeout %s) had not returned %s past its deadline", timeout, wedgeGrace+2*time.Second)
	}
}
