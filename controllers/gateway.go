package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
	"github.com/shardkeeper/shardkeeper/internal/discordapi"
	"github.com/shardkeeper/shardkeeper/internal/trustedhosts"
)

// GatewayClient asks Discord for a bot token's gateway information (GET /gateway/bot).
type GatewayClient interface {
	GatewayBot(ctx context.Context, apiURL, token string) (discordapi.GatewayBot, error)
}

// Defaults for asking Discord.
const (
	// DefaultGatewayCheckInterval is how often the operator asks again while nothing else
	// calls for it.
	DefaultGatewayCheckInterval = time.Hour
	// gatewayCheckWhenLow is the interval while the session start budget is close to the
	// reserve, so the breaker works from fresh numbers.
	gatewayCheckWhenLow = 2 * time.Minute
	gatewayRetryMin     = 10 * time.Second
	gatewayRetryMax     = 10 * time.Minute
)

// gatewayAnswer is the last thing Discord said for one bot.
type gatewayAnswer struct {
	info          *discordapi.GatewayBot
	at            time.Time
	secretVersion string // the token Secret version it was asked with
	err           error
	failures      int
	// unauthorized counts Discord's 401s in a row: one alone does not halt a bot whose
	// shards are connected (a REST hiccup, or a proxy in between, must not stop it).
	unauthorized int
	notBefore    time.Time // rate limit or retry backoff
	inFlight     bool
	// spends are the identifies the operator caused (pods it created without resume
	// state). Discord's remaining may not show them yet: a pod takes a while to start, and
	// its shards wait for their buckets.
	spends []spend
	// shardingRequiredSince is when the operator first saw a pod told 4011, while it is
	// still being told; an answer from before then cannot be trusted about it.
	shardingRequiredSince time.Time
}

// gatewayChecker asks Discord in the background, so that a slow or unreachable Discord
// never holds up a reconcile, and wakes the bot's reconcile when the answer is in. The
// token is read from the API server for the call and dropped right after.
type gatewayChecker struct {
	client  GatewayClient
	reader  client.Reader
	trusted *trustedhosts.Policy
	clock   Clock
	wake    chan event.GenericEvent

	mu      sync.Mutex
	answers map[types.NamespacedName]*gatewayAnswer
	// base bounds every question: the manager's context while this replica leads (set by
	// run), so that no question outlives the operator's leadership or its shutdown. Nil
	// for a reconciler driven by hand (tests): questions then end only by their timeout.
	base context.Context
}

func (g *gatewayChecker) hasBase() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.base != nil
}

// run is a leader-election Runnable: questions are asked on its context, which ends when
// the manager stops or this replica loses leadership.
func (g *gatewayChecker) run(ctx context.Context) error {
	g.mu.Lock()
	g.base = ctx
	g.mu.Unlock()
	<-ctx.Done()
	return nil
}

func newGatewayChecker(c GatewayClient, reader client.Reader, trusted *trustedhosts.Policy, clock Clock) *gatewayChecker {
	return &gatewayChecker{client: c, reader: reader, trusted: trusted, clock: clockOrReal(clock), wake: make(chan event.GenericEvent, 64),
		answers: map[types.NamespacedName]*gatewayAnswer{}}
}

// answer returns a copy of the last answer for the bot.
func (g *gatewayChecker) answer(key types.NamespacedName) gatewayAnswer {
	g.mu.Lock()
	defer g.mu.Unlock()
	if a, ok := g.answers[key]; ok {
		return *a
	}
	return gatewayAnswer{}
}

// spend is identifies the operator caused, and when.
type spend struct {
	at time.Time
	n  int32
}

// identifyLag bounds how long after the operator creates a pod its identifies may still be
// missing from Discord's remaining: pod start, then up to a few rounds of bucket waits.
const identifyLag = 2 * time.Minute

// spend records identifies the operator just caused.
func (g *gatewayChecker) spend(key types.NamespacedName, n int32, now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	a, ok := g.answers[key]
	if !ok {
		a = &gatewayAnswer{}
		g.answers[key] = a
	}
	a.spends = append(a.spends, spend{at: now, n: n})
}

