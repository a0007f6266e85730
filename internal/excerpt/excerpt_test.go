package excerpt

import (
	"testing"
	"unicode/utf8"
)

func TestCut(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"abcdefghij", 8, "abcde..."},
		{"ééééé", 8, "éé..."}, // 2 bytes each: never half a rune
		{"abcdef", 2, "..."},  // below the marker's length: the marker alone
	}
	for _, tc := range tests {
		got := Cut(tc.in, tc.n)
		if got != tc.want || !utf8.ValidString(got) {
			t.Errorf("Cut(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

func TestPrintable(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"  trimmed\n", 10, "trimmed"},
		{"line\nbreak", 20, "line break"},
		{"bell\x07 and \xff byte", 30, "bell  and   byte"},
		{"ééééé", 8, "éé..."},
	}
	for _, tc := range tests {
		if got := Printable(tc.in, tc.n); got != tc.want || len(got) > tc.n {
			t.Errorf("Printable(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}
