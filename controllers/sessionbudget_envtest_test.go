package controllers

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
	"github.com/shardkeeper/shardkeeper/internal/discordtest"
)

func TestSessionStartBreakerHoldsIdentifiesUntilTheReset(t *testing.T) {
	envtestOnly(t)
	g := NewWithT(t)
	ctx := context.Background()
	fake := discordtest.NewServer(discordtest.Options{Token: testToken, SessionStartTotal: 1000})
	defer fake.Close()
	fake.SetSessionStartLimit(5, 4*time.Second) // exactly the reserve is left

	ns := newNamespace(t)
	secret := createTokenSecret(t, ns, "thrifty-token", "token")
	bot := newBot(ns, "thrifty", 3, 1)
	bot.Spec.SessionStartReserve = 5
	bot.Spec.Gateway = &shardkeeperv1.GatewaySpec{APIURL: fake.APIURL()}
	bot.Spec.Health = shardkeeperv1.HealthSpec{Mode: shardkeeperv1.HealthModeLease, LeaseDurationSeconds: 10}
	g.Expect(k8s.Create(ctx, bot)).To(Succeed())

	// New pods would identify: none is created while only the reserve is left.
	g.Eventually(func(g Gomega) {
		b := getBot(g, ns, "thrifty")
		g.Expect(b.Status.Gateway).NotTo(BeNil())
		g.Expect(b.Status.Gateway.SessionStartLimit.Remaining).To(Equal(int32(5)))
		low := meta.FindStatusCondition(b.Status.Conditions, shardkeeperv1.ConditionSessionStartLimitLow)
		g.Expect(low).NotTo(BeNil())
		g.Expect(low.Status).To(Equal(metav1.ConditionTrue))
		g.Expect(low.Message).To(ContainSubstring("3 restarts or new pods that would identify are held"))
	}, wait, tick).Should(Succeed())
	g.Expect(botPods(g, ns, "thrifty")).To(BeEmpty())
	g.Expect(eventReasons(g, ns, "thrifty")).To(ContainElement(shardkeeperv1.ReasonSessionStartsLow))

	// Discord's reset refills the budget: the operator asks again and lifts the hold.
	g.Eventually(func(g Gomega) {
		b := getBot(g, ns, "thrifty")
		g.Expect(b.Status.Gateway.SessionStartLimit.Remaining).To(BeNumerically(">", 900))
		g.Expect(meta.IsStatusConditionFalse(b.Status.Conditions, shardkeeperv1.ConditionSessionStartLimitLow)).To(BeTrue())
		g.Expect(botPods(g, ns, "thrifty")).To(HaveLen(3))
	}, 20*time.Second, tick).Should(Succeed())
	beats := startHeartbeats(t, ns, "thrifty", "thrifty-0", "thrifty-1", "thrifty-2")
	pods := botPods(g, ns, "thrifty")

	// The budget runs low again; the operator learns it when the token Secret changes.
	fake.SetSessionStartLimit(5, 18*time.Second)
	lowered := time.Now()
	metav1.SetMetaDataLabel(&secret.ObjectMeta, "touched", "yes")
	g.Expect(k8s.Update(ctx, secret)).To(Succeed())
	g.Eventually(func(g Gomega) int32 {
		return getBot(g, ns, "thrifty").Status.Gateway.SessionStartLimit.Remaining
	}, wait, tick).Should(Equal(int32(5)))

	// A pod whose Lease goes stale with no resume state would identify: its restart is held.
	beats.stop("thrifty-1")
	g.Eventually(func(g Gomega) {
		b := getBot(g, ns, "thrifty")
		g.Expect(b.Status.StaleShards).To(Equal(int32(1)))
		g.Expect(meta.FindStatusCondition(b.Status.Conditions, shardkeeperv1.ConditionSessionStartLimitLow).Message).
			To(ContainSubstring("1 restarts or new pods that would identify are held"))
	}, 20*time.Second, tick).Should(Succeed())
	if time.Since(lowered) < 16*time.Second {
		g.Expect(botPods(g, ns, "thrifty")["thrifty-1"].UID).To(Equal(pods["thrifty-1"].UID), "a restart that would identify was not held")
	}

	// After the reset it goes ahead.
	g.Eventually(func(g Gomega) {
		now := botPods(g, ns, "thrifty")
		g.Expect(now).To(HaveKey("thrifty-1"))
		g.Expect(now["thrifty-1"].UID).NotTo(Equal(pods["thrifty-1"].UID))
		g.Expect(getBot(g, ns, "thrifty").Status.LastRestartReason).To(Equal(shardkeeperv1.ReasonLeaseStale))
	}, 30*time.Second, tick).Should(Succeed())
	g.Expect(time.Since(lowered)).To(BeNumerically(">=", 18*time.Second), "the restart went ahead before Discord's reset")
	g.Expect(botPods(g, ns, "thrifty")["thrifty-0"].UID).To(Equal(pods["thrifty-0"].UID))
}

func TestIdentifiesNeeded(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	tests := map[string]struct {
		resume string
		shards []int32
		want   int32
	}{
		"no Lease state":            {"", []int32{0, 1}, 2},
		"both resumable":            {`[{"shard":0,"shardCount":4,"sessionID":"a","savedAt":"2026-11-26T11:59:30Z"},{"shard":1,"shardCount":4,"sessionID":"b","savedAt":"2026-11-26T11:59:30Z"}]`, []int32{0, 1}, 0},
		"one too old":               {`[{"shard":0,"shardCount":4,"sessionID":"a","savedAt":"2026-11-26T11:50:00Z"},{"shard":1,"shardCount":4,"sessionID":"b","savedAt":"2026-11-26T11:59:30Z"}]`, []int32{0, 1}, 1},
		"another shard count":       {`[{"shard":0,"shardCount":2,"sessionID":"a","savedAt":"2026-11-26T11:59:30Z"}]`, []int32{0}, 1},
		"no session":                {`[{"shard":0,"shardCount":4,"sessionID":"","savedAt":"2026-11-26T11:59:30Z"}]`, []int32{0}, 1},
		"garbage counts as nothing": {`{not json`, []int32{0, 1}, 2},
	}
	for name, tc := range tests {
		var l *coordinationv1.Lease
		if tc.resume != "" {
			l = &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{shardkeeperv1.AnnotationResume: tc.resume}}}
		}
		if got := identifiesNeeded(l, tc.shards, 4, now); got != tc.want {
			t.Errorf("%s: %d identifies, want %d", name, got, tc.want)
		}
	}
}
