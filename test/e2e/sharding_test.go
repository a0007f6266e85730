package e2e

import (
	"context"
	"slices"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
	"github.com/shardkeeper/shardkeeper/internal/discordtest"
	"github.com/shardkeeper/shardkeeper/internal/e2erig"
)

func getBot(t *testing.T, rig *e2erig.Rig) *shardkeeperv1.DiscordBot {
	t.Helper()
	var bot shardkeeperv1.DiscordBot
	if err := rig.K8s.Get(context.Background(), client.ObjectKey{Namespace: e2erig.Namespace, Name: e2erig.BotName}, &bot); err != nil {
		t.Fatal(err)
	}
	return &bot
}

func TestSixteenPodsShareIdentifyBuckets(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	ctx := context.Background()
	const shards, maxConcurrency = 16, 4
	rig, err := e2erig.Start(ctx, e2erig.Options{LeaseSeconds: 20, Shards: shards, MaxConcurrency: maxConcurrency, HeartbeatInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer rig.Close()

	waitCtx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	st, err := rig.Discord.WaitStats(waitCtx, func(st discordtest.Stats) bool { return st.Identifies >= shards })
	if err != nil {
		t.Fatalf("%d of %d shards identified: %v\n%s", st.Identifies, shards, err, rig.Kubelet.Logs())
	}
	// Sixteen processes, one bucket Lease per bucket: never two identifies of a bucket
	// within Discord's 5 s, and each bucket's shards in shard ID order.
	if st.BucketViolations != 0 {
		t.Errorf("%d identifies came within 5 s of another in their bucket", st.BucketViolations)
	}
	perBucket := map[int][]int{}
	for _, rec := range st.IdentifyLog {
		perBucket[rec.Bucket] = append(perBucket[rec.Bucket], rec.Shard)
		if rec.ShardCount != shards {
			t.Errorf("shard %d identified with %d shards, want %d", rec.Shard, rec.ShardCount, shards)
		}
	}
	for b := range maxConcurrency {
		if got := perBucket[b]; len(got) != shards/maxConcurrency || !slices.IsSorted(got) {
			t.Errorf("bucket %d identified shards %v; want %d shards in ID order", b, got, shards/maxConcurrency)
		}
	}
	waitFor(t, "every shard connected and the bot Ready", 60*time.Second, func() bool {
		for s := range shards {
			if !rig.Discord.Connected(s) {
				return false
			}
		}
		return getBot(t, rig).Status.ReadyShards == shards
	})
	if t.Failed() {
		t.Log(rig.Kubelet.Logs())
	}
}

func TestReshardTwoToFourKeepsEveryGuildCovered(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	ctx := context.Background()
	var guilds []uint64
	for k := range uint64(8) { // two guilds on each of four shards
		guilds = append(guilds, k<<22|42)
	}
	rig, err := e2erig.Start(ctx, e2erig.Options{LeaseSeconds: 20, Shards: 2, Guilds: guilds, HeartbeatInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer rig.Close()
	srv := rig.Discord
	waitFor(t, "two shards connected and the bot Ready", 60*time.Second, func() bool {
		return srv.Covered() && getBot(t, rig).Status.ReadyShards == 2
	})

	bot := getBot(t, rig)
	bot.Spec.Shards.IntVal = 4
	if err := rig.K8s.Update(ctx, bot); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the reshard to finish", 90*time.Second, func() bool {
		b := getBot(t, rig)
		return b.Status.Resharding == nil && b.Status.ReadyShards == 4 && b.Status.Pods == 4
	})
	for s := range 4 {
		if !srv.Connected(s) {
			t.Errorf("shard %d of 4 is not connected", s)
		}
	}
	if gaps := srv.CoverageGaps(); len(gaps) != 0 {
		t.Errorf("guilds went without a connected shard during the reshard: %+v", gaps)
	}
	// Only the new layout's shards identified anew; the old sessions were not resumed.
	st := srv.Stats()
	if st.Identifies != 2+4 {
		t.Errorf("%d identifies, want 2 for the first layout and 4 for the new one", st.Identifies)
	}
	if t.Failed() {
		t.Log(rig.Kubelet.Logs())
	}
}

func TestShardingRequiredReshardsAnAutoBot(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	ctx := context.Background()
	rig, err := e2erig.Start(ctx, e2erig.Options{LeaseSeconds: 20, Shards: 2, AutoShards: true, HeartbeatInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer rig.Close()
	srv := rig.Discord
	waitFor(t, "the two recommended shards connected", 60*time.Second, func() bool {
		return srv.Connected(0) && srv.Connected(1) && getBot(t, rig).Status.ReadyShards == 2
	})

	// The bot outgrew two shards: Discord now requires and recommends four, and the next
	// identify of each shard is refused with 4011.
	srv.SetRecommendedShards(4)
	srv.SetRequiredShards(4)
	srv.InvalidSession(0, false)
	srv.InvalidSession(1, false)

	waitFor(t, "a reshard to four shards", 120*time.Second, func() bool {
		b := getBot(t, rig)
		return b.Status.Halted == nil && b.Status.Shards == 4 && b.Status.ReadyShards == 4 && b.Status.Resharding == nil && b.Status.Pods == 4
	})
	if b := getBot(t, rig); b.Status.Gateway == nil || b.Status.Gateway.RecommendedShards != 4 {
		t.Errorf("status.gateway %+v, want 4 recommended shards", b.Status.Gateway)
	}
	for s := range 4 {
		if !srv.Connected(s) {
			t.Errorf("shard %d of 4 is not connected", s)
		}
	}
	for _, rec := range srv.Stats().IdentifyLog[2:] {
		if rec.ShardCount != 4 {
			t.Errorf("after the 4011, shard %d identified with %d shards", rec.Shard, rec.ShardCount)
		}
	}
	if t.Failed() {
		t.Log(rig.Kubelet.Logs())
	}
}
