// Package excerpt bounds text that came from elsewhere (a server's error page, a pod's
// termination message) before it goes into a condition, an event or a log line: the API
// server refuses a condition message over 32 KiB, and a status patch that carries one
// fails on every pass.
package excerpt

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Cut shortens s to at most n bytes, on a rune boundary, marking the cut with "...".
func Cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := max(n-len("..."), 0)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// Printable is Cut of s trimmed, with every control character and invalid byte replaced
// by a space.
func Printable(s string, n int) string {
	return Cut(strings.Map(func(r rune) rune {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			return ' '
		}
		return r
	}, strings.TrimSpace(s)), n)
}
