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
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

// kubectl runs the kubectl built into bin/ against the test API server.
func kubectl(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(filepath.Join(env.Bin, "kubectl"), append([]string{"--kubeconfig", env.Kubeconfig}, args...)...)
	cmd.Dir = env.Root
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestKubectlApplySamplesAndPrinterColumns(t *testing.T) {
	g := NewWithT(t)
	// Unbound namespace: the samples' example.com URLs are never contacted.
	ns := newNamespace(t, "", "")

	out, err := kubectl(t, "apply", "-n", ns, "-f", "config/samples/")
	g.Expect(err).NotTo(HaveOccurred(), out)
	samples, err := filepath.Glob(filepath.Join(env.Root, "config", "samples", "*.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(samples).NotTo(BeEmpty())
	g.Expect(strings.Count(out, " created")).To(Equal(len(samples)), out)

	g.Eventually(func(g Gomega) {
		out, err := kubectl(t, "get", "webhooks", "-n", ns)
		g.Expect(err).NotTo(HaveOccurred(), out)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		g.Expect(strings.Fields(lines[0])).To(Equal([]string{"NAME", "STATE", "SCOPE", "READY", "LAST-SUCCESS", "AGE"}))
		g.Expect(lines).To(HaveLen(len(samples) + 1))
		for _, l := range lines[1:] {
			f := strings.Fields(l)
			g.Expect(f[1]).To(Equal("Inactive"), l)
			g.Expect(f[2]).To(BeElementOf("ACCOUNT", "GROUP", "USER", "RESOURCE"), l)
			g.Expect(f[3]).To(Equal("False"), l)
		}
	}).WithTimeout(15 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())

	out, err = kubectl(t, "get", "wh", "-n", ns, "-o", "wide")
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Expect(strings.Fields(strings.SplitN(out, "\n", 2)[0])).To(Equal(
		[]string{"NAME", "STATE", "SCOPE", "READY", "LAST-SUCCESS", "AGE", "URL", "REASON", "PENDING"}))
	g.Expect(out).To(ContainSubstring("NamespaceNotBound"))

	out, err = kubectl(t, "get", "hookline", "-n", ns, "-o", "name")
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Expect(out).To(ContainSubstring("webhook.hookline.io/account-agreements"))

	out, err = kubectl(t, "apply", "-n", ns, "-f", "config/samples/")
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Expect(strings.Count(out, " unchanged")).To(Equal(len(samples)), out)
}

func TestKubectlRejectsInvalidManifestNamingTheField(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, "", "")
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	g.Expect(os.WriteFile(bad, []byte(`apiVersion: hookline.io/v1alpha1
kind: Webhook
metadata:
  name: bad
spec:
  url: https://receiver.example.com/hooks
  scope: GROUP
  events: [AGREEMENT_ALL, WIDGET_EXPLODED]
`), 0o600)).To(Succeed())
	out, err := kubectl(t, "apply", "-n", ns, "-f", bad)
	g.Expect(err).To(HaveOccurred())
	g.Expect(out).To(ContainSubstring("spec.groupId is required when scope is GROUP"))
	g.Expect(out).To(ContainSubstring(`spec.events[1]`))
	g.Expect(out).To(ContainSubstring(`unknown event name "WIDGET_EXPLODED"`))

	// Unknown fields are refused too (server-side strict field validation).
	g.Expect(os.WriteFile(bad, []byte(`apiVersion: hookline.io/v1alpha1
kind: Webhook
metadata:
  name: bad
spec:
  url: https://receiver.example.com/hooks
  scope: ACCOUNT
  events: [WIDGET_ALL]
  conditionalParams:
    widget:
      includeSignedDocuments: true
`), 0o600)).To(Succeed())
	out, err = kubectl(t, "apply", "-n", ns, "-f", bad)
	g.Expect(err).To(HaveOccurred())
	g.Expect(out).To(ContainSubstring("includeSignedDocuments"))
}
