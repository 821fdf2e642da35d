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
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/hookline/hookline/internal/deliveries"
)

// LogAPI reaches the dispatcher's read API (docs/read-api.md) for the delivery log. Like every call
// to the API server, every request carries the signed-in user's own token: the read API checks it
// with a TokenReview and a SubjectAccessReview, so RBAC alone decides whose log a user may read and
// the console holds no rights of its own there either.
type LogAPI struct {
	// Base is the read API's URL (scheme, host and an optional path prefix).
	Base *url.URL
	// HTTP sends the requests; its transport trusts the read API's CA and carries no credentials.
	HTTP *http.Client
}

// errLogSignedOut is the read API's 401: the token is no longer accepted.
var errLogSignedOut = errors.New("the read API no longer accepts the token")

// logError is any other error answer of the read API.
type logError struct{ body deliveries.Error }

func (e *logError) Error() string {
	return fmt.Sprintf("%d %s: %s", e.body.Status, e.body.Reason, e.body.Message)
}

// maxLogAnswer bounds an answer (maxAnswer): a page of 500 notifications or a history of many
// attempts is a few hundred KiB; a body is read only as far as a page shows it (ShownBody).
const maxLogAnswer = maxAnswer

// get GETs path below Base as the holder of token and returns the answer's body. 404 (not found or
// not allowed, which the read API does not tell apart) is errNotVisible.
func (l *LogAPI) get(ctx context.Context, token, path string, query url.Values) ([]byte, error) {
	return l.do(ctx, http.MethodGet, token, path, query, nil, http.StatusOK)
}

// do sends one request below Base as the holder of token and returns the body of an answer with
// status ok; 404 is errNotVisible, 401 errLogSignedOut, anything else a logError.
func (l *LogAPI) do(ctx context.Context, method, token, path string, query url.Values, body []byte, ok int) ([]byte, error) {
	answer, err := l.fetch(ctx, method, token, path, query, body, ok, maxLogAnswer+1)
	if err == nil && len(answer) > maxLogAnswer {
		return nil, errAnswerTooLarge
	}
	return answer, err
}

// fetch is do reading at most limit bytes of the answer.
func (l *LogAPI) fetch(ctx context.Context, method, token, path string, query url.Values, body []byte, ok int, limit int64) ([]byte, error) {
	u := *l.Base
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	u.RawQuery = query.Encode()
	req, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("User-Agent", "hookline-console")
	resp, err := l.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("reaching the dispatcher's read API: %w", err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	if err != nil {
		return nil, fmt.Errorf("reading the read API's answer: %w", err)
	}
	switch resp.StatusCode {
	case ok:
		return answer, nil
	case http.StatusNotFound:
		return nil, errNotVisible
	case http.StatusUnauthorized:
		return nil, errLogSignedOut
	}
	var e deliveries.Error
	if json.Unmarshal(answer, &e) != nil || e.Message == "" {
		e = deliveries.Error{Status: resp.StatusCode, Reason: http.StatusText(resp.StatusCode), Message: "unexpected answer"}
	}
	return nil, &logError{body: e}
}

func webhookPath(ns, name string) string {
	return "/v1/namespaces/" + url.PathEscape(ns) + "/webhooks/" + url.PathEscape(name)
}

func notificationsPath(ns, name string) string { return webhookPath(ns, name) + "/notifications" }

// Notifications returns one page of the webhook's notifications.
func (l *LogAPI) Notifications(ctx context.Context, token, ns, name string, query url.Values) (*deliveries.NotificationList, error) {
	b, err := l.get(ctx, token, notificationsPath(ns, name), query)
	if err != nil {
		return nil, err
	}
	var out deliveries.NotificationList
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("the read API's answer: %w", err)
	}
	return &out, nil
}

