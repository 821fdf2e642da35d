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

package controllers_test

import (
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
	"github.com/hookline/hookline/internal/testlog"
)

// managerLogs receives everything the manager under test logs, at every verbosity, besides the
// suite's own output.
var managerLogs = &testlog.Buffer{}

// teeSink writes to two sinks, so that the suite can both show logs and assert on them.
type teeSink struct{ a, b logr.LogSink }

func (t teeSink) Init(info logr.RuntimeInfo) { t.a.Init(info); t.b.Init(info) }
func (t teeSink) Enabled(level int) bool     { return t.a.Enabled(level) || t.b.Enabled(level) }
func (t teeSink) Info(level int, msg string, kv ...any) {
	if t.a.Enabled(level) {
		t.a.Info(level, msg, kv...)
	}
	if t.b.Enabled(level) {
		t.b.Info(level, msg, kv...)
	}
}
func (t teeSink) Error(err error, msg string, kv ...any) {
	t.a.Error(err, msg, kv...)
	t.b.Error(err, msg, kv...)
}
func (t teeSink) WithValues(kv ...any) logr.LogSink {
	return teeSink{t.a.WithValues(kv...), t.b.WithValues(kv...)}
}
func (t teeSink) WithName(name string) logr.LogSink {
	return teeSink{t.a.WithName(name), t.b.WithName(name)}
}

// TestManagerLogsItsDecisionsAtV1: at --zap-log-level=debug (V(1)) an operator can follow why a
// Webhook is or is not verified, each line naming the Webhook and its uid.
func TestManagerLogsItsDecisionsAtV1(t *testing.T) {
	ns := newNamespace(t, "acc-logs", "")
	rc := newReceiver(t, true, echoHeader)
	wh := createWebhook(t, ns, "logged", func(s *hooklinev1.WebhookSpec) { s.URL = rc.URL + "/hook" })
	eventuallyReady(t, wh, metav1.ConditionTrue, hooklinev1.ReasonActive)
	unbound := newNamespace(t, "", "")
	other := createWebhook(t, unbound, "unbound", nil)

	lineOf := func(msg string, uid string) func() string {
		return func() string {
			for _, l := range strings.Split(managerLogs.String(), "\n") {
				if strings.Contains(l, msg) && strings.Contains(l, uid) {
					return l
				}
			}
			return ""
		}
	}
	g := NewWithT(t)
	for _, msg := range []string{"Verifying endpoint intent", "Verification finished"} {
		g.Eventually(lineOf(msg, string(wh.UID)), 10*time.Second, 50*time.Millisecond).Should(And(
			ContainSubstring(`"level"=1`), ContainSubstring(ns), ContainSubstring(`"name"="logged"`)), msg)
	}
	g.Eventually(lineOf("Namespace is bound to no account", string(other.UID)), 10*time.Second, 50*time.Millisecond).
		ShouldNot(BeEmpty())
}
