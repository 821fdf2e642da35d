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

package controllers

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

func TestBackoffDoublesAndCaps(t *testing.T) {
	b := newBackoff(time.Second, 10*time.Second)
	key := types.NamespacedName{Namespace: "ns", Name: "wh"}
	want := []time.Duration{1, 2, 4, 8, 10, 10}
	for i, w := range want {
		if got := b.next(key); got != w*time.Second {
			t.Fatalf("failure %d: delay %s, want %s", i+1, got, w*time.Second)
		}
	}
	b.forget(key)
	if got := b.next(key); got != time.Second {
		t.Fatalf("after forget: %s, want 1s", got)
	}
}

func TestAccountSlots(t *testing.T) {
	s := newAccountSlots(2)
	first, second := s.tryAcquire("a"), s.tryAcquire("a")
	if !first || !second {
		t.Fatal("first two slots of account a refused")
	}
	if s.tryAcquire("a") {
		t.Fatal("third slot of account a granted beyond the limit")
	}
	if !s.tryAcquire("b") {
		t.Fatal("account b refused while a is full")
	}
	s.release("a")
	if !s.tryAcquire("a") {
		t.Fatal("slot not returned by release")
	}
}
