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

package e2e

import (
	"os"
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// notes renders the chart's NOTES.txt with values. helm template leaves NOTES out, and a dry-run
// install checks the objects against the API server (CRDs of other owners, ServiceMonitor), so
// this renders a copy of the chart in which NOTES.txt is also a named template, output as the
// data of a ConfigMap.
func notes(t *testing.T, values string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "hookline")
	if err := os.CopyFS(dir, os.DirFS(chartDir)); err != nil {
		t.Fatal(err)
	}
	text := mustRead(t, filepath.Join(dir, "templates", "NOTES.txt"))
	for name, content := range map[string]string{
		"_notes_under_test.tpl": "{{- define \"hookline.notesUnderTest\" -}}\n" + text + "\n{{- end }}\n",
		"notes-under-test.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes-under-test}\n" +
			"data: {notes: {{ include \"hookline.notesUnderTest\" . | toJson }}}\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, "templates", name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	out, err := helm(t, "template", release, dir, "-n", namespace, "--kube-version", kubeVersion,
		"-f", valuesFile(t, values), "--show-only", "templates/notes-under-test.yaml")
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, out)
	}
	objs, err := decode([]byte(out))
	if err != nil || len(objs) != 1 {
		t.Fatalf("decoding the NOTES ConfigMap: %v\n%s", err, out)
	}
	n, _, _ := unstructured.NestedString(objs[0].Object, "data", "notes")
	return n
}

// NOTES describe the dispatchers' mode as rendered: active-active by default with nats.url and
// several replicas, a lease holder and standbys with partitions 0.
func TestHelmNotesDispatcherMode(t *testing.T) {
	g := NewWithT(t)
	n := notes(t, externalNATS)
	g.Expect(n).To(ContainSubstring("dispatcher.replicas is 3, active-active"))
	g.Expect(n).To(ContainSubstring("32 partitions"))
	g.Expect(n).NotTo(ContainSubstring("delivery lease"))
	g.Expect(n).NotTo(ContainSubstring("not\npartitioned"))

	n = notes(t, externalNATS+"  partitions: 0\n")
	g.Expect(n).To(ContainSubstring("standby mode (dispatcher.partitions=0): one\ndispatcher holds the delivery lease"))
	g.Expect(n).NotTo(ContainSubstring("active-active:"))

	for _, values := range []string{inlineTokens, inlineTokens + "nats: {url: \"nats://nats.nats.svc:4222\"}\n"} {
		n = notes(t, values)
		g.Expect(n).NotTo(ContainSubstring("active-active"), values)
		g.Expect(n).NotTo(ContainSubstring("standby"), values)
	}
}

// The sample post follows the ingest API's scheme: HTTPS with dispatcher.tls.existingSecret.
func TestHelmNotesIngestScheme(t *testing.T) {
	g := NewWithT(t)
	n := notes(t, inlineTokens)
	g.Expect(n).To(ContainSubstring("curl -sS -X POST http://127.0.0.1:8090/v1/events"))
	g.Expect(n).NotTo(ContainSubstring("https://"))

	n = notes(t, inlineTokens+"dispatcher: {tls: {existingSecret: ingest-tls}}\n")
	g.Expect(n).NotTo(ContainSubstring("http://127.0.0.1"))
	g.Expect(n).To(ContainSubstring("--cacert ca.crt --resolve hookline-dispatcher.hookline-system.svc:8090:127.0.0.1"))
	g.Expect(n).To(ContainSubstring("-X POST https://hookline-dispatcher.hookline-system.svc:8090/v1/events"))
}

// A ServiceMonitor behind NetworkPolicies that admit no scraper is warned about.
func TestHelmNotesServiceMonitorBlockedByNetworkPolicy(t *testing.T) {
	g := NewWithT(t)
	const warning = "WARNING: serviceMonitor.enabled with networkPolicy.enabled and an empty networkPolicy.metrics.from"
	g.Expect(notes(t, inlineTokens+"serviceMonitor: {enabled: true}\nnetworkPolicy: {enabled: true}\n")).To(ContainSubstring(warning))
	for _, values := range []string{
		"serviceMonitor: {enabled: true}\n",
		"networkPolicy: {enabled: true}\n",
		"serviceMonitor: {enabled: true}\nnetworkPolicy: {enabled: true, metrics: {from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}}]}}\n",
	} {
		g.Expect(notes(t, inlineTokens+values)).NotTo(ContainSubstring(warning), values)
	}
}
