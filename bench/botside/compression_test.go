package main

import (
	"slices"
	"testing"
)

func TestThousands(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 999: "999", 1000: "1,000", 49560.4: "49,560", 702170: "702,170", 1234567: "1,234,567"} {
		if got := thousands(v); got != want {
			t.Errorf("thousands(%v) = %q, want %q", v, got, want)
		}
	}
}

// Every bot of a round gets the same messages; the next round gets others.
func TestChatLinesAreTheSameForEveryBotOfARound(t *testing.T) {
	a, b, next := chatLines(3, 100), chatLines(3, 100), chatLines(4, 100)
	if !slices.Equal(a, b) {
		t.Error("two bots of one round got different messages")
	}
	if slices.Equal(a, next) {
		t.Error("two rounds got the same messages")
	}
	if slices.Contains(a, "") || slices.Contains(a, "!ping") {
		t.Error("an empty message, or a !ping before the last one")
	}
}