// Attempts returns a notification's history.
func (l *LogAPI) Attempts(ctx context.Context, token, ns, name, id string) (*deliveries.AttemptList, error) {
	b, err := l.get(ctx, token, notificationsPath(ns, name)+"/"+url.PathEscape(id), nil)
	if err != nil {
		return nil, err
	}
	var out deliveries.AttemptList
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("the read API's answer: %w", err)
	}
	return &out, nil
}

// ShownBody bounds the part of a body a payload page shows: html/template escapes it to up to six
// times its size, and one console serves every tenant of the cluster from a small pod.
const ShownBody = 512 << 10

// maxIndented bounds the indented copy of a body. Indenting writes a newline and two spaces per
// level of nesting before every element, so a body of 120 KB nested a thousand deep becomes
// 120 MB: such a body is shown as it came.
const maxIndented = 1 << 20

// Payload is a notification's body as a page shows it.
type Payload struct {
	// Text is the body, indented for reading when it is JSON whose indented form stays within
	// maxIndented, as it came otherwise; at most ShownBody bytes of it.
	Text string
	// Truncated: the body is longer than ShownBody and Text is its beginning.
	Truncated bool
}

// Body returns a notification's body as a payload page shows it. Only ShownBody bytes of it (and
// one more, to know) are read.
func (l *LogAPI) Body(ctx context.Context, token, ns, name, id string) (Payload, error) {
	b, err := l.fetch(ctx, http.MethodGet, token, notificationsPath(ns, name)+"/"+url.PathEscape(id)+"/body", nil, nil, http.StatusOK, ShownBody+1)
	if err != nil {
		return Payload{}, err
	}
	if len(b) > ShownBody {
		// Cut on a character's start: the page stays valid UTF-8.
		cut := ShownBody
		for cut > ShownBody-utf8.UTFMax && !utf8.RuneStart(b[cut]) {
			cut--
		}
		return Payload{Text: string(b[:cut]), Truncated: true}, nil
	}
	if indentedSize(b, maxIndented) <= maxIndented {
		var buf bytes.Buffer
		if json.Indent(&buf, b, "", "  ") == nil {
			return Payload{Text: buf.String()}, nil
		}
	}
	return Payload{Text: string(b)}, nil
}

// indentedSize bounds from above the size of json.Indent(b, "", "  "), without building it: it
// counts, outside strings, what Indent adds at each bracket, comma and colon (a newline and the
// level's indentation, a space); whitespace Indent drops is counted as kept. It stops counting
// once past limit.
func indentedSize(b []byte, limit int) int {
	size, depth := len(b), 0
	inString, escaped := false, false
	for _, c := range b {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		case c == '"':
			inString = true
			continue
		case c == '{' || c == '[':
			depth++
			size += 1 + 2*depth
		case c == '}' || c == ']':
			depth = max(depth-1, 0)
			size += 1 + 2*depth
		case c == ',':
			size += 1 + 2*depth
		case c == ':':
			size++
		default:
			continue
		}
		if size > limit {
			return size
		}
	}
	return size
}

// Stats returns the webhook's deliveries, failures and latency over window (24h or 7d).
func (l *LogAPI) Stats(ctx context.Context, token, ns, name string, window deliveries.Window) (*deliveries.Stats, error) {
	b, err := l.get(ctx, token, webhookPath(ns, name)+"/stats", url.Values{"window": {string(window)}})
	if err != nil {
		return nil, err
	}
	var out deliveries.Stats
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("the read API's answer: %w", err)
	}
	return &out, nil
}

// SendTest asks the read API to send the webhook a test notification of event.
func (l *LogAPI) SendTest(ctx context.Context, token, ns, name, event string) (*deliveries.TestReceipt, error) {
	body, err := json.Marshal(deliveries.TestRequest{Event: event})
	if err != nil {
		return nil, err
	}
	b, err := l.do(ctx, http.MethodPost, token, webhookPath(ns, name)+"/test", nil, body, http.StatusAccepted)
	if err != nil {
		return nil, err
	}
	var out deliveries.TestReceipt
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("the read API's answer: %w", err)
	}
	return &out, nil
}
