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

// Package cli implements the hookline command: emit posts events to the dispatcher's ingest API,
// status shows a Webhook's state and delivery record, deliveries and attempts read the
// dispatcher's delivery log, reactivate lifts an auto-disable, replay creates a WebhookReplay and
// follows it. The same binary installed as kubectl-hookline is the kubectl plugin
// "kubectl hookline"; kubectl passes it the arguments after the plugin name.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Exit codes.
const (
	// ExitOK means the command did everything it was asked to.
	ExitOK = 0
	// ExitFailure means the command ran but something failed (an event was rejected, a Webhook was
	// not found, a wait timed out).
	ExitFailure = 1
	// ExitUsage means the command line was wrong.
	ExitUsage = 2
)

// App is one invocation's environment. The zero value of every field but the writers is replaced by
// its default, so tests set only what they control.
type App struct {
	// Name is the program name used in usage text and hints: "hookline", or "kubectl hookline"
	// when the binary runs as the kubectl plugin.
	Name string
	// Stdin is read by `emit -`.
	Stdin io.Reader
	// Stdout receives results; Stderr receives errors, progress and hints about what to do next.
	Stdout, Stderr io.Writer
	// Getenv reads HOOKLINE_URL, HOOKLINE_TOKEN, HOOKLINE_DISPATCHER_URL and KUBECONFIG; nil means
	// os.Getenv.
	Getenv func(string) string
	// Now is the clock for reactivation values and ages; nil means time.Now.
	Now func() time.Time
	// ProgressInterval is how often emit reports progress on more than 10 events; 0 means 1s.
	ProgressInterval time.Duration
	// PollInterval is how often `reactivate --wait` reads the Webhook; 0 means 1s.
	PollInterval time.Duration
	// PageSize is the most notifications `deliveries` asks the read API for at once; 0 means the
	// API's largest page (500).
	PageSize int
	// RetryDelay is the first delay before emit retries an event the ingest API could not store
	// (503); it doubles per retry. 0 means 500ms.
	RetryDelay time.Duration
}

// Main runs the command line args (args[0] is the program path) with the process's standard
// streams and environment, stopping at SIGINT or SIGTERM, and returns the exit code.
func Main(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a := &App{Name: programName(args), Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}
	if len(args) > 0 {
		args = args[1:]
	}
	return a.Run(ctx, args)
}

// programName is "kubectl hookline" when the binary was started as the kubectl plugin.
func programName(args []string) string {
	if len(args) > 0 {
		base := strings.TrimSuffix(filepath.Base(args[0]), ".exe")
		if strings.HasPrefix(base, "kubectl-") {
			return "kubectl " + strings.ReplaceAll(strings.TrimPrefix(base, "kubectl-"), "_", "-")
		}
	}
	return "hookline"
}

// command is one subcommand.
type command struct {
	name    string
	summary string
	usage   func(a *App) string
	run     func(a *App, ctx context.Context, args []string) error
}

func commands() []command {
	return []command{
		{"emit", "post events (files, stdin or built-in samples) to the ingest API", emitUsage, (*App).emit},
		{"status", "show a Webhook's state, conditions and delivery record, or list Webhooks", statusUsage, (*App).status},
		{"deliveries", "list a Webhook's notifications and their delivery state from the delivery log", deliveriesUsage, (*App).deliveries},
		{"attempts", "show every delivery attempt of one notification", attemptsUsage, (*App).attempts},
		{"reactivate", "reactivate an auto-disabled Webhook (sets the " + reactivateAnnotation + " annotation)", reactivateUsage, (*App).reactivate},
		{"replay", "replay notifications of a Webhook: by id, or every failed one in a time range (creates a WebhookReplay)", replayUsage, (*App).replay},
		{"version", "print the version", versionUsage, (*App).version},
		{"help", "show this text, or a command's usage: help COMMAND", helpUsage, (*App).help},
	}
}

func findCommand(name string) (command, bool) {
	for _, c := range commands() {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

// Run runs one command line (without the program name) and returns the exit code.
func (a *App) Run(ctx context.Context, args []string) int {
	a.defaults()
	if len(args) == 0 {
		fmt.Fprint(a.Stderr, a.mainUsage())
		return ExitUsage
	}
	name := args[0]
	switch name {
	case "-h", "-help", "--help":
		name = "help"
	case "-version", "--version":
		name = "version"
	}
	cmd, ok := findCommand(name)
	if !ok {
		fmt.Fprintf(a.Stderr, "error: unknown command %q\nRun '%s help' for usage.\n", name, a.Name)
		return ExitUsage
	}
	err := cmd.run(a, ctx, args[1:])
	var usage *usageError
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(a.Stdout, cmd.usage(a))
		return ExitOK
	case errors.As(err, &usage):
		fmt.Fprintf(a.Stderr, "error: %s\nRun '%s %s -h' for usage.\n", usage.msg, a.Name, cmd.name)
		return ExitUsage
	case errors.Is(err, errReported):
		return ExitFailure
	default:
		// An error may quote what a server answered (a code, a redirect's Location).
		fmt.Fprintf(a.Stderr, "error: %s\n", terminalSafeLines(err.Error()))
		return ExitFailure
	}
}

func (a *App) defaults() {
	if a.Name == "" {
		a.Name = "hookline"
	}
	if a.Stdin == nil {
		a.Stdin = strings.NewReader("")
	}
	if a.Stdout == nil {
		a.Stdout = io.Discard
	}
	if a.Stderr == nil {
		a.Stderr = io.Discard
	}
	if a.Getenv == nil {
		a.Getenv = os.Getenv
	}
	if a.Now == nil {
		a.Now = time.Now
	}
	if a.ProgressInterval <= 0 {
		a.ProgressInterval = time.Second
	}
	if a.PollInterval <= 0 {
		a.PollInterval = time.Second
	}
	if a.PageSize <= 0 {
		a.PageSize = maxPage
	}
	if a.RetryDelay <= 0 {
		a.RetryDelay = 500 * time.Millisecond
	}
}

// usageError is a wrong command line: exit code 2 and a pointer to the usage text.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// errReported means the command already told the user what went wrong; it only sets exit code 1.
var errReported = errors.New("failure already reported")

func (a *App) help(_ context.Context, args []string) error {
	switch len(args) {
	case 0:
		fmt.Fprint(a.Stdout, a.mainUsage())
		return nil
	case 1:
		if args[0] == "-h" || args[0] == "--help" {
			return flag.ErrHelp
		}
		cmd, ok := findCommand(args[0])
		if !ok {
			return usagef("unknown command %q; commands: emit, status, deliveries, attempts, reactivate, replay, version, help", args[0])
		}
		fmt.Fprint(a.Stdout, cmd.usage(a))
		return nil
	default:
		return usagef("help takes at most one command name")
	}
}

func (a *App) mainUsage() string {
	var b strings.Builder
	fmt.Fprintf(&b, `%[1]s posts events to hookline's ingest API and shows, reactivates and replays Webhooks.

Usage:
  %[1]s COMMAND [flags] [arguments]

Commands:
`, a.Name)
	for _, c := range commands() {
		fmt.Fprintf(&b, "  %-11s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(&b, `
Run '%[1]s COMMAND -h' (or '%[1]s help COMMAND') for a command's flags.
Installed on the PATH as kubectl-hookline, the binary is also the kubectl plugin 'kubectl hookline'.
`, a.Name)
	return b.String()
}

func helpUsage(a *App) string {
	return fmt.Sprintf("Show the usage of %[1]s or of one command.\n\nUsage:\n  %[1]s help [COMMAND]\n", a.Name)
}
