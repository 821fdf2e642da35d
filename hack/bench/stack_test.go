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

package main

import (
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestWaitServingNoticesADispatcherThatDied: a dispatcher that exits at start fails the wait at
// once, even when another process answers on its port; one that runs and answers passes.
func TestWaitServingNoticesADispatcherThatDied(t *testing.T) {
	other := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer other.Close()
	url, dir := other.URL+"/healthz", t.TempDir()

	died := exec.Command("true")
	if err := died.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); !exited(died.Process.Pid); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("true did not exit")
		}
	}
	err := waitServing(died, url, 0, 10*time.Second, dir)
	if err == nil || !strings.Contains(err.Error(), "exited at start") {
		t.Errorf("waitServing on a process that exited = %v, want an error saying it exited at start", err)
	}
	_ = died.Wait()

	running := exec.Command("sleep", "60")
	if err := running.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = running.Process.Kill(); _ = running.Wait() }()
	if exited(running.Process.Pid) {
		t.Fatal("a running process counted as exited")
	}
	if err := waitServing(running, url, 0, 10*time.Second, dir); err != nil {
		t.Errorf("waitServing on a running process that answers = %v", err)
	}
}
