package controllers

import (
	"fmt"
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
)

// observedPod is what the rollout needs to know about one existing bot pod.
type observedPod struct {
	pod        *corev1.Pod
	group      int32 // -1 when the pod's group label is missing or garbage
	generation int32 // the layout generation; 0 without a label (pods of older operators)
	revision   string
	topology   string
	ready      bool
	running    bool // the container holding the sessions runs (a halted group's pod may still serve its other shards)
	// clientReady: with the gateway proxy, the bot container is ready (its process is
	// connected to the proxy on every shard).
	clientReady bool
	terminating bool
	failed      bool // phase Failed or Succeeded: restartPolicy Always will not bring it back
	// leaseReport is the reason a shard of the pod stopped for good, as the pod wrote it on
	// its heartbeat Lease (observeLeases, in Lease health mode); nil when it wrote none.
	leaseReport *shardkeeperv1.StopReport
}

func observePod(pod *corev1.Pod) observedPod {
	o := observedPod{
		pod:         pod,
		group:       -1,
		revision:    pod.Labels[shardkeeperv1.LabelRevision],
		topology:    pod.Labels[shardkeeperv1.LabelTopology],
		terminating: pod.DeletionTimestamp != nil,
		failed:      pod.Status.Phase == corev1.PodFailed || pod.Status.Phase == corev1.PodSucceeded,
	}
	if g, err := strconv.ParseInt(pod.Labels[shardkeeperv1.LabelShardGroup], 10, 32); err == nil && g >= 0 {
		o.group = int32(g)
	}
	if g, err := strconv.ParseInt(pod.Labels[shardkeeperv1.LabelGeneration], 10, 32); err == nil && g >= 0 {
		o.generation = int32(g)
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			o.ready = c.Status == corev1.ConditionTrue
		}
	}
	if cs, ok := sessionContainerStatus(pod); ok {
		o.running = cs.State.Running != nil
	}
	if hasProxy(pod) {
		for _, cs := range pod.Status.ContainerStatuses {
			if cs.Name == botContainerName {
				o.clientReady = cs.Ready
			}
		}
	}
	return o
}

// hasProxy says whether the pod runs the gateway proxy sidecar.
func hasProxy(pod *corev1.Pod) bool {
	return slices.ContainsFunc(pod.Spec.InitContainers, func(c corev1.Container) bool { return c.Name == proxyContainerName })
}

// containerStatuses are all of a pod's container statuses, the proxy sidecar's (an init
// container's) included.
func containerStatuses(pod *corev1.Pod) []corev1.ContainerStatus {
	return slices.Concat(pod.Status.InitContainerStatuses, pod.Status.ContainerStatuses)
}

// sessionContainerStatus is the status of the container that holds the pod's Discord
// sessions and renews its Lease: the proxy when the pod has one, the bot container
// otherwise.
func sessionContainerStatus(pod *corev1.Pod) (corev1.ContainerStatus, bool) {
	name, statuses := botContainerName, pod.Status.ContainerStatuses
	if hasProxy(pod) {
		name, statuses = proxyContainerName, pod.Status.InitContainerStatuses
	}
	for _, cs := range statuses {
		if cs.Name == name {
			return cs, true
		}
	}
	return corev1.ContainerStatus{}, false
}

// podContainers are the pod's containers, the proxy sidecar included.
func podContainers(pod *corev1.Pod) []corev1.Container {
	return slices.Concat(pod.Spec.InitContainers, pod.Spec.Containers)
}

type actionKind int

const (
	createPod actionKind = iota
	deletePod
)

// layoutRef names a shard layout and its generation.
type layoutRef struct {
	topo       topology
	generation int32
}

// podAction is one step the reconciler takes; reason and message go into the event.
type podAction struct {
	kind  actionKind
	group int32
	// layout, when set, is an old layout whose pod is created again (during a reshard);
	// otherwise the pod is of the current layout.
	layout  *layoutRef
	pod     *corev1.Pod // the pod to delete
	reason  string
	message string
	restart bool // a replacement after a failure, counted in status.restarts
}

// rolloutInput is everything the rollout decision depends on.
type rolloutInput struct {
	topo       topology
	generation int32 // of the layout's pods (layoutGeneration)
	revision   string
	// stop, when set, says why no pod may run (suspended, halted): every pod is deleted.
	stop           *stopReason
	tokenAvailable bool
	pods           []observedPod
	// stopped are halted shard groups, of any layout, that must not run (status.haltedPods
	// with podStopped): not created, their pod deleted.
	stopped map[groupKey]bool
}

