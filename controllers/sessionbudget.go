package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
)

// sessionBudget is the session start breaker for one pass: Discord allows a bot a daily
// number of identifies, and spending the last of them leaves a crashed shard no way back
// until the reset. The operator keeps spec.sessionStartReserve of them for the bots' own
// reconnects, and holds every restart or new pod that would identify once only the
// reserve is left. Restarts that resume never count.
type sessionBudget struct {
	known     bool  // Discord has said; without numbers nothing is held
	remaining int32 // Discord's remaining, less what the operator started since it asked
	reserve   int32
	allowance int32 // identifies the operator may still cause in this pass
	resetAt   time.Time
	held      int // identify-needing actions held back in this pass
}

func newSessionBudget(bot *shardkeeperv1.DiscordBot, spent int32) sessionBudget {
	g := bot.Status.Gateway
	if g == nil {
		return sessionBudget{}
	}
	remaining := max(g.SessionStartLimit.Remaining-spent, 0)
	return sessionBudget{
		known: true, remaining: remaining, reserve: bot.Spec.SessionStartReserve,
		allowance: remaining - bot.Spec.SessionStartReserve, resetAt: g.SessionStartLimit.ResetAt.Time,
	}
}

// take spends n identifies of this pass if they fit. Nothing that resumes (n == 0) is
// ever held, however low the budget.
func (b *sessionBudget) take(n int32) bool {
	if !b.known || n == 0 {
		return true
	}
	if n > b.allowance {
		b.held++
		return false
	}
	b.allowance -= n
	return true
}

// low says whether the breaker is on: only the reserve is left, or something was held.
func (b *sessionBudget) low() bool {
	return b.known && (b.allowance <= 0 || b.held > 0)
}

// identifiesNeeded is how many of a pod's shards would identify if it started now: those
// without resume state on its Lease for the current shard count, or with state too old to
// resume.
func identifiesNeeded(lease *coordinationv1.Lease, shards []int32, shardCount int32, now time.Time) int32 {
	resumable := map[int]bool{}
	if lease != nil {
		var states []shardkeeperv1.LeaseResumeState
		if json.Unmarshal([]byte(lease.Annotations[shardkeeperv1.AnnotationResume]), &states) == nil {
			for _, st := range states {
				if st.SessionID != "" && st.ShardCount == int(shardCount) && now.Sub(st.SavedAt) <= shardkeeperv1.ResumeMaxAge &&
					st.SavedAt.Sub(now) <= shardkeeperv1.ResumeClockSkew { // botruntime refuses state from the future
					resumable[st.Shard] = true
				}
			}
		}
	}
	var n int32
	for _, id := range shards {
		if !resumable[int(id)] {
			n++
		}
	}
	return n
}

// shardList lists a group's shard IDs.
func (t topology) shardList(group int32) []int32 {
	first, last := t.shardRange(group)
	ids := make([]int32, 0, last-first+1)
	for id := first; id <= last; id++ {
		ids = append(ids, id)
	}
	return ids
}

// checkSessionBudget sets up this pass's breaker from status.gateway and what the
// operator started since Discord last said.
func (r *DiscordBotReconciler) checkSessionBudget(_ context.Context, s *scope) (ctrl.Result, error) {
	var checkedAt time.Time
	if g := s.bot.Status.Gateway; g != nil {
		checkedAt = g.CheckedAt.Time
	}
	s.budget = newSessionBudget(s.bot, r.gateway.spent(client.ObjectKeyFromObject(s.bot), checkedAt, s.now))
	return ctrl.Result{}, nil
}

// sessionBudgetMessage says why the breaker is on, for the condition.
func sessionBudgetMessage(b sessionBudget) string {
	msg := fmt.Sprintf("Discord allows %d more session starts until %s and %d are kept in reserve (spec.sessionStartReserve)",
		b.remaining, b.resetAt.UTC().Format(time.RFC3339), b.reserve)
	if b.held > 0 {
		msg += fmt.Sprintf("; %d restarts or new pods that would identify are held until then", b.held)
	} else {
		msg += "; restarts and new pods that would identify are held until then"
	}
	return msg
}
