package e2e

import (
	"context"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
	"github.com/shardkeeper/shardkeeper/internal/e2erig"
)

// An API server outage is not a bot outage: while the operator and the bots cannot reach
// the API server, no Lease is renewed and none looks renewed; when it is back, the operator
// must not take that silence for dead bots. Every pod stays, and no gateway session closes.
func TestAPIServerOutageRestartsNothing(t *testing.T) {
	// The default lease: the bot renews every 5 s, while client-go's relist backoff after
	// a long outage reaches half a minute and more, so the operator must not count its own
	// blindness from the last failure it saw.
	const outageLease = 20
	if testing.Short() {
		t.Skip("end to end")
	}
	ctx := context.Background()
	// One pod of two shards: a bot of one pod has no storm guard of its own to hide behind.
	rig, err := e2erig.Start(ctx, e2erig.Options{LeaseSeconds: outageLease, Shards: 2, ShardsPerPod: 2, Guilds: []uint64{7 << 22, 8 << 22},
		HeartbeatInterval: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer rig.Close()
	srv := rig.Discord
	pods := []string{e2erig.BotName + "-0"}
	waitFor(t, "the bot Ready with both shards", 90*time.Second, func() bool {
		var bot shardkeeperv1.DiscordBot
		return rig.K8s.Get(ctx, client.ObjectKey{Namespace: e2erig.Namespace, Name: e2erig.BotName}, &bot) == nil &&
			meta.IsStatusConditionTrue(bot.Status.Conditions, shardkeeperv1.ConditionReady) && bot.Status.ReadyShards == 2
	})
	uids := map[string]string{}
	for _, p := range pods {
		uid, ok := rig.PodUID(ctx, p)
		if !ok {
			t.Fatalf("pod %s missing", p)
		}
		uids[p] = uid
	}
	before := srv.Stats()

	const outage = 60 * time.Second
	rig.CutAPIServer()
	time.Sleep(outage)
	rig.RestoreAPIServer()
	// Two lease durations after it is back: time enough for a wrong restart to happen
	// (without the fix the pod went within seconds of the API server's return).
	deadline := time.Now().Add(2 * outageLease * time.Second)
	for time.Now().Before(deadline) {
		for _, p := range pods {
			if uid, ok := rig.PodUID(ctx, p); !ok || uid != uids[p] {
				t.Fatalf("pod %s was deleted after a %s API server outage (uid %s -> %s)\n%s", p, outage, uids[p], uid, rig.Kubelet.Logs())
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	after := srv.Stats()
	if after.Connections != before.Connections || after.Identifies != before.Identifies || after.Resumes != before.Resumes {
		t.Errorf("gateway sessions were closed during the outage: connections %d -> %d, identifies %d -> %d, resumes %d -> %d",
			before.Connections, after.Connections, before.Identifies, after.Identifies, before.Resumes, after.Resumes)
	}
	var bot shardkeeperv1.DiscordBot
	if err := rig.K8s.Get(ctx, client.ObjectKey{Namespace: e2erig.Namespace, Name: e2erig.BotName}, &bot); err != nil {
		t.Fatal(err)
	}
	if bot.Status.Restarts != 0 {
		t.Errorf("status.restarts %d after the outage, want 0", bot.Status.Restarts)
	}
	t.Logf("a %s API server outage: 0 pods deleted, %d gateway connections before and after, Ready %v",
		outage, after.Connections, meta.IsStatusConditionTrue(bot.Status.Conditions, shardkeeperv1.ConditionReady))
}
