package discordtest

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/disgoorg/disgo/discord"
	"github.com/disgoorg/disgo/rest"
	"github.com/disgoorg/snowflake/v2"
)

// rateHeaders are the rate limit headers of one response, parsed as discord.py parses
// them (int limit and remaining, float reset and reset-after).
type rateHeaders struct {
	limit, remaining  int
	reset, resetAfter float64
	bucket            string
}

func parseRateHeaders(t *testing.T, what string, h http.Header) rateHeaders {
	t.Helper()
	var rh rateHeaders
	var err error
	fail := func(name string) {
		t.Fatalf("%s: header %s %q: %v", what, name, h.Get(name), err)
	}
	if rh.limit, err = strconv.Atoi(h.Get("X-RateLimit-Limit")); err != nil {
		fail("X-RateLimit-Limit")
	}
	if rh.remaining, err = strconv.Atoi(h.Get("X-RateLimit-Remaining")); err != nil {
		fail("X-RateLimit-Remaining")
	}
	if rh.reset, err = strconv.ParseFloat(h.Get("X-RateLimit-Reset"), 64); err != nil {
		fail("X-RateLimit-Reset")
	}
	if rh.resetAfter, err = strconv.ParseFloat(h.Get("X-RateLimit-Reset-After"), 64); err != nil {
		fail("X-RateLimit-Reset-After")
	}
	if rh.bucket = h.Get("X-RateLimit-Bucket"); rh.bucket == "" {
		t.Fatalf("%s: no X-RateLimit-Bucket", what)
	}
	if h.Get("Via") == "" {
		t.Fatalf("%s: no Via header (discord.py takes a 429 without one for a Cloudflare ban)", what)
	}
	return rh
}

func TestRESTRateLimitHeadersOnEveryResponse(t *testing.T) {
	srv := newTestServer(t, Options{Guilds: []uint64{guildID(1)}})
	api, auth := srv.APIURL(), "Bot "+DefaultToken
	iid := srv.SendSlashCommand(guildID(1), "ping")
	requests := []struct {
		method, path, auth, body string
		status                   int
	}{
		{"GET", "/gateway/bot", auth, "", 200},
		{"GET", "/gateway/bot", "", "", 401},
		{"GET", "/gateway", "", "", 200},
		{"GET", "/users/@me", auth, "", 200},
		{"GET", "/oauth2/applications/@me", auth, "", 200},
		{"POST", "/channels/7/typing", auth, "", 204},
		{"POST", "/channels/7/messages", auth, `{"content":"x"}`, 200},
		{"POST", "/interactions/" + jsonIDString(iid) + "/" + srv.InteractionToken(iid) + "/callback", "", `{"type":5}`, 204},
		{"GET", "/no/such/route/123", auth, "", 404},
		{"DELETE", "/gateway/bot", auth, "", 405},
	}
	before := time.Now()
	used := map[string]int{} // requests per bucket (no path here repeats a top-level resource of a bucket)
	for _, rq := range requests {
		what := rq.method + " " + rq.path
		status, h, body := doFull(t, rq.method, api+rq.path, rq.auth, rq.body)
		if status != rq.status {
			t.Fatalf("%s: %d %s, want %d", what, status, body, rq.status)
		}
		rh := parseRateHeaders(t, what, h)
		used[rh.bucket]++
		if rh.limit < 1 || rh.remaining != rh.limit-used[rh.bucket] || rh.resetAfter <= 0 || rh.resetAfter > 5 {
			t.Fatalf("%s: request %d of its bucket: %+v", what, used[rh.bucket], rh)
		}
		// Reset is the epoch time Reset-After points at (to the millisecond).
		if at := time.UnixMilli(int64(rh.reset * 1000)); at.Before(before) || at.After(time.Now().Add(5*time.Second)) {
			t.Fatalf("%s: X-RateLimit-Reset %v is not now plus X-RateLimit-Reset-After %v", what, rh.reset, rh.resetAfter)
		}
	}

	// The remaining count goes down within a bucket; a bucket is one route, shared
	// across the IDs that are not a top-level resource.
	_, h1, _ := doFull(t, "PUT", api+"/applications/1000/guilds/77/commands", auth, `[]`)
	_, h2, _ := doFull(t, "PUT", api+"/applications/1000/guilds/78/commands", auth, `[]`)
	_, h3, _ := doFull(t, "GET", api+"/applications/1000/guilds/78/commands", auth, "")
	r1, r2, r3 := parseRateHeaders(t, "PUT 77", h1), parseRateHeaders(t, "PUT 78", h2), parseRateHeaders(t, "GET 78", h3)
	if r1.bucket != r2.bucket || r2.remaining != r1.remaining-1 {
		t.Fatalf("PUT commands of guilds 77 and 78: %+v then %+v, want one bucket counting down", r1, r2)
	}
	if r3.bucket == r1.bucket {
		t.Fatalf("GET and PUT of one path share bucket %s", r3.bucket)
	}
}

