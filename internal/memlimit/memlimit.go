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

// Package memlimit sets the Go runtime's soft memory limit (GOMEMLIMIT) from the container's memory
// limit. Without it the garbage collector only looks at the live heap (GOGC) and lets garbage from
// large events pile up to twice the heap, past a limit it knows nothing about, until the kernel
// kills the container; with it, the collector works harder as the limit nears.
package memlimit

import (
	"errors"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
)

// DefaultRatio is the share of the container's limit given to the Go runtime; the rest is for
// memory the runtime does not count (stacks of cgo threads, the kernel's page cache of JetStream
// files charged to the container is reclaimable anyway).
const DefaultRatio = 0.9

// unlimitedV1 is the smallest value cgroup v1 uses for "no limit" (the largest page-aligned int64).
const unlimitedV1 = 1 << 62

// Set sets the runtime's memory limit to ratio × the memory limit of this process's cgroup, unless
// the GOMEMLIMIT environment variable is set (the operator's explicit choice wins) or there is no
// limit. It returns the limit it set, 0 when it set none.
func Set(ratio float64) (int64, error) {
	return SetAtMost(ratio, 0)
}

// SetAtMost is Set with a ceiling: the limit is the smaller of ratio × the cgroup's limit and
// ceiling (when above 0), so that a program can keep its heap smaller than its container allows —
// the collector then works harder instead of letting garbage grow to twice the live heap — and
// have a limit outside a container too. GOMEMLIMIT still wins.
func SetAtMost(ratio float64, ceiling int64) (int64, error) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return 0, nil
	}
	limit, err := cgroupLimit("/", "/sys/fs/cgroup")
	if err != nil {
		return 0, err
	}
	n := choose(limit, ratio, ceiling)
	if n > 0 {
		debug.SetMemoryLimit(n)
	}
	return n, nil
}

// choose returns the limit for a cgroup limit (0: none), ratio and ceiling (0: none).
func choose(cgroup int64, ratio float64, ceiling int64) int64 {
	n := int64(0)
	if cgroup > 0 {
		n = int64(float64(cgroup) * ratio)
	}
	if ceiling > 0 && (n == 0 || ceiling < n) {
		n = ceiling
	}
	return n
}

// cgroupLimit returns the memory limit of the process's cgroup, 0 when there is none. proc is the
// root under which /proc/self/cgroup is read and fs the cgroup file system's mount point, so that
// tests can give other files.
func cgroupLimit(proc, fs string) (int64, error) {
	// cgroup v2: one hierarchy, "0::/path" in /proc/self/cgroup. In a container with its own
	// cgroup namespace the path is "/" and memory.max is at the mount point.
	var paths []string
	if raw, err := os.ReadFile(filepath.Join(proc, "proc/self/cgroup")); err == nil {
		for _, line := range strings.Split(string(raw), "\n") {
			if p, ok := strings.CutPrefix(line, "0::"); ok {
				paths = append(paths, filepath.Join(fs, p, "memory.max"))
			}
		}
	}
	paths = append(paths, filepath.Join(fs, "memory.max"))
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, err
		}
		v := strings.TrimSpace(string(raw))
		if v == "max" {
			return 0, nil
		}
		return strconv.ParseInt(v, 10, 64)
	}
	// cgroup v1: the memory controller's own hierarchy.
	raw, err := os.ReadFile(filepath.Join(fs, "memory", "memory.limit_in_bytes"))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(raw)), 10, 64)
	if err != nil || v >= unlimitedV1 {
		return 0, err
	}
	return v, nil
}
