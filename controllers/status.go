package controllers

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
	"github.com/shardkeeper/shardkeeper/internal/excerpt"
)

// startupGrace is how long a new pod may stay not ready before it counts as a problem.
// A big bot's shards identify one bucket per 5 s, so this is generous.
const startupGrace = 5 * time.Minute

// waitingReasonsThatFail are the kubelet's container waiting reasons that will not fix
// themselves; status.problems quotes them as the kubelet says them.
var waitingReasonsThatFail = []string{
	"CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "InvalidImageName",
	"CreateContainerConfigError", "CreateContainerError", "RunContainerError",
}

// podProblem judges one pod: ok is false when something is wrong with it. recheck is how
// long until a pod that is fine now (a starting pod) would become a problem.
func podProblem(p observedPod, now time.Time) (reason, message string, ok bool, recheck time.Duration) {
	if p.ready || p.terminating {
		return "", "", true, 0
	}
	if p.failed {
		return shardkeeperv1.ReasonPodFailed, fmt.Sprintf("pod %s: %s", p.pod.Status.Phase, p.pod.Status.Message), false, 0
	}
	for _, cs := range containerStatuses(p.pod) {
		// The bot says why it stopped for good (invalid token, disallowed intents...):
		// that reason beats the kubelet's CrashLoopBackOff.
		if report, ok := fatalBotReason(cs); ok {
			return report.Reason, report.Message, false, 0
		}
		if w := cs.State.Waiting; w != nil && slices.Contains(waitingReasonsThatFail, w.Reason) {
			return w.Reason, fmt.Sprintf("container %s: %s", cs.Name, w.Message), false, 0
		}
	}
	for _, c := range p.pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			return shardkeeperv1.ReasonUnschedulable, c.Message, false, 0
		}
	}
	age := now.Sub(p.pod.CreationTimestamp.Time)
	if age < startupGrace {
		return "", "", true, startupGrace - age
	}
	return shardkeeperv1.ReasonNotReady, fmt.Sprintf("not ready %s after creation", age.Round(time.Second)), false, 0
}

// fatalBotReason reads a fatal reason from the bot container's termination message, as
// the bot writes it when no shard can run.
func fatalBotReason(cs corev1.ContainerStatus) (shardkeeperv1.StopReport, bool) {
	for _, t := range []*corev1.ContainerStateTerminated{cs.State.Terminated, cs.LastTerminationState.Terminated} {
		if t == nil || t.ExitCode == 0 {
			continue
		}
		if report, ok := shardkeeperv1.ParseTerminationMessage(t.Message); ok && report.Fatal() {
			return report, true
		}
	}
	return shardkeeperv1.StopReport{}, false
}

// botObservation is everything the status is computed from.
type botObservation struct {
	topo       topology
	generation int32
	revision   string
	image      string
	suspended  bool
	// tokenProblem is why the token cannot be used ("" when it can).
	tokenProblem string
	// endpointProblem is why spec.gateway may not have the token ("" when it may).
	endpointProblem string
	// layoutProblem is why the shard layout is not known yet ("" when it is), and
	// layoutReason the condition reason for it (GatewayInfoUnavailable when empty).
	layoutProblem string
	layoutReason  string
	// budget is the session start breaker of this pass.
	budget sessionBudget
	pods   []observedPod
	plan   rolloutPlan
	now    time.Time
	health healthObservation
	// proxy: the bot runs the gateway proxy; the status counts connected clients.
	proxy bool
}

// healthObservation is what the heartbeat Leases said in this pass.
type healthObservation struct {
	staleShards       int32
	maxLatencyMillis  int64
	remediation       string
	lastRestartReason string
}

