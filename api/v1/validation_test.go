package v1_test

import (
	"context"
	"os"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
	"github.com/shardkeeper/shardkeeper/botruntime"
	"github.com/shardkeeper/shardkeeper/internal/testenv"
)

var k8s client.Client

func TestMain(m *testing.M) {
	env, err := testenv.Start()
	if err != nil {
		panic(err)
	}
	if err := apiextensionsv1.AddToScheme(env.Scheme); err != nil {
		panic(err)
	}
	k8s, err = client.New(env.Config, client.Options{Scheme: env.Scheme})
	if err != nil {
		panic(err)
	}
	code := m.Run()
	_ = env.Stop()
	os.Exit(code)
}

// botYAML builds a DiscordBot manifest; extra is appended under spec.
func botYAML(name, extra string) string {
	return `apiVersion: shardkeeper.dev/v1
kind: DiscordBot
metadata:
  name: ` + name + `
  namespace: default
spec:
  tokenSecretRef:
    name: bot-token
` + extra
}

func create(t *testing.T, manifest string) (*unstructured.Unstructured, error) {
	t.Helper()
	obj := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(manifest), &obj.Object); err != nil {
		t.Fatalf("bad test manifest: %v", err)
	}
	err := k8s.Create(context.Background(), obj, client.DryRunAll)
	return obj, err
}

func TestInvalidSpecsAreRejectedWithClearMessages(t *testing.T) {
	tests := []struct {
		name     string
		manifest string
		want     string
	}{
		{"more shards per pod than shards", botYAML("a", "  shards: 2\n  shardsPerPod: 3\n"),
			"shardsPerPod must not be greater than shards"},
		{"zero shards", botYAML("a", "  shards: 0\n"), "shards must be between 1 and 100000"},
		{"shards neither a number nor auto", botYAML("a", "  shards: many\n"),
			`shards must be a whole number (for example 4) or "auto"`},
		{"negative session start reserve", botYAML("a", "  sessionStartReserve: -1\n"),
			"should be greater than or equal to 0"},
		{"unknown intent", botYAML("a", "  intents: [GUILDS, GUILD_MESAGES]\n"), `Unsupported value: "GUILD_MESAGES"`},
		{"duplicate intent", botYAML("a", "  intents: [GUILDS, GUILDS]\n"), "Duplicate value"},
		{"gateway url over http", botYAML("a", "  gateway:\n    url: http://gateway.example\n"),
			"gateway.url must be a ws:// or wss:// URL"},
		{"gateway url without host", botYAML("a", "  gateway:\n    url: 'wss://'\n"),
			"gateway.url must be a ws:// or wss:// URL"},
		{"api url over websocket", botYAML("a", "  gateway:\n    apiURL: wss://discord.example/api\n"),
			"gateway.apiURL must be an http:// or https:// URL"},
		{"unknown gateway compression", botYAML("a", "  gateway:\n    compression: zlib\n"), `Unsupported value: "zlib"`},
		{"lease too short", botYAML("a", "  health:\n    leaseDurationSeconds: 5\n"),
			"should be greater than or equal to 10"},
		{"lease too long", botYAML("a", "  health:\n    leaseDurationSeconds: 301\n"),
			"should be less than or equal to 300"},
		{"reserved env", botYAML("a", "  podTemplate:\n    env:\n    - name: SHARDKEEPER_SHARD_IDS\n      value: '0'\n"),
			"env names starting with SHARDKEEPER_ are reserved"},
		{"reserved label", botYAML("a", "  podTemplate:\n    metadata:\n      labels:\n        shardkeeper.dev/bot: x\n"),
			"label keys under shardkeeper.dev/ are reserved"},
		{"name too long", botYAML(strings.Repeat("b", 51), ""), "DiscordBot names are at most 50 characters"},
		{"missing token secret", `{"apiVersion":"shardkeeper.dev/v1","kind":"DiscordBot","metadata":{"name":"a","namespace":"default"},"spec":{}}`,
			"spec.tokenSecretRef: Required value"},
		{"bad secret name", strings.Replace(botYAML("a", ""), "bot-token", "Bot_Token", 1),
			"tokenSecretRef.name must be a valid Secret name"},
		{"bad pull policy", botYAML("a", "  imagePullPolicy: Sometimes\n"), `Unsupported value: "Sometimes"`},
		{"proxy without the bot's own image", botYAML("a", "  gatewayProxy:\n    enabled: true\n"),
			"gatewayProxy needs spec.image"},
		{"proxy with probes health", botYAML("a", "  image: bot:1\n  health:\n    mode: Probes\n  gatewayProxy:\n    enabled: true\n"),
			"gatewayProxy renews the heartbeat Lease for the bot: it needs health.mode Lease"},
		{"proxy with the operator's DISCORD_ env", botYAML("a", "  image: bot:1\n  gatewayProxy:\n    enabled: true\n  podTemplate:\n    env:\n    - name: DISCORD_TOKEN_FILE\n      value: /token\n"),
			"DISCORD_TOKEN_FILE are set by the operator"},
		{"proxy replay bytes too small", proxyBot("replayBytes: 64Ki"), "replayBytes must be a whole number of bytes between 1Mi and 4Gi"},
		{"proxy replay bytes too big", proxyBot("replayBytes: 5Gi"), "replayBytes must be a whole number of bytes between 1Mi and 4Gi"},
		{"proxy replay bytes fractional", proxyBot("replayBytes: '1500000.5'"), "replayBytes must be a whole number of bytes"},
		{"proxy replay events zero", proxyBot("replayEvents: 0"), "should be greater than or equal to 1"},
		{"proxy tolerance zero", proxyBot("clientHeartbeatTolerance: 0"), "should be greater than or equal to 1"},
		{"proxy heartbeat interval too short", proxyBot("clientHeartbeatInterval: 10ms"), "clientHeartbeatInterval must be between 100ms and 5m"},
		{"proxy heartbeat interval too long", proxyBot("clientHeartbeatInterval: 1h"), "clientHeartbeatInterval must be between 100ms and 5m"},
		{"proxy startup bound too short", proxyBot("clientStartupBound: 1s"), "clientStartupBound must be between 10s and 30m"},
		{"proxy without enabled", botYAML("a", "  image: bot:1\n  gatewayProxy:\n    replayEvents: 5\n"), "enabled: Required value"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := create(t, tc.manifest)
			if err == nil {
				t.Fatalf("accepted; want rejection containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("rejected with\n  %v\nwant a message containing %q", err, tc.want)
			}
		})
	}
}

