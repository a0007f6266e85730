package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
)

// tokenSecretIndex indexes DiscordBots by the name of their token Secret, so that a Secret
// event finds its bots without listing them all.
const tokenSecretIndex = "spec.tokenSecretRef.name"

func indexTokenSecret(obj client.Object) []string {
	bot, ok := obj.(*shardkeeperv1.DiscordBot)
	if !ok || bot.Spec.TokenSecretRef.Name == "" {
		return nil
	}
	return []string{bot.Spec.TokenSecretRef.Name}
}

// secretValueMarker replaces every non-empty Secret value in the operator's cache: the
// operator needs to know that a token is there, never what it is.
var secretValueMarker = []byte{1}

// stripSecretValues is the cache transform for Secrets: keys survive, values do not.
func stripSecretValues(obj any) (any, error) {
	secret, ok := obj.(*corev1.Secret)
	if !ok {
		return obj, nil
	}
	secret.ManagedFields = nil
	secret.StringData = nil
	for k, v := range secret.Data {
		if len(v) == 0 {
			secret.Data[k] = []byte{}
		} else {
			secret.Data[k] = secretValueMarker
		}
	}
	return secret, nil
}

// checkToken records in the scope why the bot's token cannot be used, if it cannot.
func (r *DiscordBotReconciler) checkToken(ctx context.Context, s *scope) error {
	ref := s.bot.Spec.TokenSecretRef
	key := tokenKey(s.bot)
	secret := &corev1.Secret{}
	err := r.Get(ctx, types.NamespacedName{Namespace: s.bot.Namespace, Name: ref.Name}, secret)
	switch {
	case apierrors.IsNotFound(err):
		s.tokenProblem = fmt.Sprintf("Secret %s/%s does not exist; create it with the bot token under key %q", s.bot.Namespace, ref.Name, key)
		return nil
	case err != nil:
		return fmt.Errorf("reading token Secret %s: %w", ref.Name, err)
	}
	s.secretVersion = secret.ResourceVersion
	if _, ok := secret.Data[key]; !ok {
		s.tokenProblem = fmt.Sprintf("Secret %s/%s has no key %q; put the bot token there or set spec.tokenSecretRef.key", s.bot.Namespace, ref.Name, key)
	} else if len(secret.Data[key]) == 0 {
		s.tokenProblem = fmt.Sprintf("Secret %s/%s has an empty key %q; put the bot token there", s.bot.Namespace, ref.Name, key)
	}
	return nil
}

// botsForSecret maps a Secret event to the bots whose token it holds.
func (r *DiscordBotReconciler) botsForSecret(ctx context.Context, obj client.Object) []reconcile.Request {
	var bots shardkeeperv1.DiscordBotList
	if err := r.List(ctx, &bots, client.InNamespace(obj.GetNamespace()),
		client.MatchingFields{tokenSecretIndex: obj.GetName()}); err != nil {
		logf.FromContext(ctx).Error(err, "listing bots for token Secret", "secret", client.ObjectKeyFromObject(obj))
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(bots.Items))
	for _, b := range bots.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: b.Namespace, Name: b.Name}})
	}
	return reqs
}