// computeStatus fills the status from an observation and returns when to look again for
// time-based changes (a starting pod that would turn into a problem), 0 for never.
// Counters that carry history (restarts) are left to the caller.
func computeStatus(bot *shardkeeperv1.DiscordBot, obs botObservation) time.Duration {
	st := &bot.Status
	st.ObservedGeneration = bot.Generation
	st.Shards = obs.topo.shards
	st.Image = obs.image
	st.Revision = obs.revision
	st.Pods, st.ReadyPods, st.UpdatedPods, st.ReadyShards = 0, 0, 0, 0
	st.Problems, st.ProblemCount = nil, 0
	st.ClientsConnected = nil
	if obs.proxy {
		st.ClientsConnected = new(int32)
	}

	var recheck time.Duration
	starting := 0
	old := map[string]*oldLayout{} // by topology label, during a reshard
	for _, p := range obs.pods {
		if p.terminating {
			continue
		}
		st.Pods++
		current := p.topology == obs.topo.label() && p.generation == obs.generation && p.group >= 0 && p.group < obs.topo.groups()
		if !current {
			o := old[p.topology]
			if o == nil {
				o = &oldLayout{label: p.topology}
				o.topo, _ = topologyFromLabel(p.topology)
				old[p.topology] = o
			}
			o.pods++
			if p.ready {
				o.readyShards += int32(len(shardIDsOf(p, topology{})))
			}
		}
		if p.revision == obs.revision && current {
			st.UpdatedPods++
		}
		if p.ready {
			st.ReadyPods++
			if current {
				first, last := obs.topo.shardRange(p.group)
				st.ReadyShards += last - first + 1
			}
		}
		if p.clientReady && current && st.ClientsConnected != nil {
			first, last := obs.topo.shardRange(p.group)
			*st.ClientsConnected += last - first + 1
		}
		reason, message, ok, after := podProblem(p, obs.now)
		if report := p.leaseReport; report != nil {
			// A shard stopped for good and said why on its Lease.
			reason, message, ok = report.Reason, report.Message, false
		}
		if ok {
			if after > 0 {
				starting++
				recheck = minPositive(recheck, after)
			}
			continue
		}
		st.ProblemCount++
		if len(st.Problems) < shardkeeperv1.MaxReportedProblems {
			shards := "?"
			if topo, ok := topologyFromLabel(p.topology); ok && p.group >= 0 && p.group < topo.groups() {
				shards = topo.describeShards(p.group)
			}
			st.Problems = append(st.Problems, shardkeeperv1.ShardGroupProblem{
				Pod: p.pod.Name, Shards: shards, Reason: reason, Message: truncate(message, 256),
			})
		}
	}
	// A halted shard group whose pod is gone is still a problem: its shards are down.
	present := map[string]bool{}
	for _, p := range st.Problems {
		present[p.Pod] = true
	}
	for _, h := range currentHalts(bot, obs.generation) {
		if present[h.Pod] {
			continue
		}
		st.ProblemCount++
		if len(st.Problems) < shardkeeperv1.MaxReportedProblems {
			shards := "?"
			for g := range obs.topo.groups() {
				if podName(bot.Name, obs.generation, g) == h.Pod {
					shards = obs.topo.describeShards(g)
				}
			}
			st.Problems = append(st.Problems, shardkeeperv1.ShardGroupProblem{
				Pod: h.Pod, Shards: shards, Reason: h.Reason, Message: truncate("halted: "+h.Message, 256),
			})
		}
	}
	slices.SortFunc(st.Problems, func(a, b shardkeeperv1.ShardGroupProblem) int {
		return compareNatural(a.Pod, b.Pod)
	})
	st.ShardsSummary = fmt.Sprintf("%d/%d", st.ReadyShards, st.Shards)
	st.StaleShards = obs.health.staleShards
	st.MaxHeartbeatLatencyMillis = obs.health.maxLatencyMillis
	if obs.health.lastRestartReason != "" {
		st.LastRestartReason = obs.health.lastRestartReason
	}

	serving := reshardingStatus(bot, obs, old)
	setConditions(bot, obs, starting, serving)
	st.Phase = phaseOf(bot, obs)
	return recheck
}

// oldLayout is what runs of a shard layout being replaced.
type oldLayout struct {
	label       string
	topo        topology
	pods        int32
	readyShards int32
}

