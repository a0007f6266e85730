package charts_test

import (
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/shardkeeper/shardkeeper/controllers"
	"github.com/shardkeeper/shardkeeper/internal/manifests"
)

// peer is one end of a connection as a NetworkPolicy sees it: a pod (its labels and its
// namespace's) or an address outside the cluster's pods.
type peer struct {
	ip              string
	podLabels       map[string]string
	namespaceLabels map[string]string
}

// allows reports whether rules (ingress or egress, the same shape) let a connection to or
// from p on port/protocol through, the way a NetworkPolicy implementation evaluates them:
// rules are ORed; within one, the peer must match one of its peers and the port one of
// its ports (no peers or no ports match everything).
func allows(t *testing.T, rules []rule, p peer, port int32, proto corev1.Protocol) bool {
	t.Helper()
	for _, r := range rules {
		if matchesAnyPeer(t, r.peers, p) && matchesAnyPort(r.ports, port, proto) {
			return true
		}
	}
	return false
}

type rule struct {
	peers []networkingv1.NetworkPolicyPeer
	ports []networkingv1.NetworkPolicyPort
}

func matchesAnyPeer(t *testing.T, peers []networkingv1.NetworkPolicyPeer, p peer) bool {
	if len(peers) == 0 {
		return true
	}
	for _, np := range peers {
		switch {
		case np.IPBlock != nil:
			if p.ip == "" {
				continue
			}
			addr := netip.MustParseAddr(p.ip)
			if !netip.MustParsePrefix(np.IPBlock.CIDR).Contains(addr) {
				continue
			}
			excepted := false
			for _, e := range np.IPBlock.Except {
				excepted = excepted || netip.MustParsePrefix(e).Contains(addr)
			}
			if !excepted {
				return true
			}
		case p.podLabels != nil:
			if np.NamespaceSelector != nil && !selectsLabels(t, np.NamespaceSelector, p.namespaceLabels) {
				continue
			}
			// A namespaceSelector alone selects every pod of those namespaces; a
			// podSelector alone, pods of the policy's own namespace (the tests' "bots-a").
			if np.NamespaceSelector == nil && p.namespaceLabels["kubernetes.io/metadata.name"] != "bots-a" {
				continue
			}
			if np.PodSelector != nil && !selectsLabels(t, np.PodSelector, p.podLabels) {
				continue
			}
			return true
		}
	}
	return false
}

func matchesAnyPort(ports []networkingv1.NetworkPolicyPort, port int32, proto corev1.Protocol) bool {
	if len(ports) == 0 {
		return true
	}
	for _, p := range ports {
		if p.Port != nil && p.Port.IntVal == port && (p.Protocol == nil || *p.Protocol == proto) {
			return true
		}
	}
	return false
}

func selectsLabels(t *testing.T, sel *metav1.LabelSelector, l map[string]string) bool {
	t.Helper()
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Fatal(err)
	}
	return s.Matches(labels.Set(l))
}

