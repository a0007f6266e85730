package controllers

import (
	"fmt"
	"slices"
	"testing"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
)

// fakePod describes an observed pod in one short call: group, topology, revision, state.
func fakePod(group int32, topo, rev string, state ...string) observedPod {
	p := observedPod{
		pod:      &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("bot-%d", group)}},
		group:    group,
		topology: topo,
		revision: rev,
	}
	for _, s := range state {
		switch s {
		case "ready":
			p.ready = true
		case "terminating":
			p.terminating = true
		case "failed":
			p.failed = true
			p.pod.Status.Phase = corev1.PodFailed
		case "running":
			p.running = true
		}
	}
	return p
}

// fakeGenPod is fakePod for a pod of a later layout generation.
func fakeGenPod(generation, group int32, topo, rev string, state ...string) observedPod {
	p := fakePod(group, topo, rev, state...)
	p.generation = generation
	p.pod.Name = podName("bot", generation, group)
	return p
}

// describe renders a plan's actions as "create 0", "delete bot-1 (PodReplaced)".
func describe(plan rolloutPlan) []string {
	var out []string
	for _, a := range plan.actions {
		if a.kind == createPod && a.layout != nil {
			out = append(out, fmt.Sprintf("create %d of %s", a.group, podName("bot", a.layout.generation, a.group)))
		} else if a.kind == createPod {
			out = append(out, fmt.Sprintf("create %d", a.group))
		} else {
			out = append(out, fmt.Sprintf("delete %s (%s)", a.pod.Name, a.reason))
		}
	}
	return out
}

