package controllers

import (
	"errors"
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/util/intstr"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
	"github.com/shardkeeper/shardkeeper/internal/discordapi"
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

func TestTopologyOf(t *testing.T) {
	recommends := func(n int32) *shardkeeperv1.GatewayStatus {
		return &shardkeeperv1.GatewayStatus{RecommendedShards: n, MaxConcurrency: 1}
	}
	tests := map[string]struct {
		spec    shardkeeperv1.DiscordBotSpec
		gateway *shardkeeperv1.GatewayStatus
		running int32
		want    topology
		wantErr bool
		unknown bool
	}{
		"fixed":                     {spec: shardkeeperv1.DiscordBotSpec{Shards: intstr.FromInt32(8), ShardsPerPod: 2}, want: topology{8, 2}},
		"fixed ignores Discord":     {spec: shardkeeperv1.DiscordBotSpec{Shards: intstr.FromInt32(8), ShardsPerPod: 2}, gateway: recommends(3), want: topology{8, 2}},
		"auto":                      {spec: shardkeeperv1.DiscordBotSpec{Shards: intstr.FromString("auto"), ShardsPerPod: 2}, gateway: recommends(6), want: topology{6, 2}},
		"auto, more per pod":        {spec: shardkeeperv1.DiscordBotSpec{Shards: intstr.FromString("auto"), ShardsPerPod: 4}, gateway: recommends(2), want: topology{2, 2}},
		"auto grows at once":        {spec: shardkeeperv1.DiscordBotSpec{Shards: intstr.FromString("auto"), ShardsPerPod: 1}, gateway: recommends(6), running: 4, want: topology{6, 1}},
		"auto keeps a small excess": {spec: shardkeeperv1.DiscordBotSpec{Shards: intstr.FromString("auto"), ShardsPerPod: 1}, gateway: recommends(5), running: 8, want: topology{8, 1}},
		"auto shrinks to half":      {spec: shardkeeperv1.DiscordBotSpec{Shards: intstr.FromString("auto"), ShardsPerPod: 1}, gateway: recommends(4), running: 8, want: topology{4, 1}},
		"auto before Discord":       {spec: shardkeeperv1.DiscordBotSpec{Shards: intstr.FromString("auto"), ShardsPerPod: 1}, wantErr: true, unknown: true},
		"another word":              {spec: shardkeeperv1.DiscordBotSpec{Shards: intstr.FromString("many"), ShardsPerPod: 1}, gateway: recommends(2), wantErr: true},
		"zero shards":               {spec: shardkeeperv1.DiscordBotSpec{Shards: intstr.FromInt32(0), ShardsPerPod: 1}, wantErr: true},
		"more per pod than fixed":   {spec: shardkeeperv1.DiscordBotSpec{Shards: intstr.FromInt32(2), ShardsPerPod: 3}, wantErr: true},
	}
	for name, tc := range tests {
		got, err := topologyOf(&tc.spec, tc.gateway, tc.running)
		var unknown *layoutUnknownError
		switch {
		case (err != nil) != tc.wantErr:
			t.Errorf("%s: error %v, want error %v", name, err, tc.wantErr)
		case errors.As(err, &unknown) != tc.unknown:
			t.Errorf("%s: error %v, want layout-unknown %v", name, err, tc.unknown)
		case err == nil && got != tc.want:
			t.Errorf("%s: %+v, want %+v", name, got, tc.want)
		}
	}
}

func TestRevisionChangesWithPodInputsOnly(t *testing.T) {
	bot := &shardkeeperv1.DiscordBot{Spec: shardkeeperv1.DiscordBotSpec{
		TokenSecretRef: shardkeeperv1.SecretKeySelector{Name: "t", Key: "token"},
		Shards:         intstr.FromInt32(4), ShardsPerPod: 1,
	}}
	topo := topology{shards: 4, shardsPerPod: 1}
	base := newPodBuilder(bot, podDefaults{image: "img:1"}, topo, 1).revision
	if again := newPodBuilder(bot.DeepCopy(), podDefaults{image: "img:1"}, topo, 1).revision; again != base {
		t.Fatalf("revision is not stable: %s then %s", base, again)
	}
	// The shard layout has its own label; changing it is a recreate, not a rollout.
	if r := newPodBuilder(bot, podDefaults{image: "img:1"}, topology{shards: 8, shardsPerPod: 2}, 1).revision; r != base {
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
		if r := newPodBuilder(b, podDefaults{image: "img:1"}, topo, 1).revision; r == base {
			t.Errorf("changing %s did not change the revision", name)
		}
	}
	if r := newPodBuilder(bot, podDefaults{image: "img:2"}, topo, 1).revision; r == base {
		t.Errorf("changing the operator's default image did not change the revision")
	}
	// Discord's identify concurrency: 1 is the default and changes nothing; more rolls.
	if r := newPodBuilder(bot, podDefaults{image: "img:1"}, topo, 0).revision; r != base {
		t.Errorf("an unknown max_concurrency changed the revision")
	}
	if r := newPodBuilder(bot, podDefaults{image: "img:1"}, topo, 16).revision; r == base {
		t.Errorf("max_concurrency 16 did not change the revision")
	}
	// The operator's API for bots that name none: Discord's own is the default and changes
	// nothing (no roll on upgrade); another one reaches the pods, and rolls them.
	if r := newPodBuilder(bot, podDefaults{image: "img:1", apiURL: discordapi.DefaultAPIURL}, topo, 1).revision; r != base {
		t.Errorf("the default Discord API changed the revision")
	}
	proxied := newPodBuilder(bot, podDefaults{image: "img:1", apiURL: "https://discord-proxy.example/api/v10"}, topo, 1)
	if proxied.revision == base {
		t.Errorf("the operator's --discord-api-url did not change the revision")
	}
	if got := envOf(proxied.build(0).Spec.Containers[0])[shardkeeperv1.EnvAPIURL].Value; got != "https://discord-proxy.example/api/v10" {
		t.Errorf("a bot without spec.gateway.apiURL gets API %q, want the operator's", got)
	}
	own := bot.DeepCopy()
	own.Spec.Gateway = &shardkeeperv1.GatewaySpec{APIURL: "https://own.example/api/v10"}
	ownBuilder := newPodBuilder(own, podDefaults{image: "img:1", apiURL: "https://discord-proxy.example/api/v10"}, topo, 1)
	var apis []string
	for _, e := range ownBuilder.build(0).Spec.Containers[0].Env {
		if e.Name == shardkeeperv1.EnvAPIURL {
			apis = append(apis, e.Value)
		}
	}
	if !slices.Equal(apis, []string{"https://own.example/api/v10"}) {
		t.Errorf("a bot with spec.gateway.apiURL gets API env %v, want only its own", apis)
	}
}

func TestParsePodName(t *testing.T) {
	for _, tt := range []struct {
		pod               string
		generation, group int32
		ok                bool
	}{
		{"bot-0", 0, 0, true},
		{"bot-12", 0, 12, true},
		{"bot-3-g2", 2, 3, true},
		{"bot-other-0", 0, 0, false},
		{"bot-01", 0, 0, false},
		{"bot-1-g0", 0, 0, false},
		{"bot-1-gx", 0, 0, false},
		{"bot-", 0, 0, false},
		{"other-1", 0, 0, false},
	} {
		generation, group, ok := parsePodName("bot", tt.pod)
		if generation != tt.generation || group != tt.group || ok != tt.ok {
			t.Errorf("parsePodName(%q) = %d, %d, %v; want %d, %d, %v", tt.pod, generation, group, ok, tt.generation, tt.group, tt.ok)
		}
		if ok && podName("bot", generation, group) != tt.pod {
			t.Errorf("podName does not give %q back", tt.pod)
		}
	}
}
