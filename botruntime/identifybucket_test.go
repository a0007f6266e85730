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

// takeBucket plays another pod's shard taking the identify bucket at the given time.
func takeBucket(c kubernetes.Interface, name string, shard int, at time.Time) error {
	var err error
	for range 5 {
		var lease *coordinationv1.Lease
		if lease, err = c.CoordinationV1().Leases("default").Get(context.Background(), name, metav1.GetOptions{}); err != nil {
			return err
		}
		took := metav1.NewMicroTime(at)
		lease.Spec.HolderIdentity, lease.Spec.AcquireTime, lease.Spec.RenewTime = ptr.To(fmt.Sprintf("other/%d", shard)), &took, &took
		lease.Annotations[shardkeeperv1.AnnotationIdentifiedShard] = strconv.Itoa(shard)
		if _, err = c.CoordinationV1().Leases("default").Update(context.Background(), lease, metav1.UpdateOptions{}); err == nil {
			return nil
		}
	}
	return fmt.Errorf("cannot take bucket %s for shard %d: %w", name, shard, err)
}

// The last shard of a bucket of 21 waits behind 20 others, far beyond the recovery bound:
// its pod stays healthy while the queue moves, and stops renewing once the queue is stuck.
//
// On the runtime's clock, each step is one Lease beat (4 s leases: one a second, plus
// jitter) and one turn of the queue. A turn lasts less than a window plus the order grace
// (1.3 s), so shard 20 never finds the bucket free long enough to jump the queue. Three
// timers wait on the clock: the Lease heartbeat, the shard's heartbeat and its wait for
// the bucket; each step waits for all three.
func TestAShardQueuedToIdentifyIsRecoveringWhileTheQueueMoves(t *testing.T) {
	c := kubeClient(t)
	const (
		recoverWithin = time.Second
		interval      = 200 * time.Millisecond
		margin        = 100 * time.Millisecond // a turn: 300 ms window + 1 s order grace
		move          = 1100 * time.Millisecond
	)
	clk := fakeClock()
	// Heartbeats an hour apart: the steps below send one at most, ACKed at once.
	srv := discordtest.NewServer(discordtest.Options{IdentifyInterval: interval, HeartbeatInterval: time.Hour})
	defer srv.Close()
	pod := botPod(t, c)
	bot := "queued-" + pod.Name // a bot of its own, run after run
	bucket := shardkeeperv1.IdentifyBucketLeaseName(bot, 0)
	took := metav1.NewMicroTime(clk.Now())
	if _, err := c.CoordinationV1().Leases("default").Create(context.Background(), &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: bucket, Annotations: map[string]string{shardkeeperv1.AnnotationIdentifiedShard: "0"}},
		Spec:       coordinationv1.LeaseSpec{HolderIdentity: ptr.To("other/0"), AcquireTime: &took, RenewTime: &took},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rt := newRuntimeWithConfig(t, srv, discordtest.DefaultToken, []int{20}, 21, func(cfg *botruntime.Config) {
		cfg.LeaseName, cfg.Namespace, cfg.PodName, cfg.PodUID = pod.Name, pod.Namespace, pod.Name, string(pod.UID)
		cfg.LeaseDuration = 4 * time.Second
		cfg.BotName, cfg.MaxConcurrency = bot, 1
		cfg.IdentifyInterval, cfg.IdentifyMargin = interval, margin
	}, botruntime.WithKubernetes(c), botruntime.WithRecoveryBound(recoverWithin), botruntime.WithClock(clk))
	stop, _ := running(t, rt)
	defer func() { _ = stop() }()
	held := func() bool { return strings.Contains(metric(t, rt, "shardkeeper_lease_renewal_held"), " 1") }
	eventually(t, "the health server", func() bool { return rt.HealthAddr() != "" })
	eventually(t, "the first beat", func() bool {
		return metric(t, rt, "shardkeeper_lease_renewals_total") == "shardkeeper_lease_renewals_total 1"
	})
	// turn steps the clock once every timer is set, has shard (if any) take the bucket
	// then, and says whether the Lease was renewed at the beat.
	start := clk.Now()
	turn := func(shard int) (renewed bool) {
		t.Helper()
		waitForTimers(t, clk, 3)
		clk.Step(move)
		now := clk.Now()
		if shard > 0 {
			if err := takeBucket(c, bucket, shard, now); err != nil {
				t.Fatal(err)
			}
		}
		eventually(t, fmt.Sprintf("the beat %s in", now.Sub(start)), func() bool {
			renewed = renewTime(getLease(t, c, pod.Name)).Equal(now)
			return renewed || held()
		})
		return renewed
	}

	// 1. Shards 1 to 18 of other pods identify in turn: 20 s, twenty recovery bounds.
	for shard := 1; shard <= 18; shard++ {
		if !turn(shard) {
			t.Fatalf("%s in, %d shards ahead done: the pod stopped renewing while its shard's queue moved: %s",
				clk.Now().Sub(start), shard, getLease(t, c, pod.Name).Annotations[shardkeeperv1.AnnotationRenewalHeld])
		}
	}
	if st := shardStates(t, getLease(t, c, pod.Name)); len(st) != 1 || st[0].State != string(botruntime.StateWaitingToIdentify) {
		t.Errorf("Lease shard state %+v, want WaitingToIdentify", st)
	}
	if srv.Stats().Identifies != 0 {
		t.Fatal("shard 20 identified out of its turn")
	}

	// 2. The bucket is stuck: shard 18's pod keeps it without anyone moving on. One turn
	// ahead, the shard may wait 1 s + 1 turn from when it saw shard 18 take it (that step
	// or the next); then the pod stops renewing and says why.
	const mayWait = recoverWithin + interval + margin + botruntime.DefaultIdentifyOrderGrace
	stuckAt := clk.Now()
	for {
		renewed := turn(18)
		stuckFor := clk.Now().Sub(stuckAt)
		if !renewed {
			if stuckFor <= mayWait {
				t.Fatalf("stopped renewing %s after the queue stuck, within the %s it may wait", stuckFor, mayWait)
			}
			break
		}
		if stuckFor > 5*move {
			t.Fatalf("still renewing %s after the queue stuck", stuckFor)
		}
	}
	why := getLease(t, c, pod.Name).Annotations[shardkeeperv1.AnnotationRenewalHeld]
	if !strings.Contains(why, "shard 20 has waited for its identify turn") {
		t.Errorf("renewal-held reason %q", why)
	}

	// 3. Once the bucket moves again, the shard identifies and the pod renews at once.
	for moved := time.Duration(0); !allReady(rt); moved += move {
		eventually(t, "the shard waiting for its turn, or ready", func() bool {
			return allReady(rt) || (rt.Shards()[0].State == botruntime.StateWaitingToIdentify && clk.Waiters() == 3)
		})
		if allReady(rt) {
			break
		}
		if moved > 5*move {
			t.Fatalf("shard 20 did not identify within %s of the bucket freeing", moved)
		}
		clk.Step(move)
	}
	eventually(t, "renewing again", func() bool {
		_, stillHeld := getLease(t, c, pod.Name).Annotations[shardkeeperv1.AnnotationRenewalHeld]
		return renewTime(getLease(t, c, pod.Name)).Equal(clk.Now()) && !stillHeld && !held()
	})
}
