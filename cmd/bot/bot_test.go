package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
	"github.com/shardkeeper/shardkeeper/botruntime"
	"github.com/shardkeeper/shardkeeper/internal/discordtest"
	"github.com/shardkeeper/shardkeeper/internal/testenv"
)

const guild = uint64(5) << 22

func startBot(t *testing.T, confirmWait time.Duration) (*discordtest.Server, *botruntime.Runtime) {
	t.Helper()
	srv := discordtest.NewServer(discordtest.Options{HeartbeatInterval: 200 * time.Millisecond, Guilds: []uint64{guild}})
	t.Cleanup(srv.Close)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(discordtest.DefaultToken), 0o600); err != nil {
		t.Fatal(err)
	}
	rt, err := botruntime.New(botruntime.Config{
		ShardIDs: []int{0}, ShardCount: 1, TokenFile: tokenFile,
		Intents:    []shardkeeperv1.Intent{"GUILDS", "GUILD_MESSAGES", "MESSAGE_CONTENT"},
		GatewayURL: srv.URL(), APIURL: srv.APIURL(), MaxConcurrency: 1, IdentifyInterval: time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	bot := &pingBot{rt: rt, log: logr.Discard(), confirmWait: confirmWait}
	if err := rt.Handle(bot.handle); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = rt.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if ok, _ := rt.Ready(); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("bot never became ready")
		}
	}
	return srv, rt
}

func waitReply(t *testing.T, srv *discordtest.Server, kind, contains string) discordtest.Reply {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r, err := srv.WaitReply(ctx, func(r discordtest.Reply) bool {
		return r.Kind == kind && strings.Contains(string(r.Body), contains)
	})
	if err != nil {
		t.Fatalf("no %s reply containing %q: %v; replies: %v", kind, contains, err, srv.Replies())
	}
	return r
}

func TestRegistersCommandsAndAnswersPing(t *testing.T) {
	srv, _ := startBot(t, time.Second)
	for deadline := time.Now().Add(20 * time.Second); len(srv.Commands()) != 3; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("commands not registered: %d", len(srv.Commands()))
		}
	}
	var names []string
	for _, raw := range srv.Commands() {
		var c struct{ Name string }
		_ = json.Unmarshal(raw, &c)
		names = append(names, c.Name)
	}
	if strings.Join(names, ",") != "ping,shard,confirm" {
		t.Errorf("registered %v", names)
	}

	srv.SendSlashCommand(guild, "ping")
	waitReply(t, srv, discordtest.ReplyInteractionCallback, "pong (shard 0")
	srv.SendMessage(guild, 42, "!ping")
	r := waitReply(t, srv, discordtest.ReplyChannelMessage, "pong (shard 0")
	if !strings.Contains(r.Path, "/channels/42/messages") {
		t.Errorf("!ping answered in %s", r.Path)
	}
	srv.SendSlashCommand(guild, "shard")
	waitReply(t, srv, discordtest.ReplyInteractionCallback, "shard 0 of 1: 1 guilds")
}

func TestConfirmWaitsForItsButton(t *testing.T) {
	srv, _ := startBot(t, 20*time.Second)
	id := srv.SendSlashCommand(guild, "confirm")
	waitReply(t, srv, discordtest.ReplyInteractionCallback, "confirm:")
	// Another guild's traffic and an unrelated button do not satisfy the wait.
	srv.SendButtonPress(guild, "something-else", 1)
	srv.SendButtonPress(guild, "confirm:"+strconv.FormatUint(id, 10), 1)
	waitReply(t, srv, discordtest.ReplyInteractionCallback, "Confirmed by "+discordtest.TestUsername)
}

func TestConfirmTimesOut(t *testing.T) {
	srv, _ := startBot(t, 300*time.Millisecond)
	srv.SendSlashCommand(guild, "confirm")
	waitReply(t, srv, discordtest.ReplyFollowupEdit, "Not confirmed")
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// botBinary builds cmd/bot once per test run.
func botBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "shardkeeper-bot")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "bot")
		if out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("%v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatalf("building the bot: %v", buildErr)
	}
	return binPath
}

