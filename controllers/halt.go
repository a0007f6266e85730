package controllers

import (
	"context"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
)

// reconcileHalt stops a bot whose pods report a reason restarts cannot fix (an invalid
// token, disallowed intents, sharding required...), instead of letting them crash-loop
// and spend Discord's session starts, and lifts the stop when the spec or the token Secret
// changes: the two things that can fix it.
func (r *DiscordBotReconciler) reconcileHalt(ctx context.Context, s *scope) (ctrl.Result, error) {
	bot := s.bot
	if h := bot.Status.Halted; h != nil {
		if h.Generation != bot.Generation || (s.secretVersion != "" && h.SecretResourceVersion != s.secretVersion) {
			logf.FromContext(ctx).Info("spec or token Secret changed; starting the halted bot again", "reason", h.Reason)
			r.event(bot, nil, corev1.EventTypeNormal, shardkeeperv1.ReasonResumed, "Start",
				"the spec or the token Secret changed since the bot stopped (%s); starting it again", h.Reason)
			bot.Status.Halted = nil
		}
		return ctrl.Result{}, nil
	}
	if bot.Spec.Suspend || s.tokenProblem != "" {
		return ctrl.Result{}, nil
	}
	var halt *fatalPodReport
	shardingRequired := false
	for _, f := range fatalReports(s) {
		if f.report.Reason == shardkeeperv1.ReasonShardingRequired {
			shardingRequired = true
			if msg, reshard := r.shardingRequired(s, f); reshard {
				continue
			} else if msg != "" {
				f.report.Message = msg
			}
			// Too many guilds on one shard: only that shard group is halted while the
			// others serve their guilds (reconcileGroupHalts, once the layout is known).
			// Only a bot of one group stops whole.
			if layoutOf(f.observed, s.topo).groups() > 1 && f.observed.group >= 0 {
				s.groupHaltReports = append(s.groupHaltReports, f)
				continue
			}
		}
		halt = &f
		break
	}
	if !shardingRequired {
		r.gateway.clearShardingRequired(client.ObjectKeyFromObject(bot))
	}
	if halt == nil {
		return ctrl.Result{}, nil
	}
	bot.Status.Halted = &shardkeeperv1.BotHalt{
		Reason: halt.report.Reason, Message: truncate(halt.report.Message, maxHaltMessage), Pod: halt.pod, Generation: bot.Generation,
		SecretResourceVersion: s.secretVersion, Since: metav1.NewTime(s.now),
	}
	logf.FromContext(ctx).Info("halting the bot: a pod reported a reason restarts cannot fix", "pod", halt.pod, "reason", halt.report.Reason, "detail", halt.report.Message)
	r.event(bot, nil, corev1.EventTypeWarning, halt.report.Reason, "Halt",
		"pod %s: %s; stopping the bot's pods until its spec or token Secret changes", halt.pod, halt.report.Message)
	return ctrl.Result{}, nil
}

// maxHaltMessage bounds what a pod's report puts in status.halted and haltedPods: a bot
// writes what it likes on its Lease, and a status too big to save fails every pass.
const maxHaltMessage = 1024

// reconcileGroupHalts keeps status.haltedPods, the shard groups halted on their own
// (ShardingRequired in a bot of several groups), once the layout is known:
//   - a change of the spec or the token Secret lifts the current layout's halts; those of
//     an older layout stay while it runs (a reshard must not start a group again that can
//     only fail), and go with it;
//   - a new report halts its group, with one event;
//   - a halted group's pod whose process exited because every shard of it stopped for
//     good is marked stopped: it is deleted and not created again. A pod still running
//     its other shards keeps running, and one lost for another reason (eviction, OOM) is
//     created again: its other shards are worth the one session start its failing shard
//     costs.
func (r *DiscordBotReconciler) reconcileGroupHalts(ctx context.Context, s *scope) (ctrl.Result, error) {
	bot := s.bot
	s.stoppedGroups = nil
	if bot.Status.Halted != nil || bot.Spec.Suspend || s.layoutProblem != "" {
		return ctrl.Result{}, nil
	}
	generations := map[int32]bool{s.builder.generation: true} // layouts with pods
	for _, p := range s.pods {
		if !p.terminating {
			generations[p.generation] = true
		}
	}
	changed := func(h shardkeeperv1.BotHalt) bool {
		return h.Generation != bot.Generation || (s.secretVersion != "" && h.SecretResourceVersion != s.secretVersion)
	}
	bot.Status.HaltedPods = slices.DeleteFunc(bot.Status.HaltedPods, func(h shardkeeperv1.BotHalt) bool {
		generation, group, ok := parsePodName(bot.Name, h.Pod)
		switch {
		case !ok || !generations[generation]:
			return true // its layout is gone
		case generation == s.builder.generation && group >= s.topo.groups():
			return true
		case generation == s.builder.generation && changed(h):
			logf.FromContext(ctx).Info("spec or token Secret changed; starting the halted shard group again", "pod", h.Pod, "reason", h.Reason)
			r.event(bot, nil, corev1.EventTypeNormal, shardkeeperv1.ReasonResumed, "Start",
				"the spec or the token Secret changed since pod %s's shard group stopped (%s); starting it again", h.Pod, h.Reason)
			return true
		}
		return false
	})
	for _, f := range s.groupHaltReports {
		r.haltGroup(ctx, s, f)
	}
	byName := map[string]observedPod{}
	for _, p := range s.pods {
		byName[p.pod.Name] = p
	}
	for i := range bot.Status.HaltedPods {
		h := &bot.Status.HaltedPods[i]
		if p, ok := byName[h.Pod]; ok && !h.PodStopped && !p.terminating && !p.running && exitedForGood(p) {
			h.PodStopped = true
		}
		if h.PodStopped {
			generation, group, _ := parsePodName(bot.Name, h.Pod)
			if s.stoppedGroups == nil {
				s.stoppedGroups = map[groupKey]bool{}
			}
			s.stoppedGroups[groupKey{generation, group}] = true
		}
	}
	if len(bot.Status.HaltedPods) == 0 {
		bot.Status.HaltedPods = nil
	}
	return ctrl.Result{}, nil
}

