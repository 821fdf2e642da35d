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
	"context"
	"testing"
)

// --gc-headroom and --memory-target take non-negative quantities; 0 turns them off.
func TestTuneGCReadsTheHeadroomAndTarget(t *testing.T) {
	for _, bad := range []string{"", "lots", "-1Mi", "128MB!"} {
		if err := tuneGC(context.Background(), bad, "0"); err == nil {
			t.Errorf("--gc-headroom %q accepted", bad)
		}
		if err := tuneGC(context.Background(), "0", bad); err == nil {
			t.Errorf("--memory-target %q accepted", bad)
		}
	}
	if err := tuneGC(context.Background(), "0", "0"); err != nil {
		t.Errorf("--gc-headroom 0 --memory-target 0: %v", err)
	}
}
