package clients

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// heartbeatInterval is the emulator's Hello interval in the blocked event loop test: short,
// so that the run takes seconds; the emulator closes a connection silent for 2 intervals + 1 s.
const heartbeatInterval = 2 * time.Second

// TestDiscordPyBlockedEventLoop is the seed's failure with a real client: a discord.py
// handler blocks its event loop (time.sleep) for 3 heartbeat intervals, so its heartbeats
// stop; the emulator (--enforce-heartbeats) closes the connection with 4009 and ends the
// session, as Discord does. A user keeps sending !ping every half second throughout.
// The test asserts what is certain (the 4009, a new identify, answers again once the bot
// is back, none twice) and reports the rest, which is the baseline docs/performance.md
// records for the gateway proxy to beat: what the client did after the close, and which
// messages were answered, how late.
func TestDiscordPyBlockedEventLoop(t *testing.T) {
	enabled(t)
	e := startEmulator(t, "--enforce-heartbeats", "--heartbeat-interval", heartbeatInterval.String())
	b := discordPy(t, e.target(), false)
	b.waitEvent(t, "ready", 1, time.Minute)
	warm := e.send(t, e.guilds[0], "!ping")
	if !e.answered(t, 30*time.Second, warm) {
		t.Fatalf("discord.py did not answer !ping before the block")
	}

	block := 3 * heartbeatInterval
	e.send(t, e.guilds[0], fmt.Sprintf("!block %g", block.Seconds()))
	blockStart := b.waitEvent(t, "block_start", 1, 30*time.Second).At

	// Pings every half second, until 3 s after the new session's READY. discord.py
	// dispatches "connect" when a READY arrives (discord/state.py:603), on_ready only 2 s
	// later (guild_ready_timeout).
	var pings []ping
	var back time.Time
	for i := 0; back.IsZero() || time.Since(back) < 3*time.Second; i++ {
		if time.Since(blockStart) > 2*time.Minute {
			t.Fatalf("discord.py had no new session within 2 minutes of blocking: READYs at %v", b.eventsNamed("connect"))
		}
		pings = append(pings, e.send(t, e.guilds[i%len(e.guilds)], "!ping"))
		if readies := b.eventsNamed("connect"); back.IsZero() && len(readies) > 1 {
			back = readies[1].At
		}
		time.Sleep(500 * time.Millisecond)
	}
	blockEnd := b.waitEvent(t, "block_end", 1, time.Second).At

	// Every ping sent once the bot was back is answered; the others may be lost.
	answeredSinceBack := func() bool {
		count, _ := answers(e.replies(t))
		for _, p := range pings {
			if p.sentAt.After(back) && count[p.id] == 0 {
				return false
			}
		}
		return true
	}
	if !eventually(30*time.Second, answeredSinceBack) {
		t.Fatalf("discord.py, with a new session %v after blocking, did not answer the pings sent since", back.Sub(blockStart))
	}
	time.Sleep(2 * time.Second) // late and duplicate answers come now
	count, first := answers(e.replies(t))

	st := e.stats(t)
	shard := st.Shards[0]
	if shard.CloseCodes.Server[4009] == 0 {
		t.Errorf("the emulator sent close codes %v, want a 4009 after the heartbeats stopped", shard.CloseCodes.Server)
	}
	if st.Identifies < 2 {
		t.Errorf("%d identifies, want a new one after the 4009 ended the session", st.Identifies)
	}
	for _, p := range pings {
		if count[p.id] > 1 {
			t.Errorf("message %d answered %d times", p.id, count[p.id])
		}
	}

	// The baseline.
	phases := []struct {
		name     string
		from, to time.Time
	}{
		{"sent while the loop was blocked", blockStart, blockEnd},
		{"sent after the block, before the new session's READY", blockEnd, back},
		{"sent after that READY", back, time.Now()},
	}
	var report strings.Builder
	fmt.Fprintf(&report, "discord.py 2.2.2, heartbeat interval %v, event loop blocked %v:\n", heartbeatInterval, block)
	fmt.Fprintf(&report, "  emulator: close codes sent %v, client close codes %v; %d connections (%d of them sessions), %d identifies, %d resumes, %d failed resumes\n",
		shard.CloseCodes.Server, shard.CloseCodes.Client, st.Connections, shard.Connections, st.Identifies, st.Resumes, st.ResumeFailures)
	fmt.Fprintf(&report, "  bot (from block start): block end %v", blockEnd.Sub(blockStart).Round(10*time.Millisecond))
	for _, name := range []string{"disconnect", "resumed", "connect", "ready"} {
		for _, ev := range b.eventsNamed(name) {
			if ev.At.After(blockStart) {
				fmt.Fprintf(&report, ", %s %v", name, ev.At.Sub(blockStart).Round(10*time.Millisecond))
			}
		}
	}
	report.WriteString(" (connect: READY received; ready: on_ready)\n")
	var lost []time.Duration
	for _, p := range pings {
		if count[p.id] == 0 {
			lost = append(lost, p.sentAt.Sub(blockStart))
		}
	}
	if len(lost) > 0 {
		fmt.Fprintf(&report, "  lost: %d of %d pings, those sent from %v to %v after the block started\n",
			len(lost), len(pings), lost[0].Round(10*time.Millisecond), lost[len(lost)-1].Round(10*time.Millisecond))
	}
	for _, ph := range phases {
		var sent, answered int
		var slowest time.Duration
		var fastest time.Duration = -1
		for _, p := range pings {
			if p.sentAt.Before(ph.from) || !p.sentAt.Before(ph.to) {
				continue
			}
			sent++
			if count[p.id] == 0 {
				continue
			}
			answered++
			late := first[p.id].Sub(p.sentAt)
			slowest = max(slowest, late)
			if fastest < 0 || late < fastest {
				fastest = late
			}
		}
		fmt.Fprintf(&report, "  pings %s: %d sent, %d answered, %d lost", ph.name, sent, answered, sent-answered)
		if answered > 0 {
			fmt.Fprintf(&report, "; answered after %v to %v", fastest.Round(time.Millisecond), slowest.Round(time.Millisecond))
		}
		report.WriteString("\n")
	}
	t.Log(report.String())
}
