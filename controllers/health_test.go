package controllers

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
)

func TestJudgePod(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	base := podHealthInput{podSeen: t0, started: true, leaseDuration: 20 * time.Second, startupGrace: 3 * time.Minute}
	tests := map[string]struct {
		now         time.Time
		lastRenewal time.Time
		leaseExists bool
		wantStale   string
		wantRecheck time.Duration
		wantSuspect bool
		restarts    int
		blindUntil  time.Time
		notStarted  bool
	}{
		"never started (image pull, unschedulable): not restarted": {now: t0.Add(time.Hour), notStarted: true},
		"never started, Lease exists but never renewed":            {now: t0.Add(time.Hour), leaseExists: true, notStarted: true},
		"container restarted 3 times in the window": {now: t0.Add(time.Hour), lastRenewal: t0.Add(time.Hour - time.Second), leaseExists: true,
			restarts: 3, wantStale: shardkeeperv1.ReasonContainerRestarting},
		"new pod, no Lease yet: wait for the grace": {now: t0.Add(time.Minute), wantRecheck: 2 * time.Minute},
		"grace over, no Lease":                      {now: t0.Add(3*time.Minute + time.Second), wantStale: shardkeeperv1.ReasonLeaseNeverWritten},
		"grace over, Lease never renewed":           {now: t0.Add(4 * time.Minute), leaseExists: true, wantStale: shardkeeperv1.ReasonLeaseNeverWritten},
		"renewed 5 s ago: fine until the duration":  {now: t0.Add(time.Hour), lastRenewal: t0.Add(time.Hour - 5*time.Second), leaseExists: true, wantRecheck: 15 * time.Second},
		"renewal seen 21 s ago with 20 s duration":  {now: t0.Add(time.Hour), lastRenewal: t0.Add(time.Hour - 21*time.Second), leaseExists: true, wantStale: shardkeeperv1.ReasonLeaseStale},
		"exactly at expiry is not yet stale":        {now: t0.Add(20 * time.Second), lastRenewal: t0, leaseExists: true, wantSuspect: true},
		// The operator's watches failed until 5 s ago: it could not see renewals, so every
		// pod gets a fresh lease duration from then.
		"stale, but the watches just came back": {now: t0.Add(time.Hour), lastRenewal: t0.Add(time.Hour - 70*time.Second), leaseExists: true,
			blindUntil: t0.Add(time.Hour - 5*time.Second), wantRecheck: 15 * time.Second},
		"stale a lease duration after the watches came back": {now: t0.Add(time.Hour), lastRenewal: t0.Add(time.Hour - 90*time.Second), leaseExists: true,
			blindUntil: t0.Add(time.Hour - 21*time.Second), wantStale: shardkeeperv1.ReasonLeaseStale},
		"watches failed long ago: no effect": {now: t0.Add(time.Hour), lastRenewal: t0.Add(time.Hour - 21*time.Second), leaseExists: true,
			blindUntil: t0.Add(time.Minute), wantStale: shardkeeperv1.ReasonLeaseStale},
		"never renewed, grace over, watches just came back": {now: t0.Add(4 * time.Minute), leaseExists: true,
			blindUntil: t0.Add(4*time.Minute - 10*time.Second), wantRecheck: 10 * time.Second},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			in := base
			in.now, in.lastRenewal, in.leaseExists, in.containerRestarts, in.blindUntil = tc.now, tc.lastRenewal, tc.leaseExists, tc.restarts, tc.blindUntil
			in.started = !tc.notStarted
			v := judgePod(in)
			if v.reason != tc.wantStale || v.stale != (tc.wantStale != "") || v.recheck != tc.wantRecheck || v.suspect != tc.wantSuspect {
				t.Errorf("verdict %+v; want stale %q, recheck %s", v, tc.wantStale, tc.wantRecheck)
			}
		})
	}
}

