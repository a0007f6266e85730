package controllers

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
)

// fakeHeartbeats plays botruntime's part: it renews the Leases of the pods it is told to,
// every second, until stopped.
type fakeHeartbeats struct {
	mu     sync.Mutex
	pods   map[string]bool
	ns     string
	bot    string
	cancel context.CancelFunc
	done   chan struct{}
}

func startHeartbeats(t *testing.T, ns, bot string, pods ...string) *fakeHeartbeats {
	ctx, cancel := context.WithCancel(context.Background())
	h := &fakeHeartbeats{pods: map[string]bool{}, ns: ns, bot: bot, cancel: cancel, done: make(chan struct{})}
	for _, p := range pods {
		h.pods[p] = true
	}
	go func() {
		defer close(h.done)
		for {
			h.mu.Lock()
			var names []string
			for p, on := range h.pods {
				if on {
					names = append(names, p)
				}
			}
			h.mu.Unlock()
			for _, p := range names {
				renewLease(ctx, ns, bot, p)
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-h.done })
	return h
}

func (h *fakeHeartbeats) stop(pods ...string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, p := range pods {
		h.pods[p] = false
	}
}

// botruntimeLeaseLabels are the labels botruntime puts on a heartbeat Lease it writes.
func botruntimeLeaseLabels(bot string) map[string]string {
	return map[string]string{shardkeeperv1.LabelBot: bot, shardkeeperv1.LabelManagedBy: shardkeeperv1.ManagedByValue}
}

func renewLease(ctx context.Context, ns, bot, pod string) {
	// The operator writes the Lease too (the pod it created for it): retry on conflicts,
	// as botruntime does.
	_ = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		now := metav1.NewMicroTime(time.Now())
		var lease coordinationv1.Lease
		err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: pod}, &lease)
		if apierrors.IsNotFound(err) {
			lease = coordinationv1.Lease{
				ObjectMeta: metav1.ObjectMeta{Name: pod, Namespace: ns, Labels: botruntimeLeaseLabels(bot)},
				Spec:       coordinationv1.LeaseSpec{HolderIdentity: ptr.To(pod), LeaseDurationSeconds: ptr.To[int32](10), RenewTime: &now},
			}
			return k8s.Create(ctx, &lease)
		}
		if err != nil {
			return err
		}
		lease.Spec.RenewTime = &now
		return k8s.Update(ctx, &lease)
	})
}

func TestStaleLeaseRestartsOnlyThatPod(t *testing.T) {
	envtestOnly(t)
	g := NewWithT(t)
	ns, _ := startedBotWithLease(t, g, "beat", 2, 10)
	pods := botPods(g, ns, "beat")
	beats := startHeartbeats(t, ns, "beat", "beat-0", "beat-1")

	// Renewing pods are left alone for well over a lease duration.
	g.Consistently(func(g Gomega) {
		now := botPods(g, ns, "beat")
		g.Expect(now["beat-0"].UID).To(Equal(pods["beat-0"].UID))
		g.Expect(now["beat-1"].UID).To(Equal(pods["beat-1"].UID))
	}, 12*time.Second, 500*time.Millisecond).Should(Succeed())

	beats.stop("beat-1")
	stopped := time.Now()
	g.Eventually(func(g Gomega) {
		now := botPods(g, ns, "beat")
		g.Expect(now).To(HaveKey("beat-1"))
		g.Expect(now["beat-1"].UID).NotTo(Equal(pods["beat-1"].UID), "beat-1 was not restarted")
		b := getBot(g, ns, "beat")
		g.Expect(b.Status.LastRestartReason).To(Equal(shardkeeperv1.ReasonLeaseStale))
		g.Expect(b.Status.Restarts).To(BeNumerically(">=", 1))
	}, 30*time.Second, tick).Should(Succeed())
	// Not before the Lease could have expired: its last renewal was at most a second
	// before the stop, and the duration is 10 s.
	if after := time.Since(stopped); after < 8*time.Second {
		t.Errorf("replaced %s after the last renewals stopped; the lease duration is 10 s", after)
	}
	g.Expect(botPods(g, ns, "beat")["beat-0"].UID).To(Equal(pods["beat-0"].UID), "a healthy pod was restarted")
	g.Expect(eventReasons(g, ns, "beat")).To(ContainElement(shardkeeperv1.ReasonLeaseStale))
}

