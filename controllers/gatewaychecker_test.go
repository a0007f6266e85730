package controllers

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
	"github.com/shardkeeper/shardkeeper/internal/discordapi"
	"github.com/shardkeeper/shardkeeper/internal/trustedhosts"
)

// blockingDiscord answers only when the question's context ends.
type blockingDiscord struct{ asked chan struct{} }

func (b blockingDiscord) GatewayBot(ctx context.Context, _, _ string) (discordapi.GatewayBot, error) {
	b.asked <- struct{}{}
	<-ctx.Done()
	return discordapi.GatewayBot{}, ctx.Err()
}

// Questions to Discord end with the manager (or the leadership) that asked them, and none
// starts after it.
func TestGatewayQuestionsEndWithTheManager(t *testing.T) {
	bot := &shardkeeperv1.DiscordBot{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "bot"},
		Spec: shardkeeperv1.DiscordBotSpec{TokenSecretRef: shardkeeperv1.SecretKeySelector{Name: "tok"}}}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "tok"}, Data: map[string][]byte{"token": []byte("a.b.c")}}
	reader := fake.NewClientBuilder().WithObjects(secret).Build()
	discord := blockingDiscord{asked: make(chan struct{}, 1)}
	g := newGatewayChecker(discord, reader, trustedhosts.Default(), nil)

	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- g.run(ctx) }()
	for g.answer(client.ObjectKeyFromObject(bot)).inFlight || !g.hasBase() {
		time.Sleep(time.Millisecond)
	}
	g.ask(bot, discordapi.DefaultAPIURL, "1")
	select {
	case <-discord.asked:
	case <-time.After(10 * time.Second):
		t.Fatal("Discord was not asked")
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for g.answer(client.ObjectKeyFromObject(bot)).inFlight {
		if time.Now().After(deadline) {
			t.Fatal("the question outlived the manager")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// None starts once the manager is gone (notBefore cleared, as if due).
	g.mu.Lock()
	g.answers[client.ObjectKeyFromObject(bot)].notBefore = time.Time{}
	g.mu.Unlock()
	g.ask(bot, discordapi.DefaultAPIURL, "1")
	if g.answer(client.ObjectKeyFromObject(bot)).inFlight {
		t.Fatal("a question started after the manager stopped")
	}
}

// unauthorizedDiscord answers every question 401.
type unauthorizedDiscord struct{}

func (unauthorizedDiscord) GatewayBot(context.Context, string, string) (discordapi.GatewayBot, error) {
	return discordapi.GatewayBot{}, discordapi.ErrUnauthorized
}

// One 401 from GET /gateway/bot does not halt a bot whose shards are connected with that
// very token; a second in a row does, and a bot with no shard up halts at once.
func TestOne401DoesNotHaltAConnectedBot(t *testing.T) {
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "tok"}, Data: map[string][]byte{"token": []byte("a.b.c")}}
	for _, tc := range []struct {
		name        string
		readyShards int32
		haltAfter   int // questions answered 401 before the halt
	}{
		{"connected", 2, 2},
		{"nothing connected", 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bot := &shardkeeperv1.DiscordBot{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "bot"},
				Spec:   shardkeeperv1.DiscordBotSpec{TokenSecretRef: shardkeeperv1.SecretKeySelector{Name: "tok"}},
				Status: shardkeeperv1.DiscordBotStatus{ReadyShards: tc.readyShards}}
			r := &DiscordBotReconciler{}
			r.gateway = newGatewayChecker(unauthorizedDiscord{}, fake.NewClientBuilder().WithObjects(secret).Build(), trustedhosts.Default(), nil)
			key := client.ObjectKeyFromObject(bot)
			for asked := 1; asked <= 2; asked++ {
				r.gateway.mu.Lock()
				if a := r.gateway.answers[key]; a != nil {
					a.notBefore = time.Time{} // due again
				}
				r.gateway.mu.Unlock()
				r.gateway.ask(bot, discordapi.DefaultAPIURL, "1")
				deadline := time.Now().Add(10 * time.Second)
				for a := r.gateway.answer(key); a.inFlight || a.err == nil; a = r.gateway.answer(key) {
					if time.Now().After(deadline) {
						t.Fatal("no answer")
					}
					time.Sleep(time.Millisecond)
				}
				s := &scope{bot: bot, now: time.Now(), secretVersion: "1"}
				if _, err := r.takeGatewayAnswer(context.Background(), s); err != nil {
					t.Fatal(err)
				}
				if halted := bot.Status.Halted != nil; halted != (asked >= tc.haltAfter) {
					t.Fatalf("after %d 401s: halted %v, want a halt after %d", asked, halted, tc.haltAfter)
				}
				if bot.Status.Halted != nil {
					return
				}
			}
		})
	}
}
