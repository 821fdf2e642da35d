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
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/hookline/hookline/internal/controlplane"
)

// The status and reactivate tests run against a real kube-apiserver and etcd with hookline's CRDs;
// nothing else (no manager, no dispatcher) runs, so the tests write the status themselves.
var (
	env *controlplane.Env
	k8s client.Client
)

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	var err error
	env, err = controlplane.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	if k8s, err = client.New(env.Config, client.Options{Scheme: env.Scheme}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// testNow is the clock of every test App, so that ages in the output are exact.
var testNow = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// result is what one command line did.
type result struct {
	code           int
	stdout, stderr string
}

// newApp returns an App with captured output, the given environment (nothing else of the
// process's), a fixed clock and short intervals.
func newApp(environ map[string]string) *App {
	return &App{
		Name:             "hookline",
		Stdin:            strings.NewReader(""),
		Stdout:           &bytes.Buffer{},
		Stderr:           &bytes.Buffer{},
		Getenv:           func(k string) string { return environ[k] },
		Now:              func() time.Time { return testNow },
		ProgressInterval: time.Millisecond,
		PollInterval:     20 * time.Millisecond,
		RetryDelay:       time.Millisecond,
	}
}

// runApp runs one command line with app and returns its exit code and output.
func runApp(app *App, args ...string) result {
	code := app.Run(context.Background(), args)
	return result{code: code, stdout: app.Stdout.(*bytes.Buffer).String(), stderr: app.Stderr.(*bytes.Buffer).String()}
}

// run runs one command line with a fresh App.
func run(args ...string) result {
	return runApp(newApp(nil), args...)
}

// lines splits output into its lines, without the final newline.
func lines(s string) []string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}