func TestPlanRollout(t *testing.T) {
	three := topology{shards: 3, shardsPerPod: 1}
	tests := []struct {
		name         string
		in           rolloutInput
		want         []string
		wantProgress string
		wantRestarts int
	}{
		{
			name:         "new bot: every group is created",
			in:           rolloutInput{topo: three, revision: "r1", tokenAvailable: true},
			want:         []string{"create 0", "create 1", "create 2"},
			wantProgress: shardkeeperv1.ReasonCreatingPods,
		},
		{
			name: "stopped groups: not created, their pod deleted, not waited for; the rest rolls",
			in: rolloutInput{topo: three, revision: "r2", tokenAvailable: true, stopped: map[groupKey]bool{{0, 1}: true, {0, 2}: true}, pods: []observedPod{
				fakePod(0, "3x1", "r1", "ready", "running"), fakePod(2, "3x1", "r1"),
			}},
			want:         []string{"delete bot-2 (Halted)", "delete bot-0 (PodReplaced)"},
			wantProgress: shardkeeperv1.ReasonRollingUpdate,
		},
		{
			name: "a reshard does not start an old layout's stopped group again",
			in: rolloutInput{topo: topology{shards: 4, shardsPerPod: 1}, generation: 1, revision: "r1", tokenAvailable: true,
				stopped: map[groupKey]bool{{0, 1}: true}, pods: []observedPod{
					fakePod(0, "3x1", "r1", "ready", "running"), fakePod(2, "3x1", "r1", "ready", "running"),
				}},
			want:         []string{"create 0", "create 1", "create 2", "create 3"},
			wantProgress: shardkeeperv1.ReasonReshardingPods,
		},
		{
			name: "settled: nothing to do",
			in: rolloutInput{topo: three, revision: "r1", tokenAvailable: true, pods: []observedPod{
				fakePod(0, "3x1", "r1", "ready"), fakePod(1, "3x1", "r1", "ready"), fakePod(2, "3x1", "r1", "ready"),
			}},
		},
		{
			name: "no token: nothing is created or replaced",
			in: rolloutInput{topo: three, revision: "r2", tokenAvailable: false, pods: []observedPod{
				fakePod(0, "3x1", "r1", "ready"),
			}},
		},
		{
			name: "suspended: every live pod is deleted",
			in: rolloutInput{topo: three, revision: "r1", stop: &stopReason{event: shardkeeperv1.ReasonSuspended, message: "spec.suspend is true"}, tokenAvailable: true, pods: []observedPod{
				fakePod(0, "3x1", "r1", "ready"), fakePod(1, "3x1", "r1", "terminating"), fakePod(2, "3x1", "r1"),
			}},
			want: []string{"delete bot-0 (Suspended)", "delete bot-2 (Suspended)"},
		},
		{
			name: "spec change, all ready: exactly one pod is replaced, the lowest",
			in: rolloutInput{topo: three, revision: "r2", tokenAvailable: true, pods: []observedPod{
				fakePod(2, "3x1", "r1", "ready"), fakePod(0, "3x1", "r1", "ready"), fakePod(1, "3x1", "r1", "ready"),
			}},
			want:         []string{"delete bot-0 (PodReplaced)"},
			wantProgress: shardkeeperv1.ReasonRollingUpdate,
		},
		{
			name: "replacement not ready yet: wait",
			in: rolloutInput{topo: three, revision: "r2", tokenAvailable: true, pods: []observedPod{
				fakePod(0, "3x1", "r2"), fakePod(1, "3x1", "r1", "ready"), fakePod(2, "3x1", "r1", "ready"),
			}},
			wantProgress: shardkeeperv1.ReasonRollingUpdate,
		},
		{
			name: "replaced pod still terminating: wait, and do not reuse its name",
			in: rolloutInput{topo: three, revision: "r2", tokenAvailable: true, pods: []observedPod{
				fakePod(0, "3x1", "r1", "terminating"), fakePod(1, "3x1", "r1", "ready"), fakePod(2, "3x1", "r1", "ready"),
			}},
			wantProgress: shardkeeperv1.ReasonRollingUpdate,
		},
		{
			name: "replaced pod gone: it is recreated at the new revision",
			in: rolloutInput{topo: three, revision: "r2", tokenAvailable: true, pods: []observedPod{
				fakePod(1, "3x1", "r1", "ready"), fakePod(2, "3x1", "r1", "ready"),
			}},
			want:         []string{"create 0"},
			wantProgress: shardkeeperv1.ReasonRollingUpdate,
		},
		{
			name: "outdated pods that are not ready are unavailable anyway: replaced at once",
			in: rolloutInput{topo: three, revision: "r2", tokenAvailable: true, pods: []observedPod{
				fakePod(0, "3x1", "r1"), fakePod(1, "3x1", "r1"), fakePod(2, "3x1", "r1", "ready"),
			}},
			want:         []string{"delete bot-0 (PodReplaced)", "delete bot-1 (PodReplaced)"},
			wantProgress: shardkeeperv1.ReasonRollingUpdate,
		},
		{
			name: "shard layout changed: the new layout starts beside the old one",
			in: rolloutInput{topo: topology{shards: 4, shardsPerPod: 2}, generation: 1, revision: "r1", tokenAvailable: true, pods: []observedPod{
				fakePod(0, "3x1", "r1", "ready"), fakePod(1, "3x1", "r1", "ready"), fakePod(2, "3x1", "r1", "ready"),
			}},
			want:         []string{"create 0", "create 1"},
			wantProgress: shardkeeperv1.ReasonReshardingPods,
		},
		{
			name: "reshard: the old layout serves until every new group is ready",
			in: rolloutInput{topo: topology{shards: 4, shardsPerPod: 2}, generation: 1, revision: "r1", tokenAvailable: true, pods: []observedPod{
				fakePod(0, "3x1", "r1", "ready"), fakePod(1, "3x1", "r1", "ready"), fakePod(2, "3x1", "r1", "ready"),
				fakeGenPod(1, 0, "4x2", "r1", "ready"), fakeGenPod(1, 1, "4x2", "r1"),
			}},
			wantProgress: shardkeeperv1.ReasonReshardingPods,
		},
		{
			name: "reshard: every new group ready, the old layout goes at once",
			in: rolloutInput{topo: topology{shards: 4, shardsPerPod: 2}, generation: 1, revision: "r1", tokenAvailable: true, pods: []observedPod{
				fakePod(0, "3x1", "r1", "ready"), fakePod(1, "3x1", "r1", "ready"), fakePod(2, "3x1", "r1", "terminating"),
				fakeGenPod(1, 0, "4x2", "r1", "ready"), fakeGenPod(1, 1, "4x2", "r1", "ready"),
			}},
			want:         []string{"delete bot-0 (ShardGroupsChanged)", "delete bot-1 (ShardGroupsChanged)"},
			wantProgress: shardkeeperv1.ReasonReshardingPods,
		},
		{
			name: "reshard: a failed old pod is replaced, a lost one created again; no rolling meanwhile",
			in: rolloutInput{topo: topology{shards: 4, shardsPerPod: 2}, generation: 1, revision: "r2", tokenAvailable: true, pods: []observedPod{
				fakePod(0, "3x1", "r1", "failed"), fakePod(1, "3x1", "r1", "ready"),
				fakeGenPod(1, 0, "4x2", "r1", "ready"), fakeGenPod(1, 1, "4x2", "r2"),
			}},
			want:         []string{"create 0 of bot-0", "create 2 of bot-2", "delete bot-0 (PodFailed)"},
			wantProgress: shardkeeperv1.ReasonReshardingPods,
		},
		{
			name: "reshard: a lost pod of the old layout is created again while the new one starts",
			in: rolloutInput{topo: topology{shards: 4, shardsPerPod: 2}, generation: 1, revision: "r1", tokenAvailable: true, pods: []observedPod{
				fakePod(0, "3x1", "r1", "ready"), fakePod(2, "3x1", "r1", "ready"),
				fakeGenPod(1, 0, "4x2", "r1", "ready"), fakeGenPod(1, 1, "4x2", "r1"),
			}},
			want:         []string{"create 1 of bot-1"},
			wantProgress: shardkeeperv1.ReasonReshardingPods,
		},
		{
			name: "reshard undone before it finished: the newer pods are the old layout now",
			in: rolloutInput{topo: topology{shards: 3, shardsPerPod: 1}, generation: 0, revision: "r1", tokenAvailable: true, pods: []observedPod{
				fakePod(0, "3x1", "r1", "ready"), fakePod(1, "3x1", "r1", "ready"), fakePod(2, "3x1", "r1", "ready"),
				fakeGenPod(1, 0, "4x2", "r1", "ready"), fakeGenPod(1, 1, "4x2", "r1"),
			}},
			want:         []string{"delete bot-0-g1 (ShardGroupsChanged)", "delete bot-1-g1 (ShardGroupsChanged)"},
			wantProgress: shardkeeperv1.ReasonReshardingPods,
		},
		{
			name: "failed pod: deleted and counted as a restart, recreated on a later pass",
			in: rolloutInput{topo: three, revision: "r1", tokenAvailable: true, pods: []observedPod{
				fakePod(0, "3x1", "r1", "failed"), fakePod(1, "3x1", "r1", "ready"), fakePod(2, "3x1", "r1", "ready"),
			}},
			want:         []string{"delete bot-0 (PodFailed)"},
			wantRestarts: 1,
		},
		{
			name: "a pod outside every group is removed",
			in: rolloutInput{topo: three, revision: "r1", tokenAvailable: true, pods: []observedPod{
				fakePod(0, "3x1", "r1", "ready"), fakePod(1, "3x1", "r1", "ready"), fakePod(2, "3x1", "r1", "ready"), fakePod(7, "3x1", "r1", "ready"),
			}},
			want: []string{"delete bot-7 (OrphanPodDeleted)"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			plan := planRollout(tc.in)
			if got := describe(plan); !slices.Equal(got, tc.want) {
				t.Errorf("actions = %q, want %q", got, tc.want)
			}
			if plan.progress != tc.wantProgress {
				t.Errorf("progress = %q, want %q", plan.progress, tc.wantProgress)
			}
			restarts := 0
			for _, a := range plan.actions {
				if a.restart {
					restarts++
				}
			}
			if restarts != tc.wantRestarts {
				t.Errorf("restarts = %d, want %d", restarts, tc.wantRestarts)
			}
		})
	}
}

