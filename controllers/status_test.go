package controllers

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clocktesting "k8s.io/utils/clock/testing"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
)

func TestPodProblem(t *testing.T) {
	clock := clocktesting.NewFakePassiveClock(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC))
	created := func(ago time.Duration) metav1.Time { return metav1.NewTime(clock.Now().Add(-ago)) }
	withPod := func(ago time.Duration, mutate func(*corev1.Pod)) observedPod {
		p := fakePod(0, "1x1", "r")
		p.pod.CreationTimestamp = created(ago)
		if mutate != nil {
			mutate(p.pod)
		}
		return p
	}
	tests := map[string]struct {
		pod         observedPod
		wantOK      bool
		wantReason  string
		wantRecheck time.Duration
	}{
		"ready pod":           {pod: fakePod(0, "1x1", "r", "ready"), wantOK: true},
		"young starting pod":  {pod: withPod(time.Minute, nil), wantOK: true, wantRecheck: 4 * time.Minute},
		"pod never got ready": {pod: withPod(6*time.Minute, nil), wantReason: "NotReady"},
		"crash looping": {pod: withPod(time.Minute, func(p *corev1.Pod) {
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "bot",
				State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}}}
		}), wantReason: "CrashLoopBackOff"},
		"image cannot be pulled": {pod: withPod(time.Minute, func(p *corev1.Pod) {
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "bot",
				State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff"}}}}
		}), wantReason: "ImagePullBackOff"},
		"unschedulable": {pod: withPod(time.Minute, func(p *corev1.Pod) {
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse,
				Reason: corev1.PodReasonUnschedulable, Message: "0/3 nodes are available"}}
		}), wantReason: "Unschedulable"},
		"bot stopped for good: its own reason beats CrashLoopBackOff": {pod: withPod(time.Minute, func(p *corev1.Pod) {
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "bot",
				State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
				LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
					ExitCode: 10, Message: "TokenInvalid: Discord rejected the bot token (close 4004 authentication failed)"}}}}
		}), wantReason: shardkeeperv1.ReasonTokenInvalid},
		"a crash message that is not ours is not trusted as a reason": {pod: withPod(time.Minute, func(p *corev1.Pod) {
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "bot",
				State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
				LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
					ExitCode: 2, Message: "panic: runtime error: index out of range"}}}}
		}), wantReason: "CrashLoopBackOff"},
		"container creating is not a problem": {pod: withPod(time.Minute, func(p *corev1.Pod) {
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "bot",
				State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}}}
		}), wantOK: true, wantRecheck: 4 * time.Minute},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			reason, _, ok, recheck := podProblem(tc.pod, clock.Now())
			if ok != tc.wantOK || reason != tc.wantReason || recheck != tc.wantRecheck {
				t.Errorf("got ok=%v reason=%q recheck=%s, want ok=%v reason=%q recheck=%s",
					ok, reason, recheck, tc.wantOK, tc.wantReason, tc.wantRecheck)
			}
		})
	}
}

func TestStatusStaysSmallAtTenThousandShards(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	topo := topology{shards: 10000, shardsPerPod: 1}
	var pods []observedPod
	for g := range topo.groups() {
		state := "ready"
		if g%3 == 0 {
			state = "crash"
		}
		p := fakePod(g, topo.label(), "r1", state)
		if state == "crash" {
			p.pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "bot",
				State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: "back-off"}}}}
		}
		pods = append(pods, p)
	}
	bot := &shardkeeperv1.DiscordBot{}
	computeStatus(bot, botObservation{topo: topo, revision: "r1", image: "img", pods: pods, now: now})

	st := bot.Status
	if st.Shards != 10000 || st.ReadyShards != 6666 || st.ShardsSummary != "6666/10000" {
		t.Errorf("shards %d, ready %d, summary %q", st.Shards, st.ReadyShards, st.ShardsSummary)
	}
	if st.ProblemCount != 3334 || len(st.Problems) != shardkeeperv1.MaxReportedProblems {
		t.Errorf("problemCount %d, %d problems listed", st.ProblemCount, len(st.Problems))
	}
	if st.Problems[0].Pod != "bot-0" || st.Problems[1].Pod != "bot-3" {
		t.Errorf("problems not in shard order: %s, %s", st.Problems[0].Pod, st.Problems[1].Pod)
	}
	raw, _ := json.Marshal(st)
	if len(raw) > 8*1024 {
		t.Errorf("status is %d bytes at 10,000 shards; want it bounded under 8 KiB", len(raw))
	}
	degraded := meta.FindStatusCondition(st.Conditions, shardkeeperv1.ConditionDegraded)
	if degraded.Status != metav1.ConditionTrue || degraded.Message != "pod bot-0 (shards 0): CrashLoopBackOff, and 3333 more pods with problems" {
		t.Errorf("Degraded = %s %q", degraded.Status, degraded.Message)
	}
	if st.Phase != shardkeeperv1.PhaseDegraded {
		t.Errorf("phase = %s, want Degraded", st.Phase)
	}
}

