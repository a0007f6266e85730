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
