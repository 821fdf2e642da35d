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

package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// kustomizeDefault renders config/default as `kubectl apply -k config/default` would apply it.
func kustomizeDefault(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	out, err := kubectl(t, "kustomize", "config/default")
	if err != nil {
		t.Fatalf("kubectl kustomize config/default: %v\n%s", err, out)
	}
	objs, err := decode([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// Moving from `kubectl apply -k config/default` to the chart (release hookline in hookline-system,
// README "Installing: the Helm chart"): the manager Deployment and the dispatcher StatefulSet have
// the same names in both, and a `helm install --take-ownership` that has to change a field
// Kubernetes does not let change (a workload's selector, a StatefulSet's volumeClaimTemplates)
// fails with "field is immutable". Whatever differs, the README's procedure must delete that
// workload first; and the dispatcher's claim must keep its name, so that the chart's StatefulSet
// mounts the same PVC again.
func TestHelmTemplateMigrationFromKustomize(t *testing.T) {
	g := NewWithT(t)
	config := kustomizeDefault(t)
	chart := mustRender(t, inlineTokens)
	readme := mustRead(t, filepath.Join(env.Root, "README.md"))
	// The paragraph of the README that describes the move.
	i := strings.Index(readme, "Moving from `kubectl apply -k config/default`")
	g.Expect(i).To(BeNumerically(">=", 0), "README describes the move from config/default")
	move := readme[i:]
	if j := strings.Index(move, "\n- "); j > 0 {
		move = move[:j]
	}
	g.Expect(move).To(ContainSubstring("--take-ownership"))

	var mustDelete []string
	cfgDep := typed[appsv1.Deployment](t, config, "Deployment", "hookline-manager")
	chartDep := typed[appsv1.Deployment](t, chart, "Deployment", "hookline-manager")
	if !equality.Semantic.DeepEqual(cfgDep.Spec.Selector, chartDep.Spec.Selector) {
		mustDelete = append(mustDelete, "deploy/hookline-manager")
	}
	cfgSts := typed[appsv1.StatefulSet](t, config, "StatefulSet", "hookline-dispatcher")
	chartSts := typed[appsv1.StatefulSet](t, chart, "StatefulSet", "hookline-dispatcher")
	if !equality.Semantic.DeepEqual(cfgSts.Spec.Selector, chartSts.Spec.Selector) ||
		!equality.Semantic.DeepEqual(cfgSts.Spec.VolumeClaimTemplates, chartSts.Spec.VolumeClaimTemplates) ||
		cfgSts.Spec.ServiceName != chartSts.Spec.ServiceName {
		mustDelete = append(mustDelete, "sts/hookline-dispatcher")
	}
	if len(mustDelete) > 0 {
		g.Expect(move).To(ContainSubstring("kubectl -n hookline-system delete "+strings.Join(mustDelete, " ")),
			"the README's move deletes the workloads whose immutable fields differ from the chart's")
	}

	// The claim the chart's StatefulSet asks for is the one config/ made: data-hookline-dispatcher-0,
	// with the same size and access modes, so the events and queues on it carry over.
	g.Expect(chartSts.Spec.VolumeClaimTemplates).To(HaveLen(1))
	g.Expect(cfgSts.Spec.VolumeClaimTemplates).To(HaveLen(1))
	cfgClaim, chartClaim := cfgSts.Spec.VolumeClaimTemplates[0], chartSts.Spec.VolumeClaimTemplates[0]
	g.Expect(chartClaim.Name).To(Equal(cfgClaim.Name))
	g.Expect(chartClaim.Spec.AccessModes).To(Equal(cfgClaim.Spec.AccessModes))
	g.Expect(chartClaim.Spec.Resources.Requests.Storage().Cmp(*cfgClaim.Spec.Resources.Requests.Storage())).To(BeZero())
	g.Expect(chartClaim.Spec.StorageClassName).To(Equal(cfgClaim.Spec.StorageClassName))
	pvc := cfgClaim.Name + "-" + cfgSts.Name + "-0"
	g.Expect(pvc).To(Equal("data-hookline-dispatcher-0"))
	if len(mustDelete) > 0 {
		g.Expect(move).To(ContainSubstring(pvc), "the README says that the claim survives the delete")
	}
}

// config/ runs the image `make image` builds (the chart's default image, tagged with its
// appVersion), never a :latest that nothing builds or publishes.
func TestKustomizeImageIsTheChartImage(t *testing.T) {
	g := NewWithT(t)
	chart := mustRender(t, inlineTokens)
	want := container(t, typed[appsv1.Deployment](t, chart, "Deployment", "hookline-manager").Spec.Template.Spec, "manager").Image
	g.Expect(want).To(HaveSuffix(":" + chartAppVersion(t)))
	config := kustomizeDefault(t)
	for _, spec := range [][2]string{{"Deployment", "hookline-manager"}, {"StatefulSet", "hookline-dispatcher"}} {
		u := find(config, spec[0], spec[1])
		g.Expect(u).NotTo(BeNil(), spec[1])
		containers, _, err := unstructured.NestedSlice(u.Object, "spec", "template", "spec", "containers")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(containers).NotTo(BeEmpty())
		for _, c := range containers {
			g.Expect(c).To(HaveKeyWithValue("image", want), spec[1])
		}
	}
}

// chartAppVersion reads appVersion from charts/hookline/Chart.yaml.
func chartAppVersion(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "appVersion:"); ok {
			return strings.Trim(strings.TrimSpace(v), `"'`)
		}
	}
	t.Fatal("charts/hookline/Chart.yaml: no appVersion")
	return ""
}