// reshardingStatus fills status.resharding and returns the old layout that still serves
// every one of its shards, if one does: the bot is fully connected through it.
func reshardingStatus(bot *shardkeeperv1.DiscordBot, obs botObservation, old map[string]*oldLayout) *oldLayout {
	st := &bot.Status
	if len(old) == 0 || obs.layoutProblem != "" {
		st.Resharding = nil
		return nil
	}
	var from, serving *oldLayout
	var oldPods int32
	for _, label := range slices.Sorted(maps.Keys(old)) {
		o := old[label]
		oldPods += o.pods
		if from == nil || o.pods > from.pods {
			from = o
		}
		if o.topo.shards > 0 && o.readyShards == o.topo.shards {
			serving = o
		}
	}
	since := metav1.NewTime(obs.now)
	if prev := st.Resharding; prev != nil && prev.ToShards == obs.topo.shards {
		since = prev.Since
	}
	st.Resharding = &shardkeeperv1.ReshardingStatus{
		FromShards: from.topo.shards, ToShards: obs.topo.shards, ReadyShards: st.ReadyShards, OldPods: oldPods, Since: since,
	}
	return serving
}

func setConditions(bot *shardkeeperv1.DiscordBot, obs botObservation, starting int, serving *oldLayout) {
	st := &bot.Status
	set := func(typ string, status metav1.ConditionStatus, reason, message string) {
		// Messages quote servers and pods: bounded well below the API's 32 KiB, or a
		// status patch would fail on every pass.
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{
			Type: typ, Status: status, Reason: reason, Message: truncate(message, maxConditionMessage), ObservedGeneration: bot.Generation,
		})
	}

	halt := bot.Status.Halted
	halts := currentHalts(bot, obs.generation)
	switch {
	case obs.suspended:
		set(shardkeeperv1.ConditionReady, metav1.ConditionFalse, shardkeeperv1.ReasonSuspended, "spec.suspend is true: no bot pods run")
		set(shardkeeperv1.ConditionProgressing, metav1.ConditionFalse, shardkeeperv1.ReasonSuspended, "spec.suspend is true")
	case halt != nil:
		who := "pod " + halt.Pod + " reported"
		if halt.Pod == "" {
			who = "Discord said"
		}
		msg := fmt.Sprintf("%s: %s. The bot's pods are stopped; fix it and change the spec or the token Secret to start again", who, halt.Message)
		set(shardkeeperv1.ConditionReady, metav1.ConditionFalse, halt.Reason, msg)
		set(shardkeeperv1.ConditionProgressing, metav1.ConditionFalse, halt.Reason, "halted: restarts cannot fix "+halt.Reason)
	case obs.endpointProblem != "":
		set(shardkeeperv1.ConditionReady, metav1.ConditionFalse, shardkeeperv1.ReasonUntrustedEndpoint, obs.endpointProblem)
		set(shardkeeperv1.ConditionProgressing, metav1.ConditionFalse, shardkeeperv1.ReasonUntrustedEndpoint,
			"no pod is started and Discord is not asked until spec.gateway names trusted hosts")
	case obs.tokenProblem != "":
		set(shardkeeperv1.ConditionReady, metav1.ConditionFalse, shardkeeperv1.ReasonTokenSecretMissing, obs.tokenProblem)
		set(shardkeeperv1.ConditionProgressing, metav1.ConditionFalse, shardkeeperv1.ReasonTokenSecretMissing, "waiting for the token Secret")
	case obs.layoutProblem != "":
		reason := cmp.Or(obs.layoutReason, shardkeeperv1.ReasonGatewayInfoUnavailable)
		set(shardkeeperv1.ConditionReady, metav1.ConditionFalse, reason, obs.layoutProblem)
		set(shardkeeperv1.ConditionProgressing, metav1.ConditionFalse, reason, "waiting for Discord's recommended shard count")
	case len(halts) > 0:
		h := halts[0]
		msg := fmt.Sprintf("%d of %d shards are ready; the shard group of pod %s is halted: %s", st.ReadyShards, st.Shards, h.Pod, h.Message)
		if n := len(halts); n > 1 {
			msg += fmt.Sprintf(" (and %d more shard groups)", n-1)
		}
		set(shardkeeperv1.ConditionReady, metav1.ConditionFalse, h.Reason, msg+". The other shard groups keep running; fix it and change the spec or the token Secret to start it again")
		set(shardkeeperv1.ConditionProgressing, metav1.ConditionFalse, h.Reason, "halted shard groups: restarts cannot fix "+h.Reason)
	default:
		if st.ReadyShards == st.Shards && st.UpdatedPods == obs.topo.groups() {
			set(shardkeeperv1.ConditionReady, metav1.ConditionTrue, shardkeeperv1.ReasonAllShardsReady,
				fmt.Sprintf("all %d shards are ready", st.Shards))
		} else if serving != nil {
			set(shardkeeperv1.ConditionReady, metav1.ConditionTrue, shardkeeperv1.ReasonOldLayoutServing,
				fmt.Sprintf("all %d shards of the old layout %s are ready while %d of %d shards of layout %s are",
					serving.topo.shards, serving.label, st.ReadyShards, st.Shards, obs.topo.label()))
		} else {
			set(shardkeeperv1.ConditionReady, metav1.ConditionFalse, shardkeeperv1.ReasonShardsNotReady,
				fmt.Sprintf("%d of %d shards are ready", st.ReadyShards, st.Shards))
		}
		switch {
		case obs.plan.progress != "":
			set(shardkeeperv1.ConditionProgressing, metav1.ConditionTrue, obs.plan.progress, obs.plan.message)
		case starting > 0:
			set(shardkeeperv1.ConditionProgressing, metav1.ConditionTrue, shardkeeperv1.ReasonPodsStarting,
				fmt.Sprintf("waiting for %d starting pods to become ready", starting))
		default:
			set(shardkeeperv1.ConditionProgressing, metav1.ConditionFalse, shardkeeperv1.ReasonRolloutComplete,
				fmt.Sprintf("all %d pods run revision %s", obs.topo.groups(), obs.revision))
		}
	}

	switch r := st.Resharding; {
	case obs.layoutProblem != "":
		meta.RemoveStatusCondition(&st.Conditions, shardkeeperv1.ConditionResharding)
	case r == nil:
		set(shardkeeperv1.ConditionResharding, metav1.ConditionFalse, shardkeeperv1.ReasonLayoutSettled,
			fmt.Sprintf("all pods run shard layout %s", obs.topo.label()))
	case st.ReadyShards < st.Shards:
		set(shardkeeperv1.ConditionResharding, metav1.ConditionTrue, shardkeeperv1.ReasonStartingNewShards,
			fmt.Sprintf("resharding from %d to %d shards: %d of %d new shards ready; %d old pods serve meanwhile",
				r.FromShards, r.ToShards, st.ReadyShards, st.Shards, r.OldPods))
	default:
		set(shardkeeperv1.ConditionResharding, metav1.ConditionTrue, shardkeeperv1.ReasonStoppingOldShards,
			fmt.Sprintf("resharding from %d to %d shards: every new shard is ready; stopping %d old pods", r.FromShards, r.ToShards, r.OldPods))
	}

	switch {
	case obs.budget.low():
		set(shardkeeperv1.ConditionSessionStartLimitLow, metav1.ConditionTrue, shardkeeperv1.ReasonSessionStartsLow, sessionBudgetMessage(obs.budget))
	case obs.budget.known:
		set(shardkeeperv1.ConditionSessionStartLimitLow, metav1.ConditionFalse, shardkeeperv1.ReasonSessionStartsAvailable,
			fmt.Sprintf("Discord allows %d more session starts; %d are kept in reserve", obs.budget.remaining, obs.budget.reserve))
	default:
		meta.RemoveStatusCondition(&st.Conditions, shardkeeperv1.ConditionSessionStartLimitLow)
	}

	if obs.health.remediation != "" {
		set(shardkeeperv1.ConditionRemediationRestricted, metav1.ConditionTrue, shardkeeperv1.ReasonTooManyUnhealthy, obs.health.remediation)
	} else {
		set(shardkeeperv1.ConditionRemediationRestricted, metav1.ConditionFalse, shardkeeperv1.ReasonRestartsAllowed, "stale pods are restarted within their budgets")
	}

	if halt != nil && !obs.suspended {
		set(shardkeeperv1.ConditionDegraded, metav1.ConditionTrue, halt.Reason, halt.Message)
	} else if len(halts) > 0 && !obs.suspended {
		h := halts[0]
		set(shardkeeperv1.ConditionDegraded, metav1.ConditionTrue, h.Reason, fmt.Sprintf("pod %s: %s", h.Pod, h.Message))
	} else if st.ProblemCount > 0 && !obs.suspended {
		first := st.Problems[0]
		msg := fmt.Sprintf("pod %s (shards %s): %s", first.Pod, first.Shards, first.Reason)
		if st.ProblemCount > 1 {
			msg += fmt.Sprintf(", and %d more pods with problems", st.ProblemCount-1)
		}
		set(shardkeeperv1.ConditionDegraded, metav1.ConditionTrue, shardkeeperv1.ReasonPodsFailing, msg)
	} else {
		set(shardkeeperv1.ConditionDegraded, metav1.ConditionFalse, shardkeeperv1.ReasonAsExpected, "no pod has a problem")
	}
}