func TestStormGuard(t *testing.T) {
	tests := []struct {
		unhealthy, total int
		hold             bool
	}{
		{1, 1, false},  // a single-pod bot is always restarted
		{1, 10, false}, // one broken pod
		{5, 10, false}, // half: still restarted
		{6, 10, true},  // most of the bot at once: an outage
		{2, 2, true},
	}
	for _, tc := range tests {
		if got := tooManyUnhealthy(tc.unhealthy, tc.total, DefaultMaxUnhealthyPercent); got != tc.hold {
			t.Errorf("%d of %d unhealthy: hold back = %v, want %v", tc.unhealthy, tc.total, got, tc.hold)
		}
	}
}

func TestDecideRestart(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	now := t0.Add(time.Hour)
	healthy := podHealthInput{now: now, podSeen: t0, lastRenewal: now.Add(-3 * time.Second), leaseExists: true,
		leaseDuration: 20 * time.Second, startupGrace: 3 * time.Minute, started: true}
	stale := healthy
	stale.lastRenewal = now.Add(-25 * time.Second)
	starting := healthy
	starting.podSeen, starting.lastRenewal, starting.leaseExists = now.Add(-time.Minute), time.Time{}, false
	// A restarted operator saw this pod first just now, though the pod is old and its
	// Lease's renewTime (the bot's clock) is ancient: a fresh grace, not a restart.
	operatorRestarted := healthy
	operatorRestarted.podSeen, operatorRestarted.lastRenewal = now, now
	minutesAgo := func(m ...int) []time.Time {
		var out []time.Time
		for _, v := range m {
			out = append(out, now.Add(-time.Duration(v)*time.Minute))
		}
		return out
	}
	tests := []struct {
		name        string
		in          restartInput
		wantRestart bool
		wantHold    string
		wantReason  string
		wantRecheck time.Duration
	}{
		{name: "fresh: look again when the Lease would expire", in: restartInput{health: healthy}, wantRecheck: 17 * time.Second},
		{name: "stale: restart", in: restartInput{health: stale}, wantRestart: true, wantReason: shardkeeperv1.ReasonLeaseStale},
		{name: "startup grace: wait for the first renewal", in: restartInput{health: starting}, wantRecheck: 2 * time.Minute},
		{name: "operator restart: fresh grace", in: restartInput{health: operatorRestarted}, wantRecheck: 20 * time.Second},
		{name: "budget left: restart", in: restartInput{health: stale, restarts: minutesAgo(9, 5)}, wantRestart: true, wantReason: shardkeeperv1.ReasonLeaseStale},
		{name: "budget exhausted: back off", in: restartInput{health: stale, restarts: minutesAgo(3, 2, 1, 0)},
			wantHold: holdBackoff, wantReason: shardkeeperv1.ReasonLeaseStale, wantRecheck: time.Minute},
		{name: "storm: hold back", in: restartInput{health: stale, storm: true},
			wantHold: holdStorm, wantReason: shardkeeperv1.ReasonLeaseStale, wantRecheck: 10 * time.Second},
		{name: "fatal reason: never restart", in: restartInput{health: stale, fatalReason: shardkeeperv1.ReasonTokenInvalid},
			wantHold: holdHalted, wantReason: shardkeeperv1.ReasonTokenInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := decideRestart(tc.in)
			if d.restart != tc.wantRestart || d.hold != tc.wantHold || d.reason != tc.wantReason || d.recheck != tc.wantRecheck {
				t.Errorf("decision %+v; want restart %v, hold %q, reason %q, recheck %s", d, tc.wantRestart, tc.wantHold, tc.wantReason, tc.wantRecheck)
			}
		})
	}
}

func TestRestartBudgetBacksOff(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	ago := func(d ...time.Duration) []time.Time {
		var out []time.Time
		for _, v := range d {
			out = append(out, now.Add(-v))
		}
		return out
	}
	tests := []struct {
		name     string
		restarts []time.Time
		ok       bool
		wait     time.Duration
	}{
		{"within the budget", ago(2*time.Minute, time.Minute), true, 0},
		{"budget used, 30 s passed since the last", ago(3*time.Minute, 2*time.Minute, time.Minute), true, 0},
		{"budget used, the last 10 s ago", ago(3*time.Minute, 2*time.Minute, 10*time.Second), false, 20 * time.Second},
		{"one over: waits double", ago(4*time.Minute, 3*time.Minute, 2*time.Minute, 10*time.Second), false, 50 * time.Second},
	}
	for _, tc := range tests {
		if ok, wait := budgetAllows(tc.restarts, now); ok != tc.ok || wait != tc.wait {
			t.Errorf("%s: allowed %v, wait %s; want %v, %s", tc.name, ok, wait, tc.ok, tc.wait)
		}
	}
}

