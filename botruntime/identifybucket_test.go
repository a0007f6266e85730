package botruntime_test

import (
	"context"
	"fmt"
	"slices"
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

func TestCrashedBucketHolderBlocksOneWindowAtMost(t *testing.T) {
	c := kubeClient(t)
	const interval, margin = time.Second, 300 * time.Millisecond
	srv := discordtest.NewServer(discordtest.Options{MaxConcurrency: 2, IdentifyInterval: interval, HeartbeatInterval: time.Second})
	defer srv.Close()

	// A pod took bucket 0 for shard 0 and died before it identified.
	took := metav1.NewMicroTime(time.Now())
	_, err := c.CoordinationV1().Leases("default").Create(context.Background(), &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: shardkeeperv1.IdentifyBucketLeaseName("crashed", 0),
			Annotations: map[string]string{shardkeeperv1.AnnotationIdentifiedShard: "0"}},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("crashed-0/0"), AcquireTime: &took, RenewTime: &took, LeaseDurationSeconds: ptr.To(int32(2))},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	rt := bucketPod(t, srv, c, "crashed", "crashed-1", []int{2}, 4, interval, margin)
	stop, _ := running(t, rt)
	defer func() { _ = stop() }()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	st, err := srv.WaitStats(ctx, func(st discordtest.Stats) bool { return st.Identifies == 1 })
	if err != nil {
		t.Fatal(err)
	}
	at := st.IdentifyLog[0].At
	if at.Before(took.Add(interval)) {
		t.Errorf("shard 2 identified %v after the crashed holder took the bucket, inside Discord's %v", at.Sub(took.Time), interval)
	}
	// Blocked for the window, not for the holder's lifetime (it has none): a generous bound
	// for a busy machine, far below any lease or restart period.
	if limit := took.Add(interval + margin + 3*time.Second); at.After(limit) {
		t.Errorf("shard 2 identified %v after the crashed holder took the bucket; the bucket should free itself after %v", at.Sub(took.Time), interval+margin)
	}
}