func TestStaleLeasesEverywhereHoldBackRestarts(t *testing.T) {
	envtestOnly(t)
	g := NewWithT(t)
	ns, _ := startedBotWithLease(t, g, "outage", 3, 10)
	pods := botPods(g, ns, "outage")
	beats := startHeartbeats(t, ns, "outage", "outage-0", "outage-1", "outage-2")
	g.Eventually(func(g Gomega) {
		var leases coordinationv1.LeaseList
		g.Expect(k8s.List(context.Background(), &leases, client.InNamespace(ns), client.HasLabels{shardkeeperv1.LabelBot})).To(Succeed())
		g.Expect(leases.Items).To(HaveLen(3 + 1)) // three pods and the identify bucket
	}, wait, tick).Should(Succeed())

	beats.stop("outage-0", "outage-1", "outage-2") // as in an API server outage
	g.Eventually(func(g Gomega) {
		b := getBot(g, ns, "outage")
		c := meta.FindStatusCondition(b.Status.Conditions, shardkeeperv1.ConditionRemediationRestricted)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Status).To(Equal(metav1.ConditionTrue))
		g.Expect(c.Reason).To(Equal(shardkeeperv1.ReasonTooManyUnhealthy))
		g.Expect(b.Status.StaleShards).To(Equal(int32(3)))
	}, 30*time.Second, tick).Should(Succeed())
	g.Consistently(func(g Gomega) {
		now := botPods(g, ns, "outage")
		for name, p := range pods {
			g.Expect(now[name].UID).To(Equal(p.UID), "%s restarted during the outage", name)
		}
	}, 3*time.Second, 250*time.Millisecond).Should(Succeed())
	g.Expect(eventReasons(g, ns, "outage")).To(ContainElement(shardkeeperv1.ReasonTooManyUnhealthy))
}

// startedBotWithLease is startedBot for a bot in Lease health mode with a lease duration.
func startedBotWithLease(t *testing.T, g Gomega, name string, shards int, leaseSeconds int32) (string, *shardkeeperv1.DiscordBot) {
	t.Helper()
	ns := newNamespace(t)
	createTokenSecret(t, ns, name+"-token", "token")
	bot := newBot(ns, name, shards, 1)
	bot.Spec.Health = shardkeeperv1.HealthSpec{Mode: shardkeeperv1.HealthModeLease, LeaseDurationSeconds: leaseSeconds}
	g.Expect(k8s.Create(context.Background(), bot)).To(Succeed())
	g.Eventually(func(g Gomega) { g.Expect(botPods(g, ns, name)).To(HaveLen(shards)) }, wait, tick).Should(Succeed())
	return ns, bot
}

func TestAFatalReasonOnTheLeaseHaltsTheBot(t *testing.T) {
	envtestOnly(t)
	g := NewWithT(t)
	ns, _ := startedBotWithLease(t, g, "intents", 1, 10)
	pod := botPods(g, ns, "intents")["intents-0"]
	states := `[{"id":0,"state":"Failed","guilds":0,"fatalReason":"IntentsDisallowed","fatalMessage":"a privileged intent is not enabled"}]`
	// A Lease left by an earlier pod of the same name says nothing about this one.
	writeBotLease(g, ns, "intents", pod.Name, "an-earlier-pod", states)
	g.Consistently(func(g Gomega) { g.Expect(getBot(g, ns, "intents").Status.Halted).To(BeNil()) }, 2*time.Second, tick).Should(Succeed())

	// A pod writes what it likes on its Lease: a reason that is no fatal reason is not
	// trusted, as in a termination message. (It halted the bot, deleting its pods, with a
	// Ready reason the API server refused: the status was never saved.)
	writeBotLease(g, ns, "intents", pod.Name, string(pod.UID),
		`[{"id":0,"state":"Failed","guilds":0,"fatalReason":"not a reason","fatalMessage":"whatever the pod says"}]`)
	g.Consistently(func(g Gomega) {
		g.Expect(getBot(g, ns, "intents").Status.Halted).To(BeNil())
		g.Expect(botPods(g, ns, "intents")).To(HaveKeyWithValue(pod.Name, HaveField("UID", pod.UID)))
	}, 2*time.Second, tick).Should(Succeed())
	g.Expect(eventReasons(g, ns, "intents")).NotTo(ContainElement(shardkeeperv1.ReasonReconcileError))

	// This pod's own report halts the bot.
	writeBotLease(g, ns, "intents", pod.Name, string(pod.UID), states)
	g.Eventually(func(g Gomega) {
		b := getBot(g, ns, "intents")
		g.Expect(b.Status.Halted).NotTo(BeNil())
		g.Expect(b.Status.Halted.Reason).To(Equal(shardkeeperv1.ReasonIntentsDisallowed))
		g.Expect(botPods(g, ns, "intents")).To(BeEmpty())
	}, wait, tick).Should(Succeed())
}

func TestAContainerThatKeepsRestartingGetsItsPodReplaced(t *testing.T) {
	envtestOnly(t)
	g := NewWithT(t)
	ctx := context.Background()
	ns, _ := startedBotWithLease(t, g, "loopy", 1, 10)
	startHeartbeats(t, ns, "loopy", "loopy-0") // the Lease is fine; the container is not
	pod := botPods(g, ns, "loopy")["loopy-0"]
	// The operator counts only restarts it saw happen: wait until a pass has seen the pod.
	g.Eventually(func(g Gomega) { g.Expect(getBot(g, ns, "loopy").Status.Pods).To(Equal(int32(1))) }, wait, tick).Should(Succeed())

	// The kubelet killed it three times for failing its liveness probe.
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "bot", RestartCount: 3, Image: "x", ImageID: "x",
		LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed"}}}}
	g.Expect(k8s.Status().Update(ctx, &pod)).To(Succeed())
	g.Eventually(func(g Gomega) {
		now, ok := botPods(g, ns, "loopy")["loopy-0"]
		g.Expect(ok).To(BeTrue())
		g.Expect(now.UID).NotTo(Equal(pod.UID))
		g.Expect(getBot(g, ns, "loopy").Status.LastRestartReason).To(Equal(shardkeeperv1.ReasonContainerRestarting))
	}, wait, tick).Should(Succeed())
	g.Expect(eventReasons(g, ns, "loopy")).To(ContainElement(shardkeeperv1.ReasonContainerRestarting))
}

