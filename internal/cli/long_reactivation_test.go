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

package cli

import (
	"regexp"
	"strings"
	"testing"

	. "github.com/onsi/gomega"

	hooklinev1 "github.com/hookline/hookline/api/v1alpha1"
)

// A reactivation value longer than status.lastHandledReactivation can hold is recorded by its
// digest; the CLI compares by the same function, so a handled long value is not reported as
// pending, and both sides are shown as the status records them.
func TestStatusComparesALongReactivationByItsDigest(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, "acc-1")
	newWebhook(t, ns, "agreements", hooklinev1.StateInactive)
	value := strings.Repeat("ticket-", 1500)
	token := hooklinev1.ReactivationToken(value)
	st := disabledStatus()
	st["lastHandledReactivation"] = token
	applyStatus(t, ns, "agreements", st)
	patchAnnotation(t, ns, "agreements", value)

	r := run(append([]string{"status"}, kubeArgs("-n", ns, "agreements")...)...)
	g.Expect(r.code).To(Equal(ExitOK), r.stderr)
	g.Expect(r.stdout).NotTo(ContainSubstring("not yet handled"))
	g.Expect(r.stdout).To(MatchRegexp(`(?m)^reactivation:\s+requested %s, handled %s$`, regexp.QuoteMeta(token), regexp.QuoteMeta(token)))
	g.Expect(r.stdout).To(ContainSubstring("hookline reactivate -n " + ns + " agreements --wait"))
}
