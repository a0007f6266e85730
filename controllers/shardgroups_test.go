package controllers

import (
	"testing"

	"k8s.io/apimachinery/pkg/util/intstr"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
)

func TestTopology(t *testing.T) {
	tests := []struct {
		shards, perPod int32
		wantGroups     int32
		group          int32
		wantIDs        string
		wantShort      string
	}{
		{shards: 1, perPod: 1, wantGroups: 1, group: 0, wantIDs: "0", wantShort: "0"},
		{shards: 5, perPod: 2, wantGroups: 3, group: 1, wantIDs: "2,3", wantShort: "2-3"},
		{shards: 5, perPod: 2, wantGroups: 3, group: 2, wantIDs: "4", wantShort: "4"},
		{shards: 16, perPod: 4, wantGroups: 4, group: 3, wantIDs: "12,13,14,15", wantShort: "12-15"},
		{shards: 10000, perPod: 1, wantGroups: 10000, group: 9999, wantIDs: "9999", wantShort: "9999"},
	}
	for _, tc := range tests {
		topo := topology{shards: tc.shards, shardsPerPod: tc.perPod}
		if got := topo.groups(); got != tc.wantGroups {
			t.Errorf("%s: groups = %d, want %d", topo.label(), got, tc.wantGroups)
		}
		if got := topo.shardIDs(tc.group); got != tc.wantIDs {
			t.Errorf("%s group %d: shard IDs = %q, want %q", topo.label(), tc.group, got, tc.wantIDs)
		}
		if got := topo.describeShards(tc.group); got != tc.wantShort {
			t.Errorf("%s group %d: = %q, want %q", topo.label(), tc.group, got, tc.wantShort)
		}
	}
}

func TestTopologyOfRejectsWhatTheCRDWouldReject(t *testing.T) {
	tests := map[string]shardkeeperv1.DiscordBotSpec{
		"auto":              {Shards: intstr.FromString("auto"), ShardsPerPod: 1},
		"zero shards":       {Shards: intstr.FromInt32(0), ShardsPerPod: 1},
		"more per pod than": {Shards: intstr.FromInt32(2), ShardsPerPod: 3},
	}
	for name, spec := range tests {
		if _, err := topologyOf(&spec); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if topo, err := topologyOf(&shardkeeperv1.DiscordBotSpec{Shards: intstr.FromInt32(8), ShardsPerPod: 2}); err != nil || topo.groups() != 4 {
		t.Errorf("8x2: %v, %d groups", err, topo.groups())
	}
}

func TestRevisionChangesWithPodInputsOnly(t *testing.T) {
	bot := &shardkeeperv1.DiscordBot{Spec: shardkeeperv1.DiscordBotSpec{
		TokenSecretRef: shardkeeperv1.SecretKeySelector{Name: "t", Key: "token"},
		Shards:         intstr.FromInt32(4), ShardsPerPod: 1,
	}}
	topo := topology{shards: 4, shardsPerPod: 1}
	base := newPodBuilder(bot, "img:1", topo).revision
	if again := newPodBuilder(bot.DeepCopy(), "img:1", topo).revision; again != base {
		t.Fatalf("revision is not stable: %s then %s", base, again)
	}
	// The shard layout has its own label; changing it is a recreate, not a rollout.
	if r := newPodBuilder(bot, "img:1", topology{shards: 8, shardsPerPod: 2}).revision; r != base {
		t.Errorf("shard layout changed the revision")
	}
	changes := map[string]func(*shardkeeperv1.DiscordBot){
		"image":   func(b *shardkeeperv1.DiscordBot) { b.Spec.Image = "img:2" },
		"intents": func(b *shardkeeperv1.DiscordBot) { b.Spec.Intents = []shardkeeperv1.Intent{"GUILDS"} },
		"lease":   func(b *shardkeeperv1.DiscordBot) { b.Spec.Health.LeaseDurationSeconds = 30 },
		"label": func(b *shardkeeperv1.DiscordBot) {
			b.Spec.PodTemplate.Metadata.Labels = map[string]string{"a": "b"}
		},
		"secret": func(b *shardkeeperv1.DiscordBot) { b.Spec.TokenSecretRef.Name = "other" },
	}
	for name, change := range changes {
		b := bot.DeepCopy()
		change(b)
		if r := newPodBuilder(b, "img:1", topo).revision; r == base {
			t.Errorf("changing %s did not change the revision", name)
		}
	}
	if r := newPodBuilder(bot, "img:2", topo).revision; r == base {
		t.Errorf("changing the operator's default image did not change the revision")
	}
}
