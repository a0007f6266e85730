package discordapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

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
	answer := func(shards, total, remaining, maxConcurrency int, resetAfter int64) string {
		return fmt.Sprintf(`{"url":"wss://x","shards":%d,"session_start_limit":{"total":%d,"remaining":%d,"reset_after":%d,"max_concurrency":%d}}`,
			shards, total, remaining, resetAfter, maxConcurrency)
	}
	tests := []struct {
		name  string
		body  string
		field string // "" when the answer is fine
	}{
		{"Discord's usual answer", answer(16, 1000, 990, 1, 86_400_000), ""},
		{"the largest plausible answer", answer(MaxShards, MaxSessionStarts, MaxSessionStarts, MaxMaxConcurrency, MaxResetAfter.Milliseconds()), ""},
		{"no shards", answer(0, 1000, 1000, 1, 1000), "shards"},
		{"10^8 shards", answer(100_000_000, 1000, 1000, 1, 1000), "shards"},
		{"negative shards", answer(-1, 1000, 1000, 1, 1000), "shards"},
		{"no concurrency", answer(1, 1000, 1000, 0, 1000), "max_concurrency"},
		{"10^8 identify buckets", answer(1, 1000, 1000, 100_000_000, 1000), "max_concurrency"},
		{"negative total", answer(1, -5, 0, 1, 1000), "total"},
		{"more remaining than total", answer(1, 1000, 1001, 1, 1000), "remaining"},
		{"negative remaining", answer(1, 1000, -1, 1, 1000), "remaining"},
		{"reset in a year", answer(1, 1000, 10, 1, 365*24*3600*1000), "reset_after"},
		{"negative reset", answer(1, 1000, 10, 1, -1), "reset_after"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			_, err := NewClient("test").GatewayBot(context.Background(), srv.URL, "tok")
			var implausible *ImplausibleAnswerError
			switch {
			case tc.field == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.field != "" && !errors.As(err, &implausible):
				t.Fatalf("got %v, want an ImplausibleAnswerError", err)
			case tc.field != "" && !strings.HasSuffix(implausible.Field, tc.field):
				t.Fatalf("refused for %s, want %s", implausible.Field, tc.field)
			}
		})
	}
}

// A server's error body goes into a condition and an event: only a short, printable
// excerpt of it may.
func TestGatewayBotErrorsCarryOnlyAnExcerptOfTheBody(t *testing.T) {
	huge := strings.Repeat("é", 400_000) + "\x00\x1b[31m"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
		_, _ = w.Write([]byte(huge))
	}))
	defer srv.Close()
	_, err := NewClient("test").GatewayBot(context.Background(), srv.URL, "tok")
	if err == nil {
		t.Fatal("a 502 was accepted")
	}
	msg := err.Error()
	if len(msg) > 400 || !utf8.ValidString(msg) || strings.ContainsAny(msg, "\x00\x1b") {
		t.Fatalf("error of %d bytes (valid UTF-8: %v): %.100q", len(msg), utf8.ValidString(msg), msg)
	}
	if !strings.Contains(msg, "502") {
		t.Errorf("error %q does not say the status", msg)
	}
}

// A hostile or broken server cannot park the operator's questions for years.
func TestGatewayBotWaitsAreBounded(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = w.Write([]byte(`{"retry_after": 1e12}`))
	}))
	defer srv.Close()
	_, err := NewClient("test").GatewayBot(context.Background(), srv.URL, "tok")
	var rl *RateLimitedError
	if !errors.As(err, &rl) || rl.RetryAfter != MaxWait {
		t.Fatalf("got %v, want a RateLimitedError of %v", err, MaxWait)
	}
}

// The token never follows a redirect: not to another host, not to the same host over
// plain http or another port.
func TestGatewayBotFollowsNoRedirect(t *testing.T) {
	var leaked atomic.Int32
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			leaked.Add(1)
		}
		_, _ = w.Write([]byte(`{"url":"wss://x","shards":1,"session_start_limit":{"total":1,"remaining":1,"reset_after":1,"max_concurrency":1}}`))
	}))
	defer elsewhere.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	_, err := NewClient("test").GatewayBot(context.Background(), srv.URL, "tok")
	if err == nil || !strings.Contains(err.Error(), "307") {
		t.Fatalf("got %v, want the redirect as an error", err)
	}
	if leaked.Load() != 0 {
		t.Fatal("the token followed the redirect")
	}
}
