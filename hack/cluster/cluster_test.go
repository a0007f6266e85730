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
		case egress && (len(offBridge) != 2 || !strings.Contains(offBridge[0], "-i "+bridgeName+" -s "+podCIDR) || !strings.Contains(offBridge[1], "ESTABLISHED,RELATED")):
			t.Errorf("egress rules %q: want pods out from the bridge and replies back only", offBridge)
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
