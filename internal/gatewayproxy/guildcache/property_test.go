package guildcache_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
	"github.com/shardkeeper/shardkeeper/botruntime"
	"github.com/shardkeeper/shardkeeper/internal/discordtest"
	"github.com/shardkeeper/shardkeeper/internal/gatewayproxy/guildcache"
)

// seedEnv overrides the property test's random seed, to replay a failure.
const seedEnv = "GUILDCACHE_SEED"

// A long random run of guild changes in the fake Discord, delivered over a real
// gateway connection to a botruntime runtime whose handler feeds one Cache per shard:
// at the end every guild's cached GUILD_CREATE equals the fake's.
func TestCacheFollowsTheFakesGuilds(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(seedEnv); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", seedEnv, s, err)
		}
		seed = v
	}
	t.Logf("seed %d (replay with %s=%d)", seed, seedEnv, seed)
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed))
	ops := 600
	if testing.Short() {
		ops = 200
	}

	const shardCount = 2
	var guildIDs []uint64
	for k := range uint64(6) {
		guildIDs = append(guildIDs, (k+1)<<22|4242)
	}
	srv := discordtest.NewServer(discordtest.Options{HeartbeatInterval: time.Hour, Guilds: guildIDs})
	defer srv.Close()
	feed := newCacheFeed(shardCount)
	startRuntime(t, srv, shardCount, feed.handle)
	feed.waitCaughtUp(t, srv, shardCount)

	m := newModel(guildIDs, srv.Options().BotUserID)
	counts := map[string]int{}
	for i := range ops {
		// Now and then the connection drops (the runtime resumes and gets the events it
		// missed replayed) or, once, the session ends (a new READY resets the cache).
		switch {
		case i == ops/2:
			srv.InvalidSession(rng.IntN(shardCount), false)
			counts["session ended"]++
		case rng.IntN(100) == 0:
			srv.Cut(rng.IntN(shardCount))
			counts["connection cut"]++
		}
		name, err := m.step(rng, srv)
		if err != nil {
			t.Fatalf("%s: %v (seed %d)", name, err, seed)
		}
		counts[name]++
	}
	t.Logf("operations: %v", counts)
	feed.waitCaughtUp(t, srv, shardCount)
	if errs := feed.errors(); len(errs) > 0 {
		t.Fatalf("Apply failed %d times, first: %v (seed %d)", len(errs), errs[0], seed)
	}

	for shard := range shardCount {
		cache := feed.caches[shard]
		var want []guildcache.Guild
		for _, id := range m.guildOrder {
			if discordtest.ShardForGuild(id, shardCount) == shard {
				want = append(want, guildcache.Guild{ID: strconv.FormatUint(id, 10), Unavailable: m.guilds[id].unavailable})
			}
		}
		if got := cache.Guilds(); !slices.Equal(got, want) {
			t.Errorf("shard %d guilds %v, want %v (seed %d)", shard, got, want, seed)
		}
		for _, g := range want {
			id, _ := strconv.ParseUint(g.ID, 10, 64)
			got, ok := cache.GuildCreate(g.ID)
			if !ok {
				t.Errorf("guild %s not cached", g.ID)
				continue
			}
			if diff := jsonDiff(normalize(t, got), normalize(t, srv.GuildCreate(id))); diff != "" {
				t.Errorf("guild %s: cache and fake differ: %s (seed %d)", g.ID, diff, seed)
			}
		}
	}
}

// cacheFeed is the handler side: one Cache per shard, Reset on READY, Apply otherwise.
type cacheFeed struct {
	caches []*guildcache.Cache

	mu      sync.Mutex
	lastSeq map[int]int
	errs    []error
}

func newCacheFeed(shards int) *cacheFeed {
	f := &cacheFeed{lastSeq: map[int]int{}}
	for range shards {
		f.caches = append(f.caches, guildcache.New(guildcache.Options{}))
	}
	return f
}

