package cluster

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
	"github.com/shardkeeper/shardkeeper/internal/localcluster"
)

// Guilds of the emulator's default four (1<<22|1, 2<<22|1, ...): with two shards, guild
// k<<22|1 is on shard k%2.
const (
	guildOnShard0 = 2<<22 | 1
	guildOnShard1 = 1<<22 | 1
)

func TestSampleBotRunsAndAnswers(t *testing.T) {
	ctx := suite(t)
	d := newDemo(ctx, t, nil, "")
	start := time.Now()
	d.waitReady(ctx, t, 3*time.Minute)
	t.Logf("Ready %s after kubectl apply", time.Since(start).Round(100*time.Millisecond))

	pods := d.pods(ctx, t)
	if len(pods) != 2 {
		t.Fatalf("%d bot pods, want 2 (one per shard)", len(pods))
	}
	for _, p := range pods {
		if p.Status.Phase != "Running" || !podReady(p) {
			t.Errorf("pod %s is %s, ready %v", p.Name, p.Status.Phase, podReady(p))
		}
	}
	out := mustKubectl(ctx, t, nil, "get", "discordbots", "--namespace", d.ns)
	if !strings.Contains(out, localcluster.DemoBot) || !strings.Contains(out, "2/2") || !strings.Contains(out, "Running") {
		t.Errorf("kubectl get discordbots does not show the bot Running 2/2:\n%s", out)
	}

	// Both shards answer: a user says !ping in a guild of each.
	for _, g := range []uint64{guildOnShard0, guildOnShard1} {
		if _, err := d.emulator.SendMessage(ctx, g, 1, "!ping"); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(ctx, t, "pongs from shard 0 and shard 1", 30*time.Second, func() (bool, string) {
		replies, err := d.emulator.Replies(ctx)
		if err != nil {
			return false, err.Error()
		}
		seen := map[string]bool{}
		for _, r := range replies {
			for _, s := range []string{"shard 0", "shard 1"} {
				if strings.HasPrefix(r.Content(), "pong ("+s) {
					seen[s] = true
				}
			}
		}
		return len(seen) == 2, strings.Join(keys(seen), ",")
	})
	if st := d.stats(ctx, t); st.Identifies != 2 || st.BucketViolations != 0 {
		t.Errorf("emulator saw %d identifies (%d bucket violations), want 2 and none", st.Identifies, st.BucketViolations)
	}
}

func TestFrozenBotIsReplacedAndResumes(t *testing.T) {
	ctx := suite(t)
	const leaseSeconds = 10
	d := newDemo(ctx, t, func(m string) string {
		return strings.Replace(m, "leaseDurationSeconds: 20", "leaseDurationSeconds: 10", 1)
	}, "")
	d.waitReady(ctx, t, 3*time.Minute)
	pod := localcluster.DemoBot + "-1"

	// The bot keeps its resume state on its Lease; wait until it is there.
	waitFor(ctx, t, "resume state on the Lease of "+pod, time.Minute, func() (bool, string) {
		out, err := k.Kubectl(ctx, nil, "get", "lease", pod, "--namespace", d.ns, "-o", "jsonpath={.metadata.annotations.shardkeeper\\.dev/resume}")
		return err == nil && strings.Contains(out, "session"), out
	})
	before := d.stats(ctx, t)
	restartsBefore := d.bot(ctx, t).Status.Restarts
	pods := d.pods(ctx, t)
	frozen, ok := podStates(pods)[pod]
	if !ok {
		t.Fatalf("no pod %s", pod)
	}
	// SIGSTOP the bot process inside its container, as a hung event loop would be.
	for _, p := range pods {
		if p.Name == pod {
			if _, err := k.Ctr(ctx, "tasks", "kill", "--signal", "SIGSTOP", containerID(t, p)); err != nil {
				t.Fatal(err)
			}
		}
	}
	frozenAt := time.Now()

	// The operator deletes the pod once its Lease is stale: within the lease duration of
	// the freeze, plus 10 s for the operator's and this poll's delays on a busy machine.
	deleteBound := time.Duration(leaseSeconds)*time.Second + 10*time.Second
	waitFor(ctx, t, "the frozen pod deleted", deleteBound, func() (bool, string) {
		for _, p := range d.pods(ctx, t) {
			if p.Name == pod && string(p.UID) == frozen.uid && p.DeletionTimestamp == nil {
				return false, "not deleted yet"
			}
		}
		return true, ""
	})
	t.Logf("frozen pod deleted %s after the freeze", time.Since(frozenAt).Round(100*time.Millisecond))
	// It goes with a 5 s grace (the frozen process ignores SIGTERM); the replacement takes
	// the name and resumes.
	bound := time.Duration(leaseSeconds)*time.Second + 5*time.Second + 30*time.Second
	waitFor(ctx, t, "the frozen pod replaced by a Ready pod", bound, func() (bool, string) {
		for _, p := range d.pods(ctx, t) {
			if p.Name == pod && string(p.UID) != frozen.uid {
				return podReady(p), "replacement " + string(p.Status.Phase)
			}
		}
		return false, "the frozen pod is still there"
	})
	t.Logf("replacement Ready %s after the freeze (lease %d s)", time.Since(frozenAt).Round(100*time.Millisecond), leaseSeconds)
	waitFor(ctx, t, "the session resumed", 30*time.Second, func() (bool, string) {
		st := d.stats(ctx, t)
		return st.Resumes > before.Resumes, "resumes " + itoa(st.Resumes)
	})
	if st := d.stats(ctx, t); st.Identifies != before.Identifies {
		t.Errorf("identifies %d -> %d: the replacement identified instead of resuming", before.Identifies, st.Identifies)
	}
	bot := d.waitReady(ctx, t, time.Minute)
	if bot.Status.Restarts <= restartsBefore || bot.Status.LastRestartReason != shardkeeperv1.ReasonLeaseStale {
		t.Errorf("status restarts %d -> %d, last reason %q; want the LeaseStale restart counted", restartsBefore, bot.Status.Restarts, bot.Status.LastRestartReason)
	}
}

func TestFailingLivenessProbeRestartsTheContainer(t *testing.T) {
	ctx := suite(t)
	d := newDemo(ctx, t, func(m string) string {
		return strings.Replace(m, "  shardsPerPod: 1\n", "  shardsPerPod: 1\n  image: "+unliveBotImage+"\n", 1)
	}, "")
	d.waitReady(ctx, t, 3*time.Minute)
	pod := localcluster.DemoBot + "-0"
	before := podStates(d.pods(ctx, t))[pod]
	resumes := d.stats(ctx, t).Resumes
	restarts := d.bot(ctx, t).Status.Restarts

	// The bot's own liveness check fails from now on; its shards stay connected and its
	// Lease stays fresh, so only the kubelet's probe (every 10 s, 3 failures) can act.
	if _, err := d.emulator.SendMessage(ctx, guildOnShard0, 1, "!wedge"); err != nil {
		t.Fatal(err)
	}
	wedgedAt := time.Now()
	waitFor(ctx, t, "the kubelet restarting the bot container of "+pod, 2*time.Minute, func() (bool, string) {
		now := podStates(d.pods(ctx, t))[pod]
		return now.restarts > before.restarts, "restarts " + itoa(int(now.restarts))
	})
	t.Logf("container restarted %s after !wedge", time.Since(wedgedAt).Round(100*time.Millisecond))
	if now := podStates(d.pods(ctx, t))[pod]; now.uid != before.uid {
		t.Errorf("pod %s was replaced (uid %s -> %s); the kubelet should restart the container in place", pod, before.uid, now.uid)
	}

	// The operator shows the restart, and the restarted container resumed its session.
	waitFor(ctx, t, "status.restarts counting the container restart", time.Minute, func() (bool, string) {
		bot := d.bot(ctx, t)
		return bot.Status.Restarts > restarts, "restarts " + itoa(int(bot.Status.Restarts))
	})
	d.waitReady(ctx, t, 2*time.Minute)
	if st := d.stats(ctx, t); st.Resumes <= resumes {
		t.Errorf("resumes %d -> %d: the restarted container did not resume", resumes, st.Resumes)
	}
}

func TestInvalidTokenHaltsWithoutARestartLoop(t *testing.T) {
	ctx := suite(t)
	d := newDemo(ctx, t, nil, "not-the-token")
	waitFor(ctx, t, "Ready=False TokenInvalid", 2*time.Minute, func() (bool, string) {
		bot := d.bot(ctx, t)
		c := meta.FindStatusCondition(bot.Status.Conditions, shardkeeperv1.ConditionReady)
		if c == nil {
			return false, "no Ready condition"
		}
		return c.Status == "False" && c.Reason == shardkeeperv1.ReasonTokenInvalid, c.Reason
	})
	bot := d.bot(ctx, t)
	if bot.Status.Phase != shardkeeperv1.PhaseFailed || bot.Status.Halted == nil {
		t.Errorf("phase %s, halted %v; want Failed and halted", bot.Status.Phase, bot.Status.Halted)
	}

	// No loop: over 30 s no bot pod runs or comes back, and Discord sees no new attempt.
	waitFor(ctx, t, "the halted bot's pods gone", time.Minute, func() (bool, string) {
		n := len(d.pods(ctx, t))
		return n == 0, itoa(n) + " pods"
	})
	st := d.stats(ctx, t)
	restarts := bot.Status.Restarts
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if pods := d.pods(ctx, t); len(pods) != 0 {
			t.Fatalf("pod %s came back while the bot is halted", pods[0].Name)
		}
		time.Sleep(2 * time.Second)
	}
	if now := d.stats(ctx, t); now.Connections != st.Connections {
		t.Errorf("gateway connections %d -> %d while halted", st.Connections, now.Connections)
	}
	if now := d.bot(ctx, t); now.Status.Restarts != restarts {
		t.Errorf("status.restarts %d -> %d while halted", restarts, now.Status.Restarts)
	}
}

