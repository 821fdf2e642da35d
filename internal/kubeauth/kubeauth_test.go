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
	"net/http"
	"testing"

	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
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
