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

package memlimit

import (
	"os"
	"path/filepath"
	"testing"
)

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestCgroupLimit(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  int64
	}{
		{"v2 in a cgroup namespace", map[string]string{"proc/self/cgroup": "0::/\n", "fs/memory.max": "536870912\n"}, 512 << 20},
		{"v2 nested path", map[string]string{"proc/self/cgroup": "0::/kubepods/pod1/c1\n", "fs/kubepods/pod1/c1/memory.max": "268435456\n"}, 256 << 20},
		{"v2 without a limit", map[string]string{"proc/self/cgroup": "0::/\n", "fs/memory.max": "max\n"}, 0},
		{"v1", map[string]string{"proc/self/cgroup": "9:memory:/x\n", "fs/memory/memory.limit_in_bytes": "1073741824\n"}, 1 << 30},
		{"v1 without a limit", map[string]string{"fs/memory/memory.limit_in_bytes": "9223372036854771712\n"}, 0},
		{"no cgroup file system", map[string]string{}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			for p, c := range tc.files {
				write(t, filepath.Join(root, p), c)
			}
			got, err := cgroupLimit(root, filepath.Join(root, "fs"))
			if err != nil {
				t.Fatalf("cgroupLimit: %v", err)
			}
			if got != tc.want {
				t.Errorf("cgroupLimit = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestSetKeepsAnExplicitGOMEMLIMIT(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "100MiB")
	if n, err := Set(DefaultRatio); n != 0 || err != nil {
		t.Errorf("Set with GOMEMLIMIT set = %d, %v; want 0, nil (left alone)", n, err)
	}
}

// The ceiling lowers the container's limit, and gives one where the container has none; the
// container's limit, when lower, wins.
func TestChooseCeiling(t *testing.T) {
	const mi = 1 << 20
	for _, c := range []struct {
		cgroup, ceiling, want int64
	}{
		{cgroup: 500 * mi, want: 450 * mi},
		{cgroup: 512 * mi, ceiling: 270 * mi, want: 270 * mi},
		{cgroup: 250 * mi, ceiling: 270 * mi, want: 225 * mi},
		{ceiling: 270 * mi, want: 270 * mi},
		{},
	} {
		if got := choose(c.cgroup, DefaultRatio, c.ceiling); got != c.want {
			t.Errorf("choose(%d, %v, %d) = %d, want %d", c.cgroup, DefaultRatio, c.ceiling, got, c.want)
		}
	}
}