// writeBotLease writes a pod's heartbeat Lease as botruntime does: renewed now, with the
// writing pod's UID and its shard states. The operator created the Lease with the pod.
func writeBotLease(g Gomega, ns, bot, pod, writerUID, shardStates string) {
	ctx := context.Background()
	// The operator writes the Lease too (the pod it created for it): retry on conflicts,
	// as botruntime does.
	g.Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
		now := metav1.NewMicroTime(time.Now())
		var lease coordinationv1.Lease
		err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: pod}, &lease)
		if apierrors.IsNotFound(err) {
			lease = coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: pod, Namespace: ns, Labels: botruntimeLeaseLabels(bot)}}
		} else if err != nil {
			return err
		}
		if lease.Annotations == nil {
			lease.Annotations = map[string]string{}
		}
		lease.Annotations[shardkeeperv1.AnnotationShards] = shardStates
		lease.Annotations[shardkeeperv1.AnnotationPodUID] = writerUID
		lease.Spec.HolderIdentity = ptr.To(pod)
		lease.Spec.LeaseDurationSeconds = ptr.To[int32](10)
		lease.Spec.RenewTime = &now
		if lease.ResourceVersion == "" {
			return k8s.Create(ctx, &lease)
		}
		return k8s.Update(ctx, &lease)
	})).To(Succeed())
}

// flakyReader fails every read while fail is set, as an API server in an outage does.
type flakyReader struct {
	client.Reader
	fail atomic.Bool
}

func (f *flakyReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if f.fail.Load() {
		return apierrors.NewServiceUnavailable("the API server is down")
	}
	return f.Reader.Get(ctx, key, obj, opts...)
}

// A stale-looking Lease is acted on only after a successful live read: a failed one is most
// likely the outage that made it look stale.
func TestNoRestartWithoutASuccessfulLiveRead(t *testing.T) {
	envtestOnly(t)
	g := NewWithT(t)
	ctx := context.Background()
	// A long lease, so the suite's own operator (real clock) leaves the pod alone; this
	// test drives a reconciler of its own on a fake clock.
	ns, bot := startedBotWithLease(t, g, "blind", 1, 300)
	pod := botPods(g, ns, "blind")["blind-0"]
	renewLease(ctx, ns, "blind", "blind-0")
	g.Eventually(func(g Gomega) {
		var lease coordinationv1.Lease
		g.Expect(cached.Get(ctx, client.ObjectKey{Namespace: ns, Name: "blind-0"}, &lease)).To(Succeed())
		g.Expect(lease.Spec.RenewTime).NotTo(BeNil())
	}, wait, tick).Should(Succeed())

	clock := clocktesting.NewFakePassiveClock(time.Now())
	reader := &flakyReader{Reader: k8s}
	r := &DiscordBotReconciler{Client: cached, APIReader: reader, Scheme: k8s.Scheme(), DefaultBotImage: testDefaultImage, Clock: clock,
		DiscordAPIURL: discord.APIURL(), TrustedHosts: testTrustedHosts, leases: newLeaseTracker(clock)}
	req := ctrl.Request{NamespacedName: client.ObjectKeyFromObject(bot)}
	g.Eventually(func() error { _, err := r.Reconcile(ctx, req); return err }, wait, tick).Should(Succeed())

	// Past the lease duration with no renewal, the API server failing: no delete, and a
	// look again within a quarter of the duration.
	clock.SetTime(clock.Now().Add(301 * time.Second))
	reader.fail.Store(true)
	var res ctrl.Result
	g.Eventually(func() error { var err error; res, err = r.Reconcile(ctx, req); return err }, wait, tick).Should(Succeed())
	g.Expect(res.RequeueAfter).To(BeNumerically("<=", 75*time.Second))
	g.Expect(botPods(g, ns, "blind")).To(HaveKeyWithValue("blind-0", HaveField("UID", pod.UID)), "deleted on a failed read")
	g.Expect(getBot(g, ns, "blind").Status.Restarts).To(BeZero())

	// The read works and the Lease is still stale: now the pod is replaced.
	reader.fail.Store(false)
	g.Eventually(func() error { _, err := r.Reconcile(ctx, req); return err }, wait, tick).Should(Succeed())
	g.Eventually(func(g Gomega) {
		var live corev1.Pod
		err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "blind-0"}, &live)
		g.Expect(apierrors.IsNotFound(err) || live.UID != pod.UID || live.DeletionTimestamp != nil).To(BeTrue(), "not deleted after a good read")
	}, wait, tick).Should(Succeed())
}
