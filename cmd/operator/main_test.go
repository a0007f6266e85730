package main

import (
	"slices"
	"strings"
	"testing"
)

func TestParseNamespaces(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{in: "", want: nil},
		{in: "bots", want: []string{"bots"}},
		{in: " bots, games ,bots,", want: []string{"bots", "games"}},
		{in: "Bots", wantErr: true},
		{in: "bots,-x", wantErr: true},
		{in: "bots/games", wantErr: true},
	}
	for _, tc := range tests {
		got, err := parseNamespaces(tc.in)
		if (err != nil) != tc.wantErr || !slices.Equal(got, tc.want) {
			t.Errorf("parseNamespaces(%q) = %q, %v; want %q, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

// The operator refuses to start rather than send tokens where its own trusted hosts say
// they may not go.
func TestRunRefusesAnUntrustedDiscordAPIURL(t *testing.T) {
	tests := []struct {
		name string
		o    options
		want string
	}{
		{"plain http to an untrusted host", options{discordAPIURL: "http://discord-proxy.internal/api/v10", trustedHosts: "discord.com"}, "--discord-api-url"},
		{"https to an untrusted host", options{discordAPIURL: "https://evil.example/api/v10", trustedHosts: "discord.com,*.discord.gg"}, "--discord-api-url"},
		{"plain http to Discord", options{discordAPIURL: "http://discord.com/api/v10", trustedHosts: "discord.com"}, "unencrypted"},
		{"a URL as a host", options{discordAPIURL: "https://discord.com/api/v10", trustedHosts: "https://discord.com"}, "--trusted-hosts"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.o.defaultBotImage, tc.o.gatewayProxyImage = "bot:test", "proxy:test"
			err := run(tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("run = %v, want an error about %s", err, tc.want)
			}
		})
	}
}

func TestRunRefusesAnEmptyGatewayProxyImage(t *testing.T) {
	err := run(options{defaultBotImage: "bot:test", gatewayProxyImage: " "})
	if err == nil || !strings.Contains(err.Error(), "--gateway-proxy-image") {
		t.Fatalf("run = %v, want an error about --gateway-proxy-image", err)
	}
}
