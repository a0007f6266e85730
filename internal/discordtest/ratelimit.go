package discordtest

import (
	"crypto/sha256"
	"encoding/hex"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// REST rate limits as Discord applies them (developers/topics/rate-limits): every
// request counts against its route's bucket, and every request but those to interaction
// endpoints against the global limit of the bot. A route's bucket is shared by the
// requests of one method and path pattern that name the same top-level resource (the
// major parameter: a channel, a guild, a webhook with its token; the fake counts an
// interaction's callback per interaction too); other IDs in the path do not split it.
// Every response carries the route's X-RateLimit-* headers; a request over a limit is
// answered 429 with retry_after, as discord.py, discord.js and disgo expect.

// RateLimit is a REST rate limit bucket: at most Requests requests per Window.
type RateLimit struct {
	Requests int
	Window   time.Duration
}

// DefaultGlobalRateLimit is Discord's global limit: 50 requests per second per bot.
const DefaultGlobalRateLimit = 50

// Discord documents no per-route numbers (they are dynamic and "should not be hard
// coded"); these are the ones clients meet in practice, generous enough for the tests
// that share one fake. Options.RouteRateLimits overrides them.
var (
	defaultRouteRateLimit  = RateLimit{Requests: 10, Window: time.Second}
	defaultRouteRateLimits = map[string]RateLimit{
		// The well-known one: 5 messages per 5 seconds per channel.
		"POST /channels/{channel.id}/messages": {Requests: 5, Window: 5 * time.Second},
	}
)

// rateWindow is a fixed window of a bucket or of the global limit.
type rateWindow struct {
	used    int
	resetAt time.Time
}

// refresh starts a new window once the current one is over.
func (rw *rateWindow) refresh(now time.Time, window time.Duration) {
	if !now.Before(rw.resetAt) {
		rw.used = 0
		rw.resetAt = now.Add(window)
	}
}

// routeLimitLocked is the bucket of a route ("METHOD /pattern"). s.mu must be held.
func (s *Server) routeLimitLocked(route string) RateLimit {
	if l, ok := s.opts.RouteRateLimits[route]; ok && l.Requests > 0 && l.Window > 0 {
		return l
	}
	if l, ok := defaultRouteRateLimits[route]; ok {
		return l
	}
	return defaultRouteRateLimit
}

// bucketHash is the X-RateLimit-Bucket of a route: opaque and stable, like Discord's.
func bucketHash(route string) string {
	sum := sha256.Sum256([]byte(route))
	return hex.EncodeToString(sum[:16])
}

// majorParameter is the top-level resource of a path below /api/v10 ("" for none).
func majorParameter(path string) string {
	seg := strings.Split(strings.Trim(path, "/"), "/")
	switch {
	case len(seg) >= 3 && (seg[0] == "webhooks" || seg[0] == "interactions"):
		return seg[0] + "/" + seg[1] + "/" + seg[2]
	case len(seg) >= 2 && (seg[0] == "channels" || seg[0] == "guilds" || seg[0] == "webhooks"):
		return seg[0] + "/" + seg[1]
	}
	return ""
}

// interactionEndpoint reports whether a path is exempt from the global limit, as
// Discord's interaction endpoints are (the callback and the interaction webhooks).
func interactionEndpoint(path string) bool {
	return strings.HasPrefix(path, "/interactions/") || strings.HasPrefix(path, "/webhooks/")
}

// admitREST counts a request against its route's bucket and the global limit, sets the
// rate limit headers, and answers 429 itself (returning false) when a limit is reached.
// route is "METHOD /pattern", path the request path below /api/v10.
func (s *Server) admitREST(w http.ResponseWriter, route, path string) bool {
	now := time.Now()
	limit := RateLimit{}
	var bucket *rateWindow
	globalLimited, routeLimited := false, false
	var retryAfter time.Duration

	s.mu.Lock()
	s.restRequests[route]++
	limit = s.routeLimitLocked(route)
	key := bucketHash(route) + ":" + majorParameter(path)
	bucket = s.rateBuckets[key]
	if bucket == nil {
		s.pruneRateBucketsLocked(now)
		bucket = &rateWindow{}
		s.rateBuckets[key] = bucket
	}
	bucket.refresh(now, limit.Window)
	global := s.opts.GlobalRateLimit > 0 && !interactionEndpoint(path)
	if global {
		s.globalWindow.refresh(now, time.Second)
	}
	switch {
	case global && s.globalWindow.used >= s.opts.GlobalRateLimit:
		globalLimited, retryAfter = true, s.globalWindow.resetAt.Sub(now)
		s.restGlobalRateLimited++
	case bucket.used >= limit.Requests:
		routeLimited, retryAfter = true, bucket.resetAt.Sub(now)
		s.restRateLimited[route]++
	default:
		bucket.used++
		if global {
			s.globalWindow.used++
		}
	}
	remaining, resetAt := limit.Requests-bucket.used, bucket.resetAt
	s.notifyLocked()
	s.mu.Unlock()

	h := w.Header()
	h.Set("X-RateLimit-Limit", strconv.Itoa(limit.Requests))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(remaining))
	h.Set("X-RateLimit-Reset", strconv.FormatFloat(float64(resetAt.UnixMilli())/1000, 'f', 3, 64))
	h.Set("X-RateLimit-Reset-After", seconds(resetAt.Sub(now)))
	h.Set("X-RateLimit-Bucket", bucketHash(route))
	if !globalLimited && !routeLimited {
		return true
	}
	h.Set("Retry-After", strconv.Itoa(int(math.Ceil(retryAfter.Seconds()))))
	scope := "user"
	if globalLimited {
		scope = "global"
		h.Set("X-RateLimit-Global", "true")
	}
	h.Set("X-RateLimit-Scope", scope)
	writeJSON(w, http.StatusTooManyRequests, rateLimitedBody{
		Message:    "You are being rate limited.",
		RetryAfter: math.Round(retryAfter.Seconds()*1000) / 1000,
		Global:     globalLimited,
	})
	return false
}

// rateLimitedBody is the JSON body of a 429.
type rateLimitedBody struct {
	Message    string  `json:"message"`
	RetryAfter float64 `json:"retry_after"`
	Global     bool    `json:"global"`
}

// seconds formats a duration as Discord's headers do: seconds with milliseconds.
func seconds(d time.Duration) string {
	return strconv.FormatFloat(max(d, 0).Seconds(), 'f', 3, 64)
}

// pruneRateBucketsLocked forgets windows that are over, so that buckets of one-off
// resources (every interaction has its own) do not pile up. s.mu must be held.
func (s *Server) pruneRateBucketsLocked(now time.Time) {
	if len(s.rateBuckets) < 1024 {
		return
	}
	for key, b := range s.rateBuckets {
		if !now.Before(b.resetAt) {
			delete(s.rateBuckets, key)
		}
	}
}
