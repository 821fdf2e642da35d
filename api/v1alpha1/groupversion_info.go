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

// Package v1alpha1 contains the hookline.io/v1alpha1 API: the Webhook and WebhookReplay resources.
// +kubebuilder:object:generate=true
// +groupName=hookline.io
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of this API.
	GroupVersion = schema.GroupVersion{Group: "hookline.io", Version: "v1alpha1"}

	// SchemeBuilder registers this API's types with a runtime.Scheme (apimachinery's builder, as
	// the Kubernetes API types do; controller-runtime's is deprecated).
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds this API's types to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

// addKnownTypes registers every kind of this group version, with the meta types (ListOptions,
// DeleteOptions, ...) clients send along.
func addKnownTypes(scheme *runtime.Scheme) error {
	scheme.AddKnownTypes(GroupVersion, &Webhook{}, &WebhookList{}, &WebhookReplay{}, &WebhookReplayList{})
	metav1.AddToGroupVersion(scheme, GroupVersion)
	return nil
}
