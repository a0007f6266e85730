package main

import (
	"os"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// The facts that each cost an hour to find must stay in the generated configuration.
func TestConfigsKeepTheMachinesFacts(t *testing.T) {
	c := &cluster{state: "/state", assets: "/assets"}
	tests := map[string]struct {
		content string
		want    []string
		yaml    bool
	}{
		"containerd": {
			content: c.containerdConfig(),
			want:    []string{"restrict_oom_score_adj = true", `sandbox_image = "` + pauseImage + `"`, "netns_mounts_under_state_dir = true", "SystemdCgroup = false"},
		},
		"kubelet": {
			content: c.kubeletConfig(),
			want:    []string{"failCgroupV1: false", "cgroupDriver: cgroupfs", "address: " + nodeIP, "podLogsDir: \"/state/"},
			yaml:    true,
		},
		"kube-proxy": {
			content: c.kubeProxyConfig(),
			want:    []string{"mode: iptables", "nodePortAddresses: [" + podCIDR + "]", "maxPerCore: 0"},
			yaml:    true,
		},
		"cni": {
			content: c.cniConfig(),
			want:    []string{`"ipMasq": false`, `"bridge": "` + bridgeName + `"`},
			yaml:    true,
		},
		"coredns": {
			content: c.corefile(),
			want:    []string{"bind " + nodeIP},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			for _, want := range tt.want {
				if !strings.Contains(tt.content, want) {
					t.Errorf("missing %q in:\n%s", want, tt.content)
				}
			}
			if tt.yaml {
				var v map[string]any
				if err := yaml.Unmarshal([]byte(tt.content), &v); err != nil {
					t.Errorf("not valid YAML/JSON: %v", err)
				}
			}
		})
	}
	if strings.Contains(c.corefile(), "forward") {
		t.Error("CoreDNS must not forward to the machine's resolver")
	}
}

// Only egress mode lets anything off the bridge, and then only pods' own connections out
// and the replies to them; the last rule always drops.
func TestForwardGuard(t *testing.T) {
	for _, egress := range []bool{false, true} {
		rules := forwardRules(egress)
		if last := strings.Join(rules[len(rules)-1], " "); !strings.HasSuffix(last, "-j DROP") {
			t.Errorf("egress %v: last rule %q does not drop", egress, last)
		}
		var offBridge []string
		for _, r := range rules[:len(rules)-1] {
			rule := strings.Join(r, " ")
			if !strings.Contains(rule, "-i "+bridgeName+" -o "+bridgeName) {
				offBridge = append(offBridge, rule)
			}
		}
		switch {
		case !egress && len(offBridge) > 0:
			t.Errorf("without egress these rules let packets off the bridge: %q", offBridge)
		case egress:
			// Every rule that lets a packet through (RETURN) is HTTPS out from the pods'
			// range, after drops of every private range, or a reply.
			dropped := map[string]bool{}
			for _, rule := range offBridge {
				switch {
				case strings.HasSuffix(rule, "-j DROP"):
					for _, r := range privateRanges {
						if strings.Contains(rule, "-d "+r+" ") {
							dropped[r] = true
						}
					}
				case strings.Contains(rule, "-i "+bridgeName+" -s "+podCIDR+" -p tcp --dport 443 "):
					if len(dropped) != len(privateRanges) {
						t.Errorf("egress: %q comes before the private ranges are dropped (%v)", rule, dropped)
					}
				case strings.Contains(rule, "-o "+bridgeName+" -d "+podCIDR+" -m conntrack --ctstate ESTABLISHED,RELATED "):
				default:
					t.Errorf("egress: unexpected rule %q", rule)
				}
			}
			if !dropped["169.254.0.0/16"] || !dropped["10.0.0.0/8"] {
				t.Errorf("egress: link-local and 10/8 must be dropped: %v", dropped)
			}
		}
	}
	c := &cluster{state: "/state", egress: true}
	if !strings.Contains(c.corefile(), "forward . /etc/resolv.conf") {
		t.Errorf("egress mode: CoreDNS must resolve outside names:\n%s", c.corefile())
	}
}

func TestAPIServerPrefersInternalIP(t *testing.T) {
	c := &cluster{state: "/state", assets: "/assets"}
	for _, p := range c.processes() {
		if p.name == "kube-apiserver" {
			if !strings.Contains(strings.Join(p.args, " "), "--kubelet-preferred-address-types=InternalIP") {
				t.Errorf("kube-apiserver args %v", p.args)
			}
			return
		}
	}
	t.Fatal("no kube-apiserver process")
}

func TestRunsBinary(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if !runsBinary(os.Getpid(), self) {
		t.Errorf("this test process is not seen running %s", self)
	}
	if runsBinary(os.Getpid(), "/usr/bin/containerd") {
		t.Error("a PID running another binary must not count: it may have been recycled")
	}
	if runsBinary(1<<22+1, self) {
		t.Error("a PID that does not exist runs nothing")
	}
}

func TestUnescapeMountPoint(t *testing.T) {
	tests := map[string]string{
		"/plain/path":                    "/plain/path",
		`/with\040space`:                 "/with space",
		`/kubelet/pods/x/volumes\011tab`: "/kubelet/pods/x/volumes\ttab",
	}
	for in, want := range tests {
		if got := unescapeMountPoint(in); got != want {
			t.Errorf("unescapeMountPoint(%q) = %q, want %q", in, got, want)
		}
	}
}

// CLUSTER_EGRESS unset keeps the running cluster's mode: a later `make test-e2e` must not
// turn off egress under a bot talking to real Discord.
func TestEgressModeIsKeptUnlessAsked(t *testing.T) {
	c := &cluster{state: t.TempDir()}
	for _, step := range []struct {
		asked string
		want  bool
	}{{"", false}, {"1", true}, {"", true}, {"0", false}, {"", false}} {
		c.egressAsked = step.asked
		if err := c.chooseEgress(); err != nil {
			t.Fatal(err)
		}
		if c.egress != step.want {
			t.Fatalf("CLUSTER_EGRESS=%q: egress %v, want %v", step.asked, c.egress, step.want)
		}
		if err := c.recordEgress(); err != nil {
			t.Fatal(err)
		}
	}
	c.egressAsked = "true"
	if err := c.chooseEgress(); err == nil || !strings.Contains(err.Error(), "want 1") {
		t.Errorf("CLUSTER_EGRESS=true: %v, want it refused", err)
	}
}
