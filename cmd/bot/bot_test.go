package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
	"github.com/shardkeeper/shardkeeper/botruntime"
	"github.com/shardkeeper/shardkeeper/internal/discordtest"
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

// TestBadConfigurationExitsWithCode2 runs the real binary: configuration errors end the
// process with exit code 2 and one clear message.
func TestBadConfigurationExitsWithCode2(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "bot")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "--termination-log=")
	cmd.Env = []string{"SHARDKEEPER_SHARD_IDS=0,7", "SHARDKEEPER_SHARD_COUNT=2"}
	out, err := cmd.CombinedOutput()
	exit, ok := err.(*exec.ExitError)
	if !ok || exit.ExitCode() != botruntime.ExitBadConfig {
		t.Fatalf("exit %v, want code %d\n%s", err, botruntime.ExitBadConfig, out)
	}
	for _, want := range []string{"shard ID 7 is outside 0..1", "no token file"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
