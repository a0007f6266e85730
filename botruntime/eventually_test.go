package botruntime

import (
	"testing"
	"time"
)

// WaitLimit bounds every wait in the tests. Behaviour, not speed: the limit is far above
// what any check needs on a busy machine.
const WaitLimit = 20 * time.Second

// eventually polls cond until it holds or WaitLimit passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(WaitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Eventually is eventually for the external test package.
var Eventually = eventually
