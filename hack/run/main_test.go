package main

import (
	"bytes"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/yaml"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
)

func TestRealDiscordManifests(t *testing.T) {
	const token = "MTIzNDU2Nzg5MDEyMzQ1Njc4.GAbCdE.abcdefghijklmnopqrstuvwxyz0123456789_-"
	for _, given := range []string{token, "Bot " + token, "  " + token + "\n"} {
		out, err := realDiscordManifests(given)
		if err != nil {
			t.Fatalf("%q: %v", given, err)
		}
		docs := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(out), 4096)
		var ns corev1.Namespace
		var secret corev1.Secret
		var bot shardkeeperv1.DiscordBot
		for _, into := range []any{&ns, &secret, &bot} {
			if err := docs.Decode(into); err != nil {
				t.Fatalf("%q: %v\n%s", given, err, out)
			}
		}
		if got := secret.StringData["token"]; got != token {
			t.Errorf("%q: the Secret holds %q, want the token alone", given, got)
		}
		if bot.Spec.TokenSecretRef.Name != secret.Name || bot.Namespace != realNamespace || secret.Namespace != realNamespace {
			t.Errorf("the bot (%s/%s, token %s) and Secret (%s/%s) do not match", bot.Namespace, bot.Name, bot.Spec.TokenSecretRef.Name, secret.Namespace, secret.Name)
		}
		if bot.Spec.Gateway != nil || bot.Spec.Shards.String() != "auto" {
			t.Errorf("against real Discord the bot needs Discord's gateway and shards auto; got gateway %+v, shards %s", bot.Spec.Gateway, bot.Spec.Shards.String())
		}
	}
	for _, bad := range []string{"", "   ", "two words", `quo"te`, "back\\slash", "Bot ", "no-dots-at-all", "a.b", `a".b.c`, "a.b c.d"} {
		if _, err := realDiscordManifests(bad); err == nil || !strings.Contains(err.Error(), "DISCORD_TOKEN") {
			t.Errorf("%q accepted (err %v)", bad, err)
		}
	}
}