func TestRestartHistoryForgetsOldRestarts(t *testing.T) {
	clock := clocktesting.NewFakePassiveClock(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC))
	tr := newLeaseTracker(clock)
	pod := types.NamespacedName{Namespace: "ns", Name: "bot-0"}
	tr.recordRestart(pod, clock.Now())
	if n := len(tr.restartHistory(pod, clock.Now().Add(time.Minute))); n != 1 {
		t.Errorf("%d restarts in the window, want 1", n)
	}
	if n := len(tr.restartHistory(pod, clock.Now().Add(restartWindow+time.Second))); n != 0 {
		t.Errorf("%d restarts after the window, want 0", n)
	}
}

func TestOperatorRestartGivesEveryLeaseAFreshGrace(t *testing.T) {
	clock := clocktesting.NewFakePassiveClock(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC))
	tr := newLeaseTracker(clock)
	// A new tracker (a restarted operator) first sees a pod now, whatever its age.
	if seen := tr.firstSeen(types.NamespacedName{Namespace: "ns", Name: "bot"}, "uid-1"); !seen.Equal(clock.Now()) {
		t.Errorf("first seen %s, want now", seen)
	}
	clock.SetTime(clock.Now().Add(time.Hour))
	if seen := tr.firstSeen(types.NamespacedName{Namespace: "ns", Name: "bot"}, "uid-1"); !seen.Equal(clock.Now().Add(-time.Hour)) {
		t.Errorf("first seen moved to %s", seen)
	}
}

func TestContainerRestartsCountOnlyWhatTheOperatorSaw(t *testing.T) {
	clock := clocktesting.NewFakePassiveClock(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC))
	tr := newLeaseTracker(clock)
	// 7 restarts before this operator saw the pod: a fresh grace, not a verdict.
	if n := tr.containerRestartsWithin(types.NamespacedName{Namespace: "ns", Name: "bot"}, "uid", 7, containerRestartWindow); n != 0 {
		t.Fatalf("counted %d old restarts", n)
	}
	clock.SetTime(clock.Now().Add(time.Minute))
	if n := tr.containerRestartsWithin(types.NamespacedName{Namespace: "ns", Name: "bot"}, "uid", 9, containerRestartWindow); n != 2 {
		t.Fatalf("2 new restarts counted as %d", n)
	}
	clock.SetTime(clock.Now().Add(containerRestartWindow))
	if n := tr.containerRestartsWithin(types.NamespacedName{Namespace: "ns", Name: "bot"}, "uid", 9, containerRestartWindow); n != 0 {
		t.Fatalf("restarts older than the window still count: %d", n)
	}
}

func TestStalePodsAreDeletedWithAShortGrace(t *testing.T) {
	tests := map[string]*int64{
		shardkeeperv1.ReasonLeaseStale:          ptr.To(staleGracePeriod),
		shardkeeperv1.ReasonLeaseNeverWritten:   ptr.To(staleGracePeriod),
		shardkeeperv1.ReasonContainerRestarting: nil, // a live container: its own grace
	}
	for reason, want := range tests {
		del := &client.DeleteOptions{}
		del.ApplyOptions(podDeleteOptions(reason, "uid-1"))
		if del.Preconditions == nil || *del.Preconditions.UID != "uid-1" {
			t.Errorf("%s: no UID precondition: %+v", reason, del)
		}
		if !reflect.DeepEqual(del.GracePeriodSeconds, want) {
			t.Errorf("%s: grace %v, want %v", reason, ptrString(del.GracePeriodSeconds), ptrString(want))
		}
	}
}

func ptrString(p *int64) string {
	if p == nil {
		return "<pod's own>"
	}
	return fmt.Sprint(*p)
}

