package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
)

// The cluster's network: one bridge with a private /16 for pods (the node's own address
// is the bridge's), and a service range that exists only in kube-proxy's rules. Both are
// checked against the machine's addresses and routes before anything is made.
const (
	bridgeName          = "skcluster0"
	podCIDR             = "10.77.0.0/16"
	nodeIP              = "10.77.0.1"
	serviceCIDR         = "10.97.0.0/16"
	kubernetesServiceIP = "10.97.0.1"
	cniNetwork          = "shardkeeper-cluster"
	nodeName            = "shardkeeper-node"
	// forwardChain (mangle table) drops every forwarded packet that does not both enter
	// and leave through the bridge: with ip_forward on for Services, nothing may be routed
	// to or from the machine's real interfaces. It sits in mangle's FORWARD, which runs
	// before the filter rules kube-proxy manages, so no later rule can let a packet out.
	forwardChain = "SHARDKEEPER-FORWARD"
	// egressChain (nat table, POSTROUTING) masquerades pods' traffic off the bridge; it
	// exists only in egress mode (CLUSTER_EGRESS=1), for bots that talk to real Discord.
	egressChain = "SHARDKEEPER-EGRESS"
)

var apiserverURL = "https://" + net.JoinHostPort(nodeIP, "6443")

// checkAddressSpace refuses to make the bridge when the machine already uses any
// address in the cluster's ranges on another interface.
func checkAddressSpace() error {
	_, pods, _ := net.ParseCIDR(podCIDR)
	_, services, _ := net.ParseCIDR(serviceCIDR)
	ifaces, err := net.Interfaces()
	if err != nil {
		return err
	}
	for _, iface := range ifaces {
		if iface.Name == bridgeName {
			continue
		}
		addrs, err := iface.Addrs()
		if err != nil {
			return err
		}
		for _, a := range addrs {
			ipnet, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			for _, ours := range []*net.IPNet{pods, services} {
				if ours.Contains(ipnet.IP) || ipnet.Contains(ours.IP) {
					return fmt.Errorf("%s on %s overlaps the cluster's range %s: refusing to make the bridge", ipnet, iface.Name, ours)
				}
			}
		}
	}
	// Routes to those ranges through other interfaces, e.g. a VPN, would also collide.
	out, err := output("ip", "-4", "-j", "route", "show", "table", "all")
	if err != nil {
		return err
	}
	var routes []struct {
		Dst string `json:"dst"`
		Dev string `json:"dev"`
	}
	if err := json.Unmarshal([]byte(out), &routes); err != nil {
		return fmt.Errorf("reading routes: %w", err)
	}
	for _, r := range routes {
		if r.Dev == bridgeName || r.Dst == "default" || r.Dst == "" {
			continue
		}
		if !strings.Contains(r.Dst, "/") {
			r.Dst += "/32"
		}
		_, dst, err := net.ParseCIDR(r.Dst)
		if err != nil {
			continue
		}
		for _, ours := range []*net.IPNet{pods, services} {
			if ours.Contains(dst.IP) || dst.Contains(ours.IP) {
				return fmt.Errorf("route %s via %s overlaps the cluster's range %s: refusing to make the bridge", r.Dst, r.Dev, ours)
			}
		}
	}
	return nil
}

// ensureBridge makes the bridge with the node's address. The CNI bridge plugin finds it
// and attaches pods to it; the control plane listens on its address only.
func ensureBridge() error {
	if _, err := net.InterfaceByName(bridgeName); err != nil {
		if err := checkAddressSpace(); err != nil {
			return err
		}
		fmt.Printf("    creating bridge %s %s/16\n", bridgeName, nodeIP)
		if err := run("ip", "link", "add", bridgeName, "type", "bridge"); err != nil {
			return err
		}
	}
	iface, err := net.InterfaceByName(bridgeName)
	if err != nil {
		return err
	}
	addrs, _ := iface.Addrs()
	has := false
	for _, a := range addrs {
		if ipnet, ok := a.(*net.IPNet); ok && ipnet.IP.String() == nodeIP {
			has = true
		}
	}
	if !has {
		if err := run("ip", "addr", "add", nodeIP+"/16", "dev", bridgeName); err != nil {
			return err
		}
	}
	return run("ip", "link", "set", bridgeName, "up")
}

func deleteBridge() error {
	if _, err := net.InterfaceByName(bridgeName); err != nil {
		return nil
	}
	// Pod ends of veths vanish with their namespaces; a leftover host end would keep
	// nothing alive, but it is ours, so it goes too.
	if out, err := output("ip", "-o", "link", "show", "master", bridgeName); err == nil {
		for _, line := range splitLines(out) {
			fields := strings.Fields(line)
			if len(fields) > 1 {
				name := strings.SplitN(strings.TrimSuffix(fields[1], ":"), "@", 2)[0]
				_ = run("ip", "link", "delete", name)
			}
		}
	}
	fmt.Printf("    deleting bridge %s\n", bridgeName)
	return run("ip", "link", "delete", bridgeName)
}

// privateRanges are never reachable from pods, even in egress mode: the machine's own
// networks, link-local (cloud metadata) and shared address space.
var privateRanges = []string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "100.64.0.0/10"}

