package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// down removes everything up made, in an order that also works after a crash: pods
// first (so nothing restarts them), then the components, then what they left behind.
func (c *cluster) down(ctx context.Context) error {
	if _, err := os.Stat(c.state); errors.Is(err, fs.ErrNotExist) {
		if _, err := os.Stat("/sys/class/net/" + bridgeName); errors.Is(err, fs.ErrNotExist) {
			fmt.Println("no local cluster here")
			return nil
		}
	}
	var errs []error
	procs := c.processes()
	byName := map[string]process{}
	for _, p := range procs {
		byName[p.name] = p
	}
	step("stopping the kubelet, the pods and containerd")
	c.stop("kubelet", byName["kubelet"].binary, 10*time.Second)
	killCgroupTree()
	c.killShims()
	c.stop("containerd", byName["containerd"].binary, 10*time.Second)
	step("stopping the control plane")
	for _, name := range []string{"coredns", "kube-proxy", "kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"} {
		c.stop(name, byName[name].binary, 10*time.Second)
	}

	step("removing iptables chains")
	if proxy := byName["kube-proxy"].binary; fileExists(proxy) && fileExists("/usr/sbin/iptables") {
		// kube-proxy's own cleanup of its chains and jump rules, both families.
		if out, err := exec.Command(proxy, "--cleanup", "--proxy-mode=iptables").CombinedOutput(); err != nil {
			fmt.Printf("    kube-proxy --cleanup: %v: %s\n", err, strings.TrimSpace(string(out)))
		}
		removeKubeChains()
	}
	if fileExists("/usr/sbin/iptables") {
		deleteChain("mangle", "FORWARD", forwardChain)
		deleteChain("nat", "POSTROUTING", egressChain)
	}

	step("unmounting and removing cgroups")
	errs = append(errs, c.unmountAll())
	removeCgroups()

	step("network and sysctls")
	errs = append(errs, deleteBridge())
	errs = append(errs, c.restoreSysctls())
	c.removeHostFiles()

	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w; %s is kept, run down again", err, c.state)
	}
	if remaining := c.mountsUnderState(); len(remaining) > 0 {
		return fmt.Errorf("%d mounts remain under %s (e.g. %s): not removing it", len(remaining), c.state, remaining[0])
	}
	step("removing %s", c.state)
	if err := os.RemoveAll(c.state); err != nil {
		return err
	}
	fmt.Println("local cluster removed (built components and images stay in the cache)")
	return nil
}

// cgroupRoots are the kubelet's top cgroup in each v1 hierarchy (cgroupfs driver).
func cgroupRoots() []string {
	roots, _ := filepath.Glob("/sys/fs/cgroup/*/kubepods")
	return roots
}

// killCgroupTree kills every process of every pod: they all live under kubepods.
func killCgroupTree() {
	for _, root := range cgroupRoots() {
		_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
				return nil
			}
			b, _ := os.ReadFile(path)
			for _, field := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(field); err == nil && pid > 1 {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
			return nil
		})
	}
}

// killShims stops the containerd shims of this cluster's containerd, found by the
// socket address on their command line.
func (c *cluster) killShims() {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if len(args) > 0 && strings.Contains(filepath.Base(args[0]), "containerd-shim") && slices.Contains(args, c.containerdSocket()) {
			fmt.Printf("    killing containerd shim (pid %d)\n", pid)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	time.Sleep(200 * time.Millisecond)
}

// removeKubeChains deletes the chains kube-proxy --cleanup leaves: the kubelet's
// KUBE-KUBELET-CANARY and KUBE-FIREWALL kind. Only chains named KUBE-*, which only
// this cluster's components make on this machine, and the jumps into them.
func removeKubeChains() {
	for _, tool := range []string{"iptables", "ip6tables"} {
		for _, table := range []string{"filter", "nat", "mangle"} {
			out, err := output(tool, "-w", "-t", table, "-S")
			if err != nil {
				continue
			}
			var chains []string
			for _, line := range splitLines(out) {
				f := strings.Fields(line)
				switch {
				case len(f) == 2 && f[0] == "-N" && strings.HasPrefix(f[1], "KUBE-"):
					chains = append(chains, f[1])
				case len(f) > 3 && f[0] == "-A" && !strings.HasPrefix(f[1], "KUBE-") && slices.Contains(f, "-j") && strings.HasPrefix(f[slices.Index(f, "-j")+1], "KUBE-"):
					_ = exec.Command(tool, append([]string{"-w", "-t", table, "-D"}, f[1:]...)...).Run()
				}
			}
			for _, chain := range chains {
				_ = run(tool, "-w", "-t", table, "-F", chain)
			}
			for _, chain := range chains {
				if run(tool, "-w", "-t", table, "-X", chain) == nil {
					fmt.Printf("    deleted %s %s/%s\n", tool, table, chain)
				}
			}
		}
	}
}

// mountsUnderState lists mount points at or below the state directory, deepest first.
func (c *cluster) mountsUnderState() []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var mounts []string
	prefix := c.state + "/"
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		// Mount points escape spaces and such as octal.
		mp := unescapeMountPoint(fields[4])
		if mp == c.state || strings.HasPrefix(mp, prefix) {
			mounts = append(mounts, mp)
		}
	}
	slices.SortFunc(mounts, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
	return mounts
}