func TestRESTRouteBucketPerTopLevelResource(t *testing.T) {
	srv := newTestServer(t, Options{RouteRateLimits: map[string]RateLimit{
		"POST /channels/{channel.id}/messages": {Requests: 2, Window: time.Minute},
	}})
	api, auth := srv.APIURL(), "Bot "+DefaultToken
	post := func(channel string) (int, http.Header, []byte) {
		return doFull(t, "POST", api+"/channels/"+channel+"/messages", auth, `{"content":"hi"}`)
	}
	for i := range 2 {
		if status, h, body := post("1"); status != 200 || h.Get("X-RateLimit-Remaining") != strconv.Itoa(1-i) {
			t.Fatalf("message %d to channel 1: %d %s, remaining %s", i, status, body, h.Get("X-RateLimit-Remaining"))
		}
	}
	status, h, body := post("1")
	if status != http.StatusTooManyRequests {
		t.Fatalf("third message in the window: %d %s, want 429", status, body)
	}
	var rl rateLimitedBody
	mustUnmarshal(t, string(body), &rl)
	if rl.Global || rl.RetryAfter < 59 || rl.RetryAfter > 60 || rl.Message == "" {
		t.Fatalf("429 body %s", body)
	}
	if h.Get("Retry-After") != "60" || h.Get("X-RateLimit-Scope") != "user" || h.Get("X-RateLimit-Global") != "" ||
		h.Get("Content-Type") != "application/json" {
		t.Fatalf("429 headers %v", h)
	}
	if rh := parseRateHeaders(t, "429", h); rh.remaining != 0 || rh.limit != 2 {
		t.Fatalf("429 rate headers %+v", rh)
	}

	// Another channel has its own bucket.
	if status, _, body := post("2"); status != 200 {
		t.Fatalf("message to channel 2: %d %s", status, body)
	}
	st := srv.Stats()
	if st.RESTRateLimited["POST /channels/{channel.id}/messages"] != 1 || st.RESTGlobalRateLimited != 0 {
		t.Fatalf("rate limited %v, global %d", st.RESTRateLimited, st.RESTGlobalRateLimited)
	}
	if n := len(srv.Replies()); n != 3 {
		t.Fatalf("%d replies recorded, want 3: a 429 is not a reply", n)
	}
}

func TestRESTRouteBucketRefills(t *testing.T) {
	srv := newTestServer(t, Options{RouteRateLimits: map[string]RateLimit{
		"GET /users/@me": {Requests: 1, Window: 300 * time.Millisecond},
	}})
	url, auth := srv.APIURL()+"/users/@me", "Bot "+DefaultToken
	if status, _, _ := doFull(t, "GET", url, auth, ""); status != 200 {
		t.Fatalf("first: %d", status)
	}
	status, _, body := doFull(t, "GET", url, auth, "")
	if status != http.StatusTooManyRequests {
		t.Fatalf("second: %d", status)
	}
	var rl rateLimitedBody
	mustUnmarshal(t, string(body), &rl)
	time.Sleep(time.Duration(rl.RetryAfter*float64(time.Second)) + 20*time.Millisecond)
	if status, h, body := doFull(t, "GET", url, auth, ""); status != 200 || h.Get("X-RateLimit-Remaining") != "0" {
		t.Fatalf("after retry_after %v: %d %s", rl.RetryAfter, status, body)
	}
}

