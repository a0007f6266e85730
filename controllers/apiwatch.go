package controllers

import (
	"context"
	"sync"
	"time"

	toolscache "k8s.io/client-go/tools/cache"
)

// watchOutages remembers when the operator's watches last failed. While a watch is down
// the operator sees no Lease renewals, and a bot's silence then says nothing about the
// bot; so health judgement counts every Lease as renewed at the last failure, which gives
// every pod a fresh lease duration once the watches work again.
type watchOutages struct {
	mu   sync.Mutex
	last time.Time
	now  func() time.Time
}

// apiWatches is the process's record, fed by the watch error handler of CacheOptions: the
// watches of one process share one API server.
var apiWatches = &watchOutages{now: time.Now}

// handle is a watch error handler: it records the failure and then logs it as client-go does.
func (w *watchOutages) handle(ctx context.Context, r *toolscache.Reflector, err error) {
	w.record()
	toolscache.DefaultWatchErrorHandler(ctx, r, err)
}

func (w *watchOutages) record() {
	w.mu.Lock()
	w.last = w.now()
	w.mu.Unlock()
}

// lastFailure is when a watch last failed; zero when none did (or w is nil).
func (w *watchOutages) lastFailure() time.Time {
	if w == nil {
		return time.Time{}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last
}
