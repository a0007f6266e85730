package proc

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times: 100 on every Linux the
// benchmarks run on (it is fixed in the kernel ABI for x86 and arm64).
const clockTicks = 100

// Stats are a process's CPU time and resident memory, from /proc.
type Stats struct {
	CPU time.Duration
	RSS int64 // bytes
}

// Read reads a process's CPU time (/proc/<pid>/stat) and VmRSS (/proc/<pid>/status).
func Read(pid int) (Stats, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return Stats{}, err
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Stats{}, err
	}
	cpu, err := parseCPU(string(stat))
	if err != nil {
		return Stats{}, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	rss, err := parseRSS(string(status))
	if err != nil {
		return Stats{}, fmt.Errorf("/proc/%d/status: %w", pid, err)
	}
	return Stats{CPU: cpu, RSS: rss}, nil
}

// parseCPU is utime + stime of a /proc/<pid>/stat line.
func parseCPU(stat string) (time.Duration, error) {
	// The command name may hold spaces and parentheses: fields start after the last ')'.
	closing := strings.LastIndexByte(stat, ')')
	if closing < 0 {
		return 0, fmt.Errorf("no command name in %q", stat)
	}
	fields := strings.Fields(stat[closing+1:])
	if len(fields) < 13 {
		return 0, fmt.Errorf("%d fields after the command name, want at least 13", len(fields))
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("utime %q, stime %q are not numbers", fields[11], fields[12])
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}

// parseRSS is the VmRSS line of /proc/<pid>/status, in bytes.
func parseRSS(status string) (int64, error) {
	for _, line := range strings.Split(status, "\n") {
		rest, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("VmRSS %q: %w", rest, err)
		}
		return kb * 1024, nil
	}
	return 0, fmt.Errorf("no VmRSS line (a zombie process has none)")
}

// ChildrenNamed finds this process's children whose command is name (envtest's
// kube-apiserver and etcd, say), to report their CPU beside the process measured.
func ChildrenNamed(name string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	me := os.Getpid()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(raw)
		open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || closing < open {
			continue
		}
		fields := strings.Fields(s[closing+1:])
		if len(fields) < 2 {
			continue
		}
		if ppid, _ := strconv.Atoi(fields[1]); ppid == me && s[open+1:closing] == name {
			pids = append(pids, pid)
		}
	}
	return pids
}

// ThreadsCPU is a process's CPU time to the nanosecond: the sum over its threads of the
// time the scheduler ran them (/proc/<pid>/task/*/schedstat). /proc/<pid>/stat counts in
// 10 ms ticks, too coarse for a few milliseconds of work. Threads that already ended are
// not counted; a Go process keeps its threads.
func ThreadsCPU(pid int) (time.Duration, error) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return 0, err
	}
	var total time.Duration
	for _, task := range tasks {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, task.Name()))
		if errors.Is(err, fs.ErrNotExist) {
			continue // the thread ended since the listing
		}
		if err != nil {
			return 0, err
		}
		ran, err := parseSchedstat(string(raw))
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/task/%s/schedstat: %w", pid, task.Name(), err)
		}
		total += ran
	}
	return total, nil
}

// parseSchedstat is the first field of a schedstat line: nanoseconds on a CPU.
func parseSchedstat(line string) (time.Duration, error) {
	fields := strings.Fields(line)
	if len(fields) < 1 {
		return 0, fmt.Errorf("empty: %q", line)
	}
	ns, err := strconv.ParseInt(fields[0], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number", fields[0])
	}
	return time.Duration(ns), nil
}