// currentHalts are the halted shard groups of the current layout (those of a layout being
// replaced only keep it from starting them again).
func currentHalts(bot *shardkeeperv1.DiscordBot, generation int32) []shardkeeperv1.BotHalt {
	var out []shardkeeperv1.BotHalt
	for _, h := range bot.Status.HaltedPods {
		if g, _, ok := parsePodName(bot.Name, h.Pod); ok && g == generation {
			out = append(out, h)
		}
	}
	return out
}

func phaseOf(bot *shardkeeperv1.DiscordBot, obs botObservation) shardkeeperv1.BotPhase {
	switch {
	case obs.suspended:
		return shardkeeperv1.PhaseSuspended
	case bot.Status.Halted != nil:
		return shardkeeperv1.PhaseFailed
	case obs.tokenProblem != "" || obs.endpointProblem != "" || obs.layoutProblem != "":
		return shardkeeperv1.PhasePending
	case bot.Status.Resharding != nil:
		return shardkeeperv1.PhaseUpdating
	case meta.IsStatusConditionTrue(bot.Status.Conditions, shardkeeperv1.ConditionReady):
		return shardkeeperv1.PhaseRunning
	case meta.IsStatusConditionTrue(bot.Status.Conditions, shardkeeperv1.ConditionDegraded):
		return shardkeeperv1.PhaseDegraded
	case obs.plan.progress == shardkeeperv1.ReasonRollingUpdate || obs.plan.progress == shardkeeperv1.ReasonReshardingPods:
		return shardkeeperv1.PhaseUpdating
	default:
		return shardkeeperv1.PhaseStarting
	}
}

func minPositive(a, b time.Duration) time.Duration {
	if a <= 0 || (b > 0 && b < a) {
		return b
	}
	return a
}

// Bounds on text the operator writes from what servers and pods said.
const (
	maxConditionMessage = 2048
	maxEventNote        = 1024
)

// truncate shortens s to at most n bytes, cut on a rune boundary.
func truncate(s string, n int) string { return excerpt.Cut(s, n) }

// compareNatural orders pod names so that bot-2 comes before bot-10.
func compareNatural(a, b string) int {
	if len(a) != len(b) {
		return len(a) - len(b)
	}
	if a < b {
		return -1
	}
	if a > b {
		return 1
	}
	return 0
}
