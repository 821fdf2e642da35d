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

package kubeauth

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"golang.org/x/time/rate"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	testingclock "k8s.io/utils/clock/testing"
)

func TestBearerToken(t *testing.T) {
	g := NewWithT(t)
	for header, want := range map[string]string{
		"Bearer abc": "abc", "bearer  abc ": "abc", "Basic abc": "", "Bearer": "", "Bearer   ": "", "": "",
	} {
		r, _ := http.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Authorization", header)
		got, ok := BearerToken(r)
		g.Expect(got).To(Equal(want), header)
		g.Expect(ok).To(Equal(want != ""), header)
	}
}

// Access answers are remembered per user, groups, extra and everything asked: no two of them
// share a key.
func TestAccessKeyIsUnambiguous(t *testing.T) {
	g := NewWithT(t)
	base := authenticationv1.UserInfo{Username: "u", UID: "1", Groups: []string{"g1", "g2"},
		Extra: map[string]authenticationv1.ExtraValue{"k": {"v"}}}
	res := func(verb, sub, ns, name string) Attributes {
		return Attributes{Resource: &authorizationv1.ResourceAttributes{Group: "hookline.dev", Resource: "webhooks",
			Subresource: sub, Verb: verb, Namespace: ns, Name: name}}
	}
	keys := map[[32]byte]string{}
	add := func(name string, u authenticationv1.UserInfo, a Attributes) {
		k := accessKey(u, a)
		g.Expect(keys).NotTo(HaveKey(k), "%s collides with %s", name, keys[k])
		keys[k] = name
	}
	add("base", base, res("get", "deliveries", "ns", "wh"))
	add("another verb", base, res("create", "deliveries", "ns", "wh"))
	add("another subresource", base, res("get", "test", "ns", "wh"))
	add("other ns/name split", base, res("get", "deliveries", "nsw", "h"))
	add("a path", base, Attributes{NonResource: &authorizationv1.NonResourceAttributes{Path: "/metrics", Verb: "get"}})
	add("another path", base, Attributes{NonResource: &authorizationv1.NonResourceAttributes{Path: "/metricsget", Verb: ""}})
	u := base
	u.Groups = []string{"g1g2"}
	add("joined groups", u, res("get", "deliveries", "ns", "wh"))
	u = base
	u.Extra = map[string]authenticationv1.ExtraValue{"k": {"v", "w"}}
	add("more extra", u, res("get", "deliveries", "ns", "wh"))
	u = base
	u.Username = "v"
	add("other user", u, res("get", "deliveries", "ns", "wh"))
	g.Expect(accessKey(base, res("get", "deliveries", "ns", "wh"))).To(Equal(accessKey(base, res("get", "deliveries", "ns", "wh"))))
}

// New tokens cost a TokenReview each, within a budget: past NewTokenBurst at once, a new token is
// refused with ErrBusy without asking the API server, while a remembered one is still answered.
func TestNewTokensHaveABudgetOfReviews(t *testing.T) {
	cs := fake.NewClientset()
	reviews := 0
	cs.PrependReactor("create", "tokenreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		reviews++
		tr := a.(k8stesting.CreateAction).GetObject().(*authenticationv1.TokenReview)
		tr.Status = authenticationv1.TokenReviewStatus{Authenticated: tr.Spec.Token == "good-token",
			User: authenticationv1.UserInfo{Username: "alice"}}
		return true, tr, nil
	})
	clk := testingclock.NewFakeClock(time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC))
	r := newReviewer(cs.AuthenticationV1(), cs.AuthorizationV1(), 10*time.Second, clk)
	r.reviews = rate.NewLimiter(rate.Every(time.Hour), NewTokenBurst) // no refill while the test runs
	ctx := context.Background()
	if r.Known("good-token") {
		t.Fatal("known before its review")
	}
	if u, err := r.Authenticate(ctx, "good-token"); err != nil || u.Username != "alice" {
		t.Fatalf("good token: %v %v", u, err)
	}
	if !r.Known("good-token") {
		t.Fatal("not remembered")
	}
	for i := range NewTokenBurst - 1 {
		if _, err := r.Authenticate(ctx, fmt.Sprintf("random-%d", i)); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("random token %d: %v", i, err)
		}
	}
	if _, err := r.Authenticate(ctx, "one-more"); !errors.Is(err, ErrBusy) {
		t.Fatalf("past the budget: %v, want ErrBusy", err)
	}
	if reviews != NewTokenBurst {
		t.Fatalf("%d reviews, want %d", reviews, NewTokenBurst)
	}
	// The good token's answer expires: it is reviewed again, outside the budget.
	clk.Step(11 * time.Second)
	if !r.Known("good-token") {
		t.Fatal("a token accepted lately is not new")
	}
	if u, err := r.Authenticate(ctx, "good-token"); err != nil || u.Username != "alice" {
		t.Fatalf("a token accepted lately is reviewed again despite the spent budget: %v %v", u, err)
	}
	if reviews != NewTokenBurst+1 {
		t.Fatalf("%d reviews, want %d: the good token's answer was not reviewed again", reviews, NewTokenBurst+1)
	}
}