// spent is how many identifies the operator caused that Discord's answer of checkedAt may
// not count yet: those from less than identifyLag before it, or after it.
func (g *gatewayChecker) spent(key types.NamespacedName, checkedAt, now time.Time) int32 {
	g.mu.Lock()
	defer g.mu.Unlock()
	a, ok := g.answers[key]
	if !ok {
		return 0
	}
	var total int32
	kept := a.spends[:0]
	for _, sp := range a.spends {
		if now.Sub(sp.at) > identifyLag+gatewayCheckWhenLow {
			continue // any answer from now on counts it
		}
		kept = append(kept, sp)
		if sp.at.After(checkedAt.Add(-identifyLag)) {
			total += sp.n
		}
	}
	a.spends = kept
	return total
}

// noteShardingRequired records that a pod was told 4011 and returns since when.
func (g *gatewayChecker) noteShardingRequired(key types.NamespacedName, now time.Time) time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	a, ok := g.answers[key]
	if !ok {
		a = &gatewayAnswer{}
		g.answers[key] = a
	}
	if a.shardingRequiredSince.IsZero() {
		a.shardingRequiredSince = now
	}
	return a.shardingRequiredSince
}

func (g *gatewayChecker) clearShardingRequired(key types.NamespacedName) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if a, ok := g.answers[key]; ok {
		a.shardingRequiredSince = time.Time{}
	}
}

func (g *gatewayChecker) forget(key types.NamespacedName) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.answers, key)
}

// ask starts a background check for the bot unless one is running or Discord asked to wait.
func (g *gatewayChecker) ask(bot *shardkeeperv1.DiscordBot, apiURL, secretVersion string) {
	key := client.ObjectKeyFromObject(bot)
	g.mu.Lock()
	a, ok := g.answers[key]
	if !ok {
		a = &gatewayAnswer{}
		g.answers[key] = a
	}
	base := g.base
	if base == nil {
		base = context.Background()
	}
	if a.inFlight || g.clock.Now().Before(a.notBefore) || base.Err() != nil {
		g.mu.Unlock()
		return
	}
	a.inFlight = true
	g.mu.Unlock()

	ref := bot.Spec.TokenSecretRef
	wakeObj := bot.DeepCopy()
	go func() {
		ctx, cancel := context.WithTimeout(base, 30*time.Second)
		defer cancel()
		info, err := g.fetch(ctx, key.Namespace, ref, apiURL)
		now := g.clock.Now()
		g.mu.Lock()
		a := g.answers[key]
		if a == nil { // the bot was deleted meanwhile
			g.mu.Unlock()
			return
		}
		a.inFlight = false
		a.at, a.err, a.secretVersion = now, err, secretVersion
		var rl *discordapi.RateLimitedError
		switch {
		case err == nil:
			a.info, a.failures, a.unauthorized = &info, 0, 0
			a.notBefore = now.Add(info.WaitBeforeNext)
		case errors.As(err, &rl):
			a.notBefore = now.Add(rl.RetryAfter)
		default:
			a.failures++
			a.notBefore = now.Add(min(gatewayRetryMin<<min(a.failures-1, 10), gatewayRetryMax))
			if errors.Is(err, discordapi.ErrUnauthorized) {
				a.unauthorized++
			} else {
				a.unauthorized = 0
			}
		}
		g.mu.Unlock()
		select {
		case g.wake <- event.GenericEvent{Object: wakeObj}:
		default: // the queue is full of wake-ups already; the periodic recheck covers this one
		}
	}()
}

// fetch reads the token and asks Discord.
func (g *gatewayChecker) fetch(ctx context.Context, namespace string, ref shardkeeperv1.SecretKeySelector, apiURL string) (discordapi.GatewayBot, error) {
	if err := g.trusted.Allows(apiURL); err != nil {
		return discordapi.GatewayBot{}, fmt.Errorf("not asking %s: %w", apiURL, err)
	}
	var secret corev1.Secret
	if err := g.reader.Get(ctx, types.NamespacedName{Namespace: namespace, Name: ref.Name}, &secret); err != nil {
		return discordapi.GatewayBot{}, fmt.Errorf("reading the token Secret: %w", err)
	}
	key := ref.Key
	if key == "" {
		key = "token"
	}
	token := strings.TrimPrefix(strings.TrimSpace(string(secret.Data[key])), "Bot ")
	return g.client.GatewayBot(ctx, apiURL, token)
}