// The bot NetworkPolicy, rendered with the all-features values, read as a CNI would:
// bots reach DNS, the API server and public HTTPS only, and nothing connects to them but
// the node and the configured scrapers. In particular no bot pod reaches another.
func TestNetworkPolicyIsolatesBots(t *testing.T) {
	objs := installCases[1].render(t) // all features: watchNamespaces bots-a, bots-b
	var policies []networkingv1.NetworkPolicy
	for _, obj := range objs {
		if obj.GetKind() == "NetworkPolicy" {
			var np networkingv1.NetworkPolicy
			toTyped(t, obj, &np)
			policies = append(policies, np)
		}
	}
	if len(policies) != 2 || policies[0].Namespace != "bots-a" || policies[1].Namespace != "bots-b" {
		t.Fatalf("want a NetworkPolicy in each watched namespace (bots-a, bots-b), got %d", len(policies))
	}
	np := policies[0]

	botLabels := map[string]string{"shardkeeper.dev/bot": "other-bot", "app.kubernetes.io/instance": "other-bot"}
	for k, v := range controllers.BotPodLabels() {
		botLabels[k] = v
	}
	if !selectsLabels(t, &np.Spec.PodSelector, botLabels) {
		t.Fatalf("the policy's selector %v does not select bot pods (%v)", np.Spec.PodSelector, botLabels)
	}
	if selectsLabels(t, &np.Spec.PodSelector, map[string]string{"app.kubernetes.io/name": "shardkeeper"}) {
		t.Errorf("the policy selects the operator's pods")
	}

	var egress, ingress []rule
	for _, r := range np.Spec.Egress {
		egress = append(egress, rule{r.To, r.Ports})
	}
	for _, r := range np.Spec.Ingress {
		ingress = append(ingress, rule{r.From, r.Ports})
	}
	ns := func(name string) map[string]string { return map[string]string{"kubernetes.io/metadata.name": name} }
	otherBot := peer{ip: "10.244.0.7", podLabels: botLabels, namespaceLabels: ns("bots-a")}
	egressCases := []struct {
		name  string
		to    peer
		port  int32
		proto corev1.Protocol
		want  bool
	}{
		{"cluster DNS over UDP", peer{podLabels: map[string]string{"k8s-app": "kube-dns"}, namespaceLabels: ns("kube-system")}, 53, corev1.ProtocolUDP, true},
		{"cluster DNS over TCP", peer{podLabels: map[string]string{"k8s-app": "kube-dns"}, namespaceLabels: ns("kube-system")}, 53, corev1.ProtocolTCP, true},
		{"the API server", peer{ip: "10.96.0.1"}, 443, corev1.ProtocolTCP, true},
		{"the API server's endpoint", peer{ip: "192.168.1.10"}, 6443, corev1.ProtocolTCP, true},
		{"Discord's gateway (public, IPv4)", peer{ip: "162.159.135.232"}, 443, corev1.ProtocolTCP, true},
		{"Discord over IPv6", peer{ip: "2606:4700::6810:1"}, 443, corev1.ProtocolTCP, true},
		{"the emulator named in extraEgress", peer{podLabels: map[string]string{"app.kubernetes.io/name": "discord-emulator"}, namespaceLabels: ns("bots-a")}, 8080, corev1.ProtocolTCP, true},
		{"plain HTTP to the internet", peer{ip: "162.159.135.232"}, 80, corev1.ProtocolTCP, false},
		{"another bot's pod by address", otherBot, 8081, corev1.ProtocolTCP, false},
		{"another bot's pod over HTTPS", peer{ip: otherBot.ip}, 443, corev1.ProtocolTCP, false},
		{"a node", peer{ip: "192.168.1.20"}, 10250, corev1.ProtocolTCP, false},
		{"cloud metadata", peer{ip: "169.254.169.254"}, 80, corev1.ProtocolTCP, false},
		{"cloud metadata over HTTPS", peer{ip: "169.254.169.254"}, 443, corev1.ProtocolTCP, false},
		{"a private IPv6 address", peer{ip: "fd00::1"}, 443, corev1.ProtocolTCP, false},
		{"DNS on the internet", peer{ip: "8.8.8.8"}, 53, corev1.ProtocolUDP, false},
		{"NodeLocal DNSCache", peer{ip: "169.254.20.10"}, 53, corev1.ProtocolUDP, true},
		{"a pod in a public pod range (clusterCIDRs)", peer{ip: "203.0.113.7"}, 443, corev1.ProtocolTCP, false},
		{"a pod with a global IPv6 address (clusterCIDRs)", peer{ip: "2001:db8:42::5"}, 443, corev1.ProtocolTCP, false},
		{"a pod in class E space", peer{ip: "240.1.2.3"}, 443, corev1.ProtocolTCP, false},
	}
	for _, c := range egressCases {
		if got := allows(t, egress, c.to, c.port, c.proto); got != c.want {
			t.Errorf("egress to %s (%d/%s): allowed %v, want %v", c.name, c.port, c.proto, got, c.want)
		}
	}

	ingressCases := []struct {
		name string
		from peer
		port int32
		want bool
	}{
		{"Prometheus in monitoring, on the health port", peer{podLabels: map[string]string{"app": "prometheus"}, namespaceLabels: ns("monitoring")}, 8081, true},
		{"Prometheus in monitoring, on another port", peer{podLabels: map[string]string{"app": "prometheus"}, namespaceLabels: ns("monitoring")}, 9000, false},
		{"another bot", otherBot, 8081, false},
		{"any pod of the namespace", peer{podLabels: map[string]string{"app": "web"}, namespaceLabels: ns("bots-a")}, 8081, false},
		{"an address outside", peer{ip: "203.0.113.9"}, 8081, false},
	}
	for _, c := range ingressCases {
		if got := allows(t, ingress, c.from, c.port, corev1.ProtocolTCP); got != c.want {
			t.Errorf("ingress from %s (port %d): allowed %v, want %v", c.name, c.port, got, c.want)
		}
	}
}

// Off by default, and with only metricsFrom unset nothing may connect at all.
func TestNetworkPolicyDefaults(t *testing.T) {
	if n := len(manifests.OfKind(installCases[0].render(t), "NetworkPolicy")); n != 0 {
		t.Errorf("default values render %d NetworkPolicies, want none", n)
	}
	objs := renderWith(t, "--set", "networkPolicy.enabled=true,networkPolicy.namespaces={bots},networkPolicy.apiServer.cidrs={10.96.0.1/32}")
	policies := manifests.OfKind(objs, "NetworkPolicy")
	if len(policies) != 1 {
		t.Fatalf("want one NetworkPolicy, got %d", len(policies))
	}
	var np networkingv1.NetworkPolicy
	toTyped(t, policies[0], &np)
	if np.Namespace != "bots" || len(np.Spec.Ingress) != 0 || len(np.Spec.PolicyTypes) != 2 {
		t.Errorf("without metricsFrom the policy must isolate ingress entirely; got namespace %q, ingress %v, types %v",
			np.Namespace, np.Spec.Ingress, np.Spec.PolicyTypes)
	}
}

func renderWith(t *testing.T, args ...string) []*unstructured.Unstructured {
	t.Helper()
	objs, err := manifests.HelmTemplate(helm(t), chartDir, "shardkeeper", "shardkeeper-system", args...)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}