// A tenant minting ServiceAccount tokens at will (each one accepted by the API server) cannot push
// the tokens of other users out of those remembered as accepted: each owner (a ServiceAccount's
// namespace, or a user) keeps at most goodPerOwner, and past the whole bound the owner holding the
// most gives up its oldest. Before, one list for everybody let the tenant's new tokens push out
// every user idle for a minute, whose next request then needed a review from the budget of new
// tokens the same tenant kept spent.
func TestOneTenantsTokensCannotPushOthersOut(t *testing.T) {
	clk := testingclock.NewFakeClock(time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC))
	g := newGoodTokens(4*goodPerOwner, clk)
	key := func(s string) [32]byte { return sha256.Sum256([]byte(s)) }
	g.add(key("alice-token"), "alice")
	g.add(key("bob-token"), "system:serviceaccount:team-b:reader")
	g.add(key("tenant-reader"), "system:serviceaccount:tenant:reader")
	for i := range 10 * goodPerOwner {
		g.add(key(fmt.Sprintf("flood-%d", i)), fmt.Sprintf("system:serviceaccount:tenant:sa-%d", i))
		if i%64 == 0 {
			if !g.has(key("tenant-reader")) {
				t.Fatalf("after %d of the tenant's new tokens, a token of its in use went before its idle ones", i)
			}
			g.add(key("tenant-reader"), "system:serviceaccount:tenant:reader") // in use: reviewed again
		}
	}
	if !g.has(key("alice-token")) || !g.has(key("bob-token")) {
		t.Fatal("another tenant's tokens pushed a user's out")
	}
	if n := len(g.byOwner["namespace/tenant"]); n != goodPerOwner {
		t.Fatalf("the tenant holds %d, want %d", n, goodPerOwner)
	}
	if !g.has(key(fmt.Sprintf("flood-%d", 10*goodPerOwner-1))) || g.has(key("flood-0")) {
		t.Fatal("the tenant's newest are kept, its oldest go")
	}
	// Past the whole bound, the owner holding the most gives up its oldest.
	for i := range 3 * goodPerOwner {
		g.add(key(fmt.Sprintf("user-%d", i)), fmt.Sprintf("user-%d", i))
	}
	if !g.has(key("alice-token")) || !g.has(key("bob-token")) {
		t.Fatal("a user's token went while a larger owner held more")
	}
	if n := len(g.byKey); n > 4*goodPerOwner {
		t.Fatalf("%d remembered, bound %d", n, 4*goodPerOwner)
	}
	// Accepted within GoodFor only.
	clk.Step(GoodFor)
	if g.has(key("alice-token")) {
		t.Fatal("remembered past GoodFor")
	}
}

// A limit per client address counts an IPv6 host's whole /64 as one address.
func TestClientAddressGroupsIPv6By64(t *testing.T) {
	g := NewWithT(t)
	at := func(remote string) string { return ClientAddress(&http.Request{RemoteAddr: remote}) }
	g.Expect(at("10.1.2.3:4567")).To(Equal("10.1.2.3"))
	g.Expect(at("[::ffff:10.1.2.3]:4567")).To(Equal("10.1.2.3"))
	g.Expect(at("[2001:db8:1:2:aaaa::1]:443")).To(Equal("2001:db8:1:2::/64"))
	g.Expect(at("[2001:db8:1:2:bbbb::9]:443")).To(Equal(at("[2001:db8:1:2:aaaa::1]:443")))
	g.Expect(at("[2001:db8:1:3::1]:443")).NotTo(Equal(at("[2001:db8:1:2::1]:443")))
}
