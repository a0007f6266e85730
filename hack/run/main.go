// Command run is `make run`: Shardkeeper's main job on the local cluster (hack/cluster),
// the way a user runs it. It imports the images `make images` built into the cluster's
// containerd, installs the operator with the helm chart, applies config/demo (the Discord
// emulator and a two-shard bot connected to it), waits until the bot is Ready, has a user
// say !ping through the emulator and shows the bot's answer, then prints what to try next.
// Then config/demo-python: examples/python-bot (discord.py) behind the gateway proxy, with
// an emulator of its own that enforces heartbeats, Ready and answering !ping.
// The cluster keeps running afterwards; `make cluster-down` removes it.
//
// With DISCORD_TOKEN set, the bot runs against real Discord instead: the token goes into a
// Secret (read from the environment, never on a command line) and no emulator runs. That
// needs a cluster whose pods may reach the internet, which `make run` starts when
// DISCORD_TOKEN is set (egress mode, CLUSTER_EGRESS=1).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
	"github.com/shardkeeper/shardkeeper/internal/localcluster"
)

func main() {
	helm := flag.String("helm", "", "helm binary (default: ./bin/helm)")
	images := flag.String("images", "bin/images", "directory of the image tarballs `make images` writes")
	timeout := flag.Duration("timeout", 5*time.Minute, "how long to wait for the operator and the bot")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *helm, *images, *timeout, os.Getenv("DISCORD_TOKEN")); err != nil {
		fmt.Fprintln(os.Stderr, "run:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, helm, images string, timeout time.Duration, token string) error {
	if token != "" {
		// A bad token is said before minutes of work, not after.
		if _, err := realDiscordManifests(token); err != nil {
			return err
		}
	}
	c, err := localcluster.Default(helm)
	if err != nil {
		return err
	}
	start := time.Now()
	step("local cluster")
	if err := c.Reachable(ctx); err != nil {
		return err
	}
	ns := localcluster.DemoNamespace
	if token != "" {
		ns = realNamespace
		if !c.Egress() {
			return errors.New("DISCORD_TOKEN is set but the local cluster's pods cannot reach the internet: " +
				"start it in egress mode with `CLUSTER_EGRESS=1 make cluster-up` (`DISCORD_TOKEN=... make run` does)")
		}
	}

	step("importing images into the cluster's containerd")
	var tarballs []string
	for _, name := range localcluster.Images {
		if token != "" && name == "discord-emulator" {
			continue
		}
		tarballs = append(tarballs, filepath.Join(images, name+".tar"))
	}
	if err := c.ImportImages(ctx, tarballs...); err != nil {
		return err
	}

	step("helm upgrade --install %s charts/shardkeeper --namespace %s", localcluster.Release, localcluster.OperatorNamespace)
	if err := c.InstallOperator(ctx, filepath.Join(images, "operator.tar")); err != nil {
		return err
	}

	bot := localcluster.DemoBot
	if token != "" {
		step("the demo bot against real Discord (DISCORD_TOKEN), in namespace %s", ns)
		if err := applyRealDiscordBot(ctx, c, token); err != nil {
			return err
		}
	} else {
		step("kubectl apply -k config/demo (the Discord emulator and a two-shard bot)")
		if _, err := c.Kubectl(ctx, nil, "apply", "-k", "config/demo"); err != nil {
			return err
		}
	}

	step("waiting for discordbot/%s to be Ready", bot)
	if err := waitReady(ctx, c, ns, bot, timeout); err != nil {
		return err
	}
	out, err := c.Kubectl(ctx, nil, "get", "discordbots", "--namespace", ns, "-o", "wide")
	if err != nil {
		return err
	}
	fmt.Printf("\n$ kubectl get discordbots -n %s -o wide\n%s\n", ns, out)
	if token != "" {
		fmt.Printf("Ready after %s, connected to Discord. Say !ping in a channel the bot can read.\n", time.Since(start).Round(time.Second))
		printNext(c, ns, false)
		return nil
	}

	step("a user says !ping through the emulator")
	answer, err := ping(ctx, c, ns)
	if err != nil {
		return err
	}
	fmt.Printf("    the bot answered: %q\n", answer)

	pyNS := localcluster.PythonDemoNamespace
	step("kubectl apply -k config/demo-python (examples/python-bot behind the gateway proxy, its own emulator enforcing heartbeats)")
	if _, err := c.Kubectl(ctx, nil, "apply", "-k", "config/demo-python"); err != nil {
		return err
	}
	step("waiting for discordbot/%s to be Ready", localcluster.PythonDemoBot)
	if err := waitReady(ctx, c, pyNS, localcluster.PythonDemoBot, timeout); err != nil {
		return err
	}
	step("a user says !ping to the Python bot")
	if answer, err = ping(ctx, c, pyNS); err != nil {
		return err
	}
	fmt.Printf("    the Python bot answered: %q\n", answer)
	out, err = c.Kubectl(ctx, nil, "get", "discordbots", "--all-namespaces", "-o", "wide")
	if err != nil {
		return err
	}
	fmt.Printf("\n$ kubectl get discordbots -A -o wide\n%s\n", out)
	fmt.Printf("\nShardkeeper runs: operator, emulators, the Go bot and the Python bot Ready in %s.\n", time.Since(start).Round(time.Second))
	printNext(c, ns, true)
	return nil
}

// realNamespace holds the bot against real Discord, apart from config/demo's (whose
// Secret would otherwise replace the real token on the next make run without one).
const realNamespace = "shardkeeper-discord"

// applyRealDiscordBot makes the token Secret from the environment (through stdin, so the
// token is on no command line) and the demo bot without the emulator's gateway.
func applyRealDiscordBot(ctx context.Context, c *localcluster.Cluster, token string) error {
	manifests, err := realDiscordManifests(token)
	if err != nil {
		return err
	}
	_, err = c.Kubectl(ctx, manifests, "apply", "-f", "-")
	return err
}

// realDiscordManifests are the demo namespace, the token Secret and a bot with Discord's
// own gateway and shards: auto.
func realDiscordManifests(token string) ([]byte, error) {
	token = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(token), "Bot "))
	// A bot token is three dot-separated parts (user ID, timestamp, HMAC).
	if strings.ContainsAny(token, " \t\r\n\"'\\") || strings.Count(token, ".") != 2 {
		return nil, errors.New("DISCORD_TOKEN must be the bot token alone, three parts separated by dots (Discord developer portal, your application, Bot, Reset Token), without spaces or quotes")
	}
	return []byte(fmt.Sprintf(`apiVersion: v1
kind: Namespace
metadata:
  name: %[1]s
---
apiVersion: v1
kind: Secret
metadata:
  name: %[2]s-token
  namespace: %[1]s
stringData:
  token: %[3]q
---
apiVersion: shardkeeper.dev/v1
kind: DiscordBot
metadata:
  name: %[2]s
  namespace: %[1]s
spec:
  tokenSecretRef:
    name: %[2]s-token
  shards: auto
  intents: [GUILDS, GUILD_MESSAGES, MESSAGE_CONTENT]
`, realNamespace, localcluster.DemoBot, token)), nil
}

