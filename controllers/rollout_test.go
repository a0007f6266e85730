package controllers

import (
	"fmt"
	"slices"
	"testing"

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
		}
	}
	return p
}

// describe renders a plan's actions as "create 0", "delete bot-1 (PodReplaced)".
func describe(plan rolloutPlan) []string {
	var out []string
	for _, a := range plan.actions {
		if a.kind == createPod {
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
			in: rolloutInput{topo: three, revision: "r1", stop: &stopReason{event: eventSuspended, message: "spec.suspend is true"}, tokenAvailable: true, pods: []observedPod{
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
			name: "shard layout changed: old groups go first, nothing new yet",
			in: rolloutInput{topo: topology{shards: 4, shardsPerPod: 2}, revision: "r1", tokenAvailable: true, pods: []observedPod{
				fakePod(0, "3x1", "r1", "ready"), fakePod(1, "3x1", "r1", "ready"), fakePod(2, "3x1", "r1", "terminating"),
			}},
			want:         []string{"delete bot-0 (ShardGroupsChanged)", "delete bot-1 (ShardGroupsChanged)"},
			wantProgress: shardkeeperv1.ReasonReshardingPods,
		},
		{
			name: "old layout still terminating: no overlap of old and new shard groups",
			in: rolloutInput{topo: topology{shards: 4, shardsPerPod: 2}, revision: "r1", tokenAvailable: true, pods: []observedPod{
				fakePod(2, "3x1", "r1", "terminating"),
			}},
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
