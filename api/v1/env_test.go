package v1

import (
	"strconv"
	"testing"
)

func TestAddReplacedPodUIDs(t *testing.T) {
	tests := []struct {
		name    string
		before  string // the annotation, "" for none
		add     []string
		want    string
		changed bool
	}{
		{"first", "", []string{"a"}, "a", true},
		{"newest first", "a", []string{"b"}, "b,a", true},
		{"several, given newest first", "a", []string{"c", "b"}, "c,b,a", true},
		{"a repeat moves to the front", "b,a", []string{"a"}, "a,b", true},
		{"already first", "a,b", []string{"a"}, "a,b", false},
		{"empty UIDs skipped", "", []string{"", "a", ""}, "a", true},
		{"nothing to add", "", []string{""}, "", false},
		{"the same UID twice", "", []string{"a", "a"}, "a", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ann := map[string]string{}
			if tt.before != "" {
				ann[AnnotationReplacedPodUIDs] = tt.before
			}
			changed := AddReplacedPodUIDs(ann, tt.add...)
			if got := ann[AnnotationReplacedPodUIDs]; got != tt.want || changed != tt.changed {
				t.Errorf("got %q (changed %v), want %q (changed %v)", got, changed, tt.want, tt.changed)
			}
		})
	}

	ann := map[string]string{}
	for i := range 20 {
		AddReplacedPodUIDs(ann, "uid-"+strconv.Itoa(i))
	}
	if got := ReplacedPodUIDs(ann); len(got) != maxReplacedPodUIDs || got[0] != "uid-19" || got[len(got)-1] != "uid-12" {
		t.Errorf("after 20 UIDs the list is %v, want the newest %d, newest first", got, maxReplacedPodUIDs)
	}
}
