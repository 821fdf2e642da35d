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
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version is the release version, set at build time with
// -ldflags "-X github.com/hookline/hookline/internal/cli.Version=v1.2.3".
var Version = "dev"

func (a *App) version(_ context.Context, args []string) error {
	fs := newFlagSet("version")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("version takes no arguments")
	}
	fmt.Fprintf(a.Stdout, "hookline %s\n", versionString())
	return nil
}

// versionString is Version, or the module version of a `go install …@version` build, with the VCS
// revision when the build recorded one, and the Go version and platform.
func versionString() string {
	v := Version
	details := ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
		var rev, dirty string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					dirty = "+dirty"
				}
			}
		}
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if rev != "" {
			details = "commit " + rev + dirty + ", "
		}
	}
	return fmt.Sprintf("%s (%s%s, %s/%s)", v, details, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

func versionUsage(a *App) string {
	return fmt.Sprintf("Print the version of %[1]s.\n\nUsage:\n  %[1]s version\n", a.Name)
}
