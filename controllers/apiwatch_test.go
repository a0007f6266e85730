package controllers

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	toolscache "k8s.io/client-go/tools/cache"
)

func TestWatchOutages(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	now := t0
	w := &watchOutages{now: func() time.Time { return now }}
	leases := toolscache.NewReflector(nil, &coordinationv1.Lease{}, toolscache.NewStore(toolscache.MetaNamespaceKeyFunc), 0)
	pods := toolscache.NewReflector(nil, &corev1.Pod{}, toolscache.NewStore(toolscache.MetaNamespaceKeyFunc), 0)
	ctx := context.Background()

	// Watches close normally all the time: no outage.
	w.handle(ctx, leases, io.EOF)
	w.handle(ctx, leases, apierrors.NewResourceExpired("too old"))
	w.handle(ctx, pods, errors.New("connection refused")) // not the Lease watch
	if got := w.blindUntil(); !got.IsZero() {
		t.Fatalf("blind until %s after normal closes", got)
	}

	// The Lease watch fails: blind (every Lease counts as renewed now) until Lease events
	// flow again, then a fresh start from that moment.
	w.handle(ctx, leases, apierrors.NewServiceUnavailable("down"))
	now = t0.Add(40 * time.Second)
	if got := w.blindUntil(); !got.Equal(now) {
		t.Fatalf("during the outage: blind until %s, want now %s", got, now)
	}
	now = t0.Add(90 * time.Second)
	w.sawLeaseEvent()
	now = t0.Add(10 * time.Minute)
	if got := w.blindUntil(); !got.Equal(t0.Add(90 * time.Second)) {
		t.Fatalf("after recovery: blind until %s, want the first Lease event at +90s", got)
	}

	// A failure with no Lease event after it (every bot down) blinds for a bounded time.
	w.handle(ctx, leases, errors.New("connection reset"))
	failedAt := now
	now = failedAt.Add(watchRecoveryLimit + time.Minute)
	if got := w.blindUntil(); !got.Equal(failedAt.Add(watchRecoveryLimit)) {
		t.Fatalf("no event after the failure: blind until %s, want %s", got, failedAt.Add(watchRecoveryLimit))
	}
}
