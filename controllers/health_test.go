package controllers

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
)

func TestJudgePod(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	base := podHealthInput{podSeen: t0, leaseDuration: 20 * time.Second, startupGrace: 3 * time.Minute}
	tests := map[string]struct {
		now         time.Time
		lastRenewal time.Time
		leaseExists bool
		wantStale   string
		wantRecheck time.Duration
		wantSuspect bool
		restarts    int
	}{
		"container restarted 3 times in the window": {now: t0.Add(time.Hour), lastRenewal: t0.Add(time.Hour - time.Second), leaseExists: true,
			restarts: 3, wantStale: shardkeeperv1.ReasonContainerRestarting},
		"new pod, no Lease yet: wait for the grace": {now: t0.Add(time.Minute), wantRecheck: 2 * time.Minute},
		"grace over, no Lease":                      {now: t0.Add(3*time.Minute + time.Second), wantStale: shardkeeperv1.ReasonLeaseNeverWritten},
		"grace over, Lease never renewed":           {now: t0.Add(4 * time.Minute), leaseExists: true, wantStale: shardkeeperv1.ReasonLeaseNeverWritten},
		"renewed 5 s ago: fine until the duration":  {now: t0.Add(time.Hour), lastRenewal: t0.Add(time.Hour - 5*time.Second), leaseExists: true, wantRecheck: 15 * time.Second},
		"renewal seen 21 s ago with 20 s duration":  {now: t0.Add(time.Hour), lastRenewal: t0.Add(time.Hour - 21*time.Second), leaseExists: true, wantStale: shardkeeperv1.ReasonLeaseStale},
		"exactly at expiry is not yet stale":        {now: t0.Add(20 * time.Second), lastRenewal: t0, leaseExists: true, wantSuspect: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			in := base
			in.now, in.lastRenewal, in.leaseExists, in.containerRestarts = tc.now, tc.lastRenewal, tc.leaseExists, tc.restarts
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

func TestRestartBudgetBacksOff(t *testing.T) {
	clock := clocktesting.NewFakePassiveClock(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC))
	tr := newLeaseTracker(clock)
	pod := types.NamespacedName{Namespace: "ns", Name: "bot-0"}
	for i := range restartBudget {
		if ok, _ := tr.restartAllowed(pod, clock.Now()); !ok {
			t.Fatalf("restart %d refused within the budget", i+1)
		}
		tr.recordRestart(pod, clock.Now())
		clock.SetTime(clock.Now().Add(time.Minute))
	}
	// Three restarts a minute apart used the budget; the fourth waits 30 s after the third,
	// which has passed.
	if ok, wait := tr.restartAllowed(pod, clock.Now()); !ok {
		t.Fatalf("fourth restart refused (wait %s)", wait)
	}
	tr.recordRestart(pod, clock.Now())
	// The fifth waits 60 s after the fourth.
	if ok, wait := tr.restartAllowed(pod, clock.Now().Add(10*time.Second)); ok || wait != 50*time.Second {
		t.Errorf("fifth restart 10 s after the fourth: allowed %v, wait %s; want a 50 s wait", ok, wait)
	}
	if ok, _ := tr.restartAllowed(pod, clock.Now().Add(restartWindow+time.Second)); !ok {
		t.Error("still refused after the window passed")
	}
}

func TestOperatorRestartGivesEveryLeaseAFreshGrace(t *testing.T) {
	clock := clocktesting.NewFakePassiveClock(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC))
	tr := newLeaseTracker(clock)
	// A new tracker (a restarted operator) first sees a pod now, whatever its age.
	if seen := tr.firstSeen("uid-1"); !seen.Equal(clock.Now()) {
		t.Errorf("first seen %s, want now", seen)
	}
	clock.SetTime(clock.Now().Add(time.Hour))
	if seen := tr.firstSeen("uid-1"); !seen.Equal(clock.Now().Add(-time.Hour)) {
		t.Errorf("first seen moved to %s", seen)
	}
}

func TestContainerRestartsCountOnlyWhatTheOperatorSaw(t *testing.T) {
	clock := clocktesting.NewFakePassiveClock(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC))
	tr := newLeaseTracker(clock)
	// 7 restarts before this operator saw the pod: a fresh grace, not a verdict.
	if n := tr.containerRestartsWithin("uid", 7, containerRestartWindow); n != 0 {
		t.Fatalf("counted %d old restarts", n)
	}
	clock.SetTime(clock.Now().Add(time.Minute))
	if n := tr.containerRestartsWithin("uid", 9, containerRestartWindow); n != 2 {
		t.Fatalf("2 new restarts counted as %d", n)
	}
	clock.SetTime(clock.Now().Add(containerRestartWindow))
	if n := tr.containerRestartsWithin("uid", 9, containerRestartWindow); n != 0 {
		t.Fatalf("restarts older than the window still count: %d", n)
	}
}