// proxyBot is a bot with the gateway proxy on and one more line under gatewayProxy.
func proxyBot(line string) string {
	return botYAML("a", "  image: bot:1\n  gatewayProxy:\n    enabled: true\n    "+line+"\n")
}

func TestValidSpecsAreAcceptedAndDefaulted(t *testing.T) {
	obj, err := create(t, botYAML("minimal", ""))
	if err != nil {
		t.Fatalf("minimal bot rejected: %v", err)
	}
	var bot shardkeeperv1.DiscordBot
	if err := k8s.Scheme().Convert(obj, &bot, nil); err != nil {
		t.Fatal(err)
	}
	if got := bot.Spec.Shards.IntValue(); got != 1 {
		t.Errorf("default shards = %d, want 1", got)
	}
	if bot.Spec.ShardsPerPod != 1 {
		t.Errorf("default shardsPerPod = %d, want 1", bot.Spec.ShardsPerPod)
	}
	if bot.Spec.TokenSecretRef.Key != "token" {
		t.Errorf("default tokenSecretRef.key = %q, want token", bot.Spec.TokenSecretRef.Key)
	}
	if bot.Spec.Health.LeaseDurationSeconds != 20 {
		t.Errorf("default health.leaseDurationSeconds = %d, want 20", bot.Spec.Health.LeaseDurationSeconds)
	}

	full := botYAML("full", `  shards: 16
  shardsPerPod: 4
  intents: [GUILDS, GUILD_MESSAGES, MESSAGE_CONTENT]
  gateway:
    url: wss://gateway.example:8443/ws
    apiURL: http://discord-fake.test.svc:8080/api/v10
    compression: zlib-stream
  health:
    leaseDurationSeconds: 300
  podTemplate:
    metadata:
      labels: {team: games}
    env:
    - name: LOG_LEVEL
      value: debug
`)
	if _, err := create(t, full); err != nil {
		t.Fatalf("full bot rejected: %v", err)
	}

	// A proxy that is off may keep its settings, and any health mode or image.
	if _, err := create(t, botYAML("proxy-off", "  health:\n    mode: Probes\n  gatewayProxy:\n    enabled: false\n    replayEvents: 5\n")); err != nil {
		t.Fatalf("bot with the proxy off rejected: %v", err)
	}
	for _, line := range []string{"replayBytes: 1048576", "replayBytes: 4Gi", "clientHeartbeatInterval: 100ms", "clientHeartbeatInterval: 5m"} {
		if _, err := create(t, proxyBot(line)); err != nil {
			t.Errorf("proxy with %s rejected: %v", line, err)
		}
	}
	obj, err = create(t, botYAML("proxy", "  image: bot:1\n  gatewayProxy:\n    enabled: true\n"))
	if err != nil {
		t.Fatalf("bot with the proxy rejected: %v", err)
	}
	bot = shardkeeperv1.DiscordBot{}
	if err := k8s.Scheme().Convert(obj, &bot, nil); err != nil {
		t.Fatal(err)
	}
	p := bot.Spec.GatewayProxy
	if p == nil || p.ReplayEvents != 10000 || p.ReplayBytes == nil || p.ReplayBytes.Value() != 64<<20 ||
		p.ClientHeartbeatTolerance != 3 || p.ClientHeartbeatInterval != nil || p.ExposeRealToken {
		t.Errorf("gatewayProxy defaults = %+v; want 10000 events, 64Mi, tolerance 3, no interval, no real token", p)
	}
}

