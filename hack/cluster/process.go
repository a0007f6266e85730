package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/shardkeeper/shardkeeper/internal/localcluster"
)

// process is one long-running component. Its PID is recorded in pids/<name>.pid and its
// output appended to logs/<name>.log.
type process struct {
	name   string
	binary string
	args   []string
	// ready returns nil once the component serves; up waits for it before the next one.
	ready func(ctx context.Context) error
}

func (c *cluster) pidFile(name string) string { return c.path("pids", name+".pid") }
func (c *cluster) logFile(name string) string { return c.path("logs", name+".log") }

// pidOf returns the PID recorded for name when that process still runs the same binary:
// a recycled PID must never be signalled.
func (c *cluster) pidOf(name, binary string) (int, bool) {
	b, err := os.ReadFile(c.pidFile(name))
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return 0, false
	}
	return pid, runsBinary(pid, binary)
}

// runsBinary tells whether pid is a live (not zombie) process of binary.
func runsBinary(pid int, binary string) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name, which may itself hold spaces.
	if i := strings.LastIndexByte(string(stat), ')'); i < 0 || strings.HasPrefix(string(stat[i+1:]), " Z") {
		return false
	}
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return false
	}
	return strings.TrimSuffix(exe, " (deleted)") == binary
}

// start runs p detached from this program (its own session, so that up may exit), unless
// it already runs, and waits until it is ready.
func (c *cluster) start(ctx context.Context, p process) error {
	if pid, ok := c.pidOf(p.name, p.binary); ok {
		fmt.Printf("    %s runs (pid %d)\n", p.name, pid)
		return waitReady(ctx, p)
	}
	for _, dir := range []string{c.path("pids"), c.path("logs")} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	logf, err := os.OpenFile(c.logFile(p.name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "\n--- %s started by hack/cluster: %s %s\n", time.Now().Format(time.RFC3339), p.binary, strings.Join(p.args, " "))
	cmd := exec.Command(p.binary, p.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = c.state
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	// Our own PATH first: the kubelet and containerd find iptables, mount and the CNI
	// plugins through it.
	// A bot token in the environment of `make run` stays out of the daemons'.
	cmd.Env = append(localcluster.Environ(), "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", p.name, err)
	}
	pid := cmd.Process.Pid
	if err := os.WriteFile(c.pidFile(p.name), []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		return err
	}
	// Reap it if it dies while up still runs, so that runsBinary sees it gone.
	go cmd.Wait() //nolint:errcheck // its exit shows in its log
	fmt.Printf("    %s started (pid %d), log %s\n", p.name, pid, c.logFile(p.name))
	if err := waitReady(ctx, p); err != nil {
		return fmt.Errorf("%w; last lines of %s:\n%s", err, c.logFile(p.name), tail(c.logFile(p.name), 15))
	}
	return nil
}

func waitReady(ctx context.Context, p process) error {
	if p.ready == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	var last error
	for {
		if last = p.ready(ctx); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %v", p.name, last)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// stop sends SIGTERM to the recorded process, then SIGKILL after grace, and forgets its PID.
func (c *cluster) stop(name, binary string, grace time.Duration) {
	defer os.Remove(c.pidFile(name))
	pid, ok := c.pidOf(name, binary)
	if !ok {
		return
	}
	fmt.Printf("    stopping %s (pid %d)\n", name, pid)
	terminate(pid, binary, grace)
}

// terminate stops one process and waits until it is gone.
func terminate(pid int, binary string, grace time.Duration) {
	_ = syscall.Kill(pid, syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for runsBinary(pid, binary) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			deadline = time.Now().Add(time.Hour)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := splitLines(string(b))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func splitLines(s string) []string {
	return strings.Split(strings.TrimRight(s, "\n"), "\n")
}

// run runs a short command, returning its combined output in the error.
func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func output(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(exitErr.Stderr)))
		}
		return string(out), err
	}
	return string(out), nil
}

func writeFile(path, content string, perm os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(content), perm)
}