// What the tracker keeps per pod UID goes with the pod: 10,000 replacements leave only
// the live pods' entries.
func TestTrackerForgetsReplacedPods(t *testing.T) {
	clock := clocktesting.NewFakePassiveClock(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC))
	tr := newLeaseTracker(clock)
	bot := types.NamespacedName{Namespace: "ns", Name: "bot"}
	other := types.NamespacedName{Namespace: "ns", Name: "other"}
	tr.firstSeen(other, "other-uid")
	tr.containerRestartsWithin(other, "other-uid", 0, containerRestartWindow)
	const pods = 4
	for i := range 10_000 {
		live := map[types.UID]bool{}
		for p := range pods {
			uid := types.UID(fmt.Sprintf("uid-%d-%d", p, i))
			live[uid] = true
			tr.firstSeen(bot, uid)
			tr.containerRestartsWithin(bot, uid, 1, containerRestartWindow)
		}
		tr.recordRestart(types.NamespacedName{Namespace: "ns", Name: fmt.Sprintf("bot-%d", i%pods)}, clock.Now())
		tr.keepPods(bot, live)
		clock.SetTime(clock.Now().Add(time.Second))
	}
	sizes := tr.sizes()
	if sizes["podSeen"] != pods+1 || sizes["containerRestarts"] != pods+1 {
		t.Errorf("after 10,000 replacements the tracker holds %v; want the %d live pods and the other bot's", sizes, pods)
	}
	if sizes["restarts"] > pods {
		t.Errorf("restart histories %d, want at most one per pod name", sizes["restarts"])
	}
	// A pod that never started has no podSeen entry, only its container restarts: pruned too.
	tr.containerRestartsWithin(bot, "never-started", 0, containerRestartWindow)
	tr.keepPods(bot, map[types.UID]bool{})
	if n := tr.sizes()["containerRestarts"]; n != 1 {
		t.Errorf("container restart histories %d after the bot's pods went, want the other bot's only", n)
	}
	// The bot goes: so does everything about it, and nothing of the other bot.
	tr.keepPods(bot, nil)
	if sizes := tr.sizes(); sizes["podSeen"] != 1 || sizes["containerRestarts"] != 1 || sizes["restarts"] != 0 {
		t.Errorf("after the bot was deleted the tracker holds %v", sizes)
	}
	// Restart histories past the window are dropped when read.
	tr.recordRestart(types.NamespacedName{Namespace: "ns", Name: "other-0"}, clock.Now())
	tr.restartHistory(types.NamespacedName{Namespace: "ns", Name: "other-0"}, clock.Now().Add(restartWindow+time.Second))
	if n := tr.sizes()["restarts"]; n != 0 {
		t.Errorf("%d restart histories kept after their window", n)
	}
}