func unescapeMountPoint(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	if u, err := strconv.Unquote(`"` + strings.ReplaceAll(s, `"`, `\"`) + `"`); err == nil {
		return u
	}
	return s
}

// unmountAll unmounts the pods' volumes, rootfs overlays and network namespaces: all of
// them are under the state directory (kubelet root, containerd state).
func (c *cluster) unmountAll() error {
	for attempt := 0; attempt < 5; attempt++ {
		mounts := c.mountsUnderState()
		if len(mounts) == 0 {
			return nil
		}
		if attempt == 0 {
			fmt.Printf("    unmounting %d mounts under %s\n", len(mounts), c.state)
		}
		for _, mp := range mounts {
			if err := syscall.Unmount(mp, 0); err != nil {
				_ = syscall.Unmount(mp, syscall.MNT_DETACH)
			}
		}
	}
	if left := c.mountsUnderState(); len(left) > 0 {
		return fmt.Errorf("cannot unmount %s", left[0])
	}
	return nil
}

// removeCgroups removes the kubelet's cgroup trees, deepest first: rmdir of an empty
// cgroup is how a cgroup v1 group is deleted.
func removeCgroups() {
	for _, root := range cgroupRoots() {
		var dirs []string
		_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, path)
			}
			return nil
		})
		slices.Reverse(dirs)
		for _, dir := range dirs {
			for i := 0; i < 20 && os.Remove(dir) != nil; i++ {
				time.Sleep(100 * time.Millisecond)
			}
		}
		if fileExists(root) {
			fmt.Printf("    cannot remove cgroup %s\n", root)
		} else {
			fmt.Printf("    removed cgroup %s\n", root)
		}
	}
}

// removeHostFiles removes what the kubelet, containerd and CNI put outside the state
// directory at fixed paths, and those directories when nothing else is left in them.
func (c *cluster) removeHostFiles() {
	if links, err := os.ReadDir("/var/log/containers"); err == nil {
		for _, l := range links {
			path := filepath.Join("/var/log/containers", l.Name())
			if target, err := os.Readlink(path); err == nil && strings.HasPrefix(target, c.state+"/") {
				_ = os.Remove(path)
			}
		}
		_ = os.Remove("/var/log/containers") // only if empty
	}
	cached, _ := filepath.Glob("/var/lib/cni/results/" + cniNetwork + "-*")
	// containerd's loopback results are named after the sandbox: only our sandboxes'.
	sandboxes, _ := os.ReadDir(c.path("containerd", "root", "io.containerd.grpc.v1.cri", "sandboxes"))
	for _, sb := range sandboxes {
		loopback, _ := filepath.Glob("/var/lib/cni/results/cni-loopback-" + sb.Name() + "-*")
		cached = append(cached, loopback...)
	}
	for _, path := range cached {
		_ = os.Remove(path)
	}
	for _, dir := range []string{"/var/lib/cni/results", "/var/lib/cni"} {
		_ = os.Remove(dir) // only if empty
	}
	// containerd 1.6 puts its shims' sockets in /run/containerd/s whatever its config
	// says, and the kubelet its device plugin socket in /var/lib/kubelet. A socket
	// nobody listens on is a dead process's; another containerd's live shims keep theirs.
	sockets, _ := filepath.Glob("/run/containerd/s/*")
	sockets = append(sockets, "/var/lib/kubelet/device-plugins/kubelet.sock")
	for _, path := range sockets {
		if !fileExists(path) {
			continue
		}
		if conn, err := net.DialTimeout("unix", path, time.Second); err == nil {
			conn.Close()
			continue
		}
		_ = os.Remove(path)
	}
	for _, dir := range []string{"/run/containerd/s", "/run/containerd", "/var/lib/kubelet/device-plugins", "/var/lib/kubelet"} {
		_ = os.Remove(dir) // only if empty
	}
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func (c *cluster) status(ctx context.Context) error {
	running := 0
	procs := c.processes()
	for _, p := range procs {
		if pid, ok := c.pidOf(p.name, p.binary); ok {
			running++
			fmt.Printf("  %-24s running, pid %d\n", p.name, pid)
		} else {
			fmt.Printf("  %-24s not running\n", p.name)
		}
	}
	if running == 0 {
		fmt.Println("no local cluster runs: go run ./hack/cluster up")
		return nil
	}
	cs, err := c.client()
	if err != nil {
		return err
	}
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("the API server does not answer: %w", err)
	}
	for _, n := range nodes.Items {
		ready := "NotReady"
		for _, cond := range n.Status.Conditions {
			if cond.Type == "Ready" && cond.Status == "True" {
				ready = "Ready"
			}
		}
		fmt.Printf("  node %s %s, kubelet %s\n", n.Name, ready, n.Status.NodeInfo.KubeletVersion)
	}
	fmt.Printf("  KUBECONFIG=%s\n", c.kubeconfig())
	if running < len(procs) {
		return fmt.Errorf("%d of %d components run: go run ./hack/cluster up starts the rest", running, len(procs))
	}
	step("smoke check")
	return c.smoke(ctx, time.Time{})
}
