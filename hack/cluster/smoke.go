package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
)

const smokeNamespace = "shardkeeper-smoke"

func (c *cluster) client() (kubernetes.Interface, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", c.kubeconfig())
	if err != nil {
		return nil, err
	}
	cfg.Timeout = 10 * time.Second
	return kubernetes.NewForConfig(cfg)
}

// ensureRBAC lets CoreDNS (user shardkeeper:coredns) read what it serves.
func (c *cluster) ensureRBAC(ctx context.Context) error {
	cs, err := c.client()
	if err != nil {
		return err
	}
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "shardkeeper:coredns"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"endpoints", "services", "pods", "namespaces"}, Verbs: []string{"list", "watch"}},
			{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: []string{"list", "watch"}},
		},
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "shardkeeper:coredns"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "User", Name: "shardkeeper:coredns"}},
	}
	if _, err := cs.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	return nil
}

// smoke checks what a user of the cluster needs: the node Ready, a pod Running, and a
// pod that reaches the API server through the kubernetes Service, resolves names, and
// reaches another pod through that pod's Service.
// kubeletStarted is when up started the kubelet, or zero when it already ran.
func (c *cluster) smoke(ctx context.Context, kubeletStarted time.Time) error {
	cs, err := c.client()
	if err != nil {
		return err
	}
	if err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		node, err := cs.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		for _, cond := range node.Status.Conditions {
			if cond.Type == corev1.NodeReady {
				return cond.Status == corev1.ConditionTrue, nil
			}
		}
		return false, nil
	}); err != nil {
		return fmt.Errorf("node %s not Ready: %w (see %s)", nodeName, err, c.logFile("kubelet"))
	}
	if kubeletStarted.IsZero() {
		fmt.Printf("    node %s Ready\n", nodeName)
	} else {
		fmt.Printf("    node %s Ready, %s after the kubelet started\n", nodeName, time.Since(kubeletStarted).Round(100*time.Millisecond))
	}

	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: smokeNamespace}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	pause := smokePod("pause", pauseImage, corev1.RestartPolicyAlways)
	began := time.Now()
	if _, err := c.runPod(ctx, cs, pause, func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning }); err != nil {
		return err
	}
	fmt.Printf("    pod %s/%s Running after %s\n", smokeNamespace, pause.Name, time.Since(began).Round(100*time.Millisecond))

	// A server pod behind a Service, for the check's pod -> Service -> pod request.
	echo := smokePod("echo", clusterCheckImage, corev1.RestartPolicyAlways)
	echo.Labels = map[string]string{"app": "echo"}
	echo.Spec.Containers[0].Args = []string{"--serve=:8080"}
	echo.Spec.Containers[0].Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}
	echo.Spec.Containers[0].ReadinessProbe = &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intstr.FromString("http")}},
		PeriodSeconds: 1,
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "echo", Namespace: smokeNamespace},
		Spec: corev1.ServiceSpec{
			Selector: echo.Labels,
			Ports:    []corev1.ServicePort{{Port: 8080, TargetPort: intstr.FromString("http")}},
		},
	}
	if _, err := cs.CoreV1().Services(smokeNamespace).Create(ctx, svc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	if _, err := c.runPod(ctx, cs, echo, podReady); err != nil {
		return err
	}

	check := smokePod("clustercheck", clusterCheckImage, corev1.RestartPolicyNever)
	check.Spec.Containers[0].Args = []string{"--peer=http://echo:8080/"}
	done, err := c.runPod(ctx, cs, check, func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
	})
	if err != nil {
		return err
	}
	logs, err := cs.CoreV1().Pods(smokeNamespace).GetLogs(check.Name, &corev1.PodLogOptions{}).DoRaw(ctx)
	if err != nil {
		return fmt.Errorf("logs of %s (the API server asks the kubelet): %w", check.Name, err)
	}
	for _, line := range splitLines(string(logs)) {
		fmt.Printf("    %s: %s\n", check.Name, line)
	}
	if done.Status.Phase != corev1.PodSucceeded {
		return fmt.Errorf("pod %s/%s failed: in-cluster API access, DNS or pod -> Service -> pod does not work", smokeNamespace, check.Name)
	}
	return nil
}

func podReady(p *corev1.Pod) bool {
	for _, cond := range p.Status.Conditions {
		if cond.Type == corev1.PodReady {
			return cond.Status == corev1.ConditionTrue
		}
	}
	return false
}

func smokePod(name, image string, restart corev1.RestartPolicy) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: smokeNamespace},
		Spec: corev1.PodSpec{
			RestartPolicy:                 restart,
			TerminationGracePeriodSeconds: ptr.To[int64](1),
			Containers: []corev1.Container{{
				Name:            name,
				Image:           image,
				ImagePullPolicy: corev1.PullNever,
				SecurityContext: &corev1.SecurityContext{
					AllowPrivilegeEscalation: ptr.To(false),
					RunAsNonRoot:             ptr.To(true),
					Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
					SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
				},
			}},
		},
	}
}

// runPod replaces any earlier pod of that name and waits until done says so.
func (c *cluster) runPod(ctx context.Context, cs kubernetes.Interface, pod *corev1.Pod, done func(*corev1.Pod) bool) (*corev1.Pod, error) {
	pods := cs.CoreV1().Pods(pod.Namespace)
	if err := pods.Delete(ctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil && !apierrors.IsNotFound(err) {
		return nil, err
	}
	var last *corev1.Pod
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		p, err := pods.Get(ctx, pod.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			// The namespace's default service account may not exist yet: retry.
			_, _ = pods.Create(ctx, pod, metav1.CreateOptions{})
			return false, nil
		case err != nil:
			return false, nil
		}
		last = p
		return p.DeletionTimestamp == nil && done(p), nil
	})
	if err != nil {
		return nil, fmt.Errorf("pod %s/%s: %w; %s (see %s)", pod.Namespace, pod.Name, err, describe(last), c.logFile("kubelet"))
	}
	return last, nil
}

func describe(p *corev1.Pod) string {
	if p == nil {
		return "never created"
	}
	parts := []string{"phase " + string(p.Status.Phase)}
	for _, cond := range p.Status.Conditions {
		if cond.Status != corev1.ConditionTrue && cond.Message != "" {
			parts = append(parts, fmt.Sprintf("%s: %s", cond.Type, cond.Message))
		}
	}
	for _, st := range p.Status.ContainerStatuses {
		if st.State.Waiting != nil {
			parts = append(parts, fmt.Sprintf("%s waiting: %s %s", st.Name, st.State.Waiting.Reason, st.State.Waiting.Message))
		}
	}
	return strings.Join(parts, "; ")
}
