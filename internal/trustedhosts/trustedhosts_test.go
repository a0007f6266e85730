package trustedhosts

import (
	"strings"
	"testing"
)

func TestAllows(t *testing.T) {
	policy := MustNew(
		[]string{"discord.com", "*.discord.gg", "proxy.example.org"},
		[]string{"discord-emulator.*.svc", "127.0.0.1", "::1"},
	)
	tests := []struct {
		url     string
		allowed bool
		why     string // part of the refusal
	}{
		{url: "https://discord.com/api/v10", allowed: true},
		{url: "HTTPS://Discord.COM./api/v10", allowed: true},
		{url: "wss://gateway.discord.gg", allowed: true},
		{url: "wss://gateway-us-east1-b.discord.gg/?v=10", allowed: true},
		{url: "wss://proxy.example.org:8443", allowed: true},
		{url: "http://discord-emulator.shardkeeper-demo.svc:8080/api/v10", allowed: true},
		{url: "ws://discord-emulator.e2e-a.svc:8080", allowed: true},
		{url: "https://discord-emulator.e2e-a.svc:8080", allowed: true},
		{url: "http://127.0.0.1:34567/api/v10", allowed: true},
		{url: "ws://[::1]:8080", allowed: true},

		{url: "http://discord.com/api/v10", why: "unencrypted"},
		{url: "ws://gateway.discord.gg", why: "unencrypted"},
		{url: "https://evil.example/api/v10", why: "not trusted"},
		{url: "https://discord.gg", why: "not trusted"},               // * is one label, not zero
		{url: "wss://a.b.discord.gg", why: "not trusted"},             // nor two
		{url: "https://discord.com.evil.example", why: "not trusted"}, // no suffix tricks
		{url: "https://evildiscord.com", why: "not trusted"},
		{url: "http://discord-emulator.svc:8080", why: "not trusted"},
		{url: "http://discord-emulator:8080", why: "not trusted"},
		{url: "http://127.0.0.2:80", why: "not trusted"},
		{url: "https://user:pw@discord.com/api", why: "credentials"},
		{url: "ftp://discord.com", why: "scheme"},
		{url: "discord.com/api", why: "no host"},
		{url: "://", why: "not a URL"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			err := policy.Allows(tt.url)
			if tt.allowed {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("allowed")
			}
			if !strings.Contains(err.Error(), tt.why) {
				t.Errorf("error %q does not say %q", err, tt.why)
			}
			if strings.Contains(err.Error(), "pw") {
				t.Errorf("error %q repeats the URL's password", err)
			}
		})
	}
}

func TestDefaultTrustsOnlyDiscordOverTLS(t *testing.T) {
	p := Default()
	for _, ok := range []string{"https://discord.com/api/v10", "wss://gateway.discord.gg"} {
		if err := p.Allows(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"http://discord.com/api/v10", "ws://gateway.discord.gg", "http://127.0.0.1:8080", "https://example.com"} {
		if p.Allows(bad) == nil {
			t.Errorf("%s allowed by the default policy", bad)
		}
	}
}

func TestNewRejectsBadPatterns(t *testing.T) {
	for _, bad := range []string{"", "*", "*.*", "https://discord.com", "discord.com:443", "disc ord.com", "-a.com", "a..com"} {
		if _, err := New([]string{bad}, nil); err == nil {
			t.Errorf("%q accepted", bad)
		}
		if _, err := New(nil, []string{bad}); err == nil {
			t.Errorf("%q accepted as plain text", bad)
		}
	}
}

func TestSplit(t *testing.T) {
	got := Split(" discord.com, ,*.discord.gg,")
	if len(got) != 2 || got[0] != "discord.com" || got[1] != "*.discord.gg" {
		t.Errorf("Split = %q", got)
	}
}
