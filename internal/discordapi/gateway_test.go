package discordapi

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/shardkeeper/shardkeeper/internal/discordtest"
)

func TestGatewayBotFromTheFake(t *testing.T) {
	srv := discordtest.NewServer(discordtest.Options{RecommendedShards: 16, MaxConcurrency: 4, SessionStartTotal: 1000, SessionStartRemaining: 990})
	defer srv.Close()
	c := NewClient("test")
	info, err := c.GatewayBot(context.Background(), srv.APIURL(), discordtest.DefaultToken)
	if err != nil {
		t.Fatal(err)
	}
	if info.Shards != 16 || info.SessionStartLimit.MaxConcurrency != 4 || info.SessionStartLimit.Total != 1000 || info.SessionStartLimit.Remaining != 990 {
		t.Fatalf("got %+v", info)
	}
	if info.ResetAfter() <= 23*time.Hour {
		t.Fatalf("reset after %v, want about the fake's default 24h", info.ResetAfter())
	}
	if _, err := c.GatewayBot(context.Background(), srv.APIURL(), "wrong"); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("wrong token: got %v, want ErrUnauthorized", err)
	}
}

func TestGatewayBotRateLimits(t *testing.T) {
	tests := []struct {
		name      string
		status    int
		header    map[string]string
		body      string
		wantWait  time.Duration // RateLimitedError.RetryAfter, or WaitBeforeNext on success
		wantError bool
	}{
		{"429 with retry_after in the body", 429, nil, `{"message":"You are being rate limited.","retry_after":1.5,"global":false}`, 1500 * time.Millisecond, true},
		{"429 with only the header", 429, map[string]string{"Retry-After": "3"}, `{}`, 3 * time.Second, true},
		{"429 with nothing says a minute", 429, nil, ``, time.Minute, true},
		{"answer that empties the bucket", 200, map[string]string{"X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": "2.25"},
			`{"url":"wss://x","shards":2,"session_start_limit":{"total":1000,"remaining":999,"reset_after":1000,"max_concurrency":1}}`, 2250 * time.Millisecond, false},
		{"plain answer", 200, map[string]string{"X-RateLimit-Remaining": "1"},
			`{"url":"wss://x","shards":2,"session_start_limit":{"total":1000,"remaining":999,"reset_after":1000,"max_concurrency":1}}`, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/api/v10/gateway/bot" || r.Header.Get("Authorization") != "Bot tok" {
					http.Error(w, "wrong request", http.StatusBadRequest)
					return
				}
				for k, v := range tc.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			info, err := NewClient("test").GatewayBot(context.Background(), srv.URL+"/api/v10/", "tok")
			var rl *RateLimitedError
			switch {
			case tc.wantError && !errors.As(err, &rl):
				t.Fatalf("got %v, want a RateLimitedError", err)
			case tc.wantError && rl.RetryAfter != tc.wantWait:
				t.Fatalf("retry after %v, want %v", rl.RetryAfter, tc.wantWait)
			case !tc.wantError && err != nil:
				t.Fatal(err)
			case !tc.wantError && info.WaitBeforeNext != tc.wantWait:
				t.Fatalf("wait before next %v, want %v", info.WaitBeforeNext, tc.wantWait)
			}
		})
	}
}

func TestGatewayBotRejectsImplausibleAnswers(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"url":"wss://x","shards":0,"session_start_limit":{"max_concurrency":0}}`))
	}))
	defer srv.Close()
	if _, err := NewClient("test").GatewayBot(context.Background(), srv.URL, "tok"); err == nil {
		t.Fatal("an answer with 0 shards was accepted")
	}
}
