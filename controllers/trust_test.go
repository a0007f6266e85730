package controllers

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/util/intstr"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
)

// tokenTrap is a server that records every request carrying a bot token and answers it
// with body.
type tokenTrap struct {
	*httptest.Server
	tokens atomic.Int32
}

func newTokenTrap(t *testing.T, status int, body string) *tokenTrap {
	trap := &tokenTrap{}
	trap.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.Header.Get("Authorization"), "Bot ") {
			trap.tokens.Add(1)
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(trap.Close)
	return trap
}

// A DiscordBot's author chooses spec.gateway; the operator sends the token only to hosts
// it was told to trust, and runs no pod that would.
func TestUntrustedEndpointsGetNoTokenAndNoPods(t *testing.T) {
	envtestOnly(t)
	ctx := context.Background()
	trap := newTokenTrap(t, http.StatusOK, `{"url":"wss://x","shards":1,"session_start_limit":{"total":1000,"remaining":1000,"reset_after":1000,"max_concurrency":1}}`)
	// The same server by a name the operator does not trust, then over a scheme it does.
	untrusted := strings.Replace(trap.URL, "127.0.0.1", "localhost", 1)

	tests := []struct {
		name    string
		gateway shardkeeperv1.GatewaySpec
		why     string
	}{
		{"untrusted API host", shardkeeperv1.GatewaySpec{APIURL: untrusted + "/api/v10"}, `host "localhost" is not trusted`},
		{"untrusted gateway host", shardkeeperv1.GatewaySpec{APIURL: trap.URL + "/api/v10", URL: "wss://gateway.evil.example"}, `host "gateway.evil.example" is not trusted`},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			ns := newNamespace(t)
			name := "untrusted-" + string(rune('a'+i))
			createTokenSecret(t, ns, name+"-token", "token")
			bot := newBot(ns, name, 1, 1)
			bot.Spec.Shards = intstr.FromString(shardkeeperv1.ShardsAuto)
			bot.Spec.Gateway = &tc.gateway
			before := trap.tokens.Load()
			g.Expect(k8s.Create(ctx, bot)).To(Succeed())

			g.Eventually(func(g Gomega) {
				c := meta.FindStatusCondition(getBot(g, ns, name).Status.Conditions, shardkeeperv1.ConditionReady)
				g.Expect(c).NotTo(BeNil())
				g.Expect(c.Reason).To(Equal(shardkeeperv1.ReasonUntrustedEndpoint))
				g.Expect(c.Message).To(ContainSubstring(tc.why))
			}, wait, tick).Should(Succeed())
			g.Expect(getBot(g, ns, name).Status.Phase).To(Equal(shardkeeperv1.PhasePending))
			g.Consistently(func(g Gomega) {
				g.Expect(botPods(g, ns, name)).To(BeEmpty())
			}, 2*time.Second, tick).Should(Succeed())
			g.Expect(trap.tokens.Load()).To(Equal(before), "the operator sent the token to the untrusted host")

			// A trusted host: the same bot runs.
			updateBot(g, bot, func(b *shardkeeperv1.DiscordBot) {
				b.Spec.Gateway = &shardkeeperv1.GatewaySpec{APIURL: trap.URL + "/api/v10"}
			})
			g.Eventually(func(g Gomega) { g.Expect(botPods(g, ns, name)).To(HaveLen(1)) }, wait, tick).Should(Succeed())
			g.Expect(trap.tokens.Load()).To(BeNumerically(">", before))
		})
	}
}

// A hostile or broken API server's answer is refused as a whole, and its error text is
// bounded before it reaches the status.
func TestImplausibleOrHugeAnswersAreRefused(t *testing.T) {
	envtestOnly(t)
	ctx := context.Background()
	tests := []struct {
		name   string
		status int
		body   string
		reason string
		says   string
	}{
		{"10^8 shards", http.StatusOK,
			`{"url":"wss://x","shards":100000000,"session_start_limit":{"total":1000,"remaining":1000,"reset_after":1000,"max_concurrency":1}}`,
			shardkeeperv1.ReasonGatewayAnswerRejected, "shards is 100000000"},
		{"a 1 MiB error page", http.StatusInternalServerError, strings.Repeat("<div>oops</div>", 70_000),
			shardkeeperv1.ReasonGatewayInfoUnavailable, "500"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			trap := newTokenTrap(t, tc.status, tc.body)
			ns := newNamespace(t)
			name := "hostile-" + string(rune('a'+i))
			createTokenSecret(t, ns, name+"-token", "token")
			bot := newBot(ns, name, 1, 1)
			bot.Spec.Shards = intstr.FromString(shardkeeperv1.ShardsAuto)
			bot.Spec.Gateway = &shardkeeperv1.GatewaySpec{APIURL: trap.URL + "/api/v10"}
			g.Expect(k8s.Create(ctx, bot)).To(Succeed())

			g.Eventually(func(g Gomega) {
				c := meta.FindStatusCondition(getBot(g, ns, name).Status.Conditions, shardkeeperv1.ConditionReady)
				g.Expect(c).NotTo(BeNil())
				g.Expect(c.Reason).To(Equal(tc.reason))
				g.Expect(c.Message).To(ContainSubstring(tc.says))
				g.Expect(len(c.Message)).To(BeNumerically("<=", maxConditionMessage))
			}, wait, tick).Should(Succeed())
			b := getBot(g, ns, name)
			g.Expect(b.Status.Gateway).To(BeNil(), "the refused answer reached the status")
			g.Expect(botPods(g, ns, name)).To(BeEmpty())
		})
	}
}
