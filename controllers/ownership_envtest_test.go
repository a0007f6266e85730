package controllers

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
)

// The chart's admission policy lets the operator write only objects labelled
// app.kubernetes.io/managed-by=shardkeeper, before and after the write. So everything it
// makes, adopts or patches carries the label, and what names a bot without it is left alone.
func TestTheOperatorWritesOnlyWhatCarriesItsLabel(t *testing.T) {
	envtestOnly(t)
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	createTokenSecret(t, ns, "labelled-token", "token")

	// Before the bot: a heartbeat Lease its first pod will use, as botruntime writes one
	// (the operator adopts it), and one of a shard group that never exists, which names the
	// bot but is not managed by Shardkeeper (the operator must not delete it).
	adopted := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: podName("labelled", 0, 0), Namespace: ns, Labels: botruntimeLeaseLabels("labelled")}}
	foreign := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "labelled-7", Namespace: ns,
		Labels: map[string]string{shardkeeperv1.LabelBot: "labelled"}}}
	g.Expect(k8s.Create(ctx, adopted)).To(Succeed())
	g.Expect(k8s.Create(ctx, foreign)).To(Succeed())

	g.Expect(k8s.Create(ctx, newBot(ns, "labelled", 2, 1))).To(Succeed())
	g.Eventually(func(g Gomega) { g.Expect(botPods(g, ns, "labelled")).To(HaveLen(2)) }, wait, tick).Should(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(adopted), adopted)).To(Succeed())
		g.Expect(metav1.GetControllerOf(adopted)).NotTo(BeNil(), "the bot's Lease was not adopted")
	}, wait, tick).Should(Succeed())

	g.Consistently(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(foreign), foreign)).To(Succeed(), "the operator deleted a Lease it does not manage")
		g.Expect(foreign.OwnerReferences).To(BeEmpty(), "the operator adopted a Lease it does not manage")
	}, 2*time.Second, tick).Should(Succeed())

	// Everything else in the namespace is the operator's: it carries the label.
	var pods corev1.PodList
	var accounts corev1.ServiceAccountList
	var roles rbacv1.RoleList
	var bindings rbacv1.RoleBindingList
	var leases coordinationv1.LeaseList
	made := map[string]int{}
	for kind, list := range map[string]client.ObjectList{"Pod": &pods, "ServiceAccount": &accounts, "Role": &roles, "RoleBinding": &bindings, "Lease": &leases} {
		g.Expect(k8s.List(ctx, list, client.InNamespace(ns))).To(Succeed())
		items, err := meta.ExtractList(list)
		g.Expect(err).NotTo(HaveOccurred())
		for _, item := range items {
			obj, err := meta.Accessor(item)
			g.Expect(err).NotTo(HaveOccurred())
			if kind == "Lease" && obj.GetName() == foreign.Name {
				continue
			}
			made[kind]++
			g.Expect(obj.GetLabels()).To(HaveKeyWithValue(shardkeeperv1.LabelManagedBy, shardkeeperv1.ManagedByValue),
				"%s %s has no %s label", kind, obj.GetName(), shardkeeperv1.LabelManagedBy)
		}
	}
	// Two pods and their Leases, the identify bucket's Lease, and the pods' access.
	g.Expect(made).To(Equal(map[string]int{"Pod": 2, "Lease": 3, "ServiceAccount": 1, "Role": 1, "RoleBinding": 1}))
}
