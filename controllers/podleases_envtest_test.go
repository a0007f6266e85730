package controllers

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
)

// plantedLease is what a pod of another bot would leave for a victim's next pod: resume
// state pointing at the attacker's host, dated ahead, as if written by some pod.
func plantedLease(ns, name string, labels map[string]string) *coordinationv1.Lease {
	future := metav1.NewMicroTime(time.Now().Add(time.Hour))
	return &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels, Annotations: map[string]string{
			shardkeeperv1.AnnotationResume: `[{"shard":0,"shardCount":1,"sessionID":"planted","sequence":1,` +
				`"resumeURL":"ws://attacker.example:80","savedAt":"` + future.UTC().Format(time.RFC3339) + `"}]`,
			shardkeeperv1.AnnotationShards:          `[{"id":0,"state":"Ready","guilds":1}]`,
			shardkeeperv1.AnnotationPodUID:          "attacker-uid",
			shardkeeperv1.AnnotationIdentifiedShard: "0",
		}},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("attacker"), AcquireTime: &future, RenewTime: &future, LeaseDurationSeconds: ptr.To(int32(3600))},
	}
}

// expectReset checks that the operator owns the Lease and nothing planted is left on it.
func expectReset(g Gomega, bot *shardkeeperv1.DiscordBot, name string) {
	var lease coordinationv1.Lease
	g.Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: bot.Namespace, Name: name}, &lease)).To(Succeed())
	g.Expect(metav1.IsControlledBy(&lease, bot)).To(BeTrue(), "Lease %s is not controlled by its bot", name)
	// Only the operator's record of the pod it made for the Lease may be on it.
	delete(lease.Annotations, shardkeeperv1.AnnotationCreatedPodUID)
	g.Expect(lease.Annotations).To(BeEmpty(), "Lease %s keeps planted annotations", name)
	g.Expect(lease.Spec.HolderIdentity).To(BeNil())
	g.Expect(lease.Spec.AcquireTime).To(BeNil())
	g.Expect(lease.Spec.RenewTime).To(BeNil())
}

func TestABotsPodsCannotPlantAnotherBotsLease(t *testing.T) {
	envtestOnly(t)
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	createTokenSecret(t, ns, "alpha-token", "token")
	g.Expect(k8s.Create(ctx, newBot(ns, "alpha", 1, 1))).To(Succeed())
	g.Eventually(func(g Gomega) { g.Expect(botPods(g, ns, "alpha")).To(HaveLen(1)) }, wait, tick).Should(Succeed())

	// 1. Bot alpha's pods, as the API server authorizes them, cannot create a Lease: not
	// bravo's next generation, not a bucket, not one of their own names.
	asAlpha := rest.CopyConfig(restConfig)
	asAlpha.Impersonate = rest.ImpersonationConfig{
		UserName: "system:serviceaccount:" + ns + ":shardkeeper-alpha",
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
	}
	alpha := kubernetes.NewForConfigOrDie(asAlpha)
	g.Eventually(func() error { // the RoleBinding is in place: alpha renews its own Lease
		_, err := alpha.CoordinationV1().Leases(ns).Get(ctx, "alpha-0", metav1.GetOptions{})
		return err
	}, wait, tick).Should(Succeed())
	for _, name := range []string{"bravo-0-g1", "bravo-identify0", "alpha-0-g1"} {
		_, err := alpha.CoordinationV1().Leases(ns).Create(ctx, plantedLease(ns, name, nil), metav1.CreateOptions{})
		g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "alpha created Lease %s: %v", name, err)
	}

	// 2. Leases planted before bravo exists (by anyone who could): bravo's pod Lease
	// without labels (the operator's cache does not see it) and its identify bucket
	// labelled as the bot's, both dated an hour ahead.
	g.Expect(k8s.Create(ctx, plantedLease(ns, "bravo-0", nil))).To(Succeed())
	g.Expect(k8s.Create(ctx, plantedLease(ns, "bravo-identify0", commonLabels("bravo")))).To(Succeed())
	createTokenSecret(t, ns, "bravo-token", "token")
	bravo := newBot(ns, "bravo", 1, 1)
	g.Expect(k8s.Create(ctx, bravo)).To(Succeed())
	g.Eventually(func(g Gomega) { g.Expect(botPods(g, ns, "bravo")).To(HaveLen(1)) }, wait, tick).Should(Succeed())
	// The pod was created only after its Lease was reset: nothing planted is left to load.
	expectReset(g, bravo, "bravo-0")
	g.Eventually(func(g Gomega) { expectReset(g, bravo, "bravo-identify0") }, wait, tick).Should(Succeed())
	g.Eventually(func(g Gomega) []string { return eventReasons(g, ns, "bravo") }, wait, tick).Should(ContainElement(shardkeeperv1.ReasonLeaseTakenOver))

	// 3. A running pod's Lease that lost its owner and carries planted state (as a Lease a
	// bot created itself before this fix would): taken over and reset as well.
	g.Eventually(func() error { // the operator writes this Lease too: retry on conflicts
		var lease coordinationv1.Lease
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "bravo-0"}, &lease); err != nil {
			return err
		}
		planted := plantedLease(ns, "bravo-0", nil)
		lease.OwnerReferences, lease.Annotations, lease.Spec = nil, planted.Annotations, planted.Spec
		return k8s.Update(ctx, &lease)
	}, wait, tick).Should(Succeed())
	g.Eventually(func(g Gomega) { expectReset(g, bravo, "bravo-0") }, wait, tick).Should(Succeed())
}

