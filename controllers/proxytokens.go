package controllers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
)

// annotationProxyTokenPods lists the pods the placeholder token Secret has a key for, so
// that the operator knows its keys from the metadata it caches: it never reads a value
// back, and never caches one.
const annotationProxyTokenPods = "shardkeeper.dev/pods"

// placeholderBytes is the placeholder token's randomness.
const placeholderBytes = 32

// reconcileProxyTokens keeps the Secret of the bot's placeholder tokens (one key per pod
// name, mounted into the pod's proxy and bot containers): a key for every pod that runs or
// may be created, made once with fresh randomness and never changed, since both containers
// must keep reading the same value; keys of pods that can no longer exist are dropped.
func (r *DiscordBotReconciler) reconcileProxyTokens(ctx context.Context, s *scope) (ctrl.Result, error) {
	if s.builder.inputs.GatewayProxy == nil || s.layoutProblem != "" {
		return ctrl.Result{}, nil // a pod still mounting the Secret keeps it while it lives
	}
	want := podLeaseNames(s) // the pods' names: a pod's Lease is named after it
	name := types.NamespacedName{Namespace: s.bot.Namespace, Name: proxyTokenSecretName(s.bot.Name)}

	meta := secretMetadata()
	err := r.Get(ctx, name, meta)
	if apierrors.IsNotFound(err) {
		return ctrl.Result{}, r.createProxyTokens(ctx, s, name, want)
	}
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("reading Secret %s: %w", name.Name, err)
	}
	if !metav1.IsControlledBy(meta, s.bot) || meta.Labels[shardkeeperv1.LabelManagedBy] != shardkeeperv1.ManagedByValue {
		return ctrl.Result{}, fmt.Errorf("secret %s already exists and is not managed by Shardkeeper; rename or remove it", name.Name)
	}
	have := proxyTokenPods(meta.Annotations)
	data := map[string]*string{}
	for _, pod := range want {
		if !slices.Contains(have, pod) {
			token, err := newPlaceholder()
			if err != nil {
				return ctrl.Result{}, err
			}
			data[pod] = &token
		}
	}
	for _, pod := range have {
		if !slices.Contains(want, pod) {
			data[pod] = nil
		}
	}
	if len(data) == 0 {
		return ctrl.Result{}, nil
	}
	// A merge patch adds and drops keys without reading the others; the resourceVersion
	// makes it fail instead of overwriting a key made in between.
	patch, err := json.Marshal(map[string]any{
		"metadata": map[string]any{
			"resourceVersion": meta.ResourceVersion,
			"annotations":     map[string]string{annotationProxyTokenPods: strings.Join(want, ",")},
		},
		"stringData": nonNil(data),
		"data":       onlyNil(data),
	})
	if err != nil {
		return ctrl.Result{}, err
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: name.Namespace, Name: name.Name}}
	if err := r.Patch(ctx, secret, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return ctrl.Result{}, fmt.Errorf("updating the placeholder tokens in Secret %s: %w", name.Name, err)
	}
	return ctrl.Result{}, nil
}

func (r *DiscordBotReconciler) createProxyTokens(ctx context.Context, s *scope, name types.NamespacedName, pods []string) error {
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: name.Namespace, Name: name.Name,
			Annotations: map[string]string{annotationProxyTokenPods: strings.Join(pods, ",")},
		},
		Type:       corev1.SecretTypeOpaque,
		StringData: map[string]string{},
	}
	for _, pod := range pods {
		token, err := newPlaceholder()
		if err != nil {
			return err
		}
		secret.StringData[pod] = token
	}
	if err := r.adopt(s.bot, secret); err != nil {
		return err
	}
	if err := r.Create(ctx, secret); err != nil {
		if apierrors.IsAlreadyExists(err) {
			// Made by an earlier pass the cache has not seen yet, or by someone else.
			live := secretMetadata()
			if err := r.liveReader().Get(ctx, name, live); err != nil {
				return fmt.Errorf("reading Secret %s: %w", name.Name, err)
			}
			if metav1.IsControlledBy(live, s.bot) {
				return nil // the next pass sees it
			}
			return fmt.Errorf("secret %s already exists and is not managed by Shardkeeper; rename or remove it", name.Name)
		}
		return fmt.Errorf("creating the placeholder token Secret %s: %w", name.Name, err)
	}
	r.event(s.bot, secret, corev1.EventTypeNormal, shardkeeperv1.ReasonCreatedSecret, "Create", "created Secret %s (the gateway proxy's placeholder tokens)", name.Name)
	return nil
}

// proxyTokenPods reads annotationProxyTokenPods.
func proxyTokenPods(annotations map[string]string) []string {
	if raw := annotations[annotationProxyTokenPods]; raw != "" {
		return strings.Split(raw, ",")
	}
	return nil
}

// newPlaceholder is a fresh placeholder token: random, and nothing like a Discord token.
func newPlaceholder() (string, error) {
	b := make([]byte, placeholderBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("making a placeholder token: %w", err)
	}
	return "shardkeeper-placeholder-" + hex.EncodeToString(b), nil
}

func nonNil(m map[string]*string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		if v != nil {
			out[k] = *v
		}
	}
	return out
}

func onlyNil(m map[string]*string) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		if v == nil {
			out[k] = nil
		}
	}
	return out
}