func TestEveryIntentInTheSchemaHasABit(t *testing.T) {
	// The CRD enum and the bit table must list the same names.
	var crd apiextensionsv1.CustomResourceDefinition
	if err := k8s.Get(context.Background(), client.ObjectKey{Name: "discordbots.shardkeeper.dev"}, &crd); err != nil {
		t.Fatal(err)
	}
	enum := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"].Properties["intents"].Items.Schema.Enum
	known := shardkeeperv1.KnownIntents()
	if len(enum) != len(known) {
		t.Errorf("the CRD lists %d intents, the bit table %d", len(enum), len(known))
	}
	for _, raw := range enum {
		name := strings.Trim(string(raw.Raw), `"`)
		if _, err := shardkeeperv1.IntentMask([]shardkeeperv1.Intent{shardkeeperv1.Intent(name)}); err != nil {
			t.Errorf("the CRD accepts intent %s but it has no bit: %v", name, err)
		}
	}
	for _, in := range shardkeeperv1.KnownIntents() {
		if _, err := create(t, botYAML("intent", "  intents: ["+string(in)+"]\n")); err != nil {
			t.Errorf("intent %s has a bit but the CRD rejects it: %v", in, err)
		}
	}
	mask, err := shardkeeperv1.IntentMask([]shardkeeperv1.Intent{"GUILDS", "GUILD_MESSAGES", "MESSAGE_CONTENT"})
	if err != nil || mask != 1|1<<9|1<<15 {
		t.Errorf("IntentMask = %d, %v; want %d", mask, err, 1|1<<9|1<<15)
	}
}

// The CRD offers exactly the compressions botruntime speaks: a value it accepted and the
// bot refused would crash-loop every pod (BadConfiguration).
func TestEveryGatewayCompressionInTheSchemaIsOneBotruntimeSpeaks(t *testing.T) {
	var crd apiextensionsv1.CustomResourceDefinition
	if err := k8s.Get(context.Background(), client.ObjectKey{Name: "discordbots.shardkeeper.dev"}, &crd); err != nil {
		t.Fatal(err)
	}
	enum := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"].Properties["gateway"].Properties["compression"].Enum
	want := []botruntime.Compression{botruntime.CompressionZstdStream, botruntime.CompressionZlibStream, botruntime.CompressionNone}
	if len(enum) != len(want) {
		t.Errorf("the CRD lists %d compressions, botruntime speaks %d", len(enum), len(want))
	}
	for _, raw := range enum {
		name := strings.Trim(string(raw.Raw), `"`)
		if _, err := botruntime.ParseCompression(name); err != nil {
			t.Errorf("the CRD accepts compression %s but botruntime refuses it: %v", name, err)
		}
	}
}
