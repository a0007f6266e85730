// Package clients connects real, unmodified Discord client libraries to
// cmd/discord-emulator the way their users connect them to Discord: discord.py 2.2.2 from
// Debian, run with and without zstandard importable, and discord.js 14 from the npm
// registry, run without and with zlib-sync (docs/clients.md). Each bot answers !ping with
// pong through REST and resumes after the emulator cuts its connection with no event lost;
// a discord.py bot that blocks its event loop past the heartbeat deadline records what the
// client does after the 4009 (docs/performance.md). The example bots users copy
// (examples/python-bot, examples/node-bot) run through a gateway proxy as their images run
// them (examples_test.go).
//
// `make test-clients` installs the clients (hack/install-client-deps.sh) and runs this
// package with SHARDKEEPER_CLIENT_TESTS=1. Without that variable every test skips (so
// plain `go test ./...` needs neither Python nor Node); with it, a missing client fails.
package clients

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// enabledVar turns the suite on; make test-clients sets it after installing the clients.
const enabledVar = "SHARDKEEPER_CLIENT_TESTS"

var (
	// repoRoot is the module's root: the bots' paths are relative to it.
	repoRoot string
	// emulatorBin is cmd/discord-emulator and proxyBin cmd/gateway-proxy, built by TestMain.
	emulatorBin, proxyBin string
)

func TestMain(m *testing.M) {
	if os.Getenv(enabledVar) != "1" {
		fmt.Printf("real-client tests skipped: run `make test-clients` (it installs the clients and sets %s=1)\n", enabledVar)
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "shardkeeper-clients-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := 1
	if err := buildBinaries(dir); err != nil {
		fmt.Fprintln(os.Stderr, "building cmd/discord-emulator and cmd/gateway-proxy:", err)
	} else {
		code = m.Run()
	}
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

func buildBinaries(dir string) error {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		return err
	}
	repoRoot = root
	emulatorBin, proxyBin = filepath.Join(dir, "discord-emulator"), filepath.Join(dir, "gateway-proxy")
	build := exec.Command("go", "build", "-o", dir, "./cmd/discord-emulator", "./cmd/gateway-proxy")
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("%w\n%s", err, out)
	}
	return nil
}

// enabled skips the test when the suite is off.
func enabled(t *testing.T) {
	t.Helper()
	if emulatorBin == "" {
		t.Skipf("real clients: run `make test-clients`")
	}
}
