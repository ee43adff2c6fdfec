package app

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestBoundNote(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
	}{
		{"short", "weight 10"},
		{"exact", strings.Repeat("a", maxNote)},
		{"long ascii", strings.Repeat("a", 3*maxNote)},
		{"long multibyte", strings.Repeat("é", maxNote)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := boundNote(tc.in)
			if len(got) > maxNote || !utf8.ValidString(got) {
				t.Fatalf("len %d, valid %t", len(got), utf8.ValidString(got))
			}
			if len(tc.in) <= maxNote && got != tc.in {
				t.Fatalf("a note within the limit changed")
			}
			if len(tc.in) > maxNote && !strings.HasSuffix(got, "...") {
				t.Fatalf("a cut note is not marked: %q", got[len(got)-10:])
			}
		})
	}
}
