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
	"testing"

	. "github.com/onsi/gomega"
)

// The read API's commands refuse wrong command lines before they call anything, and never send a
// token in clear text to another machine. (They are run against a real dispatcher in
// dispatcher/logapi_cli_test.go.)
func TestDeliveriesUsageErrors(t *testing.T) {
	g := NewWithT(t)
	url := map[string]string{dispatcherURLEnv: "https://127.0.0.1:1"}
	for _, c := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{url, []string{"deliveries"}, "deliveries takes one Webhook NAME"},
		{url, []string{"deliveries", "a", "b"}, "got 2 arguments"},
		{url, []string{"deliveries", "a", "-o", "wide"}, `--output "wide": use table, json or yaml`},
		{url, []string{"deliveries", "a", "--limit", "0"}, "--limit 0: at least 1"},
		{url, []string{"attempts", "a"}, "attempts takes a Webhook NAME (or NAMESPACE/NAME) and a NOTIFICATION_ID, got 1 arguments"},
		{nil, append([]string{"deliveries"}, kubeArgs("a", "--token", "t")...), "--dispatcher-url or $HOOKLINE_DISPATCHER_URL"},
		{nil, append([]string{"deliveries"}, kubeArgs("a", "--token", "t", "--dispatcher-url", "ftp://x")...), `want https://HOST[:PORT]`},
		{nil, append([]string{"deliveries"}, kubeArgs("a", "--token", "t", "--dispatcher-url", "http://dispatcher.example:8444")...),
			"refusing to send a bearer token over plain HTTP to dispatcher.example"},
		// The test kubeconfig's admin authenticates with a client certificate.
		{url, append([]string{"attempts"}, kubeArgs("a", "id")...), "the kubeconfig user has no token"},
	} {
		r := runApp(newApp(c.env), c.args...)
		g.Expect(r.code).To(Equal(ExitUsage), "%v: %s", c.args, r.stderr)
		g.Expect(r.stderr).To(ContainSubstring(c.want), "%v", c.args)
	}
	g.Expect(loopback("localhost")).To(BeTrue())
	g.Expect(loopback("127.0.0.2")).To(BeTrue())
	g.Expect(loopback("::1")).To(BeTrue())
	g.Expect(loopback("10.0.0.1")).To(BeFalse())
	g.Expect(loopback("localhost.example.com")).To(BeFalse())

	r := run("help", "deliveries")
	g.Expect(r.code).To(Equal(ExitOK))
	g.Expect(r.stdout).To(ContainSubstring("--dispatcher-url URL"))
	g.Expect(r.stdout).To(ContainSubstring("failed = dropped, cancelled and lost"))
}
