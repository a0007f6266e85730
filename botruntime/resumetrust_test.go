package botruntime_test

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shardkeeper/shardkeeper/botruntime"
	"github.com/shardkeeper/shardkeeper/internal/discordtest"
)

// attackerHost is a listener that counts the connections a bot opens to it: any at all
// would carry the token in op 6.
type attackerHost struct {
	ln    net.Listener
	dials atomic.Int32
}

func newAttackerHost(t *testing.T) *attackerHost {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := &attackerHost{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			a.dials.Add(1)
			_ = c.Close()
		}
	}()
	t.Cleanup(func() { _ = ln.Close() })
	return a
}

func (a *attackerHost) url() string { return "ws://" + a.ln.Addr().String() }

func TestSavedStateNeverSendsTheTokenToAForeignHost(t *testing.T) {
	tests := map[string]func(attacker string) botruntime.ResumeState{
		"a foreign resume URL": func(attacker string) botruntime.ResumeState {
			return botruntime.ResumeState{Shard: 0, ShardCount: 1, SessionID: "planted", Sequence: 3, ResumeURL: attacker, SavedAt: time.Now()}
		},
		// Dated in the future, it would never age out: refused even with a trusted URL.
		"state dated in the future": func(string) botruntime.ResumeState {
			return botruntime.ResumeState{Shard: 0, ShardCount: 1, SessionID: "planted", Sequence: 3, SavedAt: time.Now().Add(time.Hour)}
		},
	}
	for name, planted := range tests {
		t.Run(name, func(t *testing.T) {
			attacker := newAttackerHost(t)
			srv := discordtest.NewServer(discordtest.Options{HeartbeatInterval: 100 * time.Millisecond})
			defer srv.Close()
			store := botruntime.NewMemoryResumeStore()
			_ = store.Save(context.Background(), []botruntime.ResumeState{planted(attacker.url())})
			rt := newRuntime(t, srv, []int{0}, 1, botruntime.WithResumeStore(store))
			running(t, rt)
			eventually(t, "ready", func() bool { return allReady(rt) })
			st := srv.Stats().PerShard[0]
			if st.Identifies != 1 || st.Resumes != 0 {
				t.Errorf("identifies %d, resumes %d: the planted state must not be resumed", st.Identifies, st.Resumes)
			}
			if n := attacker.dials.Load(); n != 0 {
				t.Errorf("the bot connected %d times to the planted host", n)
			}
		})
	}
}

func TestReadysForeignResumeURLIsNotFollowed(t *testing.T) {
	attacker := newAttackerHost(t)
	// The gateway hands out the attacker's host as resume_gateway_url.
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := free.Addr().String()
	_ = free.Close()
	srv := discordtest.NewServer(discordtest.Options{HeartbeatInterval: 100 * time.Millisecond,
		ListenAddr: addr, PublicHost: attacker.ln.Addr().String()})
	defer srv.Close()
	rt := newRuntimeWithConfig(t, srv, discordtest.DefaultToken, []int{0}, 1, func(cfg *botruntime.Config) {
		cfg.GatewayURL, cfg.APIURL = "ws://"+addr, "http://"+addr+"/api/v10"
	})
	running(t, rt)
	eventually(t, "ready", func() bool { return allReady(rt) })
	srv.Reconnect(0) // op 7: resume, at the gateway URL rather than READY's
	eventually(t, "resumed", func() bool { return srv.Stats().PerShard[0].Resumes == 1 })
	if n := attacker.dials.Load(); n != 0 {
		t.Errorf("the bot connected %d times to READY's untrusted resume host", n)
	}
}