func TestPhase(t *testing.T) {
	topo := topology{shards: 2, shardsPerPod: 1}
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	young := func(g int32, rev string, state ...string) observedPod {
		p := fakePod(g, "2x1", rev, state...)
		p.pod.CreationTimestamp = metav1.NewTime(now.Add(-time.Second))
		return p
	}
	tests := []struct {
		name string
		obs  botObservation
		want shardkeeperv1.BotPhase
	}{
		{"suspended", botObservation{suspended: true}, shardkeeperv1.PhaseSuspended},
		{"no token", botObservation{tokenProblem: "Secret x/y does not exist"}, shardkeeperv1.PhasePending},
		{"starting", botObservation{pods: []observedPod{young(0, "r1"), young(1, "r1")}}, shardkeeperv1.PhaseStarting},
		{"running", botObservation{pods: []observedPod{young(0, "r1", "ready"), young(1, "r1", "ready")}}, shardkeeperv1.PhaseRunning},
		{"updating", botObservation{pods: []observedPod{young(0, "r2"), young(1, "r1", "ready")},
			plan: rolloutPlan{progress: shardkeeperv1.ReasonRollingUpdate}}, shardkeeperv1.PhaseUpdating},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.obs.topo, tc.obs.revision, tc.obs.now = topo, "r1", now
			bot := &shardkeeperv1.DiscordBot{}
			computeStatus(bot, tc.obs)
			if bot.Status.Phase != tc.want {
				t.Errorf("phase = %s, want %s (conditions %s)", bot.Status.Phase, tc.want, fmt.Sprint(bot.Status.Conditions))
			}
		})
	}
}

func TestNamespaceTerminatingIsFoundInJoinedErrors(t *testing.T) {
	terminating := &apierrors.StatusError{ErrStatus: metav1.Status{
		Status: metav1.StatusFailure, Code: 403, Reason: metav1.StatusReasonForbidden,
		Message: `leases.coordination.k8s.io "demo-bot-0" is forbidden: unable to create new content in namespace demo because it is being terminated`,
		Details: &metav1.StatusDetails{Causes: []metav1.StatusCause{{Type: corev1.NamespaceTerminatingCause, Message: "demo"}}},
	}}
	conflict := apierrors.NewConflict(schema.GroupResource{Group: "shardkeeper.dev", Resource: "discordbots"}, "demo-bot", errors.New("modified"))
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"alone", terminating, true},
		{"wrapped", fmt.Errorf("creating Lease demo-bot-0: %w", terminating), true},
		{"joined after a conflict", errors.Join(conflict, fmt.Errorf("creating Lease: %w", terminating)), true},
		{"a conflict", conflict, false},
		{"forbidden for another reason", apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "p", errors.New("no")), false},
		{"nil", nil, false},
	} {
		if got := namespaceTerminating(tc.err); got != tc.want {
			t.Errorf("%s: namespaceTerminating = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestFatalBotReason(t *testing.T) {
	terminated := func(code int32, message string) corev1.ContainerStatus {
		return corev1.ContainerStatus{LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code, Message: message}}}
	}
	tests := map[string]struct {
		status    corev1.ContainerStatus
		wantFatal bool
	}{
		"an invalid token halts": {status: terminated(10, "TokenInvalid: Discord rejected the bot token"), wantFatal: true},
		// A replaced pod's process stops because its replacement runs: nothing to halt.
		"a replaced pod does not": {status: terminated(3, shardkeeperv1.ReasonPodReplaced+": another pod of the same name took over")},
		"a clean exit does not":   {status: terminated(0, "TokenInvalid: stale message")},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			if _, fatal := fatalBotReason(tt.status); fatal != tt.wantFatal {
				t.Errorf("fatal %v, want %v", fatal, tt.wantFatal)
			}
		})
	}
}
