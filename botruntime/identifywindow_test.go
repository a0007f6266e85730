package botruntime

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
)

// When a shard may take its shared identify bucket, on the clock: one window
// (interval + margin) after the last take, whatever became of the taker, and the order
// grace on top when it is another shard's turn. Bucket 0 of 6 shards over 2 buckets holds
// shards 0, 2 and 4.
func TestIdentifyBucketWindow(t *testing.T) {
	const interval, margin = 5 * time.Second, 500 * time.Millisecond
	const window, grace = interval + margin, DefaultIdentifyOrderGrace
	tests := []struct {
		name string
		// taken is when another pod's shard took the bucket, from the start (nil: no
		// bucket Lease yet); last is the shard that took it.
		taken *time.Duration
		last  int
		shard int
		// at is when the shard takes the bucket, from the start.
		at time.Duration
	}{
		{"no bucket Lease yet: the first shard makes it", nil, 0, 0, 0},
		{"taken long ago, this shard's turn", ptr.To(-time.Hour), 0, 2, 0},
		{"taken just now", ptr.To(time.Duration(0)), 0, 2, window},
		{"the taker crashed before identifying: its window still ends", ptr.To(-2 * time.Second), 0, 2, window - 2*time.Second},
		{"taken an hour ahead (a fast clock): one window from when it is seen", ptr.To(time.Hour), 0, 2, window},
		{"another shard's turn: the order grace after the window", ptr.To(-2 * time.Second), 0, 4, window - 2*time.Second + grace},
		{"another shard's turn, free long ago: the order grace from the wait's start", ptr.To(-time.Hour), 0, 4, grace},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := clocktesting.NewFakeClock(fakeEpoch)
			client := fake.NewClientset()
			name := shardkeeperv1.IdentifyBucketLeaseName("demo", 0)
			if tt.taken != nil {
				took := metav1.NewMicroTime(fakeEpoch.Add(*tt.taken))
				_, err := client.CoordinationV1().Leases("default").Create(context.Background(), &coordinationv1.Lease{
					// The fake clientset keeps no resource versions: one says the Lease exists.
					ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", ResourceVersion: "1",
						Annotations: map[string]string{shardkeeperv1.AnnotationIdentifiedShard: strconv.Itoa(tt.last)}},
					Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("other/" + strconv.Itoa(tt.last)), AcquireTime: &took, RenewTime: &took},
				}, metav1.CreateOptions{})
				if err != nil {
					t.Fatal(err)
				}
			}
			l, ok := newIdentifyLimiter(Config{BotName: "demo", Namespace: "default", PodName: "pod", ShardCount: 6, MaxConcurrency: 2,
				IdentifyInterval: interval, IdentifyMargin: margin}, client, logr.Discard(), clk).(*leaseIdentifyLimiter)
			if !ok {
				t.Fatal("not the shared limiter")
			}

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var took atomic.Bool
			done := make(chan error, 1)
			go func() { err := l.Wait(ctx, tt.shard); took.Store(true); done <- err }()
			// advance moves the clock to target, letting the shard look at the bucket each
			// time its wait ends, and returns once it waits again or took the bucket.
			advance := func(target time.Time) {
				t.Helper()
				deadline := time.Now().Add(10 * time.Second)
				for {
					for clk.Waiters() != 1 && !took.Load() {
						if time.Now().After(deadline) {
							t.Fatal("the shard neither waits nor took the bucket")
						}
						time.Sleep(time.Millisecond)
					}
					if took.Load() || !clk.Now().Before(target) {
						return
					}
					clk.SetTime(target) // the wait's timer fires here if it ends by target
				}
			}
			if tt.at > 0 {
				advance(fakeEpoch.Add(tt.at - time.Millisecond))
				if took.Load() {
					lease, _ := client.CoordinationV1().Leases("default").Get(ctx, name, metav1.GetOptions{})
					t.Fatalf("took the bucket %s after the start; not before %s", lease.Spec.AcquireTime.Sub(fakeEpoch), tt.at)
				}
			}
			advance(fakeEpoch.Add(tt.at))
			if !took.Load() {
				t.Fatalf("still waiting %s after the start; the bucket was the shard's then", tt.at)
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			lease, err := client.CoordinationV1().Leases("default").Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got := lease.Spec.AcquireTime.Time; !got.Equal(fakeEpoch.Add(tt.at)) {
				t.Errorf("acquireTime %s after the start, want %s: taken at the clock's time", got.Sub(fakeEpoch), tt.at)
			}
			if holder, shard := ptr.Deref(lease.Spec.HolderIdentity, ""), lease.Annotations[shardkeeperv1.AnnotationIdentifiedShard]; holder != "pod/"+strconv.Itoa(tt.shard) || shard != strconv.Itoa(tt.shard) {
				t.Errorf("holder %q, identified shard %q; want pod/%d and %d", holder, shard, tt.shard, tt.shard)
			}
		})
	}
}
