package botruntime

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// livenessWindow is how long a shard's supervisor may go without progress (a frame read,
// a heartbeat sent, a state change) before the process counts as wedged. It covers the
// longest backoff plus a dial timeout; a connected shard makes progress every heartbeat.
const livenessWindow = backoffMax + dialTimeout + 30*time.Second

// healthReport is the body of /healthz and /readyz.
type healthReport struct {
	OK      bool          `json:"ok"`
	Problem string        `json:"problem,omitempty"`
	Backlog int64         `json:"backlog"`
	Shards  []ShardStatus `json:"shards"`
}

// Live reports whether the process and its loops are alive, and the bot's own liveness
// checks pass. A reconnecting shard is alive; a shard stopped by a fatal close code is too
// (restarting would not help).
func (r *Runtime) Live() (bool, string) {
	if ok, why := r.shardsLive(); !ok {
		return false, why
	}
	for _, c := range r.livenessChecks {
		if err := c.run(); err != nil {
			return false, fmt.Sprintf("check %s: %v", c.name, err)
		}
	}
	return true, ""
}

// shardsLive is the runtime's own part of liveness: every running shard's supervisor made
// progress lately. The heartbeat Lease follows this part only: a bot's own check failing
// is the kubelet's to act on (a container restart), not a reason to replace the pod.
func (r *Runtime) shardsLive() (bool, string) {
	for _, st := range r.Shards() {
		if st.State == StateFailed || st.State == StateStopped {
			continue
		}
		if since := r.clock.Since(st.LastProgress); since > livenessWindow {
			return false, fmt.Sprintf("shard %d made no progress for %s (state %s)", st.ID, since.Round(time.Second), st.State)
		}
	}
	return true, ""
}

// livenessCheckTimeout bounds a bot's own liveness check: the kubelet's probe gives up
// after 3 s.
const livenessCheckTimeout = time.Second

// livenessCheck is a bot's own part of /healthz (WithLivenessCheck). It runs on the wall
// clock, not the runtime's: its deadline is the check's context, which the bot's code
// hands to its own I/O, and it races the kubelet's probe timeout, a wall time too.
type livenessCheck struct {
	name  string
	check func(context.Context) error
	// since is when the check still running started; nil when none runs. A check that
	// hangs is not started again by every probe.
	since atomic.Pointer[time.Time]
}

// run runs the check with a deadline. One that does not return in time counts as failed,
// and so does every probe until it returns.
func (c *livenessCheck) run() error {
	now := time.Now()
	for !c.since.CompareAndSwap(nil, &now) {
		if since := c.since.Load(); since != nil {
			return fmt.Errorf("still running, for %s", time.Since(*since).Round(time.Second))
		}
		// It returned between the two reads: start it again.
	}
	ctx, cancel := context.WithTimeout(context.Background(), livenessCheckTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		err := c.check(ctx)
		// Done running before its result is out: the probe after this one starts it again.
		c.since.Store(nil)
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("no answer within %s", livenessCheckTimeout)
	}
}

// Ready reports whether every shard is connected (Ready or Resumed) and the dispatcher's
// backlog is under its soft bound.
func (r *Runtime) Ready() (bool, string) {
	for _, st := range r.Shards() {
		if st.State != StateReady && st.State != StateResumed {
			if st.Fatal != nil {
				return false, fmt.Sprintf("shard %d stopped: %s", st.ID, st.Fatal.Reason)
			}
			return false, fmt.Sprintf("shard %d is %s", st.ID, st.State)
		}
	}
	if r.dispatcher.overloaded() {
		return false, fmt.Sprintf("dispatcher backlog %d is over its bound %d", r.dispatcher.depth.Load(), r.dispatcher.softBacklog)
	}
	return true, ""
}

// HealthHandler serves /healthz, /readyz and /metrics.
func (r *Runtime) HealthHandler() http.Handler {
	mux := http.NewServeMux()
	report := func(check func() (bool, string)) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) {
			ok, problem := check()
			body := healthReport{OK: ok, Problem: problem, Backlog: r.dispatcher.depth.Load(), Shards: r.Shards()}
			w.Header().Set("Content-Type", "application/json")
			if !ok {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
			_ = json.NewEncoder(w).Encode(body)
		}
	}
	mux.Handle("/healthz", report(r.Live))
	mux.Handle("/readyz", report(r.Ready))
	mux.Handle("/metrics", promhttp.HandlerFor(r.metrics.registry, promhttp.HandlerOpts{}))
	for path, h := range r.extraHealth {
		mux.Handle(path, h)
	}
	return mux
}
