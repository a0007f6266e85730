// Command failover measures how long a frozen bot pod stays down: from SIGSTOP of its
// cmd/bot process to the operator deleting the pod (its Lease went stale on the operator's
// clock), and to the replacement process resuming the session (Discord replays what was
// missed). Everything runs on this machine: envtest's API server and etcd, the operator,
// the fake Discord, and real cmd/bot processes standing in for pods (internal/e2erig).
//
//	go run ./bench/failover                 # 3 freezes, lease duration 10 s
//	go run ./bench/failover -lease 20 -runs 3
//
// Runs stay within the per-pod restart budget (3 in 10 minutes); a fourth restart of the
// same pod would wait for its backoff, which is the budget working, not failover time.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
	"github.com/shardkeeper/shardkeeper/internal/e2erig"
)

func main() {
	lease := flag.Int("lease", 10, "spec.health.leaseDurationSeconds")
	runs := flag.Int("runs", 3, "freezes to measure (at most 3: the restart budget)")
	flag.Parse()
	if err := run(int32(*lease), *runs); err != nil {
		fmt.Fprintln(os.Stderr, "failover:", err)
		os.Exit(1)
	}
}

type sample struct{ deleted, resumed time.Duration }

func run(lease int32, runs int) error {
	ctx := context.Background()
	guild := uint64(7) << 22
	rig, err := e2erig.Start(ctx, e2erig.Options{LeaseSeconds: lease, Guilds: []uint64{guild}, HeartbeatInterval: 500 * time.Millisecond})
	if err != nil {
		return err
	}
	defer rig.Close()
	pod := e2erig.BotName + "-0"
	fmt.Printf("lease duration %ds, operator renew judged on its own clock, %d freezes\n\n", lease, runs)

	var samples []sample
	for i := range runs {
		if err := waitResumable(ctx, rig, pod); err != nil {
			return fmt.Errorf("run %d: %w\n%s", i+1, err, rig.Kubelet.Logs())
		}
		uid, _ := rig.PodUID(ctx, pod)
		resumes := rig.Discord.Stats().Resumes
		if err := rig.Kubelet.Signal(pod, syscall.SIGSTOP); err != nil {
			return err
		}
		frozen := time.Now()
		var s sample
		deadline := frozen.Add(time.Duration(lease)*time.Second + 2*time.Minute)
		for s.resumed == 0 {
			if time.Now().After(deadline) {
				return fmt.Errorf("run %d: no failover within %s\n%s", i+1, time.Until(deadline), rig.Kubelet.Logs())
			}
			if now, ok := rig.PodUID(ctx, pod); s.deleted == 0 && (!ok || now != uid) {
				s.deleted = time.Since(frozen)
			}
			if s.deleted > 0 && rig.Discord.Stats().Resumes > resumes {
				s.resumed = time.Since(frozen)
			}
			time.Sleep(20 * time.Millisecond)
		}
		fmt.Printf("freeze %d: pod deleted after %s, session resumed after %s\n", i+1, s.deleted.Round(10*time.Millisecond), s.resumed.Round(10*time.Millisecond))
		samples = append(samples, s)
	}
	st := rig.Discord.Stats()
	fmt.Printf("\nidentifies %d, resumes %d (every replacement resumed: %v)\n", st.Identifies, st.Resumes, st.Identifies == 1)
	report("pod deleted after the freeze", samples, func(s sample) time.Duration { return s.deleted })
	report("replacement resumed after the freeze", samples, func(s sample) time.Duration { return s.resumed })
	if st.Identifies != 1 {
		return fmt.Errorf("%d identifies: a replacement identified instead of resuming", st.Identifies)
	}
	return nil
}

// waitResumable waits until the bot is connected and its Lease carries its session.
func waitResumable(ctx context.Context, rig *e2erig.Rig, pod string) error {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		if rig.Discord.Connected(0) {
			session := rig.Discord.Stats().PerShard[0].SessionID
			var lease coordinationv1.Lease
			if rig.K8s.Get(ctx, client.ObjectKey{Namespace: e2erig.Namespace, Name: pod}, &lease) == nil &&
				strings.Contains(lease.Annotations[shardkeeperv1.AnnotationResume], session) && resumeSeqKnown(lease) {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("the bot never became resumable")
}

func resumeSeqKnown(lease coordinationv1.Lease) bool {
	var states []struct{ Sequence int }
	return json.Unmarshal([]byte(lease.Annotations[shardkeeperv1.AnnotationResume]), &states) == nil && len(states) > 0
}

func report(what string, samples []sample, pick func(sample) time.Duration) {
	var d []time.Duration
	for _, s := range samples {
		d = append(d, pick(s))
	}
	slices.Sort(d)
	fmt.Printf("%-38s min %-8s median %-8s max %s\n", what, d[0].Round(10*time.Millisecond), d[len(d)/2].Round(10*time.Millisecond), d[len(d)-1].Round(10*time.Millisecond))
}