func TestALeaseOfSomethingElseIsNotTakenOver(t *testing.T) {
	envtestOnly(t)
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	// Another controller's Lease that happens to have the name of the bot's pod Lease.
	owner := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "someone", Namespace: ns}}
	g.Expect(k8s.Create(ctx, owner)).To(Succeed())
	other := plantedLease(ns, "charlie-0", nil)
	other.OwnerReferences = []metav1.OwnerReference{{APIVersion: "coordination.k8s.io/v1", Kind: "Lease", Name: owner.Name, UID: owner.UID, Controller: ptr.To(true)}}
	g.Expect(k8s.Create(ctx, other)).To(Succeed())
	createTokenSecret(t, ns, "charlie-token", "token")
	g.Expect(k8s.Create(ctx, newBot(ns, "charlie", 1, 1))).To(Succeed())

	g.Eventually(func(g Gomega) []string { return eventReasons(g, ns, "charlie") }, wait, tick).Should(ContainElement("ReconcileError"))
	g.Consistently(func(g Gomega) { g.Expect(botPods(g, ns, "charlie")).To(BeEmpty()) }, 2*time.Second, tick).Should(Succeed())
	var lease coordinationv1.Lease
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(other), &lease)).To(Succeed())
	g.Expect(lease.Annotations).To(Equal(other.Annotations), "someone else's Lease was changed")
}

// An identify bucket Lease someone else made cannot be taken over, but it must not freeze
// the bot: its pods are still made and judged, and the pass reports the Lease.
func TestAForeignBucketLeaseDoesNotStopTheBot(t *testing.T) {
	envtestOnly(t)
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	owner := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "someone", Namespace: ns}}
	g.Expect(k8s.Create(ctx, owner)).To(Succeed())
	bucket := plantedLease(ns, shardkeeperv1.IdentifyBucketLeaseName("delta", 0), nil)
	bucket.OwnerReferences = []metav1.OwnerReference{{APIVersion: "coordination.k8s.io/v1", Kind: "Lease", Name: owner.Name, UID: owner.UID, Controller: ptr.To(true)}}
	g.Expect(k8s.Create(ctx, bucket)).To(Succeed())
	createTokenSecret(t, ns, "delta-token", "token")
	g.Expect(k8s.Create(ctx, newBot(ns, "delta", 2, 1))).To(Succeed())

	g.Eventually(func(g Gomega) { g.Expect(botPods(g, ns, "delta")).To(HaveLen(2)) }, wait, tick).Should(Succeed())
	g.Eventually(func(g Gomega) []string { return eventReasons(g, ns, "delta") }, wait, tick).Should(ContainElement("ReconcileError"))
	var lease coordinationv1.Lease
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(bucket), &lease)).To(Succeed())
	g.Expect(lease.Annotations).To(Equal(bucket.Annotations), "someone else's Lease was changed")
}

// A pod force-deleted while its process still runs on a partitioned node may never have
// written its Lease (the API server was out of its reach from the start): botruntime's
// fencing, which lists the Lease's last writer, cannot name it. The operator records the
// pod it creates for each Lease and lists it as replaced before making the next one, so
// that process stops when it reaches the Lease (botruntime: its UID listed means fenced).
func TestAForceDeletedPodThatNeverWroteItsLeaseIsFenced(t *testing.T) {
	envtestOnly(t)
	g := NewWithT(t)
	ctx := context.Background()
	ns, _ := startedBot(t, g, "fenced", 1, 1, 1)
	first := botPods(g, ns, "fenced")["fenced-0"]
	leaseOf := func(g Gomega) *coordinationv1.Lease {
		var lease coordinationv1.Lease
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "fenced-0"}, &lease)).To(Succeed())
		return &lease
	}
	g.Eventually(func(g Gomega) {
		g.Expect(leaseOf(g).Annotations).To(HaveKeyWithValue(shardkeeperv1.AnnotationCreatedPodUID, string(first.UID)))
	}, wait, tick).Should(Succeed())

	// kubectl delete pod --force: no kubelet confirms anything, the process may still run.
	g.Expect(k8s.Delete(ctx, &first, client.GracePeriodSeconds(0))).To(Succeed())
	var second corev1.Pod
	g.Eventually(func(g Gomega) {
		p, ok := botPods(g, ns, "fenced")["fenced-0"]
		g.Expect(ok).To(BeTrue())
		g.Expect(p.UID).NotTo(Equal(first.UID))
		second = p
	}, wait, tick).Should(Succeed())
	g.Eventually(func(g Gomega) {
		ann := leaseOf(g).Annotations
		g.Expect(shardkeeperv1.ReplacedPodUIDs(ann)).To(Equal([]string{string(first.UID)}))
		g.Expect(ann).To(HaveKeyWithValue(shardkeeperv1.AnnotationCreatedPodUID, string(second.UID)))
	}, wait, tick).Should(Succeed())

	// A third pod lists the second, newest first; the replacement itself is never listed.
	g.Expect(k8s.Delete(ctx, &second, client.GracePeriodSeconds(0))).To(Succeed())
	g.Eventually(func(g Gomega) {
		p, ok := botPods(g, ns, "fenced")["fenced-0"]
		g.Expect(ok).To(BeTrue())
		g.Expect(p.UID).NotTo(BeElementOf(first.UID, second.UID))
		ann := leaseOf(g).Annotations
		g.Expect(shardkeeperv1.ReplacedPodUIDs(ann)).To(Equal([]string{string(second.UID), string(first.UID)}))
		g.Expect(ann).To(HaveKeyWithValue(shardkeeperv1.AnnotationCreatedPodUID, string(p.UID)))
	}, wait, tick).Should(Succeed())
}
