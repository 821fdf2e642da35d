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

package keyrate

import (
	"testing"
	"time"
)

// One limiter per key, the same one at every use; keys do not share.
func TestOneLimiterPerKey(t *testing.T) {
	l := New(0.001, 2, time.Minute, 16)
	a := l.Get("a")
	if l.Get("a") != a {
		t.Fatal("a second use of a key gave another limiter")
	}
	first, second := a.Allow(), a.Allow()
	if !first || !second || l.Get("a").Allow() {
		t.Fatal("the burst of 2 is not spent across uses")
	}
	if !l.Get("b").Allow() {
		t.Fatal("another key shares a's bucket")
	}
}