// TestBadConfigurationExitsWithCode2 runs the real binary: configuration errors end the
// process with exit code 2 and one clear message.
func TestBadConfigurationExitsWithCode2(t *testing.T) {
	termLog := filepath.Join(t.TempDir(), "termination-log")
	cmd := exec.Command(botBinary(t), "--termination-log="+termLog)
	cmd.Env = []string{"SHARDKEEPER_SHARD_IDS=0,7", "SHARDKEEPER_SHARD_COUNT=2", "SHARDKEEPER_GATEWAY_COMPRESSION=zlib"}
	out, err := cmd.CombinedOutput()
	exit, ok := err.(*exec.ExitError)
	if !ok || exit.ExitCode() != botruntime.ExitBadConfig {
		t.Fatalf("exit %v, want code %d\n%s", err, botruntime.ExitBadConfig, out)
	}
	for _, want := range []string{"shard ID 7 is outside 0..1", "no token file", `gateway compression "zlib" must be zstd-stream, zlib-stream or none`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// The operator reads the reason from the termination message.
	if reason, _ := os.ReadFile(termLog); !strings.HasPrefix(string(reason), "BadConfiguration: ") {
		t.Errorf("termination log %q", reason)
	}
}

// botProcess starts the real bot binary against srv, configured the way the operator does.
func botProcess(t *testing.T, srv *discordtest.Server, token string, extraArgs ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	return botProcessWithEnv(t, srv, token, nil, extraArgs...)
}

// botProcessWithEnv is botProcess with more environment variables.
func botProcessWithEnv(t *testing.T, srv *discordtest.Server, token string, env []string, extraArgs ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(botBinary(t), append([]string{"--health-addr=127.0.0.1:0"}, extraArgs...)...)
	cmd.Env = []string{
		"SHARDKEEPER_SHARD_IDS=0", "SHARDKEEPER_SHARD_COUNT=1", "SHARDKEEPER_INTENTS=GUILDS,GUILD_MESSAGES",
		"SHARDKEEPER_TOKEN_FILE=" + tokenFile, "SHARDKEEPER_GATEWAY_URL=" + srv.URL(), "SHARDKEEPER_API_URL=" + srv.APIURL(),
	}
	cmd.Env = append(cmd.Env, env...)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd, &logs
}

func exitCode(t *testing.T, cmd *exec.Cmd, logs *bytes.Buffer) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return exit.ExitCode()
		}
		if err != nil {
			t.Fatalf("bot: %v\n%s", err, logs)
		}
		return 0
	case <-time.After(30 * time.Second):
		t.Fatalf("the bot did not exit\n%s", logs)
		return -1
	}
}

// TestSIGTERMThenANewProcessResumes: the pod-replacement path. The first process closes
// resumably on SIGTERM and leaves its resume state; the second resumes the session.
func TestSIGTERMThenANewProcessResumes(t *testing.T) {
	srv := discordtest.NewServer(discordtest.Options{HeartbeatInterval: 200 * time.Millisecond, Guilds: []uint64{guild}})
	defer srv.Close()
	state := filepath.Join(t.TempDir(), "resume.json")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	first, logs := botProcess(t, srv, discordtest.DefaultToken, "--resume-state-file="+state)
	// Connected is not enough: the session exists for the bot once it has read READY,
	// and the demo bot registers its slash commands right after that.
	if _, err := srv.WaitStats(ctx, func(s discordtest.Stats) bool {
		return s.RESTRequests["PUT /applications/{application.id}/commands"] > 0
	}); err != nil {
		t.Fatalf("first process never became ready: %v\n%s", err, logs)
	}
	if err := first.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := exitCode(t, first, logs); code != botruntime.ExitOK {
		t.Fatalf("exit code %d after SIGTERM\n%s", code, logs)
	}
	srv.SendMessage(guild, 1, "sent between the two processes")

	_, logs2 := botProcess(t, srv, discordtest.DefaultToken, "--resume-state-file="+state)
	if _, err := srv.WaitStats(ctx, func(s discordtest.Stats) bool { return s.Resumes == 1 }); err != nil {
		t.Fatalf("second process did not resume: %v; stats %+v\n%s", err, srv.Stats(), logs2)
	}
	if st := srv.Stats(); st.Identifies != 1 {
		t.Errorf("%d identifies; the second process should have resumed only", st.Identifies)
	}
}

