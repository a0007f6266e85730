package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
)

// kwokNodeAnnotation marks the nodes kwok plays the kubelet for.
const kwokNodeAnnotation = "kwok.x-k8s.io/node"

// createNodes makes n fake nodes for kwok to manage.
func createNodes(ctx context.Context, kube kubernetes.Interface, n, podsPerNode int) ([]string, error) {
	var names []string
	for i := range n {
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{
				Name:        fmt.Sprintf("kwok-node-%d", i),
				Annotations: map[string]string{kwokNodeAnnotation: "fake"},
				Labels:      map[string]string{"type": "kwok", "kubernetes.io/hostname": fmt.Sprintf("kwok-node-%d", i)},
			},
			Status: corev1.NodeStatus{
				Capacity: corev1.ResourceList{
					corev1.ResourcePods:   resource.MustParse(strconv.Itoa(podsPerNode * 2)),
					corev1.ResourceCPU:    resource.MustParse("64"),
					corev1.ResourceMemory: resource.MustParse("256Gi"),
				},
			},
		}
		node.Status.Allocatable = node.Status.Capacity
		if _, err := kube.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
			return nil, fmt.Errorf("creating node %s: %w", node.Name, err)
		}
		names = append(names, node.Name)
	}
	return names, nil
}

// podWatch follows the operator's pods: it binds new ones to the fake nodes round robin
// (kwok does not schedule), starts a pod's heartbeats once kwok reports it running, and
// records when each pod was first seen and when its deletion was first seen.
type podWatch struct {
	kube  kubernetes.Interface
	nodes []string
	beats *heartbeats
	ctx   context.Context
	bind  chan types.NamespacedName

	mu        sync.Mutex
	nextNode  int
	created   map[types.UID]time.Time // first seen
	deleted   map[types.UID]time.Time // deletion first seen (deletionTimestamp or gone)
	names     map[types.UID]string
	current   map[string]types.UID // pod name -> its live pod
	bindFails int
}

func watchPods(ctx context.Context, kube kubernetes.Interface, namespace string, nodes []string, beats *heartbeats) (*podWatch, error) {
	w := &podWatch{
		kube: kube, nodes: nodes, beats: beats, ctx: ctx, bind: make(chan types.NamespacedName, 100000),
		created: map[types.UID]time.Time{}, deleted: map[types.UID]time.Time{},
		names: map[types.UID]string{}, current: map[string]types.UID{},
	}
	factory := informers.NewSharedInformerFactoryWithOptions(kube, 0, informers.WithNamespace(namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = shardkeeperv1.LabelBot }))
	inf := factory.Core().V1().Pods().Informer()
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { w.seen(obj) },
		UpdateFunc: func(_, obj any) { w.seen(obj) },
		DeleteFunc: func(obj any) {
			if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = tomb.Obj
			}
			if pod, ok := obj.(*corev1.Pod); ok {
				w.gone(pod.UID)
			}
		},
	}); err != nil {
		return nil, err
	}
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	for range 4 {
		go w.binder()
	}
	return w, nil
}

func (w *podWatch) seen(obj any) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	if pod.DeletionTimestamp != nil {
		w.gone(pod.UID)
		return
	}
	w.mu.Lock()
	if _, ok := w.created[pod.UID]; !ok {
		w.created[pod.UID] = time.Now()
		w.names[pod.UID] = pod.Name
		if pod.Spec.NodeName == "" {
			w.bind <- types.NamespacedName{Namespace: pod.Namespace, Name: pod.Name}
		}
	}
	w.current[pod.Name] = pod.UID
	w.mu.Unlock()
	if podReady(pod) {
		lease, shard := leaseAndShard(pod)
		w.beats.start(w.ctx, pod.Name, lease, pod.UID, shard)
	}
}

func (w *podWatch) gone(uid types.UID) {
	w.mu.Lock()
	if _, ok := w.deleted[uid]; !ok {
		w.deleted[uid] = time.Now()
	}
	if name, ok := w.names[uid]; ok && w.current[name] == uid {
		delete(w.current, name)
	}
	w.mu.Unlock()
	w.beats.silence(uid)
}

// binder binds pods as a scheduler would, through the pods/binding subresource.
func (w *podWatch) binder() {
	for {
		select {
		case <-w.ctx.Done():
			return
		case key := <-w.bind:
			w.mu.Lock()
			node := w.nodes[w.nextNode%len(w.nodes)]
			w.nextNode++
			w.mu.Unlock()
			binding := &corev1.Binding{
				ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name},
				Target:     corev1.ObjectReference{Kind: "Node", Name: node},
			}
			err := w.kube.CoreV1().Pods(key.Namespace).Bind(w.ctx, binding, metav1.CreateOptions{})
			if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) && w.ctx.Err() == nil {
				w.mu.Lock()
				w.bindFails++
				w.mu.Unlock()
			}
		}
	}
}

// podsSeen counts the pods ever seen, and the live ones.
func (w *podWatch) podsSeen() (ever, live int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.created), len(w.current)
}

// bindFailures counts bindings the API server refused for another reason than the pod
// being gone or already bound.
func (w *podWatch) bindFailures() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.bindFails
}

// pod returns the live pod of a name.
func (w *podWatch) pod(name string) (types.UID, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	uid, ok := w.current[name]
	return uid, ok
}

// deletedAt is when the deletion of a pod was first seen.
func (w *podWatch) deletedAt(uid types.UID) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	at, ok := w.deleted[uid]
	return at, ok
}

// replacedAt is when a pod of this name other than uid was first seen after since.
func (w *podWatch) replacedAt(name string, uid types.UID) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	now, ok := w.current[name]
	if !ok || now == uid {
		return time.Time{}, false
	}
	return w.created[now], true
}

func podReady(pod *corev1.Pod) bool {
	if pod.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// leaseAndShard reads the Lease name and first shard ID the operator gave the pod.
func leaseAndShard(pod *corev1.Pod) (string, int) {
	lease, shard := pod.Name, 0
	for _, c := range pod.Spec.Containers {
		for _, e := range c.Env {
			switch e.Name {
			case shardkeeperv1.EnvLeaseName:
				lease = e.Value
			case shardkeeperv1.EnvShardIDs:
				shard, _ = strconv.Atoi(strings.Split(e.Value, ",")[0])
			}
		}
	}
	return lease, shard
}
