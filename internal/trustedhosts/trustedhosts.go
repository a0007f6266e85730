// Package trustedhosts decides where the operator lets a bot token go. A DiscordBot's
// spec.gateway names the REST API and gateway its token is sent to, and anyone who may
// write a DiscordBot may write those URLs; so the operator sends a token (itself, or
// through the pods it runs) only to hosts the cluster administrator listed, over TLS
// unless a host is also listed as allowed in plain text.
//
// It must never widen trust: a URL it cannot parse, a scheme it does not know or a host
// that matches no pattern is refused.
package trustedhosts

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// Discord's own hosts: the REST API and every gateway host (gateway.discord.gg and the
// regional resume hosts, gateway-us-east1-b.discord.gg...).
var DefaultTrusted = []string{"discord.com", "*.discord.gg"}

// Policy is the set of hosts a token may be sent to.
type Policy struct {
	trusted []pattern // over https and wss
	plain   []pattern // over http and ws as well
}

// pattern is a host name, label by label; "*" matches exactly one label. An IP address
// is one label and matches only itself.
type pattern []string

// New builds a policy from host patterns: trusted hosts may be reached over https and
// wss, plainText hosts over http and ws too (and so are trusted as well).
func New(trusted, plainText []string) (*Policy, error) {
	p := &Policy{}
	var errs []error
	for _, raw := range trusted {
		pat, err := parsePattern(raw)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		p.trusted = append(p.trusted, pat)
	}
	for _, raw := range plainText {
		pat, err := parsePattern(raw)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		p.plain = append(p.plain, pat)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return p, nil
}

// Default trusts Discord's hosts, over TLS only.
func Default() *Policy {
	p, err := New(DefaultTrusted, nil)
	if err != nil {
		panic(err) // constant patterns
	}
	return p
}

// MustNew is New for constant patterns (tests, tools).
func MustNew(trusted, plainText []string) *Policy {
	p, err := New(trusted, plainText)
	if err != nil {
		panic(err)
	}
	return p
}

// Split reads a comma-separated flag value into patterns, dropping empty items.
func Split(list string) []string {
	var out []string
	for _, item := range strings.Split(list, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

func parsePattern(raw string) (pattern, error) {
	host := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(raw)), ".")
	if host == "" {
		return nil, fmt.Errorf("trusted host %q: empty", raw)
	}
	if strings.ContainsAny(host, "/:@?#") && net.ParseIP(strings.Trim(host, "[]")) == nil {
		return nil, fmt.Errorf("trusted host %q: give a host name such as discord.com or *.discord.gg, not a URL or host:port", raw)
	}
	if ip := net.ParseIP(strings.Trim(host, "[]")); ip != nil {
		return pattern{ip.String()}, nil
	}
	labels := strings.Split(host, ".")
	wild := 0
	for _, l := range labels {
		switch {
		case l == "*":
			wild++
		case !validLabel(l):
			return nil, fmt.Errorf("trusted host %q: %q is not a DNS label", raw, l)
		}
	}
	if wild == len(labels) {
		return nil, fmt.Errorf("trusted host %q: a pattern must name at least one label; it would trust every host", raw)
	}
	return labels, nil
}

func validLabel(l string) bool {
	if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	return strings.Trim(l, "abcdefghijklmnopqrstuvwxyz0123456789-_") == ""
}

func (p pattern) matches(host string) bool {
	if ip := net.ParseIP(host); ip != nil {
		return len(p) == 1 && p[0] == ip.String()
	}
	labels := strings.Split(host, ".")
	if len(labels) != len(p) {
		return false
	}
	for i, l := range labels {
		if p[i] != "*" && p[i] != l {
			return false
		}
	}
	return true
}

func (p pattern) String() string { return strings.Join(p, ".") }

func anyMatch(pats []pattern, host string) bool {
	for _, pat := range pats {
		if pat.matches(host) {
			return true
		}
	}
	return false
}

// Allows returns nil when a token may be sent to rawURL, and otherwise an error that says
// why and what the administrator can change.
func (p *Policy) Allows(rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("%q is not a URL", rawURL)
	}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if host == "" {
		return fmt.Errorf("%q has no host", rawURL)
	}
	if u.User != nil {
		return fmt.Errorf("%q carries credentials; the operator sends none of its own there", redact(u))
	}
	switch strings.ToLower(u.Scheme) {
	case "https", "wss":
		if anyMatch(p.trusted, host) || anyMatch(p.plain, host) {
			return nil
		}
		return fmt.Errorf("host %q is not trusted by the operator (trusted: %s); a cluster administrator can add it to the operator's trusted hosts", host, p.describe(p.trusted))
	case "http", "ws":
		if anyMatch(p.plain, host) {
			return nil
		}
		if anyMatch(p.trusted, host) {
			return fmt.Errorf("%s:// to %q would send the token unencrypted; use %s, or a cluster administrator can allow the host in plain text", u.Scheme, host, secureOf(u.Scheme))
		}
		return fmt.Errorf("host %q is not trusted by the operator, and not in plain text either (plain text allowed: %s)", host, p.describe(p.plain))
	default:
		return fmt.Errorf("scheme %q of %q is not one a token is sent over", u.Scheme, redact(u))
	}
}

func (p *Policy) describe(pats []pattern) string {
	if len(pats) == 0 {
		return "none"
	}
	names := make([]string, len(pats))
	for i, pat := range pats {
		names[i] = pat.String()
	}
	return strings.Join(names, ", ")
}

// String lists the policy, for the operator's start-up log line.
func (p *Policy) String() string {
	return fmt.Sprintf("trusted: %s; plain text allowed: %s", p.describe(p.trusted), p.describe(p.plain))
}

func secureOf(scheme string) string {
	if strings.EqualFold(scheme, "ws") {
		return "wss://"
	}
	return "https://"
}

func redact(u *url.URL) string {
	c := *u
	c.User = nil
	return c.String()
}