// waitReady waits until the bot's Ready condition is True for its current spec, saying
// what it waits on meanwhile, and stops early on a condition no wait mends (a halted bot).
func waitReady(ctx context.Context, c *localcluster.Cluster, ns, bot string, timeout time.Duration) error {
	lastSaid := ""
	return localcluster.WaitFor(ctx, "discordbot/"+bot+" Ready", timeout, time.Second, func() (bool, string, error) {
		out, err := c.Kubectl(ctx, nil, "get", "discordbot", bot, "--namespace", ns, "-o", "json")
		if err != nil {
			return false, err.Error(), nil
		}
		var b shardkeeperv1.DiscordBot
		if err := json.Unmarshal([]byte(out), &b); err != nil {
			return false, "", err
		}
		if h := b.Status.Halted; h != nil {
			return false, "", fmt.Errorf("the bot is halted: %s: %s (kubectl describe discordbot %s -n %s)", h.Reason, h.Message, bot, ns)
		}
		ready := meta.FindStatusCondition(b.Status.Conditions, shardkeeperv1.ConditionReady)
		said := fmt.Sprintf("%s %d/%d", b.Status.Phase, b.Status.ReadyShards, b.Status.Shards)
		if ready != nil {
			said += fmt.Sprintf(" %s %s", ready.Status, ready.Reason)
		}
		if said != lastSaid && b.Status.Phase != "" {
			fmt.Printf("    %s\n", said)
			lastSaid = said
		}
		current := b.Status.ObservedGeneration == b.Generation && ready != nil && ready.ObservedGeneration == b.Generation
		return current && ready.Status == metav1.ConditionTrue, said, nil
	})
}

