package botruntime

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-logr/logr"
)

func TestResumeStoresMergeByShard(t *testing.T) {
	ctx := context.Background()
	stores := map[string]ResumeStore{
		"memory": NewMemoryResumeStore(),
		"file":   FileResumeStore{Path: filepath.Join(t.TempDir(), "resume.json")},
	}
	for name, store := range stores {
		t.Run(name, func(t *testing.T) {
			now := time.Now().UTC().Truncate(time.Second)
			if err := store.Save(ctx, []ResumeState{{Shard: 0, ShardCount: 4, SessionID: "a", Sequence: 7, SavedAt: now}}); err != nil {
				t.Fatal(err)
			}
			// Another runtime with other shards shares the store.
			if err := store.Save(ctx, []ResumeState{{Shard: 3, ShardCount: 4, SessionID: "b", Sequence: 9, SavedAt: now}}); err != nil {
				t.Fatal(err)
			}
			got, err := store.Load(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 2 || got[0].SessionID != "a" || got[3].Sequence != 9 || !got[3].SavedAt.Equal(now) {
				t.Errorf("loaded %+v", got)
			}
		})
	}
}

func TestExpectSeesOnlyLaterEvents(t *testing.T) {
	w := newWaiters(logr.Discard())
	r := &Runtime{waiters: w}
	other := r.Expect(func(Event) bool { return false }) // makes offers queue up
	defer other.Cancel()
	for seq := 1; seq <= 5; seq++ {
		w.offer(Event{Seq: seq})
	}
	mine := r.Expect(func(Event) bool { return true })
	w.offer(Event{Seq: 6})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.run(ctx)
	w.signal <- struct{}{}
	waitCtx, cancelWait := context.WithTimeout(ctx, 10*time.Second)
	defer cancelWait()
	ev, err := mine.Wait(waitCtx)
	if err != nil || ev.Seq != 6 {
		t.Fatalf("got seq %d (%v); want 6, the first event after Expect", ev.Seq, err)
	}
}