func TestRollingUpdateNeverTakesTwoReadyGroupsDown(t *testing.T) {
	// Drive the planner through a whole rollout of 5 pods, making each new pod ready only
	// after the planner has had a chance to act again, and count unavailable groups.
	topo := topology{shards: 5, shardsPerPod: 1}
	pods := map[int32]observedPod{}
	for g := range topo.groups() {
		pods[g] = fakePod(g, "5x1", "old", "ready")
	}
	for step := 0; step < 50; step++ {
		var list []observedPod
		for _, p := range pods {
			list = append(list, p)
		}
		plan := planRollout(rolloutInput{topo: topo, revision: "new", tokenAvailable: true, pods: list})
		for _, a := range plan.actions {
			switch a.kind {
			case deletePod:
				delete(pods, a.group)
			case createPod:
				pods[a.group] = fakePod(a.group, "5x1", "new")
			}
		}
		down := 0
		for g := range topo.groups() {
			if p, ok := pods[g]; !ok || !p.ready {
				down++
			}
		}
		if down > 1 {
			t.Fatalf("step %d: %d shard groups unavailable at once", step, down)
		}
		if plan.progress == "" && len(plan.actions) == 0 {
			for _, p := range pods {
				if p.revision != "new" {
					t.Fatalf("rollout finished with pod %d at revision %s", p.group, p.revision)
				}
			}
			return
		}
		for g, p := range pods { // the kubelet: new pods turn ready one pass later
			p.ready = true
			pods[g] = p
		}
	}
	t.Fatal("rollout did not finish in 50 passes")
}