func TestOperatorReplacedOrUpgradedWithoutRestartingBots(t *testing.T) {
	ctx := suite(t)
	d := newDemo(ctx, t, nil, "")
	d.waitReady(ctx, t, 3*time.Minute)
	pods, stats := podStates(d.pods(ctx, t)), d.stats(ctx, t)

	unchanged := func(when string) {
		t.Helper()
		if now := podStates(d.pods(ctx, t)); !equalStates(now, pods) {
			t.Errorf("%s: bot pods changed: %v -> %v", when, pods, now)
		}
		if now := d.stats(ctx, t); now.Connections != stats.Connections || now.Identifies != stats.Identifies {
			t.Errorf("%s: gateway connections %d -> %d, identifies %d -> %d; the bots reconnected",
				when, stats.Connections, now.Connections, stats.Identifies, now.Identifies)
		}
	}
	// takesOver waits for a new operator pod to lead, then checks it reconciles: a spec
	// change that touches no pod (the session start reserve) is observed.
	reserve := 10
	takesOver := func(old string) {
		t.Helper()
		var leader string
		waitFor(ctx, t, "a new operator pod leading", 3*time.Minute, func() (bool, string) {
			out, err := k.Kubectl(ctx, nil, "get", "lease", "operator.shardkeeper.dev", "--namespace", localcluster.OperatorNamespace, "-o", "jsonpath={.spec.holderIdentity}")
			leader = out
			return err == nil && out != "" && !strings.HasPrefix(out, old+"_"), "holder " + out
		})
		reserve++
		mustKubectl(ctx, t, nil, "patch", "discordbot", localcluster.DemoBot, "--namespace", d.ns, "--type=merge", "-p", `{"spec":{"sessionStartReserve":`+itoa(reserve)+`}}`)
		waitFor(ctx, t, "the new operator observing a spec change", time.Minute, func() (bool, string) {
			bot := d.bot(ctx, t)
			return bot.Status.ObservedGeneration == bot.Generation, "observed " + itoa(int(bot.Status.ObservedGeneration))
		})
		t.Logf("operator %s leads and reconciles", leader)
	}

	old := operatorPod(ctx, t)
	mustKubectl(ctx, t, nil, "delete", "pod", old, "--namespace", localcluster.OperatorNamespace, "--wait=false")
	takesOver(old)
	unchanged("after the operator pod was deleted")

	// helm upgrade with a changed value rolls the operator's Deployment.
	old = operatorPod(ctx, t)
	t.Cleanup(func() { // also when the upgrade fails half way
		if err := k.InstallOperator(context.Background(), operatorImage()); err != nil {
			t.Errorf("putting the operator back: %v", err)
		}
	})
	if _, err := k.HelmRun(ctx, "upgrade", localcluster.Release, "charts/shardkeeper", "--namespace", localcluster.OperatorNamespace,
		"--reuse-values", "--set", "logLevel=debug", "--wait", "--timeout", "3m"); err != nil {
		t.Fatal(err)
	}
	takesOver(old)
	unchanged("after helm upgrade")
	d.waitReady(ctx, t, time.Minute)
}

