package controllers

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	toolscache "k8s.io/client-go/tools/cache"
)

// watchOutages tells health judgement when the operator could not see Lease renewals. While
// its Lease watch is down (an API server outage) a bot's silence says nothing about the
// bot, and once it is back the bots need a moment to renew again; so until the operator
// sees Lease events flow again it counts every Lease as renewed now, and from then on as
// renewed at that moment: every pod gets a fresh lease duration, as the node lifecycle
// controller gives every node after it was cut off.
type watchOutages struct {
	mu          sync.Mutex
	now         func() time.Time
	failing     bool      // the Lease watch failed and no Lease event came since
	lastFailure time.Time // the last failure reported
	recoveredAt time.Time // the first Lease event after the last failure
}

// watchRecoveryLimit bounds how long a failure without any Lease event after it keeps the
// operator blind: client-go retries a failed list at most about a minute apart, so two
// minutes without a new failure means the watch works and no bot has renewed since (they
// are all down, and judged from then on).
const watchRecoveryLimit = 2 * time.Minute

// apiWatches is the process's record, fed by the watch error handler of CacheOptions and
// by the Lease event handlers: the watches of one process share one API server.
var apiWatches = &watchOutages{now: time.Now}

// handle is a watch error handler: it records a failed Lease watch, then logs as client-go
// does. A watch that closes normally (EOF, an expired resource version) is no outage.
func (w *watchOutages) handle(ctx context.Context, r *toolscache.Reflector, err error) {
	if !errors.Is(err, io.EOF) && !apierrors.IsResourceExpired(err) && !apierrors.IsGone(err) &&
		strings.HasSuffix(r.TypeDescription(), ".Lease") {
		w.failed()
	}
	toolscache.DefaultWatchErrorHandler(ctx, r, err)
}

func (w *watchOutages) failed() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.failing, w.lastFailure = true, w.now()
}

// sawLeaseEvent records that Lease events flow: the watch works again.
func (w *watchOutages) sawLeaseEvent() {
	if w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.failing {
		w.failing, w.recoveredAt = false, w.now()
	}
}

// blindUntil is the moment up to which the operator could not see renewals: now while the
// Lease watch is down, else when it came back; zero when it never failed (or w is nil).
func (w *watchOutages) blindUntil() time.Time {
	if w == nil {
		return time.Time{}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.failing {
		if limit := w.lastFailure.Add(watchRecoveryLimit); w.now().Before(limit) {
			return w.now()
		}
		return w.lastFailure.Add(watchRecoveryLimit)
	}
	return w.recoveredAt
}
