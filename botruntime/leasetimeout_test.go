package botruntime

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// A hung API server (accepts, never answers) must not hold the heartbeat: every Lease call
// gives up after a quarter of the lease duration.
func TestLeaseCallsGiveUpOnAHungAPIServer(t *testing.T) {
	release := make(chan struct{})
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer hung.Close()
	defer close(release)
	h := &leaseHeartbeat{client: kubernetes.NewForConfigOrDie(&rest.Config{Host: hung.URL}), namespace: "ns", name: "bot-0",
		duration: 4 * time.Second}

	for name, call := range map[string]func(context.Context) error{
		"read the Lease":         h.load,
		"load the resume states": func(ctx context.Context) error { _, err := leaseResumeStore{h}.Load(ctx); return err },
	} {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			err := call(context.Background())
			took := time.Since(start)
			if err == nil {
				t.Fatal("a call to a hung API server succeeded")
			}
			if took < h.duration/4 || took > h.duration/4+2*time.Second {
				t.Errorf("gave up after %s, want about a quarter of the %s lease", took.Round(time.Millisecond), h.duration)
			}
		})
	}
}