func (f *cacheFeed) handle(_ context.Context, ev botruntime.Event) {
	var err error
	if ev.Type == "READY" {
		err = f.caches[ev.Shard].Reset(ev.Raw)
	} else {
		err = f.caches[ev.Shard].Apply(string(ev.Type), ev.Raw)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err != nil {
		f.errs = append(f.errs, err)
	}
	f.lastSeq[ev.Shard] = ev.Seq
}

func (f *cacheFeed) errors() []error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.errs)
}

// waitCaughtUp waits until every shard's handler has seen the last event the fake
// sent it.
func (f *cacheFeed) waitCaughtUp(t *testing.T, srv *discordtest.Server, shards int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		st := srv.Stats()
		f.mu.Lock()
		done := true
		for shard := range shards {
			ss, ok := st.PerShard[shard]
			if !ok || !srv.Connected(shard) || f.lastSeq[shard] != ss.LastSeq {
				done = false
			}
		}
		f.mu.Unlock()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the handlers did not catch up with the fake: handled %v, stats %+v", f.lastSeq, st.PerShard)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func startRuntime(t *testing.T, srv *discordtest.Server, shards int, handle botruntime.Handler) {
	t.Helper()
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(discordtest.DefaultToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var ids []int
	for i := range shards {
		ids = append(ids, i)
	}
	rt, err := botruntime.New(botruntime.Config{
		ShardIDs: ids, ShardCount: shards, TokenFile: tokenFile,
		Intents:    []shardkeeperv1.Intent{"GUILDS", "GUILD_MEMBERS", "GUILD_EXPRESSIONS"},
		GatewayURL: srv.URL(), APIURL: srv.APIURL(), HealthAddr: "127.0.0.1:0",
		MaxConcurrency: 1, IdentifyInterval: 10 * time.Millisecond,
	}, botruntime.WithRawEvents(), botruntime.WithWorkers(1))
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Handle(handle); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Run did not return")
		}
	})
}

// model is what the test knows of the fake's guilds, to pick what to change.
type model struct {
	bot        uint64
	guildOrder []uint64
	guilds     map[uint64]*modelGuild
	nextUser   uint64
}

type modelGuild struct {
	unavailable bool
	channels    []uint64
	threads     map[uint64]uint64 // thread -> parent
	roles       []uint64          // without @everyone
	members     []uint64          // without the bot
}

func newModel(guildIDs []uint64, bot uint64) *model {
	m := &model{bot: bot, guildOrder: slices.Clone(guildIDs), guilds: map[uint64]*modelGuild{}, nextUser: 1 << 40}
	for _, id := range guildIDs {
		m.guilds[id] = &modelGuild{channels: []uint64{id}, threads: map[uint64]uint64{}}
	}
	return m
}

func pick[T any](rng *rand.Rand, s []T) T { return s[rng.IntN(len(s))] }

func without(s []uint64, id uint64) []uint64 {
	return slices.DeleteFunc(slices.Clone(s), func(x uint64) bool { return x == id })
}

func someOf(rng *rand.Rand, s []uint64) []uint64 {
	var out []uint64
	for _, id := range s {
		if rng.IntN(3) == 0 {
			out = append(out, id)
		}
	}
	return out
}

func ptr[T any](v T) *T { return &v }

