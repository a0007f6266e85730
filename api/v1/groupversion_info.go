// Package v1 contains the shardkeeper.dev/v1 API: the DiscordBot resource.
// +kubebuilder:object:generate=true
// +groupName=shardkeeper.dev
package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of every type in this package.
	GroupVersion = schema.GroupVersion{Group: "shardkeeper.dev", Version: "v1"}

	// SchemeBuilder registers this package's types with a runtime.Scheme. Plain
	// apimachinery, so that bots importing the env contract do not pull in controller-runtime.
	SchemeBuilder = runtime.NewSchemeBuilder(func(s *runtime.Scheme) error {
		s.AddKnownTypes(GroupVersion, &DiscordBot{}, &DiscordBotList{})
		metav1.AddToGroupVersion(s, GroupVersion)
		return nil
	})

	// AddToScheme adds this package's types to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