// gatewayDue decides whether to ask Discord now, and otherwise when to look again.
type gatewayDueInput struct {
	now            time.Time
	interval       time.Duration
	status         *shardkeeperv1.GatewayStatus
	answer         gatewayAnswer
	secretVersion  string
	needsFresh     bool // a pod reported 4011, or the session budget's reset time passed
	budgetLow      bool
	tokenAvailable bool
}

func gatewayDue(in gatewayDueInput) (due bool, recheck time.Duration) {
	if !in.tokenAvailable {
		return false, 0
	}
	if in.answer.inFlight {
		return false, 0 // its answer wakes the reconcile
	}
	if in.now.Before(in.answer.notBefore) {
		return false, in.answer.notBefore.Sub(in.now)
	}
	if in.status == nil || in.needsFresh {
		return true, 0
	}
	if in.answer.at.IsZero() && in.answer.err == nil {
		// First look since the operator started: the status may be from another operator
		// or an old token; asking once is cheap.
		return true, 0
	}
	if in.answer.secretVersion != "" && in.answer.secretVersion != in.secretVersion {
		return true, 0 // the token changed
	}
	interval := in.interval
	if in.budgetLow {
		interval = min(interval, gatewayCheckWhenLow)
	}
	next := in.status.CheckedAt.Add(interval)
	if !in.now.Before(next) {
		return true, 0
	}
	return false, next.Sub(in.now)
}

// gatewayStatusOf turns an answer into the status field.
func gatewayStatusOf(info *discordapi.GatewayBot, at time.Time) *shardkeeperv1.GatewayStatus {
	return &shardkeeperv1.GatewayStatus{
		RecommendedShards: int32(info.Shards),
		MaxConcurrency:    int32(info.SessionStartLimit.MaxConcurrency),
		SessionStartLimit: shardkeeperv1.SessionStartLimit{
			Total:     int32(info.SessionStartLimit.Total),
			Remaining: int32(info.SessionStartLimit.Remaining),
			// The status keeps whole seconds: the reset rounds up and the check down, so
			// that nothing acts on a reset before it happened.
			ResetAt: metav1.NewTime(ceilSecond(at.Add(info.ResetAfter()))),
		},
		CheckedAt: metav1.NewTime(at.Truncate(time.Second)),
	}
}

// takeGatewayAnswer copies Discord's latest answer into status.gateway, and halts the bot
// when Discord rejected its token.
func (r *DiscordBotReconciler) takeGatewayAnswer(ctx context.Context, s *scope) (ctrl.Result, error) {
	bot := s.bot
	answer := r.gateway.answer(client.ObjectKeyFromObject(bot))
	// The status keeps whole seconds: an answer from the same second as the one it shows
	// is newer (the checker only ever holds the latest).
	if answer.info != nil && (bot.Status.Gateway == nil || !answer.at.Truncate(time.Second).Before(bot.Status.Gateway.CheckedAt.Time)) &&
		answer.secretVersion == s.secretVersion {
		bot.Status.Gateway = gatewayStatusOf(answer.info, answer.at)
	}
	if answer.err != nil && answer.secretVersion == s.secretVersion {
		s.gatewayErr = answer.err
		// A bot whose shards are connected identified with this very token: one 401 may be
		// a hiccup, so it takes a second one in a row (asked again within gatewayRetryMin).
		confirmed := answer.unauthorized >= 2 || bot.Status.ReadyShards == 0
		if errors.Is(answer.err, discordapi.ErrUnauthorized) && !confirmed {
			logf.FromContext(ctx).Info("Discord answered 401 once while the bot's shards are connected; asking again before halting")
		}
		if errors.Is(answer.err, discordapi.ErrUnauthorized) && confirmed && bot.Status.Halted == nil && !bot.Spec.Suspend {
			bot.Status.Halted = &shardkeeperv1.BotHalt{
				Reason: shardkeeperv1.ReasonTokenInvalid, Pod: "",
				Message:    "Discord rejected the bot token when the operator asked GET /gateway/bot (401 Unauthorized)",
				Generation: bot.Generation, SecretResourceVersion: s.secretVersion, Since: metav1.NewTime(s.now),
			}
			logf.FromContext(ctx).Info("halting the bot: Discord rejected its token")
			r.event(bot, nil, corev1.EventTypeWarning, shardkeeperv1.ReasonTokenInvalid, "Halt",
				"Discord rejected the bot token; stopping the bot's pods until its spec or token Secret changes")
		}
	}
	return ctrl.Result{}, nil
}