// Bots of one or two pods go by the whole fleet: many pods lapsing together is an outage.
func TestFleetStormGuard(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	tr := newLeaseTracker(clocktesting.NewFakePassiveClock(now))
	bot := func(i int) types.NamespacedName {
		return types.NamespacedName{Namespace: "ns", Name: fmt.Sprintf("bot-%d", i)}
	}
	// Ten one-pod bots: two lapse, then six.
	for i := range 10 {
		tr.fleetStorm(bot(i), 1, 0, 50, now)
	}
	if storm, _, _ := tr.fleetStorm(bot(0), 1, 1, 50, now); storm {
		t.Error("one lapsed pod of ten is a storm")
	}
	if storm, _, _ := tr.fleetStorm(bot(1), 1, 1, 50, now); storm {
		t.Error("two lapsed pods of ten are a storm")
	}
	for i := 2; i < 6; i++ {
		tr.fleetStorm(bot(i), 1, 1, 50, now)
	}
	if storm, n, of := tr.fleetStorm(bot(6), 1, 1, 50, now); !storm || n != 7 || of != 10 {
		t.Errorf("seven of ten lapsed: storm %v, %d of %d", storm, n, of)
	}
	// Judgements older than fleetEntryMaxAge do not count.
	later := now.Add(fleetEntryMaxAge + time.Second)
	if storm, n, of := tr.fleetStorm(bot(7), 1, 1, 50, later); storm || n != 1 || of != 1 {
		t.Errorf("old judgements counted: storm %v, %d of %d", storm, n, of)
	}
	// One tenant's pods lapsing do not hold back everyone else's restarts: with eight of
	// twelve pods lapsing, all in one of three namespaces, it is not a storm; once a second
	// namespace is mostly lapsing too (two of three), it is.
	tenants := newLeaseTracker(clocktesting.NewFakePassiveClock(now))
	in := func(ns string, i int) types.NamespacedName {
		return types.NamespacedName{Namespace: ns, Name: fmt.Sprintf("bot-%d", i)}
	}
	for i := range 8 {
		tenants.fleetStorm(in("noisy", i), 1, 1, 50, now)
	}
	for i := range 2 {
		tenants.fleetStorm(in("quiet-a", i), 1, 0, 50, now)
	}
	tenants.fleetStorm(in("quiet-b", 0), 1, 0, 50, now)
	if storm, n, of := tenants.fleetStorm(in("quiet-b", 1), 1, 1, 50, now); storm {
		t.Errorf("one namespace's lapsing pods (%d of %d in all) hold back the others' restarts", n, of)
	}
	tenants.fleetStorm(in("quiet-a", 0), 1, 1, 50, now)
	if storm, n, of := tenants.fleetStorm(in("quiet-a", 1), 1, 1, 50, now); !storm || n != 11 || of != 12 {
		t.Errorf("two of three namespaces mostly lapsing: storm %v, %d of %d", storm, n, of)
	}
	// Two of two is not enough to call it an outage.
	tr2 := newLeaseTracker(clocktesting.NewFakePassiveClock(now))
	tr2.fleetStorm(bot(0), 1, 1, 50, now)
	if storm, _, _ := tr2.fleetStorm(bot(1), 1, 1, 50, now); storm {
		t.Error("two lapsed pods in all are a storm")
	}
}

func TestPodStarted(t *testing.T) {
	running := corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}
	pullError := corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff"}}
	crashLoop := corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}
	tests := map[string]struct {
		statuses []corev1.ContainerStatus
		want     bool
	}{
		"pending, no status":           {nil, false},
		"image pull back-off":          {[]corev1.ContainerStatus{{State: pullError}}, false},
		"running":                      {[]corev1.ContainerStatus{{State: running}}, true},
		"crash loop after a first run": {[]corev1.ContainerStatus{{State: crashLoop, RestartCount: 2}}, true},
	}
	for name, tc := range tests {
		pod := &corev1.Pod{Status: corev1.PodStatus{ContainerStatuses: tc.statuses}}
		if strings.HasPrefix(name, "phase Running") {
			pod.Status.Phase = corev1.PodRunning
		}
		if got := podStarted(pod); got != tc.want {
			t.Errorf("%s: started %v, want %v", name, got, tc.want)
		}
	}
}