// exitedForGood says whether the pod's bot process exited because every shard of it
// stopped for a reason restarts cannot fix (botruntime's termination message).
func exitedForGood(p observedPod) bool {
	for _, cs := range containerStatuses(p.pod) {
		if _, ok := fatalBotReason(cs); ok {
			return true
		}
	}
	return false
}

// haltGroup halts one shard group (status.haltedPods), once.
func (r *DiscordBotReconciler) haltGroup(ctx context.Context, s *scope, f fatalPodReport) {
	bot := s.bot
	for _, h := range bot.Status.HaltedPods {
		if h.Pod == f.pod {
			return
		}
	}
	topo := layoutOf(f.observed, s.topo)
	message := f.report.Message
	if !s.ofCurrentLayout(f.observed) {
		message = "a pod of the layout being replaced: " + message
	}
	bot.Status.HaltedPods = append(bot.Status.HaltedPods, shardkeeperv1.BotHalt{
		Reason: f.report.Reason, Message: truncate(message, maxHaltMessage), Pod: f.pod, Generation: bot.Generation,
		SecretResourceVersion: s.secretVersion, Since: metav1.NewTime(s.now),
	})
	slices.SortFunc(bot.Status.HaltedPods, func(a, b shardkeeperv1.BotHalt) int { return compareNatural(a.Pod, b.Pod) })
	shards := topo.describeShards(f.observed.group)
	logf.FromContext(ctx).Info("halting a shard group: its pod reported a reason restarts cannot fix", "pod", f.pod, "shards", shards,
		"reason", f.report.Reason, "detail", f.report.Message)
	r.event(bot, nil, corev1.EventTypeWarning, f.report.Reason, "Halt",
		"pod %s (shards %s): %s; this shard group is halted until the spec or token Secret changes, the other %d keep running",
		f.pod, shards, truncate(message, maxHaltMessage), topo.groups()-1)
}

// groupKey names a shard group of a layout: layouts are told apart by their generation.
type groupKey struct{ generation, group int32 }

// ofCurrentLayout says whether a pod belongs to the layout the bot runs now.
func (s *scope) ofCurrentLayout(p observedPod) bool {
	return p.topology == s.topo.label() && p.generation == s.builder.generation && p.group >= 0 && p.group < s.topo.groups()
}

// shardingRequired handles a pod told 4011 (too few shards for the bot's guilds). With
// shards: auto it is a reason to reshard, not to halt: the operator asks Discord again and
// follows its new recommendation (reshard is true while that is under way). A fixed shard
// count, or a fresh answer that recommends no more shards than the pod ran, halts the bot
// with a message saying what to set.
func (r *DiscordBotReconciler) shardingRequired(s *scope, f fatalPodReport) (message string, reshard bool) {
	bot := s.bot
	key := client.ObjectKeyFromObject(bot)
	ran := layoutOf(f.observed, s.topo).shards
	g := bot.Status.Gateway
	if bot.Spec.Shards.Type != intstr.String {
		if g != nil && g.RecommendedShards > ran {
			return fmt.Sprintf("%s; Discord recommends %d shards: set spec.shards to %d or to \"auto\"", f.report.Message, g.RecommendedShards, g.RecommendedShards), false
		}
		return fmt.Sprintf("%s; set spec.shards higher or to \"auto\"", f.report.Message), false
	}
	if g != nil && g.RecommendedShards > ran {
		return "", true // the layout already follows the new recommendation
	}
	since := r.gateway.noteShardingRequired(key, s.now)
	if answer := r.gateway.answer(key); answer.inFlight || answer.at.Before(since) {
		s.shardingRequired = true // ask Discord again before anything else
		return "", true
	}
	return fmt.Sprintf("%s, but Discord still recommends %d shards when asked after it", f.report.Message, ran), false
}

// fatalPodReport is one pod's report of a reason restarts cannot fix.
type fatalPodReport struct {
	pod      string
	report   shardkeeperv1.StopReport
	observed observedPod
}

// fatalReports lists the pods (in name order) that reported a fatal reason, on their
// Lease or in their container's termination message.
func fatalReports(s *scope) []fatalPodReport {
	var names []string
	byName := map[string]observedPod{}
	for _, p := range s.pods {
		if !p.terminating {
			names = append(names, p.pod.Name)
			byName[p.pod.Name] = p
		}
	}
	slices.SortFunc(names, compareNatural)
	var out []fatalPodReport
	for _, name := range names {
		p := byName[name]
		if p.leaseReport != nil {
			out = append(out, fatalPodReport{pod: name, report: *p.leaseReport, observed: p})
			continue
		}
		for _, cs := range containerStatuses(p.pod) {
			if report, ok := fatalBotReason(cs); ok {
				out = append(out, fatalPodReport{pod: name, report: report, observed: p})
				break
			}
		}
	}
	return out
}