func ceilSecond(t time.Time) time.Time {
	if f := t.Truncate(time.Second); !f.Equal(t) {
		return f.Add(time.Second)
	}
	return t
}

// checkGateway asks Discord in the background when it is time to, and looks again when
// it will be (or when Discord resets the session budget the breaker waits for).
func (r *DiscordBotReconciler) checkGateway(_ context.Context, s *scope) (ctrl.Result, error) {
	bot := s.bot
	answer := r.gateway.answer(client.ObjectKeyFromObject(bot))
	// The breaker was on in the last pass (only the reserve left, or something held): ask
	// Discord again the moment it refills the budget.
	breakerOn := sessionBudgetLow(bot) || meta.IsStatusConditionTrue(bot.Status.Conditions, shardkeeperv1.ConditionSessionStartLimitLow)
	due, recheck := gatewayDue(gatewayDueInput{
		now: s.now, interval: r.gatewayCheckInterval(), status: bot.Status.Gateway, answer: answer,
		secretVersion: s.secretVersion, needsFresh: s.shardingRequired || (breakerOn && budgetResetPassed(bot, s.now)),
		budgetLow: breakerOn, tokenAvailable: s.tokenProblem == "" && s.endpointProblem == "" && bot.Status.Halted == nil,
	})
	if due {
		r.gateway.ask(bot, r.apiURL(bot), s.secretVersion)
	}
	if g := bot.Status.Gateway; g != nil && breakerOn && g.SessionStartLimit.ResetAt.After(s.now) {
		recheck = minPositive(recheck, g.SessionStartLimit.ResetAt.Sub(s.now))
	}
	return ctrl.Result{RequeueAfter: recheck}, nil
}

func (r *DiscordBotReconciler) gatewayCheckInterval() time.Duration {
	if r.GatewayCheckInterval > 0 {
		return r.GatewayCheckInterval
	}
	return DefaultGatewayCheckInterval
}

// checkEndpoints refuses a spec.gateway whose hosts the operator was not told to trust:
// the operator would send the token there itself (GET /gateway/bot), and so would every
// pod it runs. Running pods are left alone (their endpoints were trusted when they were
// made); nothing new starts until the spec or the operator's trusted hosts change.
func (r *DiscordBotReconciler) checkEndpoints(_ context.Context, s *scope) (ctrl.Result, error) {
	urls := []string{r.apiURL(s.bot)}
	if g := s.bot.Spec.Gateway; g != nil && g.URL != "" {
		urls = append(urls, g.URL)
	}
	for _, u := range urls {
		if err := r.TrustedHosts.Allows(u); err != nil {
			s.endpointProblem = "spec.gateway: " + err.Error()
			return ctrl.Result{}, nil
		}
	}
	return ctrl.Result{}, nil
}

// apiURL is where the bot's REST calls go: spec.gateway.apiURL, else the operator's default.
func (r *DiscordBotReconciler) apiURL(bot *shardkeeperv1.DiscordBot) string {
	if bot.Spec.Gateway != nil && bot.Spec.Gateway.APIURL != "" {
		return bot.Spec.Gateway.APIURL
	}
	return r.DiscordAPIURL
}

// maxConcurrency is the identify concurrency pods are told: Discord's, or 1 (always safe)
// until Discord has said.
func maxConcurrency(bot *shardkeeperv1.DiscordBot) int32 {
	if g := bot.Status.Gateway; g != nil && g.MaxConcurrency > 0 && g.MaxConcurrency <= discordapi.MaxMaxConcurrency {
		return bot.Status.Gateway.MaxConcurrency
	}
	return 1
}

// sessionBudgetLow says whether Discord's remaining session starts, as last asked, are at
// or below the bot's reserve.
func sessionBudgetLow(bot *shardkeeperv1.DiscordBot) bool {
	g := bot.Status.Gateway
	return g != nil && g.SessionStartLimit.Remaining <= bot.Spec.SessionStartReserve
}

// budgetResetPassed says whether Discord's reset time passed since the operator last
// asked, so that asking now gets the refilled numbers.
func budgetResetPassed(bot *shardkeeperv1.DiscordBot, now time.Time) bool {
	g := bot.Status.Gateway
	return g != nil && !now.Before(g.SessionStartLimit.ResetAt.Time) && g.CheckedAt.Before(&g.SessionStartLimit.ResetAt)
}
