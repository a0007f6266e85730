package main

import (
	"slices"
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