// ping sends !ping to a guild (of shard 1 for the two-shard demo) through the emulator
// of namespace ns and waits for the bot's answer.
func ping(ctx context.Context, c *localcluster.Cluster, ns string) (string, error) {
	url, err := c.EmulatorURL(ctx, ns)
	if err != nil {
		return "", err
	}
	em := localcluster.Emulator{URL: url}
	// On a second make run the emulator still holds the first run's answers: look only
	// at what comes after them.
	earlier, err := em.Replies(ctx)
	if err != nil {
		return "", err
	}
	// The emulator's guilds have one text channel, whose ID is the guild's.
	const guild, channel = 1<<22 | 1, 1<<22 | 1
	if _, err := em.SendMessage(ctx, guild, channel, "!ping"); err != nil {
		return "", err
	}
	answer := ""
	err = localcluster.WaitFor(ctx, "the answer to !ping", 30*time.Second, 200*time.Millisecond, func() (bool, string, error) {
		replies, err := em.Replies(ctx)
		if err != nil {
			return false, err.Error(), nil
		}
		for _, r := range replies[min(len(earlier), len(replies)):] {
			if strings.HasPrefix(r.Content(), "pong") {
				answer = r.Content()
				return true, "", nil
			}
		}
		return false, fmt.Sprintf("%d replies, none a pong", len(replies)), nil
	})
	return answer, err
}

func printNext(c *localcluster.Cluster, ns string, emulator bool) {
	path := ""
	if _, err := exec.LookPath("kubectl"); err != nil && c.KubectlBin != "kubectl" {
		path = fmt.Sprintf("  export PATH=$PATH:%s   # kubectl %s, built with the cluster\n", filepath.Dir(c.KubectlBin), localcluster.KubernetesVersion)
	}
	fmt.Printf(`
Try next:
%s  export KUBECONFIG=%s
  kubectl get discordbots -A -o wide
  kubectl get pods,leases -n %s
  kubectl describe discordbot %s -n %s
`, path, c.Kubeconfig, ns, localcluster.DemoBot, ns)
	if emulator {
		fmt.Printf(`
  # play a Discord user through the emulator's control API
  kubectl port-forward -n %[1]s svc/discord-emulator 8090:8090 &
  curl -s localhost:8090/control/messages -d '{"guild": 4194305, "channel": 4194305, "content": "!ping"}'
  curl -s localhost:8090/control/replies
  curl -s localhost:8090/control/stats

  # freeze a bot process: the operator replaces its pod when its Lease goes stale (20 s),
  # and the new pod resumes the session (watch RESTARTS and LAST-RESTART, then the stats)
  id=$(kubectl get pod %[2]s-0 -n %[1]s -o jsonpath='{.status.containerStatuses[0].containerID}')
  ctr --address %[3]s -n k8s.io tasks kill --signal SIGSTOP ${id#containerd://}
  kubectl get discordbots -n %[1]s -o wide -w

  # the Python bot (examples/python-bot) behind the gateway proxy; its emulator closes a
  # session that sends no heartbeat for 11 s (4009, 2 intervals of 5 s and a second), as
  # Discord closes one whose heartbeats stop
  kubectl port-forward -n %[4]s svc/discord-emulator 8091:8090 &
  # block its event loop for 15 s (3 heartbeat intervals), then ask: the answer comes after the block, and the
  # stats show one connection and one identify (the proxy kept the session)
  curl -s localhost:8091/control/messages -d '{"guild": 4194305, "channel": 4194305, "content": "!block 15"}'
  curl -s localhost:8091/control/messages -d '{"guild": 4194305, "channel": 4194305, "content": "!ping"}'
  curl -s localhost:8091/control/replies; curl -s localhost:8091/control/stats
  # freeze the Python process: 30 s without its heartbeats (then the 30 s of grace a
  # stopped process cannot use) and the kubelet restarts the bot container alone
  # (RESTARTS of the pod; the proxy stays up); what was said meanwhile is answered after
  id=$(kubectl get pod %[5]s-0 -n %[4]s -o jsonpath='{.status.containerStatuses[0].containerID}')
  ctr --address %[3]s -n k8s.io tasks kill --signal SIGSTOP ${id#containerd://}
  kubectl get pods -n %[4]s -w
`, ns, localcluster.DemoBot, c.ContainerdSocket, localcluster.PythonDemoNamespace, localcluster.PythonDemoBot)
	}
	fmt.Print(`
  make cluster-down     # stop the cluster and remove everything it made
`)
}

func step(format string, args ...any) {
	fmt.Printf("==> "+format+"\n", args...)
}