func TestLeaseStopReport(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "bot-0", UID: "uid-now"}}
	lease := func(writer string) *coordinationv1.Lease {
		return &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "bot-0",
			Annotations: map[string]string{shardkeeperv1.AnnotationPodUID: writer}}}
	}
	intents := shardkeeperv1.LeaseShardState{ID: 1, State: "Failed", FatalReason: shardkeeperv1.ReasonIntentsDisallowed, FatalMessage: "enable the intent"}
	tests := map[string]struct {
		lease  *coordinationv1.Lease
		states []shardkeeperv1.LeaseShardState
		want   *shardkeeperv1.StopReport
	}{
		"the pod's own report": {lease: lease("uid-now"), states: []shardkeeperv1.LeaseShardState{{ID: 0, State: "Ready"}, intents},
			want: &shardkeeperv1.StopReport{Reason: shardkeeperv1.ReasonIntentsDisallowed, Message: "enable the intent"}},
		"an earlier pod's report":      {lease: lease("uid-before"), states: []shardkeeperv1.LeaseShardState{intents}},
		"a Lease that names no writer": {lease: &coordinationv1.Lease{}, states: []shardkeeperv1.LeaseShardState{intents}},
		"no shard stopped":             {lease: lease("uid-now"), states: []shardkeeperv1.LeaseShardState{{ID: 0, State: "Ready"}}},
		"a reason that is not fatal": {lease: lease("uid-now"), states: []shardkeeperv1.LeaseShardState{
			{ID: 0, FatalReason: shardkeeperv1.ReasonPodReplaced}, {ID: 1, FatalReason: "not a reason"}}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			if got := leaseStopReport(tt.lease, tt.states, pod); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// A pod that is gone when its restart comes, or was replaced by a newer pod of its name,
// was not restarted by the operator: no event, no restart in the status, none of its
// restart budget spent. (All three were recorded as if the operator had restarted it.)
func TestARestartOfAPodAlreadyGoneIsNoRestart(t *testing.T) {
	podGone := apierrors.NewNotFound(schema.GroupResource{Resource: "pods"}, "bot-0")
	podReplaced := apierrors.NewConflict(schema.GroupResource{Resource: "pods"}, "bot-0", errors.New("Precondition failed: UID in precondition: uid-0, UID in object meta: uid-1"))
	tests := map[string]struct {
		deleteErr    error
		wantRestarts int64
	}{
		"deleted":  {wantRestarts: 1},
		"gone":     {deleteErr: podGone},
		"replaced": {deleteErr: podReplaced},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			clock := clocktesting.NewFakePassiveClock(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC))
			bot := &shardkeeperv1.DiscordBot{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "bot"},
				Spec: shardkeeperv1.DiscordBotSpec{Health: shardkeeperv1.HealthSpec{Mode: shardkeeperv1.HealthModeLease, LeaseDurationSeconds: 20}}}
			pod := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "bot-0", UID: "uid-0",
					Labels: map[string]string{shardkeeperv1.LabelShardGroup: "0", shardkeeperv1.LabelTopology: "1x1"}},
				Status: corev1.PodStatus{Phase: corev1.PodRunning},
			}
			c := fake.NewClientBuilder().WithObjects(pod.DeepCopy()).WithInterceptorFuncs(interceptor.Funcs{
				Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
					if tt.deleteErr != nil {
						return tt.deleteErr
					}
					return c.Delete(ctx, obj, opts...)
				},
			}).Build()
			recorder := events.NewFakeRecorder(10)
			r := &DiscordBotReconciler{Client: c, APIReader: c, Recorder: recorder, leases: newLeaseTracker(clock)}
			r.leases.firstSeen(client.ObjectKeyFromObject(bot), pod.UID)

			// The pod never wrote its Lease within its startup grace.
			s := &scope{bot: bot, now: clock.Now().Add(DefaultStartupGrace + time.Second), pods: []observedPod{observePod(pod)},
				leases: map[string]*coordinationv1.Lease{}}
			if _, err := r.judgeHealth(ctx, s); err != nil {
				t.Fatal(err)
			}
			restarted := tt.wantRestarts > 0
			if s.newRestarts != tt.wantRestarts {
				t.Errorf("%d restarts counted, want %d", s.newRestarts, tt.wantRestarts)
			}
			if got := len(r.leases.restartHistory(client.ObjectKeyFromObject(pod), s.now)); got != int(tt.wantRestarts) {
				t.Errorf("%d restarts of the budget spent, want %d", got, tt.wantRestarts)
			}
			if (s.health.lastRestartReason == shardkeeperv1.ReasonLeaseNeverWritten) != restarted {
				t.Errorf("last restart reason %q", s.health.lastRestartReason)
			}
			if got := len(recorder.Events); (got == 1) != restarted || got > 1 {
				t.Errorf("%d events", got)
			} else if restarted {
				if ev := <-recorder.Events; !strings.HasPrefix(ev, "Warning LeaseNeverWritten restarted pod bot-0: ") {
					t.Errorf("event %q", ev)
				}
			}
			if !s.pods[0].terminating {
				t.Error("the rollout may act on the pod again in this pass")
			}
		})
	}
}
