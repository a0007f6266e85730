package controllers

import (
	"context"
	"fmt"
	"sync"
	"testing"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
)

// BenchmarkListBotObjects is a pass's read of its bot's pods and Leases from the cache
// when many bots share a namespace (4 pods and 5 Leases per bot, as in bench/scale), by
// label selector (before botIndex) and by botIndex, in one run on one cache:
//
//	KUBEBUILDER_ASSETS=$(hack/envtest-assets.sh) go test ./controllers/ -run '^$' -bench ListBotObjects
func BenchmarkListBotObjects(b *testing.B) {
	if testing.Short() {
		b.Skip("envtest benchmark: run without -short")
	}
	for _, pods := range []int{100, 1000, 5000} {
		bots := pods / 4
		ns, c := fillNamespace(b, bots)
		b.Run(fmt.Sprintf("pods=%d/labels", pods), func(b *testing.B) {
			benchmarkList(b, c, bots, func(bot string) []client.ListOption {
				return []client.ListOption{client.InNamespace(ns), client.MatchingLabels{shardkeeperv1.LabelBot: bot}}
			})
		})
		b.Run(fmt.Sprintf("pods=%d/index", pods), func(b *testing.B) {
			benchmarkList(b, c, bots, func(bot string) []client.ListOption {
				return ofBot(&shardkeeperv1.DiscordBot{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: bot}})
			})
		})
	}
}

func benchmarkList(b *testing.B, c cache.Cache, bots int, options func(bot string) []client.ListOption) {
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		bot := benchBotName(i % bots)
		i++
		var leases coordinationv1.LeaseList
		var pods corev1.PodList
		if err := c.List(ctx, &leases, options(bot)...); err != nil {
			b.Fatal(err)
		}
		if err := c.List(ctx, &pods, options(bot)...); err != nil {
			b.Fatal(err)
		}
		if len(pods.Items) != 4 || len(leases.Items) != 5 {
			b.Fatalf("bot %s: %d pods and %d Leases, want 4 and 5", bot, len(pods.Items), len(leases.Items))
		}
	}
}

func benchBotName(i int) string { return fmt.Sprintf("bench-%05d", i) }

// fillNamespace creates bots x (4 pods, 4 pod Leases and an identify bucket Lease) in a
// namespace of their own, and a synced cache scoped as the operator's, with botIndex.
func fillNamespace(b *testing.B, bots int) (string, cache.Cache) {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	ns := fmt.Sprintf("bench-%d-%d", bots, nsCounter.Add(1))
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		b.Fatal(err)
	}
	work := make(chan client.Object)
	errs := make(chan error, 8)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for obj := range work {
				if err := k8s.Create(ctx, obj); err != nil {
					select {
					case errs <- err:
					default: // the first few are enough; keep draining the work
					}
				}
			}
		})
	}
	for i := range bots {
		bot := benchBotName(i)
		meta := func(name string) metav1.ObjectMeta {
			return metav1.ObjectMeta{Name: name, Namespace: ns, Labels: commonLabels(bot)}
		}
		for p := range 4 {
			pod := fmt.Sprintf("%s-%d-g1", bot, p)
			work <- &corev1.Pod{ObjectMeta: meta(pod), Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "bot", Image: "bench.invalid/bot"}}}}
			work <- &coordinationv1.Lease{ObjectMeta: meta(leaseName(pod))}
		}
		work <- &coordinationv1.Lease{ObjectMeta: meta(shardkeeperv1.IdentifyBucketLeaseName(bot, 0))}
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}

	opts := CacheOptions([]string{ns})
	opts.Scheme = k8s.Scheme()
	c, err := cache.New(restConfig, opts)
	if err != nil {
		b.Fatal(err)
	}
	for _, obj := range []client.Object{&corev1.Pod{}, &coordinationv1.Lease{}} {
		if err := c.IndexField(ctx, obj, botIndex, indexByBot); err != nil {
			b.Fatal(err)
		}
	}
	go func() { _ = c.Start(ctx) }()
	if !c.WaitForCacheSync(ctx) {
		b.Fatal("cache did not sync")
	}
	// Start the informers before timing: the first List of a kind starts its informer.
	for _, list := range []client.ObjectList{&corev1.PodList{}, &coordinationv1.LeaseList{}} {
		if err := c.List(ctx, list, client.InNamespace(ns)); err != nil {
			b.Fatal(err)
		}
	}
	return ns, c
}
