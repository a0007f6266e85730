package testenv

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Client is a client for the control plane with the Env's scheme.
func (e *Env) Client() (client.Client, error) {
	return client.New(e.Config, client.Options{Scheme: e.Scheme})
}

// Apply server-side applies every object as fieldOwner, Namespaces and CRDs first as
// kubectl orders them, and returns every rejection, each naming its object.
func Apply(ctx context.Context, c client.Client, fieldOwner string, objs []*unstructured.Unstructured) error {
	ordered := slices.Clone(objs)
	slices.SortStableFunc(ordered, func(a, b *unstructured.Unstructured) int { return cmp.Compare(applyRank(a), applyRank(b)) })
	var errs []error
	for _, obj := range ordered {
		obj = obj.DeepCopy()
		// The objects come from manifests, not from API objects, so an unset field is unset.
		if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(obj), client.ForceOwnership, client.FieldOwner(fieldOwner)); err != nil {
			errs = append(errs, fmt.Errorf("%s %s/%s rejected: %w", obj.GetKind(), obj.GetNamespace(), obj.GetName(), err))
		}
	}
	return errors.Join(errs...)
}

func applyRank(obj *unstructured.Unstructured) int {
	switch obj.GetKind() {
	case "Namespace":
		return 0
	case "CustomResourceDefinition":
		return 1
	}
	return 2
}

// WaitEstablished waits until the API server serves the CRD named name, or timeout passes.
func WaitEstablished(ctx context.Context, c client.Client, name string, timeout time.Duration) error {
	var crd apiextensionsv1.CustomResourceDefinition
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		if err := c.Get(ctx, client.ObjectKey{Name: name}, &crd); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		for _, cond := range crd.Status.Conditions {
			if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("CRD %s never became Established: %w (conditions: %v)", name, err, crd.Status.Conditions)
	}
	return nil
}
