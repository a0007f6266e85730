package botruntime_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
	"github.com/shardkeeper/shardkeeper/botruntime"
	"github.com/shardkeeper/shardkeeper/internal/discordtest"
)

// bucketPod is a runtime standing in for one pod of a bot whose identify buckets are
// shared through Leases.
func bucketPod(t *testing.T, srv *discordtest.Server, c kubernetes.Interface, bot, pod string, shards []int, count int, interval, margin time.Duration) *botruntime.Runtime {
	t.Helper()
	return newRuntimeWithConfig(t, srv, discordtest.DefaultToken, shards, count, func(cfg *botruntime.Config) {
		cfg.BotName, cfg.Namespace, cfg.PodName = bot, "default", pod
		cfg.MaxConcurrency = srv.Options().MaxConcurrency
		cfg.IdentifyInterval, cfg.IdentifyMargin = interval, margin
	}, botruntime.WithKubernetes(c))
}

func TestIdentifyBucketsAreSharedAcrossPods(t *testing.T) {
	c := kubeClient(t)
	const interval = 300 * time.Millisecond
	srv := discordtest.NewServer(discordtest.Options{MaxConcurrency: 2, IdentifyInterval: interval, HeartbeatInterval: time.Second})
	defer srv.Close()

	// Four pods of two shards each; each bucket (shard % 2) has a shard in every pod.
	for pod := range 4 {
		rt := bucketPod(t, srv, c, "shared", fmt.Sprintf("shared-%d", pod), []int{2 * pod, 2*pod + 1}, 8, interval, 300*time.Millisecond)
		stop, _ := running(t, rt)
		defer func() { _ = stop() }()
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	st, err := srv.WaitStats(ctx, func(st discordtest.Stats) bool { return st.Identifies >= 8 })
	if err != nil {
		t.Fatalf("not every shard identified: %d of 8: %v", st.Identifies, err)
	}
	if st.BucketViolations != 0 {
		t.Errorf("%d identifies came less than %v after another of their bucket: %+v", st.BucketViolations, interval, st.IdentifyLog)
	}
	// Within a bucket, shards went in shard ID order.
	perBucket := map[int][]int{}
	for _, rec := range st.IdentifyLog {
		perBucket[rec.Bucket] = append(perBucket[rec.Bucket], rec.Shard)
	}
	for bucket, shards := range perBucket {
		if !slices.IsSorted(shards) || len(shards) != 4 {
			t.Errorf("bucket %d identified shards %v, want 4 shards in ID order", bucket, shards)
		}
	}
	// The bucket Leases say who identified last.
	for bucket, last := range map[int]string{0: "6", 1: "7"} {
		lease, err := c.CoordinationV1().Leases("default").Get(ctx, shardkeeperv1.IdentifyBucketLeaseName("shared", bucket), metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := lease.Annotations[shardkeeperv1.AnnotationIdentifiedShard]; got != last {
			t.Errorf("bucket %d Lease names shard %q as the last to identify, want %s", bucket, got, last)
		}
	}
}

// takeBucket plays another pod's shard taking the identify bucket, now.
func takeBucket(c kubernetes.Interface, name string, shard int) error {
	var err error
	for range 5 {
		var lease *coordinationv1.Lease
		if lease, err = c.CoordinationV1().Leases("default").Get(context.Background(), name, metav1.GetOptions{}); err != nil {
			return err
		}
		now := metav1.NewMicroTime(time.Now())
		lease.Spec.HolderIdentity, lease.Spec.AcquireTime, lease.Spec.RenewTime = ptr.To(fmt.Sprintf("other/%d", shard)), &now, &now
		lease.Annotations[shardkeeperv1.AnnotationIdentifiedShard] = strconv.Itoa(shard)
		if _, err = c.CoordinationV1().Leases("default").Update(context.Background(), lease, metav1.UpdateOptions{}); err == nil {
			return nil
		}
	}
	return fmt.Errorf("cannot take bucket %s for shard %d: %w", name, shard, err)
}

// The last shard of a bucket of 21 waits behind 20 others, far beyond the recovery bound:
// its pod stays healthy while the queue moves, and stops renewing once the queue is stuck.
func TestAShardQueuedToIdentifyIsRecoveringWhileTheQueueMoves(t *testing.T) {
	c := kubeClient(t)
	const (
		recoverWithin = time.Second
		interval      = 200 * time.Millisecond
		margin        = 100 * time.Millisecond // a turn: 300 ms window + 1 s order grace
		move          = 300 * time.Millisecond // the other pods identify faster than that
	)
	srv := discordtest.NewServer(discordtest.Options{IdentifyInterval: interval, HeartbeatInterval: time.Second})
	defer srv.Close()
	pod := botPod(t, c)
	bucket := shardkeeperv1.IdentifyBucketLeaseName("queued", 0)
	took := metav1.NewMicroTime(time.Now())
	if _, err := c.CoordinationV1().Leases("default").Create(context.Background(), &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: bucket, Annotations: map[string]string{shardkeeperv1.AnnotationIdentifiedShard: "0"}},
		Spec:       coordinationv1.LeaseSpec{HolderIdentity: ptr.To("other/0"), AcquireTime: &took, RenewTime: &took},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rt := newRuntimeWithConfig(t, srv, discordtest.DefaultToken, []int{20}, 21, func(cfg *botruntime.Config) {
		cfg.LeaseName, cfg.Namespace, cfg.PodName, cfg.PodUID = pod.Name, pod.Namespace, pod.Name, string(pod.UID)
		cfg.LeaseDuration = 4 * time.Second // renewals every second
		cfg.BotName, cfg.MaxConcurrency = "queued", 1
		cfg.IdentifyInterval, cfg.IdentifyMargin = interval, margin
	}, botruntime.WithKubernetes(c), botruntime.WithRecoveryBound(recoverWithin))
	stop, _ := running(t, rt)
	defer func() { _ = stop() }()
	held := func() bool { return strings.Contains(metric(t, rt, "shardkeeper_lease_renewal_held"), " 1") }

	// 1. Shards 1 to 18 of other pods identify in turn: 5.4 s, over five recovery bounds.
	start := time.Now()
	for shard := 1; shard <= 18; shard++ {
		if err := takeBucket(c, bucket, shard); err != nil {
			t.Fatal(err)
		}
		time.Sleep(move)
		if time.Since(start) > 2*recoverWithin && held() {
			t.Fatalf("%s in, %d shards ahead done: the pod stopped renewing while its shard's queue moved: %s",
				time.Since(start).Round(time.Millisecond), shard, getLease(t, c, pod.Name).Annotations[shardkeeperv1.AnnotationRenewalHeld])
		}
	}
	lease := getLease(t, c, pod.Name)
	if st := shardStates(t, lease); len(st) != 1 || st[0].State != string(botruntime.StateWaitingToIdentify) {
		t.Errorf("Lease shard state %+v, want WaitingToIdentify", st)
	}
	if renewed := renewTime(lease); renewed.Before(start.Add(3 * recoverWithin)) {
		t.Errorf("last renewal %s after the wait began; the pod should renew all along", renewed.Sub(start))
	}
	if srv.Stats().Identifies != 0 {
		t.Fatal("shard 20 identified out of its turn")
	}

	// 2. The bucket is stuck: shard 18's pod keeps it without anyone moving on. One turn
	// ahead, the shard may wait 1 s + 1 turn; then the pod stops renewing and says why.
	stuck := make(chan struct{})
	stuckErr := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stuck:
				stuckErr <- nil
				return
			case <-time.After(100 * time.Millisecond):
				if err := takeBucket(c, bucket, 18); err != nil {
					stuckErr <- err
					return
				}
			}
		}
	}()
	eventually(t, "renewal held for the stuck queue", held)
	close(stuck)
	if err := <-stuckErr; err != nil {
		t.Fatal(err)
	}
	why := getLease(t, c, pod.Name).Annotations[shardkeeperv1.AnnotationRenewalHeld]
	if !strings.Contains(why, "shard 20 has waited for its identify turn") {
		t.Errorf("renewal-held reason %q", why)
	}

	// 3. Once the bucket moves again, the shard identifies and the pod renews.
	eventually(t, "ready", func() bool { return allReady(rt) })
	eventually(t, "renewing again", func() bool { return !held() })
}
