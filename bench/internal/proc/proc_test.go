package proc

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseCPU(t *testing.T) {
	tests := map[string]struct {
		stat    string
		want    time.Duration
		wantErr bool
	}{
		"plain": {
			stat: "1234 (bot) S 1 1234 1234 0 -1 4194560 500 0 0 0 250 50 0 0 20 0 9 0 100 1000 200",
			want: 3 * time.Second, // (250 + 50) ticks of 10 ms
		},
		"command with spaces and parentheses": {
			stat: "1234 (a (b) c) S 1 1234 1234 0 -1 4194560 500 0 0 0 7 3 0 0 20 0 9 0 100 1000 200",
			want: 100 * time.Millisecond,
		},
		"truncated":         {stat: "1234 (bot) S 1 2", wantErr: true},
		"no command name":   {stat: "garbage", wantErr: true},
		"times not numbers": {stat: "1 (b) S 1 1 1 0 -1 0 0 0 0 0 x y 0", wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := parseCPU(tc.stat)
			if (err != nil) != tc.wantErr {
				t.Fatalf("error %v, want error %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("CPU %s, want %s", got, tc.want)
			}
		})
	}
}

func TestParseRSS(t *testing.T) {
	status := "Name:\tbot\nVmPeak:\t 1300000 kB\nVmRSS:\t   21504 kB\nRssAnon:\t 9000 kB\n"
	got, err := parseRSS(status)
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(21504 * 1024); got != want {
		t.Errorf("RSS %d, want %d", got, want)
	}
	if _, err := parseRSS("Name:\tzombie\nState:\tZ (zombie)\n"); err == nil {
		t.Error("a status without VmRSS parsed without an error")
	}
}

func TestParseMetrics(t *testing.T) {
	text := `# HELP go_memstats_heap_inuse_bytes Number of heap bytes that are in use.
# TYPE go_memstats_heap_inuse_bytes gauge
go_memstats_heap_inuse_bytes 4.2e+06
rest_client_requests_total{code="200",host="x",method="GET"} 3
rest_client_requests_total{code="201",host="x",method="POST"} 5
rest_client_requests_total{code="200",host="x",method="GET"} 2
shardkeeper_shard_state{shard="0",state="Ready"} 1
shardkeeper_shard_state{shard="1",state="Ready"} 1
shardkeeper_shard_state{shard="2",state="Connecting"} 0
odd{xmethod="no",method="PUT"} 1
not a number NaNx
`
	got, err := parseMetrics(strings.NewReader(text), map[string]string{
		"rest_client_requests_total": "method", "shardkeeper_shard_state": "state", "odd": "method",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{
		"go_memstats_heap_inuse_bytes":   4.2e6,
		"rest_client_requests_total":     10,
		"rest_client_requests_total/GET": 5, "rest_client_requests_total/POST": 5,
		"shardkeeper_shard_state": 2, "shardkeeper_shard_state/Ready": 2, "shardkeeper_shard_state/Connecting": 0,
		"odd": 1, "odd/PUT": 1,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d series %v, want %d", len(got), got, len(want))
	}
}

// ThreadsCPU counts what /proc/<pid>/stat counts, to the nanosecond instead of the tick.
func TestThreadsCPU(t *testing.T) {
	pid := os.Getpid()
	statBefore, err := Read(pid)
	if err != nil {
		t.Fatal(err)
	}
	before, err := ThreadsCPU(pid)
	if err != nil {
		t.Fatal(err)
	}
	// Spin until stat counted 10 ticks: CPU time, however busy the machine is.
	statAfter := statBefore
	for n := 0; statAfter.CPU-statBefore.CPU < 100*time.Millisecond; n++ {
		if n%100_000 == 0 {
			statAfter, _ = Read(pid)
		}
	}
	after, err := ThreadsCPU(pid)
	if err != nil {
		t.Fatal(err)
	}
	spent, ticks := after-before, statAfter.CPU-statBefore.CPU
	if spent < ticks-30*time.Millisecond || spent > ticks+30*time.Millisecond {
		t.Errorf("schedstat counted %s where stat counted %s", spent, ticks)
	}
	if _, err := parseSchedstat("12 3 4\n"); err != nil {
		t.Error(err)
	}
	if _, err := parseSchedstat("x 3 4"); err == nil {
		t.Error("a schedstat line without a number parsed")
	}
}
