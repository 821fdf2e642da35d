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

func TestHelpAndVersion(t *testing.T) {
	g := NewWithT(t)

	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}} {
		r := run(args...)
		g.Expect(r.code).To(Equal(ExitOK), "%v", args)
		g.Expect(r.stdout).To(ContainSubstring("Usage:\n  hookline COMMAND [flags] [arguments]"))
		for _, c := range []string{"emit", "status", "reactivate", "replay", "version", "help"} {
			g.Expect(r.stdout).To(MatchRegexp(`(?m)^  %s\s+\S`, c))
		}
	}

	for _, c := range []string{"emit", "status", "reactivate", "replay", "version"} {
		viaHelp := run("help", c)
		g.Expect(viaHelp.code).To(Equal(ExitOK))
		g.Expect(viaHelp.stdout).To(ContainSubstring("Usage:\n  hookline " + c))
		for _, h := range []string{"-h", "--help"} {
			viaFlag := run(c, h)
			g.Expect(viaFlag.code).To(Equal(ExitOK), "%s %s", c, h)
			g.Expect(viaFlag.stdout).To(Equal(viaHelp.stdout))
			g.Expect(viaFlag.stderr).To(BeEmpty())
		}
	}

	r := run("version")
	g.Expect(r.code).To(Equal(ExitOK))
	g.Expect(r.stdout).To(MatchRegexp(`^hookline dev \(.*go1\.\d+.*\)\n$`))
	g.Expect(run("--version").stdout).To(Equal(r.stdout))
}

func TestUsageErrors(t *testing.T) {
	g := NewWithT(t)

	r := run()
	g.Expect(r.code).To(Equal(ExitUsage))
	g.Expect(r.stderr).To(ContainSubstring("Usage:"))

	r = run("launch")
	g.Expect(r.code).To(Equal(ExitUsage))
	g.Expect(r.stderr).To(Equal("error: unknown command \"launch\"\nRun 'hookline help' for usage.\n"))

	r = run("help", "launch")
	g.Expect(r.code).To(Equal(ExitUsage))

	r = run("version", "extra")
	g.Expect(r.code).To(Equal(ExitUsage))
	g.Expect(r.stderr).To(ContainSubstring("Run 'hookline version -h' for usage."))
}

func TestKubectlPluginName(t *testing.T) {
	g := NewWithT(t)
	g.Expect(programName([]string{"/usr/local/bin/kubectl-hookline"})).To(Equal("kubectl hookline"))
	g.Expect(programName([]string{"bin/hookline"})).To(Equal("hookline"))
	g.Expect(programName(nil)).To(Equal("hookline"))

	app := newApp(nil)
	app.Name = "kubectl hookline"
	r := runApp(app, "reactivate", "-h")
	g.Expect(r.stdout).To(ContainSubstring("kubectl hookline reactivate -n team-a account-agreements --wait"))
}

func TestParseArgsIntersperses(t *testing.T) {
	g := NewWithT(t)
	fs := newFlagSet("t")
	ns := fs.String("n", "", "")
	wait := fs.Bool("wait", false, "")
	pos, err := parseArgs(fs, []string{"name", "-n", "team-a", "--wait", "-", "--", "-n"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(pos).To(Equal([]string{"name", "-", "-n"}))
	g.Expect(*ns).To(Equal("team-a"))
	g.Expect(*wait).To(BeTrue())
}