// step makes one random change in the fake and returns its name.
func (m *model) step(rng *rand.Rand, srv *discordtest.Server) (string, error) {
	var available []uint64
	for _, id := range m.guildOrder {
		if !m.guilds[id].unavailable {
			available = append(available, id)
		}
	}
	if len(available) == 0 || rng.IntN(100) == 0 {
		id := pick(rng, m.guildOrder)
		g := m.guilds[id]
		g.unavailable = !g.unavailable
		return "outage", srv.SetGuildUnavailable(id, g.unavailable)
	}
	id := pick(rng, available)
	g := m.guilds[id]
	word := fmt.Sprintf("w%d", rng.IntN(1000))
	switch r := rng.IntN(100); {
	case r < 5:
		return "update guild", srv.UpdateGuild(id, func(s *discordtest.GuildSettings) {
			s.Name = "guild " + word
			s.Description = ptr(word)
			s.AFKTimeout = 60 * rng.IntN(10)
			s.Features = []string{"COMMUNITY", "NEWS", "INVITE_SPLASH"}[:rng.IntN(4)]
		})
	case r < 15:
		ch, err := srv.CreateChannel(id, discordtest.Channel{Name: "c-" + word, Type: pick(rng, []int{0, 0, 2, 5}), Position: rng.IntN(20)})
		g.channels = append(g.channels, ch)
		return "create channel", err
	case r < 25:
		return "update channel", srv.UpdateChannel(id, pick(rng, g.channels), func(c *discordtest.Channel) {
			c.Name, c.Topic, c.NSFW, c.Position = "c-"+word, ptr(word), rng.IntN(2) == 0, rng.IntN(20)
		})
	case r < 29:
		if len(g.channels) < 2 {
			return "delete channel (none)", nil
		}
		ch := pick(rng, g.channels)
		g.channels = without(g.channels, ch)
		for th, parent := range g.threads {
			if parent == ch {
				delete(g.threads, th)
			}
		}
		return "delete channel", srv.DeleteChannel(id, ch)
	case r < 37:
		parent := pick(rng, g.channels)
		th, err := srv.CreateThread(id, discordtest.Thread{ParentID: parent, Name: "t-" + word, OwnerID: discordtest.TestUserID})
		g.threads[th] = parent
		return "create thread", err
	case r < 45:
		if len(g.threads) == 0 {
			return "update thread (none)", nil
		}
		th := pick(rng, slices.Sorted(maps.Keys(g.threads)))
		return "update thread", srv.UpdateThread(id, th, func(t *discordtest.Thread) {
			t.Name, t.MessageCount = "t-"+word, rng.IntN(100)
			t.Archived = rng.IntN(3) == 0 // archived threads leave GUILD_CREATE, and come back
			t.Locked = rng.IntN(4) == 0
		})
	case r < 49:
		if len(g.threads) == 0 {
			return "delete thread (none)", nil
		}
		th := pick(rng, slices.Sorted(maps.Keys(g.threads)))
		delete(g.threads, th)
		return "delete thread", srv.DeleteThread(id, th)
	case r < 56:
		role, err := srv.CreateRole(id, discordtest.Role{Name: "r-" + word, Color: rng.IntN(1 << 24), Position: rng.IntN(10)})
		g.roles = append(g.roles, role)
		return "create role", err
	case r < 62:
		if len(g.roles) == 0 {
			return "update role (none)", nil
		}
		return "update role", srv.UpdateRole(id, pick(rng, g.roles), func(r *discordtest.Role) {
			r.Name, r.Hoist, r.Mentionable, r.Permissions = "r-"+word, rng.IntN(2) == 0, rng.IntN(2) == 0, strconv.Itoa(rng.IntN(1<<20))
		})
	case r < 66:
		if len(g.roles) == 0 {
			return "delete role (none)", nil
		}
		role := pick(rng, g.roles)
		g.roles = without(g.roles, role)
		return "delete role", srv.DeleteRole(id, role)
	case r < 78:
		m.nextUser++
		g.members = append(g.members, m.nextUser)
		_, err := srv.AddMember(id, discordtest.Member{UserID: m.nextUser, Roles: someOf(rng, g.roles), Pending: rng.IntN(2) == 0})
		return "add member", err
	case r < 90:
		user := m.bot
		if len(g.members) > 0 && rng.IntN(5) > 0 {
			user = pick(rng, g.members)
		}
		return "update member", srv.UpdateMember(id, user, func(mem *discordtest.Member) {
			mem.Nick, mem.Roles, mem.Mute = ptr(word), someOf(rng, g.roles), rng.IntN(2) == 0
			if rng.IntN(4) == 0 {
				mem.Nick = nil
			}
		})
	case r < 95:
		if len(g.members) == 0 {
			return "remove member (none)", nil
		}
		user := pick(rng, g.members)
		g.members = without(g.members, user)
		return "remove member", srv.RemoveMember(id, user)
	default:
		var emojis []discordtest.Emoji
		for i := range rng.IntN(5) {
			emojis = append(emojis, discordtest.Emoji{Name: fmt.Sprintf("e%d_%s", i, word), Roles: someOf(rng, g.roles), Available: true})
		}
		return "set emojis", srv.SetEmojis(id, emojis)
	}
}
