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
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/utils/lru"

	"github.com/hookline/hookline/internal/clientcert"
	"github.com/hookline/hookline/internal/deliveries"
	"github.com/hookline/hookline/internal/echo"
	"github.com/hookline/hookline/internal/netguard"
	"github.com/hookline/hookline/internal/safetext"
	"github.com/hookline/hookline/internal/signing"
	"github.com/hookline/hookline/internal/verify"
)

// Outcome reasons of one delivery attempt, besides the verify.Reason* failure reasons.
const (
	ReasonDelivered = "Delivered"
)

// Attempt is the result of one POST.
type Attempt struct {
	OK      bool
	Status  int
	Reason  string
	Message string
	// Response is the start of the receiver's answer body (deliveries.ExcerptMax bytes at most,
	// made safe by safetext.Excerpt), for the delivery log.
	Response string
	// Retry: nothing was sent, for a reason of the dispatcher's own (no connection could be had
	// for the account within the process's bound): tried again shortly, not a failed attempt.
	Retry bool
}

// Sender POSTs notifications. Connections are kept alive and reused per receiver; webhooks with a
// client certificate get a transport of their own so that a certificate is never presented to
// another webhook's receiver.
type Sender struct {
	timeout   time.Duration
	allowHTTP bool
	roots     *x509.CertPool
	guard     *netguard.Guard
	// conns bounds the connections held open per account and address, across every transport.
	conns *connLimit

	base *http.Transport
	// byCert holds a transport per client certificate, the least recently used going first beyond
	// maxCertTransports: kept for ever, a tenant rotating its certificates again and again grew
	// the dispatcher's memory by a transport (its key pair, its idle connections) each time.
	mu     sync.Mutex
	byCert *lru.Cache
}

// maxCertTransports bounds the transports kept for client certificates.
const maxCertTransports = 4096

// NewSender returns a Sender with the given attempt timeout (Acrobat Sign: 5 s). guard decides
// which addresses it may connect to; nil means netguard.Default().
func NewSender(timeout time.Duration, allowHTTP bool, roots *x509.CertPool, guard *netguard.Guard) *Sender {
	if guard == nil {
		guard = netguard.Default()
	}
	s := &Sender{timeout: timeout, allowHTTP: allowHTTP, roots: roots, guard: guard,
		conns: newConnLimit(DefaultConnsPerHost, DefaultConnsPerAccount, DefaultConnsInAll, connIdle),
		byCert: lru.NewWithEvictionFunc(maxCertTransports, func(_ lru.Key, v any) {
			// Now, and once the attempts that still use it are over (each within the timeout):
			// their connections come back to its idle pool, which nobody would close otherwise.
			t := v.(*http.Transport)
			t.CloseIdleConnections()
			time.AfterFunc(timeout+time.Second, t.CloseIdleConnections)
		})}
	// A connection whose request never said it ended carries none once silent for longer than an
	// attempt may last.
	s.conns.setIdle(connIdle, timeout+time.Second)
	s.base = s.newTransport(nil)
	return s
}

// connIdle is how long a connection without a request must have been so to give way to a new one:
// one just given back is likely to be used again.
const connIdle = time.Second

// LimitConnections sets, before s sends anything, the most connections to receivers it holds for
// all accounts together (inAll > 0; DefaultConnsInAll by default), and fits the bounds per account
// and per address to accountConcurrency, the requests an account may have in flight (the defaults
// leave room for 30 at one address eight times over).
func (s *Sender) LimitConnections(inAll, accountConcurrency int) {
	s.conns.mu.Lock()
	defer s.conns.mu.Unlock()
	if inAll > 0 {
		s.conns.inAll = inAll
	}
	s.conns.perHost = max(DefaultConnsPerHost, 8*accountConcurrency)
	s.conns.perAccount = max(DefaultConnsPerAccount, 4*s.conns.perHost)
}

func (s *Sender) newTransport(cert *tls.Certificate) *http.Transport {
	tlsCfg := &tls.Config{RootCAs: s.roots, MinVersion: tls.VersionTLS12}
	if cert != nil {
		tlsCfg.Certificates = []tls.Certificate{*cert}
	}
	return &http.Transport{
		// No proxy: the guard checks the address dialed, which must be the receiver's.
		Proxy:               nil,
		DialContext:         s.conns.dialer(s.guard.DialContext(&net.Dialer{Timeout: s.timeout, KeepAlive: 30 * time.Second})),
		TLSClientConfig:     tlsCfg,
		TLSHandshakeTimeout: s.timeout,
		// Many webhooks often share one receiver host (one service, one path per customer): keep
		// enough idle connections per host for the account concurrency of every account, or each
		// delivery would dial anew.
		MaxIdleConns:           8192,
		MaxIdleConnsPerHost:    1024,
		IdleConnTimeout:        90 * time.Second,
		ResponseHeaderTimeout:  s.timeout,
		MaxResponseHeaderBytes: 64 << 10,
		DisableCompression:     true,
		ForceAttemptHTTP2:      true,
		HTTP2:                  receiverHTTP2,
	}
}