// TestInvalidTokenExitsWithCode10: no crash loop inside the process, a documented exit
// code, and the reason where Kubernetes shows it.
func TestInvalidTokenExitsWithCode10(t *testing.T) {
	srv := discordtest.NewServer(discordtest.Options{HeartbeatInterval: 200 * time.Millisecond})
	defer srv.Close()
	termLog := filepath.Join(t.TempDir(), "termination-log")
	cmd, logs := botProcess(t, srv, "not-the-token", "--termination-log="+termLog)
	if code := exitCode(t, cmd, logs); code != botruntime.ExitTokenInvalid {
		t.Fatalf("exit code %d, want %d\n%s", code, botruntime.ExitTokenInvalid, logs)
	}
	reason, _ := os.ReadFile(termLog)
	if !strings.HasPrefix(string(reason), "TokenInvalid: ") {
		t.Errorf("termination log %q", reason)
	}
	if strings.Contains(logs.String(), "not-the-token") || strings.Contains(string(reason), "not-the-token") {
		t.Error("the token appears in the logs or the termination message")
	}
	if n := srv.Stats().Connections; n != 1 {
		t.Errorf("%d connections: a rejected token must not be retried", n)
	}
}

// TestAReplacedPodExitsWithCode3: the process of a pod that was force-deleted and replaced
// (its UID listed as replaced on the heartbeat Lease), restarted by its kubelet, exits
// before it connects, with a code and a termination message the operator does not take
// for a reason to halt the bot.
func TestAReplacedPodExitsWithCode3(t *testing.T) {
	if testing.Short() {
		t.Skip("needs envtest")
	}
	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	kubeconfig, err := env.AdminKubeconfig()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "kubeconfig"), kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = kubernetes.NewForConfigOrDie(env.Config).CoordinationV1().Leases("default").Create(context.Background(),
		&coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "demo-0", Annotations: map[string]string{
			shardkeeperv1.AnnotationPodUID:          "uid-new",
			shardkeeperv1.AnnotationReplacedPodUIDs: "uid-old",
		}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	srv := discordtest.NewServer(discordtest.Options{HeartbeatInterval: 200 * time.Millisecond})
	defer srv.Close()
	termLog := filepath.Join(dir, "termination-log")
	cmd, logs := botProcessWithEnv(t, srv, discordtest.DefaultToken, []string{
		"KUBECONFIG=" + filepath.Join(dir, "kubeconfig"), "SHARDKEEPER_NAMESPACE=default", "SHARDKEEPER_BOT_NAME=demo",
		"SHARDKEEPER_LEASE_NAME=demo-0", "SHARDKEEPER_POD_NAME=demo-0", "SHARDKEEPER_POD_UID=uid-old",
	}, "--termination-log="+termLog)
	if code := exitCode(t, cmd, logs); code != botruntime.ExitReplaced {
		t.Fatalf("exit code %d, want %d\n%s", code, botruntime.ExitReplaced, logs)
	}
	reason, _ := os.ReadFile(termLog)
	if !strings.HasPrefix(string(reason), shardkeeperv1.ReasonPodReplaced+": ") || shardkeeperv1.IsFatalBotReason(shardkeeperv1.ReasonPodReplaced) {
		t.Errorf("termination log %q", reason)
	}
	if n := srv.Stats().Connections; n != 0 {
		t.Errorf("%d gateway connections from a replaced pod", n)
	}
}