// stopReason is why a bot runs no pods, for the deletion events.
type stopReason struct{ event, message string }

// stopOf says why the bot must run no pods, or nil.
func stopOf(bot *shardkeeperv1.DiscordBot) *stopReason {
	switch {
	case bot.Spec.Suspend:
		return &stopReason{event: shardkeeperv1.ReasonSuspended, message: "spec.suspend is true"}
	case bot.Status.Halted != nil:
		return &stopReason{event: shardkeeperv1.ReasonHalted, message: fmt.Sprintf("%s: %s; restarts cannot fix this, the bot starts again when its spec or token Secret changes",
			bot.Status.Halted.Reason, bot.Status.Halted.Message)}
	}
	return nil
}

// rolloutPlan is the decision: what to do now and why the bot is (or is not) progressing.
type rolloutPlan struct {
	actions []podAction
	// progress is the Progressing condition's reason, "" when the rollout is complete.
	progress string
	message  string
}

// planRollout decides which pods to create and delete. It is pure: the same input always
// gives the same plan. The rules:
//   - suspended: delete every pod;
//   - no token: touch nothing (running pods keep their mounted token; new ones could not start);
//   - a new shard layout (shards or shardsPerPod changed) starts as a new generation of pods
//     beside the old layout's, which keep serving their guilds; once every new shard group
//     has a ready pod, the old pods are deleted. Discord allows both sessions at once;
//   - failed pods are deleted (and recreated on a later pass);
//   - missing groups are created;
//   - outdated pods are replaced one at a time, and only while every other pod is ready and
//     no reshard is going on. Outdated pods that are not ready are unavailable anyway and
//     are replaced at once;
//   - a stopped shard group (halted, its process exited for it) is left out: not created,
//     not waited for, its pod deleted; in the current layout and in an old one.
func planRollout(in rolloutInput) rolloutPlan {
	var plan rolloutPlan
	if in.stop != nil {
		for _, p := range in.pods {
			if !p.terminating {
				plan.actions = append(plan.actions, deleteAction(p, in.stop.event, in.stop.message))
			}
		}
		return plan
	}
	if !in.tokenAvailable {
		return plan
	}

	groups := in.topo.groups()
	byGroup := make(map[int32]observedPod, len(in.pods))
	var old []observedPod
	for _, p := range in.pods {
		if p.topology != in.topo.label() || p.generation != in.generation {
			if !p.terminating {
				old = append(old, p)
			}
			continue
		}
		switch {
		case p.terminating:
			if p.group >= 0 {
				byGroup[p.group] = p // its name is taken until it is gone
			}
		case p.group < 0 || p.group >= groups:
			plan.actions = append(plan.actions, deleteAction(p, shardkeeperv1.ReasonOrphanPodDeleted, "pod belongs to no shard group"))
		case in.stopped[groupKey{p.generation, p.group}]:
			plan.actions = append(plan.actions, stoppedGroupAction(p))
			byGroup[p.group] = p
		case p.failed:
			a := deleteAction(p, shardkeeperv1.ReasonPodFailed, fmt.Sprintf("pod %s, recreating it", p.pod.Status.Phase))
			a.restart = true
			plan.actions = append(plan.actions, a)
			byGroup[p.group] = p
		default:
			byGroup[p.group] = p
		}
	}

	missing := 0
	for g := range groups {
		if _, ok := byGroup[g]; !ok && !in.stopped[groupKey{in.generation, g}] {
			missing++
			plan.actions = append(plan.actions, podAction{kind: createPod, group: g, reason: shardkeeperv1.ReasonPodCreated,
				message: fmt.Sprintf("shards %s", in.topo.describeShards(g))})
		}
	}

	var outdatedReady []observedPod
	outdated, readyGroups, settled := 0, int32(0), missing == 0
	for _, g := range sortedGroups(byGroup) {
		p := byGroup[g]
		if in.stopped[groupKey{in.generation, g}] {
			continue // not expected to be ready, and not replaced
		}
		if p.terminating || p.failed || !p.ready {
			settled = false
		} else {
			readyGroups++
		}
		if p.terminating || p.failed || p.revision == in.revision {
			continue
		}
		outdated++
		if p.ready {
			outdatedReady = append(outdatedReady, p)
			continue
		}
		plan.actions = append(plan.actions, deleteAction(p, shardkeeperv1.ReasonPodReplaced,
			fmt.Sprintf("replacing not-ready pod of revision %s with revision %s", orUnknown(p.revision), in.revision)))
	}

	if len(old) > 0 {
		// A reshard: the old layout serves until the new one is ready, then goes at once.
		// Until then, a pod of the newest old layout that is lost is created again, so its
		// guilds are not left without a shard while the new layout starts.
		if prev, ok := newestOldLayout(old); ok && !settled {
			present := map[int32]bool{}
			for _, p := range in.pods {
				if p.topology == prev.topo.label() && p.generation == prev.generation && !p.failed {
					present[p.group] = true
				}
			}
			for g := range prev.topo.groups() {
				if !present[g] && !in.stopped[groupKey{prev.generation, g}] {
					plan.actions = append(plan.actions, podAction{kind: createPod, group: g, layout: &prev, reason: shardkeeperv1.ReasonPodCreated,
						message: fmt.Sprintf("shards %s of the old layout %s, serving until layout %s is ready", prev.topo.describeShards(g), prev.topo.label(), in.topo.label())})
				}
			}
		}
		for _, p := range old {
			switch {
			case in.stopped[groupKey{p.generation, p.group}]:
				plan.actions = append(plan.actions, stoppedGroupAction(p))
			case settled:
				plan.actions = append(plan.actions, deleteAction(p, shardkeeperv1.ReasonShardGroupsChanged,
					fmt.Sprintf("every shard of the new layout %s is ready; stopping the old layout %s", in.topo.label(), orUnknown(p.topology))))
			case p.failed:
				plan.actions = append(plan.actions, deleteAction(p, shardkeeperv1.ReasonPodFailed,
					fmt.Sprintf("pod of the old layout %s: %s", orUnknown(p.topology), p.pod.Status.Phase)))
			}
		}
		plan.progress = shardkeeperv1.ReasonReshardingPods
		if settled {
			plan.message = fmt.Sprintf("all %d pods of layout %s are ready; stopping %d pods of the old layout", groups, in.topo.label(), len(old))
		} else {
			plan.message = fmt.Sprintf("starting layout %s beside the old one: %d of %d new pods ready, %d old pods serving meanwhile",
				in.topo.label(), readyGroups, groups, len(old))
		}
		return plan
	}

	if settled && len(outdatedReady) > 0 {
		p := outdatedReady[0]
		plan.actions = append(plan.actions, deleteAction(p, shardkeeperv1.ReasonPodReplaced,
			fmt.Sprintf("rolling from revision %s to %s, one pod at a time", orUnknown(p.revision), in.revision)))
	}

	switch {
	case outdated > 0:
		plan.progress = shardkeeperv1.ReasonRollingUpdate
		plan.message = fmt.Sprintf("%d of %d pods still run an older revision; replacing them one at a time", outdated, groups)
	case missing > 0:
		plan.progress = shardkeeperv1.ReasonCreatingPods
		plan.message = fmt.Sprintf("creating %d of %d pods", missing, groups)
	}
	return plan
}

// newestOldLayout is the layout of the old pods with the highest generation: the one that
// served before the current layout.
func newestOldLayout(old []observedPod) (layoutRef, bool) {
	var best layoutRef
	found := false
	for _, p := range old {
		topo, ok := topologyFromLabel(p.topology)
		if !ok || (found && p.generation <= best.generation) {
			continue
		}
		best, found = layoutRef{topo: topo, generation: p.generation}, true
	}
	return best, found
}

// stoppedGroupAction deletes the pod of a stopped shard group.
func stoppedGroupAction(p observedPod) podAction {
	return deleteAction(p, shardkeeperv1.ReasonHalted,
		"every shard of it stopped for good and its shard group is halted (status.haltedPods); it is not started again until the spec or the token Secret changes")
}

func deleteAction(p observedPod, reason, message string) podAction {
	return podAction{kind: deletePod, group: p.group, pod: p.pod, reason: reason, message: message}
}

func sortedGroups(m map[int32]observedPod) []int32 {
	keys := make([]int32, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func orUnknown(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}