// receiverHTTP2 bounds what a receiver speaking HTTP/2 can make the dispatcher hold. The windows
// cover what Send reads of an answer (the echo's part, then the drain): Go's defaults let each
// stream buffer 4 MiB the sender never reads, 30 streams at a time per account, and a connection
// 1 GiB. The frame size is Go's default today, stated so that it stays: a client reading 1 MiB frames
// keeps a read buffer of the largest frame read for the connection's life (a frame of unknown type
// is read and ignored whatever its stream), 1 MiB on each of the thousands of connections an
// account may hold.
var receiverHTTP2 = &http.HTTP2Config{
	MaxReadFrameSize:              16 << 10, // the protocol's least
	MaxReceiveBufferPerStream:     echo.MaxBody + drainMax,
	MaxReceiveBufferPerConnection: 1 << 20,
	// A write that makes no progress for this long closes the connection (a receiver that stops
	// reading; Send also closes a connection its request is wedged on, see wedgeGrace).
	WriteByteTimeout: 10 * time.Second,
}

func (s *Sender) transport(cert *tls.Certificate) *http.Transport {
	if cert == nil {
		return s.base
	}
	key := clientcert.Fingerprint(cert)
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.byCert.Get(key); ok {
		return t.(*http.Transport)
	}
	t := s.newTransport(cert)
	s.byCert.Add(key, t)
	return t
}

// webhookIDHeader is signing.HeaderID as net/http keys it.
var webhookIDHeader = http.CanonicalHeaderKey(signing.HeaderID)

// wedgeGrace is how long past its deadline a request may still run before its connection is
// closed (Send).
const wedgeGrace = 500 * time.Millisecond

// A response with the echo header is judged on its headers; its body is then read for at most
// drainGrace and drainMax bytes, only so that the connection can be reused.
const (
	drainGrace = 200 * time.Millisecond
	drainMax   = 256 << 10
)

