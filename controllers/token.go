package controllers

import (
	"context"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
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

// The operator watches Secrets as metadata only (PartialObjectMetadata): a token change
// wakes the bots that use it, and no Secret value ever enters the cache. The one value it
// needs, a bot's token, it reads by name, around the cache: here when the Secret changed,
// and in gateway.go when it asks Discord.

// secretMetadata is the cache's metadata-only view of a Secret.
func secretMetadata() *metav1.PartialObjectMetadata {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	return m
}

// tokenChecks remembers, per bot, what the last read of its token Secret found, so that a
// pass reads the Secret again only when its resourceVersion in the cache moved.
type tokenChecks struct {
	mu    sync.Mutex
	byBot map[types.NamespacedName]tokenCheck
}

type tokenCheck struct {
	secret, key, resourceVersion string
	problem                      string // "" when the token is there
}

func (c *tokenChecks) get(bot types.NamespacedName) (tokenCheck, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	check, ok := c.byBot[bot]
	return check, ok
}

func (c *tokenChecks) put(bot types.NamespacedName, check tokenCheck) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byBot == nil {
		c.byBot = map[types.NamespacedName]tokenCheck{}
	}
	c.byBot[bot] = check
}

func (c *tokenChecks) forget(bot types.NamespacedName) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.byBot, bot)
}

// checkToken records in the scope why the bot's token cannot be used, if it cannot.
func (r *DiscordBotReconciler) checkToken(ctx context.Context, s *scope) (ctrl.Result, error) {
	ref := s.bot.Spec.TokenSecretRef
	key := tokenKey(s.bot)
	name := types.NamespacedName{Namespace: s.bot.Namespace, Name: ref.Name}
	missing := fmt.Sprintf("Secret %s/%s does not exist; create it with the bot token under key %q", s.bot.Namespace, ref.Name, key)
	meta := secretMetadata()
	err := r.Get(ctx, name, meta)
	switch {
	case apierrors.IsNotFound(err):
		s.tokenProblem = missing
		return ctrl.Result{}, nil
	case err != nil:
		return ctrl.Result{}, fmt.Errorf("reading token Secret %s: %w", ref.Name, err)
	}
	s.secretVersion = meta.ResourceVersion

	botName := client.ObjectKeyFromObject(s.bot)
	if last, ok := r.tokens.get(botName); ok && last.secret == ref.Name && last.key == key && last.resourceVersion == meta.ResourceVersion {
		s.tokenProblem = last.problem
		return ctrl.Result{}, nil
	}
	reader := r.APIReader
	if reader == nil {
		reader = r.Client
	}
	secret := &corev1.Secret{}
	err = reader.Get(ctx, name, secret)
	switch {
	case apierrors.IsNotFound(err): // deleted since the cache saw it; its delete event follows
		s.tokenProblem = missing
		return ctrl.Result{}, nil
	case err != nil:
		return ctrl.Result{}, fmt.Errorf("reading token Secret %s: %w", ref.Name, err)
	}
	check := tokenCheck{secret: ref.Name, key: key, resourceVersion: meta.ResourceVersion}
	if _, ok := secret.Data[key]; !ok {
		check.problem = fmt.Sprintf("Secret %s/%s has no key %q; put the bot token there or set spec.tokenSecretRef.key", s.bot.Namespace, ref.Name, key)
	} else if len(secret.Data[key]) == 0 {
		check.problem = fmt.Sprintf("Secret %s/%s has an empty key %q; put the bot token there", s.bot.Namespace, ref.Name, key)
	}
	r.tokens.put(botName, check)
	s.tokenProblem = check.problem
	return ctrl.Result{}, nil
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