func TestRESTGlobalRateLimit(t *testing.T) {
	g := guildID(1)
	srv := newTestServer(t, Options{Guilds: []uint64{g}, GlobalRateLimit: 3})
	api, auth := srv.APIURL(), "Bot "+DefaultToken
	iid := srv.SendSlashCommand(g, "ping")

	start := time.Now()
	for _, path := range []string{"/gateway/bot", "/users/@me", "/channels/5/typing"} {
		method := "GET"
		if path == "/channels/5/typing" {
			method = "POST"
		}
		if status, _, body := doFull(t, method, api+path, auth, ""); status/100 != 2 {
			t.Fatalf("%s: %d %s", path, status, body)
		}
	}
	status, h, body := doFull(t, "GET", api+"/oauth2/applications/@me", auth, "")
	if time.Since(start) > 900*time.Millisecond {
		t.Skip("the machine is too slow to make 4 requests within the global window")
	}
	if status != http.StatusTooManyRequests {
		t.Fatalf("fourth request in a second: %d %s, want a global 429", status, body)
	}
	var rl rateLimitedBody
	mustUnmarshal(t, string(body), &rl)
	if !rl.Global || rl.RetryAfter <= 0 || rl.RetryAfter > 1 {
		t.Fatalf("global 429 body %s", body)
	}
	if h.Get("X-RateLimit-Global") != "true" || h.Get("X-RateLimit-Scope") != "global" || h.Get("Retry-After") != "1" {
		t.Fatalf("global 429 headers %v", h)
	}

	// Interaction endpoints are not bound to the global limit.
	cb := api + "/interactions/" + jsonIDString(iid) + "/" + srv.InteractionToken(iid) + "/callback"
	if status, _, body := doFull(t, "POST", cb, "", `{"type":5}`); status != 204 {
		t.Fatalf("interaction callback under the global limit: %d %s", status, body)
	}
	if st := srv.Stats(); st.RESTGlobalRateLimited != 1 || len(st.RESTRateLimited) != 0 {
		t.Fatalf("global %d, by route %v", st.RESTGlobalRateLimited, st.RESTRateLimited)
	}

	time.Sleep(time.Duration(rl.RetryAfter*float64(time.Second)) + 20*time.Millisecond)
	if status, _, body := doFull(t, "GET", api+"/oauth2/applications/@me", auth, ""); status != 200 {
		t.Fatalf("after retry_after: %d %s", status, body)
	}
}

// TestDisgoRESTClientWaitsOutBuckets: disgo's REST client reads the headers (it needs
// Retry-After as whole seconds) and waits for buckets to reset; every message gets
// through. disgo v0.19.6 truncates X-RateLimit-Reset-After to whole seconds
// (rest/rest_rate_limiter.go), so it may still run into a 429 at a window's end, and
// then waits Retry-After.
func TestDisgoRESTClientWaitsOutBuckets(t *testing.T) {
	srv := newTestServer(t, Options{RouteRateLimits: map[string]RateLimit{
		"POST /channels/{channel.id}/messages": {Requests: 2, Window: time.Second},
	}})
	client := rest.NewClient(DefaultToken, rest.WithURL(srv.APIURL()))
	t.Cleanup(func() { client.Close(testCtx(t)) })
	r := rest.New(client)
	start := time.Now()
	for i := range 5 {
		if _, err := r.CreateMessage(snowflake.ID(9), discord.MessageCreate{Content: strconv.Itoa(i)}); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	took := time.Since(start)
	limited := srv.Stats().RESTRateLimited["POST /channels/{channel.id}/messages"]
	t.Logf("5 messages at 2 per second: %v, %d answered 429 on the way", took.Round(time.Millisecond), limited)
	if took < 2*time.Second {
		t.Fatalf("5 messages at 2 per second took %v: the bucket did not hold disgo back", took)
	}
	if n := len(srv.Replies()); n != 5 {
		t.Fatalf("%d replies, want 5", n)
	}
}