// Send POSTs body to rawURL and judges the answer as Acrobat Sign does: success only on 2xx with
// the client id echoed; 3xx, other statuses, no echo, timeouts and connection errors are failures.
// extra headers (signatures) are added to the request.
func (s *Sender) Send(ctx context.Context, rawURL, clientID, notificationID string, cert *tls.Certificate, body []byte, extra http.Header) (a Attempt) {
	// The message may quote the receiver; it ends up in status, Events and e-mails.
	defer func() { a.Message = safetext.Receiver(a.Message) }()
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	// A receiver can hold a request past its deadline: over HTTP/2, one that stops reading and
	// floods PINGs blocks the connection's writes (the client answers each PING under the
	// connection's write lock), and Go's client then never ends the stream, whose reset waits for
	// that lock; the attempt held its account's slot, and every later attempt on the connection
	// left a goroutine holding its body, for as long as the receiver liked. A request still
	// running wedgeGrace past its deadline has its connection closed, which ends every stream on
	// it. Stopped before cancel runs (defers run last first): an attempt that ends closes nothing.
	// held is the connection the request runs on until Send lets go of it (closeBody, return):
	// swapped out by whichever of the two comes first, so that the closer never closes a
	// connection Send has handed back.
	var held atomic.Pointer[limitedConn]
	stopWedge := context.AfterFunc(ctx, func() {
		time.AfterFunc(wedgeGrace, func() {
			if c := held.Swap(nil); c != nil {
				_ = c.Close()
			}
		})
	})
	defer func() { held.Store(nil); stopWedge() }()
	// The connection the request takes is counted as in use until the answer is closed
	// (connLimit): one without a request may give way to a new one.
	var on *limitedConn
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) {
		// Called on this goroutine, once per connection tried (net/http may retry on another).
		if lc := limitedOf(i.Conn); lc != on {
			if on != nil {
				on.giveBack()
			}
			if on = lc; on != nil {
				on.take()
			}
			held.Store(lc)
		}
	}})
	defer func() {
		if on != nil {
			on.giveBack()
		}
	}()
	// The request's URL is the one parse of rawURL (this runs for every delivery): with the
	// method and context fixed, NewRequest fails only on a URL url.Parse rejects.
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rawURL, bytes.NewReader(body))
	if err != nil || (req.URL.Scheme != "https" && (req.URL.Scheme != "http" || !s.allowHTTP)) {
		return Attempt{Reason: verify.ReasonInsecureURLNotAllowed, Message: "url must be https"}
	}
	// Keys already canonical, set without Header.Set's canonicalisation: this runs for every delivery.
	req.Header["Content-Type"] = []string{"application/json"}
	req.Header[echo.CanonicalHeader] = []string{clientID}
	req.Header["User-Agent"] = []string{"hookline"}
	if notificationID != "" {
		// Every notification names itself (Standard Webhooks' webhook-id, signed or not): an
		// envelope-dialect body, delivered as it came, carries no webhookNotificationId, and its
		// receiver dedupes on the header (the seeds: deduplicate by the event's id).
		req.Header[webhookIDHeader] = []string{notificationID}
	}
	for k, v := range extra {
		req.Header[k] = v
	}
	resp, err := s.transport(cert).RoundTrip(req)
	if err != nil {
		if cle := (*ConnLimitError)(nil); errors.As(err, &cle) && cle.Busy {
			return Attempt{Retry: true, Reason: verify.ReasonConnectionFailed, Message: cle.Error()}
		}
		r := verify.Classify(err, s.timeout)
		return Attempt{Reason: r.Reason, Message: r.Message}
	}
	if resp.StatusCode < http.StatusOK {
		// A 101 Switching Protocols, the only answer below 200 Go's transport returns: it hands
		// the connection itself over as the body, which it no longer closes when ctx ends, so a
		// receiver that then said nothing held the attempt, its account's slot and the engine's
		// shutdown for ever. Nothing of it is read.
		closeBody(resp, &held)
		return Attempt{Status: resp.StatusCode, Reason: verify.ReasonNonSuccessStatus, Message: fmt.Sprintf("receiver answered %d", resp.StatusCode)}
	}
	var respBody []byte
	var readErr error
	var response string
	if echo.HeaderEchoes(resp.Header, clientID) {
		// The header echoes the id: the body does not matter (its start is kept for the delivery log).
		// Give it a moment to arrive so that the connection can be reused, but do not let a receiver that stalls after the header hold
		// its queue and an account slot until the timeout.
		stop := time.AfterFunc(drainGrace, func() { closeBody(resp, &held) })
		response = drainExcerpt(resp.Body)
		stop.Stop()
	} else {
		// The echo can only be in the body (a header with another id does not undo it), and the
		// error matters: a body cut short by the timeout or a broken connection is no answer.
		respBody, readErr = echo.ReadBody(resp.Body)
		response = excerpt(respBody)
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, drainMax))
	}
	closeBody(resp, &held)
	a = Attempt{Status: resp.StatusCode, Response: response}
	switch {
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		a.Reason, a.Message = verify.ReasonRedirected, fmt.Sprintf("receiver answered %d; redirects are not followed", resp.StatusCode)
	case resp.StatusCode < 200 || resp.StatusCode >= 300:
		a.Reason, a.Message = verify.ReasonNonSuccessStatus, fmt.Sprintf("receiver answered %d", resp.StatusCode)
	case readErr != nil:
		// Report the timeout or the broken connection, not the truncated body's missing echo.
		r := verify.Classify(readErr, s.timeout)
		a.Reason, a.Message = r.Reason, r.Message
	default:
		switch echo.Check(resp.Header, respBody, clientID) {
		case echo.Echoed:
			a.OK, a.Reason, a.Message = true, ReasonDelivered, "delivered"
		case echo.Mismatch:
			a.Reason, a.Message = verify.ReasonClientIDMismatch, "receiver echoed a different client id"
		default:
			a.Reason, a.Message = verify.ReasonClientIDNotEchoed, "receiver answered 2xx without echoing the client id"
		}
	}
	return a
}

// closeBody closes resp's body. An HTTP/1 connection then goes back to the pool, for another
// request: it is first taken out of held, so that Send's wedge closer, should it fire meanwhile,
// cannot close it under that request. (An HTTP/2 connection stays in held: its streams are reset as
// the body closes, which is where a wedged connection blocks, and the closer must still end it.)
func closeBody(resp *http.Response, held *atomic.Pointer[limitedConn]) {
	if resp.ProtoMajor < 2 {
		held.Store(nil)
	}
	_ = resp.Body.Close()
}

// drainExcerpt reads r as the echo header's drain does (at most drainMax bytes, nothing more) and
// returns the excerpt of its start.
func drainExcerpt(r io.Reader) string {
	r = io.LimitReader(r, drainMax)
	buf := excerptBufs.Get().(*[deliveries.ExcerptMax]byte)
	defer excerptBufs.Put(buf)
	n, err := io.ReadFull(r, buf[:])
	if err == nil {
		_, _ = io.Copy(io.Discard, r)
	}
	return excerpt(buf[:n])
}

// excerptBufs spares each attempt a buffer of its own (the reader could keep it, so it cannot live
// on the stack).
var excerptBufs = sync.Pool{New: func() any { return new([deliveries.ExcerptMax]byte) }}

// excerpt makes the start of a receiver's answer fit for the delivery log.
func excerpt(body []byte) string {
	if len(body) == 0 {
		return ""
	}
	return safetext.Excerpt(body[:min(len(body), deliveries.ExcerptMax)], deliveries.ExcerptMax)
}

// Close releases idle connections.
func (s *Sender) Close() {
	s.base.CloseIdleConnections()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.byCert.Clear() // closes each one's idle connections
}