// forwardRules are the forward guard's rules: pods and Services stay on the bridge and any
// other forwarded packet is dropped. Egress mode, the one opt-in exception, lets pods open
// HTTPS connections (Discord's gateway and API are wss:// and https:// on 443) to public
// addresses, and lets only the replies to those back in; names resolve through CoreDNS on
// the node, so no DNS leaves a pod.
func forwardRules(egress bool) [][]string {
	rules := [][]string{
		{"-i", bridgeName, "-o", bridgeName, "-m", "comment", "--comment", "shardkeeper local cluster: pods and Services stay on the bridge", "-j", "RETURN"},
	}
	if egress {
		for _, r := range privateRanges {
			rules = append(rules, []string{"-i", bridgeName, "-d", r, "-m", "comment", "--comment", "shardkeeper local cluster, egress mode: no private or link-local destination", "-j", "DROP"})
		}
		rules = append(rules,
			[]string{"-i", bridgeName, "-s", podCIDR, "-p", "tcp", "--dport", "443", "-m", "comment", "--comment", "shardkeeper local cluster, egress mode: pods may open HTTPS connections out", "-j", "RETURN"},
			[]string{"-o", bridgeName, "-d", podCIDR, "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-m", "comment", "--comment", "shardkeeper local cluster, egress mode: replies to pods", "-j", "RETURN"})
	}
	return append(rules, []string{"-m", "comment", "--comment", "shardkeeper local cluster: nothing else is forwarded", "-j", "DROP"})
}

// egressRule masquerades pods' connections that leave through another interface (egress mode).
var egressRule = []string{"-s", podCIDR, "!", "-o", bridgeName, "-m", "comment", "--comment", "shardkeeper local cluster, egress mode", "-j", "MASQUERADE"}

// ensureEgress adds or removes the masquerade of egress mode.
func ensureEgress(egress bool) error {
	if !egress {
		deleteChain("nat", "POSTROUTING", egressChain)
		return nil
	}
	return ensureChain("nat", "POSTROUTING", egressChain, [][]string{egressRule})
}

// ensureForwardChain keeps forwarding to the bridge (and, in egress mode, pods' own
// connections out): any other forwarded packet is dropped.
func ensureForwardChain(egress bool) error {
	return ensureChain("mangle", "FORWARD", forwardChain, forwardRules(egress))
}

// ensureChain makes chain in table hold exactly rules, jumped to first from hook.
func ensureChain(table, hook, chain string, rules [][]string) error {
	if run("iptables", "-w", "-t", table, "-L", chain, "-n") != nil {
		if err := run("iptables", "-w", "-t", table, "-N", chain); err != nil {
			return err
		}
	}
	if err := run("iptables", "-w", "-t", table, "-F", chain); err != nil {
		return err
	}
	for _, rule := range rules {
		if err := run("iptables", append([]string{"-w", "-t", table, "-A", chain}, rule...)...); err != nil {
			return err
		}
	}
	if run("iptables", "-w", "-t", table, "-C", hook, "-j", chain) != nil {
		return run("iptables", "-w", "-t", table, "-I", hook, "1", "-j", chain)
	}
	return nil
}

// deleteChain removes hook's jumps to chain and the chain, when they exist.
func deleteChain(table, hook, chain string) {
	for run("iptables", "-w", "-t", table, "-D", hook, "-j", chain) == nil {
	}
	if run("iptables", "-w", "-t", table, "-L", chain, "-n") == nil {
		fmt.Printf("    deleting iptables chain %s/%s\n", table, chain)
		_ = run("iptables", "-w", "-t", table, "-F", chain)
		_ = run("iptables", "-w", "-t", table, "-X", chain)
	}
}

// The sysctls the cluster changes: ip_forward (pod -> Service -> pod is routed on the
// host), bridge netfilter (kube-proxy's rules must see bridged packets), and what the
// kubelet sets at start (setupKernelTunables). Their values before the first up are kept
// in sysctls.json and written back by down.
var savedSysctls = []string{
	"net/ipv4/ip_forward",
	"net/bridge/bridge-nf-call-iptables",
	"vm/overcommit_memory",
	"vm/panic_on_oom",
	"kernel/panic",
	"kernel/panic_on_oops",
	"kernel/keys/root_maxkeys",
	"kernel/keys/root_maxbytes",
}

func (c *cluster) saveSysctls() error {
	path := c.path("sysctls.json")
	if _, err := os.Stat(path); err == nil {
		return nil // saved by an earlier up: the values now may already be ours
	}
	saved := map[string]string{}
	for _, key := range savedSysctls {
		b, err := os.ReadFile(filepath.Join("/proc/sys", key))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		saved[key] = strings.TrimSpace(string(b))
	}
	b, _ := json.MarshalIndent(saved, "", "  ")
	return writeFile(path, string(b)+"\n", 0o644)
}

func setSysctl(key, value string) error {
	return os.WriteFile(filepath.Join("/proc/sys", key), []byte(value), 0o644)
}

func (c *cluster) restoreSysctls() error {
	b, err := os.ReadFile(c.path("sysctls.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	saved := map[string]string{}
	if err := json.Unmarshal(b, &saved); err != nil {
		return err
	}
	var errs []error
	for _, key := range savedSysctls {
		value, ok := saved[key]
		if !ok {
			continue
		}
		if cur, _ := os.ReadFile(filepath.Join("/proc/sys", key)); strings.TrimSpace(string(cur)) != value {
			fmt.Printf("    restoring %s = %s\n", strings.ReplaceAll(key, "/", "."), value)
			errs = append(errs, setSysctl(key, value))
		}
	}
	return errors.Join(errs...)
}
