// Package e2e runs Shardkeeper end to end on a real API server (envtest) with real bot
// processes (cmd/bot) against the fake Discord, a process per pod standing in for the
// kubelet (internal/e2erig).
package e2e

import (
	"context"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
	"github.com/shardkeeper/shardkeeper/internal/discordtest"
	"github.com/shardkeeper/shardkeeper/internal/e2erig"
)

const leaseSeconds = 10

func TestFrozenBotIsReplacedAndTheReplacementResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	ctx := context.Background()
	guild := uint64(7) << 22
	rig, err := e2erig.Start(ctx, e2erig.Options{LeaseSeconds: leaseSeconds, Guilds: []uint64{guild}, HeartbeatInterval: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer rig.Close()
	srv, pod := rig.Discord, e2erig.BotName+"-0"

	waitCtx, cancelWait := context.WithTimeout(ctx, 60*time.Second)
	defer cancelWait()
	if err := srv.WaitConnected(waitCtx, 0); err != nil {
		t.Fatalf("the bot never connected: %v\n%s", err, rig.Kubelet.Logs())
	}
	first, _ := rig.PodUID(ctx, pod)
	session := srv.Stats().PerShard[0].SessionID
	waitFor(t, "the session's resume state on the Lease", 30*time.Second, func() bool {
		var lease coordinationv1.Lease
		return rig.K8s.Get(ctx, client.ObjectKey{Namespace: e2erig.Namespace, Name: pod}, &lease) == nil && lease.Spec.RenewTime != nil &&
			strings.Contains(lease.Annotations[shardkeeperv1.AnnotationResume], session)
	})

	// Freeze the process: its gateway and its Lease both stop.
	if err := rig.Kubelet.Signal(pod, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	frozenAt := time.Now()
	for i := 1; i <= 3; i++ {
		srv.SendMessage(guild, uint64(100+i), "!ping") // sent while nobody listens
	}

	waitFor(t, "the frozen pod replaced", time.Duration(leaseSeconds)*time.Second+30*time.Second, func() bool {
		uid, ok := rig.PodUID(ctx, pod)
		return ok && uid != first
	})
	replacedAfter := time.Since(frozenAt)
	t.Logf("frozen pod replaced %s after the freeze (lease duration %ds)", replacedAfter.Round(100*time.Millisecond), leaseSeconds)
	if replacedAfter > time.Duration(leaseSeconds)*time.Second+15*time.Second {
		t.Errorf("replaced %s after the freeze; want within the lease duration plus a small grace", replacedAfter)
	}

	// The replacement resumes the session from the Lease, and every ping is answered.
	stats, err := srv.WaitStats(waitCtx, func(s discordtest.Stats) bool { return s.Resumes >= 1 })
	if err != nil {
		t.Fatalf("the replacement did not resume: %v; stats %+v\n%s", err, srv.Stats(), rig.Kubelet.Logs())
	}
	if stats.Identifies != 1 {
		t.Errorf("%d identifies: the replacement should resume, not identify", stats.Identifies)
	}
	replyCtx, cancelReply := context.WithTimeout(ctx, 30*time.Second)
	defer cancelReply()
	for i := 1; i <= 3; i++ {
		path := "/channels/" + strconv.Itoa(100+i) + "/messages"
		if _, err := srv.WaitReply(replyCtx, func(r discordtest.Reply) bool {
			return r.Path == path && strings.Contains(string(r.Body), "pong")
		}); err != nil {
			t.Errorf("the !ping sent to channel %d during the freeze was lost: %v", 100+i, err)
		}
	}
	if t.Failed() {
		for _, r := range srv.Replies() {
			t.Logf("reply %s %s at %s", r.Kind, r.Path, r.At.Format(time.StampMilli))
		}
		t.Log(rig.Kubelet.Logs())
	}
}

func waitFor(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
