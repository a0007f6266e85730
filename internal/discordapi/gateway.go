// Package discordapi is the little of Discord's REST API the operator itself calls:
// GET /gateway/bot, for the recommended shard count, the identify concurrency and the
// session start budget. It honours Discord's rate limits and never logs the token.
package discordapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/shardkeeper/shardkeeper/internal/excerpt"
)

// DefaultAPIURL is Discord's REST API.
const DefaultAPIURL = "https://discord.com/api/v10"

// GatewayBot is Discord's answer to GET /gateway/bot.
type GatewayBot struct {
	URL               string `json:"url"`
	Shards            int    `json:"shards"`
	SessionStartLimit struct {
		Total          int   `json:"total"`
		Remaining      int   `json:"remaining"`
		ResetAfter     int64 `json:"reset_after"` // milliseconds
		MaxConcurrency int   `json:"max_concurrency"`
	} `json:"session_start_limit"`
	// WaitBeforeNext is how long Discord asks to wait before the next call of this route
	// (its rate limit bucket is empty), 0 when it does not.
	WaitBeforeNext time.Duration `json:"-"`
}

// ResetAfter is how long until the session start budget is refilled.
func (g GatewayBot) ResetAfter() time.Duration {
	return time.Duration(g.SessionStartLimit.ResetAfter) * time.Millisecond
}

// ErrUnauthorized means Discord rejected the token.
var ErrUnauthorized = errors.New("discord rejected the bot token (401 Unauthorized)")

// RateLimitedError means Discord asked to wait before calling again.
type RateLimitedError struct{ RetryAfter time.Duration }

func (e *RateLimitedError) Error() string {
	return fmt.Sprintf("rate limited by discord: retry after %s", e.RetryAfter)
}

// Client calls Discord's REST API.
type Client struct {
	HTTP      *http.Client
	UserAgent string
}

// NewClient returns a client with a bounded timeout.
func NewClient(userAgent string) *Client {
	return &Client{HTTP: &http.Client{
		Timeout: 15 * time.Second,
		// A redirect would take the token to a host the operator's trust was never asked
		// about (the same host on another port or scheme keeps the Authorization header):
		// the redirect itself is the answer, and an error.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}, UserAgent: userAgent}
}

// GatewayBot asks apiURL (DefaultAPIURL when empty) for the token's gateway information.
// A 429 gives a *RateLimitedError; an answer that empties the route's rate limit bucket
// says how long to wait in WaitBeforeNext.
func (c *Client) GatewayBot(ctx context.Context, apiURL, token string) (GatewayBot, error) {
	if apiURL == "" {
		apiURL = DefaultAPIURL
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(apiURL, "/")+"/gateway/bot", nil)
	if err != nil {
		return GatewayBot{}, err
	}
	req.Header.Set("Authorization", "Bot "+token)
	req.Header.Set("User-Agent", c.UserAgent)
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return GatewayBot{}, fmt.Errorf("GET /gateway/bot: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return GatewayBot{}, fmt.Errorf("GET /gateway/bot: reading the answer: %w", err)
	}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		return GatewayBot{}, &RateLimitedError{RetryAfter: retryAfter(resp.Header, body)}
	case resp.StatusCode == http.StatusUnauthorized:
		return GatewayBot{}, ErrUnauthorized
	case resp.StatusCode != http.StatusOK:
		// The body is whatever the server chose to send: only a short, printable excerpt
		// goes into the error, which ends up in a condition and an event.
		return GatewayBot{}, fmt.Errorf("GET /gateway/bot: %s: %s", Excerpt(resp.Status, 64), Excerpt(string(body), maxBodyExcerpt))
	}
	var info GatewayBot
	if err := json.Unmarshal(body, &info); err != nil {
		return GatewayBot{}, fmt.Errorf("GET /gateway/bot: decoding the answer: %s", Excerpt(err.Error(), maxBodyExcerpt))
	}
	if err := info.check(); err != nil {
		return GatewayBot{}, err
	}
	if resp.Header.Get("X-RateLimit-Remaining") == "0" {
		info.WaitBeforeNext = seconds(resp.Header.Get("X-RateLimit-Reset-After"))
	}
	return info, nil
}

// Bounds on an answer: the operator builds Leases, pods and identify buckets from these
// numbers, so an answer outside them (a broken or hostile server) is refused as a whole
// instead of acted on. They are far above anything Discord gives.
const (
	MaxShards         = 100000 // as spec.shards
	MaxMaxConcurrency = 1024
	MaxSessionStarts  = 10000000
	MaxResetAfter     = 7 * 24 * time.Hour
	// MaxWait bounds how long a rate limit may make the operator wait before asking again.
	MaxWait        = time.Hour
	maxBodyExcerpt = 200
)

// ImplausibleAnswerError is an answer with a number out of range.
type ImplausibleAnswerError struct{ Field, Value, Range string }

func (e *ImplausibleAnswerError) Error() string {
	return fmt.Sprintf("GET /gateway/bot: refused an implausible answer: %s is %s, want %s", e.Field, e.Value, e.Range)
}

func (g GatewayBot) check() error {
	limit := g.SessionStartLimit
	bad := func(field string, value int64, lo, hi int64) error {
		return &ImplausibleAnswerError{Field: field, Value: strconv.FormatInt(value, 10), Range: fmt.Sprintf("%d..%d", lo, hi)}
	}
	switch {
	case g.Shards < 1 || g.Shards > MaxShards:
		return bad("shards", int64(g.Shards), 1, MaxShards)
	case limit.MaxConcurrency < 1 || limit.MaxConcurrency > MaxMaxConcurrency:
		return bad("session_start_limit.max_concurrency", int64(limit.MaxConcurrency), 1, MaxMaxConcurrency)
	case limit.Total < 0 || limit.Total > MaxSessionStarts:
		return bad("session_start_limit.total", int64(limit.Total), 0, MaxSessionStarts)
	case limit.Remaining < 0 || limit.Remaining > limit.Total:
		return bad("session_start_limit.remaining", int64(limit.Remaining), 0, int64(limit.Total))
	case limit.ResetAfter < 0 || limit.ResetAfter > MaxResetAfter.Milliseconds():
		return bad("session_start_limit.reset_after", limit.ResetAfter, 0, MaxResetAfter.Milliseconds())
	}
	return nil
}

// Excerpt shortens text from a server to at most n bytes of printable runes, cut on a rune
// boundary, so it can go into a log line, an event or a condition.
func Excerpt(s string, n int) string { return excerpt.Printable(s, n) }

// retryAfter reads how long a 429 asks to wait: the JSON body's retry_after (seconds,
// fractional), else the Retry-After header, else one minute.
func retryAfter(h http.Header, body []byte) time.Duration {
	var rl struct {
		RetryAfter float64 `json:"retry_after"`
	}
	if json.Unmarshal(body, &rl) == nil && rl.RetryAfter > 0 {
		return min(time.Duration(min(rl.RetryAfter, MaxWait.Seconds())*float64(time.Second)), MaxWait)
	}
	if d := seconds(h.Get("Retry-After")); d > 0 {
		return d
	}
	return time.Minute
}

func seconds(v string) time.Duration {
	f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || f < 0 {
		return 0
	}
	return time.Duration(min(f, MaxWait.Seconds()) * float64(time.Second))
}
