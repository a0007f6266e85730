package controllers

import (
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
)

// botIndex indexes pods and Leases by their bot (the LabelBot label). The cache keys it by
// namespace as well, so a pass reads its own bot's objects: a label selector would walk
// every pod and Lease in the namespace, and many bots share one.
const botIndex = "metadata.labels." + shardkeeperv1.LabelBot

func indexByBot(obj client.Object) []string {
	if bot := obj.GetLabels()[shardkeeperv1.LabelBot]; bot != "" {
		return []string{bot}
	}
	return nil
}

// ofBot selects one bot's pods or Leases in the cache, through botIndex.
func ofBot(bot *shardkeeperv1.DiscordBot) []client.ListOption {
	return []client.ListOption{client.InNamespace(bot.Namespace), client.MatchingFields{botIndex: bot.Name}}
}

// CacheOptions scopes the operator's informers: only the namespaces it watches (all when
// none are given) and only the pods and access objects it made (label-selected). Secrets
// are watched as metadata only (token.go), so none of their values is ever cached.
//
// "Made by the operator" is a bot label and app.kubernetes.io/managed-by=shardkeeper: the
// chart's admission policy refuses the operator any write to an object without the
// latter, so an object that names a bot without it (a bot's own, a user's) must not reach
// a pass that would adopt or delete it and fail on every pass.
func CacheOptions(namespaces []string) cache.Options {
	ofABot, err := labels.NewRequirement(shardkeeperv1.LabelBot, selection.Exists, nil)
	if err != nil {
		panic(err) // constant label keys and values: cannot fail
	}
	managed, err := labels.NewRequirement(shardkeeperv1.LabelManagedBy, selection.Equals, []string{shardkeeperv1.ManagedByValue})
	if err != nil {
		panic(err)
	}
	ours := labels.NewSelector().Add(*ofABot, *managed)
	opts := cache.Options{
		DefaultTransform: cache.TransformStripManagedFields(),
		// Health judgement must know when the operator could not watch (apiwatch.go).
		DefaultWatchErrorHandler: apiWatches.handle,
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Pod{}:            {Label: ours},
			&coordinationv1.Lease{}:  {Label: ours}, // bot heartbeats, renewed often: ours only
			&corev1.ServiceAccount{}: {Label: ours},
			&rbacv1.Role{}:           {Label: ours},
			&rbacv1.RoleBinding{}:    {Label: ours},
		},
	}
	if len(namespaces) > 0 {
		opts.DefaultNamespaces = make(map[string]cache.Config, len(namespaces))
		for _, ns := range namespaces {
			opts.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	return opts
}