func TestReshardKeepsEveryShardServed(t *testing.T) {
	// Drive the planner through a reshard from 3 to 8 shards (2 per pod); new pods turn
	// ready a pass after they appear. At every step each guild must have a ready shard in
	// one layout or the other.
	from, to := topology{shards: 3, shardsPerPod: 1}, topology{shards: 8, shardsPerPod: 2}
	pods := map[string]observedPod{}
	for g := range from.groups() {
		p := fakePod(g, from.label(), "r1", "ready")
		pods[p.pod.Name] = p
	}
	covered := func(guild int32) bool {
		for _, p := range pods {
			topo, _ := topologyFromLabel(p.topology)
			first, last := topo.shardRange(p.group)
			if shard := guild % topo.shards; p.ready && !p.terminating && shard >= first && shard <= last {
				return true
			}
		}
		return false
	}
	for step := 0; step < 20; step++ {
		var list []observedPod
		for _, p := range pods {
			list = append(list, p)
		}
		gen := layoutGeneration(list, nil, to.label())
		if gen != 1 {
			t.Fatalf("step %d: generation %d, want 1", step, gen)
		}
		plan := planRollout(rolloutInput{topo: to, generation: gen, revision: "r1", tokenAvailable: true, pods: list})
		for _, a := range plan.actions {
			switch a.kind {
			case deletePod:
				delete(pods, a.pod.Name)
			case createPod:
				p := fakeGenPod(gen, a.group, to.label(), "r1")
				pods[p.pod.Name] = p
			}
		}
		for guild := range int32(24) {
			if !covered(guild) {
				t.Fatalf("step %d: guild %d has no ready shard", step, guild)
			}
		}
		if plan.progress == "" && len(plan.actions) == 0 {
			if len(pods) != int(to.groups()) {
				t.Fatalf("reshard finished with %d pods, want %d", len(pods), to.groups())
			}
			return
		}
		for name, p := range pods {
			p.ready = true
			pods[name] = p
		}
	}
	t.Fatal("reshard did not finish in 20 passes")
}

func TestLayoutGeneration(t *testing.T) {
	lease := func(topo, gen string) coordinationv1.Lease {
		return coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{
			shardkeeperv1.LabelTopology: topo, shardkeeperv1.LabelGeneration: gen}}}
	}
	tests := map[string]struct {
		pods   []observedPod
		leases []coordinationv1.Lease
		label  string
		want   int32
	}{
		"a new bot":                         {label: "2x1", want: 0},
		"the layout's pods run":             {pods: []observedPod{fakeGenPod(2, 0, "2x1", "r")}, label: "2x1", want: 2},
		"a terminating pod keeps its name":  {pods: []observedPod{fakeGenPod(1, 0, "2x1", "r", "terminating")}, label: "2x1", want: 1},
		"a reshard takes the next":          {pods: []observedPod{fakeGenPod(1, 0, "2x1", "r")}, label: "4x1", want: 2},
		"no pod, but the layout's Leases":   {leases: []coordinationv1.Lease{lease("2x1", "1")}, label: "2x1", want: 1},
		"no pod, Leases of another layout":  {leases: []coordinationv1.Lease{lease("2x1", "1")}, label: "4x1", want: 2},
		"Leases without labels are ignored": {leases: []coordinationv1.Lease{{}}, label: "4x1", want: 0},
	}
	for name, tc := range tests {
		byName := map[string]*coordinationv1.Lease{}
		for i := range tc.leases {
			byName[fmt.Sprint(i)] = &tc.leases[i]
		}
		if got := layoutGeneration(tc.pods, byName, tc.label); got != tc.want {
			t.Errorf("%s: generation %d, want %d", name, got, tc.want)
		}
	}
}

func TestSessionBudgetNeverHoldsAResume(t *testing.T) {
	bot := &shardkeeperv1.DiscordBot{Spec: shardkeeperv1.DiscordBotSpec{SessionStartReserve: 10}}
	bot.Status.Gateway = &shardkeeperv1.GatewayStatus{SessionStartLimit: shardkeeperv1.SessionStartLimit{Remaining: 3}}
	b := newSessionBudget(bot, 0)
	if !b.take(0) {
		t.Error("a restart that resumes was held below the reserve")
	}
	if b.take(1) || !b.low() || b.held != 1 {
		t.Errorf("an identify below the reserve: held %d, low %v", b.held, b.low())
	}

	bot.Status.Gateway.SessionStartLimit.Remaining = 12 // two above the reserve
	b = newSessionBudget(bot, 0)
	if !b.take(2) || b.take(1) {
		t.Error("the budget should allow exactly two identifies")
	}
	if b = newSessionBudget(bot, 2); b.take(1) {
		t.Error("identifies the operator already caused must count")
	}
}
