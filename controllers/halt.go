package controllers

import (
	"context"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
)

// reconcileHalt stops a bot whose pods report a reason restarts cannot fix (an invalid
// token, disallowed intents, sharding required...), instead of letting them crash-loop
// and spend Discord's session starts, and lifts the stop when the spec or the token Secret
// changes: the two things that can fix it.
func (r *DiscordBotReconciler) reconcileHalt(ctx context.Context, s *scope) error {
	bot := s.bot
	if h := bot.Status.Halted; h != nil {
		if h.Generation != bot.Generation || (s.secretVersion != "" && h.SecretResourceVersion != s.secretVersion) {
			logf.FromContext(ctx).Info("spec or token Secret changed; starting the halted bot again", "reason", h.Reason)
			r.event(bot, nil, corev1.EventTypeNormal, "Resumed", "Start",
				"the spec or the token Secret changed since the bot stopped (%s); starting it again", h.Reason)
			bot.Status.Halted = nil
		}
		return nil
	}
	if bot.Spec.Suspend || s.tokenProblem != "" {
		return nil
	}
	pod, reason, message, found := fatalReport(s)
	if !found {
		return nil
	}
	bot.Status.Halted = &shardkeeperv1.BotHalt{
		Reason: reason, Message: message, Pod: pod, Generation: bot.Generation,
		SecretResourceVersion: s.secretVersion, Since: metav1.NewTime(s.now),
	}
	logf.FromContext(ctx).Info("halting the bot: a pod reported a reason restarts cannot fix", "pod", pod, "reason", reason, "detail", message)
	r.event(bot, nil, corev1.EventTypeWarning, reason, "Halt",
		"pod %s: %s; stopping the bot's pods until its spec or token Secret changes", pod, message)
	return nil
}

// fatalReport finds the first pod (in name order) that reported a fatal reason, on its
// Lease or in its container's termination message.
func fatalReport(s *scope) (pod, reason, message string, found bool) {
	var names []string
	byName := map[string]observedPod{}
	for _, p := range s.pods {
		if !p.terminating {
			names = append(names, p.pod.Name)
			byName[p.pod.Name] = p
		}
	}
	slices.SortFunc(names, compareNatural)
	for _, name := range names {
		if fatal := s.leaseFatal[name]; fatal != "" {
			reason, message, _ := strings.Cut(fatal, ": ")
			return name, reason, message, true
		}
		for _, cs := range byName[name].pod.Status.ContainerStatuses {
			if reason, message, ok := fatalBotReason(cs); ok {
				return name, reason, message, true
			}
		}
	}
	return "", "", "", false
}
