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
	return &Client{HTTP: &http.Client{Timeout: 15 * time.Second}, UserAgent: userAgent}
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
		return GatewayBot{}, fmt.Errorf("GET /gateway/bot: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	var info GatewayBot
	if err := json.Unmarshal(body, &info); err != nil {
		return GatewayBot{}, fmt.Errorf("GET /gateway/bot: decoding the answer: %w", err)
	}
	if info.Shards < 1 || info.SessionStartLimit.MaxConcurrency < 1 {
		return GatewayBot{}, fmt.Errorf("GET /gateway/bot: implausible answer: %d shards, max_concurrency %d", info.Shards, info.SessionStartLimit.MaxConcurrency)
	}
	if resp.Header.Get("X-RateLimit-Remaining") == "0" {
		info.WaitBeforeNext = seconds(resp.Header.Get("X-RateLimit-Reset-After"))
	}
	return info, nil
}

// retryAfter reads how long a 429 asks to wait: the JSON body's retry_after (seconds,
// fractional), else the Retry-After header, else one minute.
func retryAfter(h http.Header, body []byte) time.Duration {
	var rl struct {
		RetryAfter float64 `json:"retry_after"`
	}
	if json.Unmarshal(body, &rl) == nil && rl.RetryAfter > 0 {
		return time.Duration(rl.RetryAfter * float64(time.Second))
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
	return time.Duration(f * float64(time.Second))
}