func TestDeletingTheBotRemovesWhatItOwned(t *testing.T) {
	ctx := suite(t)
	d := newDemo(ctx, t, nil, "")
	bot := d.waitReady(ctx, t, 3*time.Minute)
	// What the bot owns, by owner reference, and what carries its label (everything the
	// operator makes does: an object made without an owner would show here).
	owned := func() (byOwner, byLabel []string) {
		var list struct {
			Items []struct {
				Kind     string `json:"kind"`
				Metadata struct {
					Name            string            `json:"name"`
					Labels          map[string]string `json:"labels"`
					OwnerReferences []struct {
						UID string `json:"uid"`
					} `json:"ownerReferences"`
				} `json:"metadata"`
			} `json:"items"`
		}
		if err := getJSON(ctx, &list, "pods,leases.coordination.k8s.io,serviceaccounts,roles,rolebindings,configmaps,secrets,services", "--namespace", d.ns); err != nil {
			t.Fatal(err)
		}
		for _, it := range list.Items {
			name := it.Kind + "/" + it.Metadata.Name
			for _, o := range it.Metadata.OwnerReferences {
				if o.UID == string(bot.UID) {
					byOwner = append(byOwner, name)
				}
			}
			if it.Metadata.Labels[shardkeeperv1.LabelBot] == localcluster.DemoBot {
				byLabel = append(byLabel, name)
			}
		}
		return byOwner, byLabel
	}
	before, labelled := owned()
	kinds := map[string]int{}
	for _, o := range before {
		kinds[strings.Split(o, "/")[0]]++
	}
	if kinds["Pod"] != 2 || kinds["Lease"] < 2 {
		t.Fatalf("the bot owns %v; want its 2 pods and their Leases at least", before)
	}
	t.Logf("the bot owns %s; labelled: %s", strings.Join(before, ", "), strings.Join(labelled, ", "))

	mustKubectl(ctx, t, nil, "delete", "discordbot", localcluster.DemoBot, "--namespace", d.ns, "--wait=true", "--timeout=120s")
	waitFor(ctx, t, "everything the bot owned or labelled gone", 2*time.Minute, func() (bool, string) {
		byOwner, byLabel := owned()
		return len(byOwner)+len(byLabel) == 0, "owned: " + strings.Join(byOwner, ", ") + "; labelled: " + strings.Join(byLabel, ", ")
	})
	waitFor(ctx, t, "the bot's gateway sessions closed", time.Minute, func() (bool, string) {
		st := d.stats(ctx, t)
		return st.OpenConnections == 0, itoa(st.OpenConnections) + " open"
	})
	// What the user made stays: the token Secret and the emulator.
	mustKubectl(ctx, t, nil, "get", "secret", localcluster.DemoBot+"-token", "--namespace", d.ns)
}

func operatorPod(ctx context.Context, t *testing.T) string {
	t.Helper()
	var name string
	waitFor(ctx, t, "one Ready operator pod", 3*time.Minute, func() (bool, string) {
		out, err := k.Kubectl(ctx, nil, "get", "pods", "--namespace", localcluster.OperatorNamespace,
			"--selector", "app.kubernetes.io/name=shardkeeper", "-o",
			`jsonpath={range .items[?(@.metadata.deletionTimestamp)]}deleting {end}{range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status} {end}`)
		f := strings.Fields(out)
		if err != nil || len(f) != 1 || !strings.HasSuffix(f[0], "=True") {
			return false, out
		}
		name = strings.TrimSuffix(f[0], "=True")
		return true, ""
	})
	return name
}

func equalStates(a, b map[string]podState) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func itoa(n int) string { return strconv.Itoa(n) }
