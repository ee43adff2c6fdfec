package model

import (
	"slices"
	"testing"
)

func TestVisibleTo(t *testing.T) {
	for _, tc := range []struct {
		exportTo []string
		ns       string
		want     bool
	}{
		{nil, "a", true},
		{nil, "b", true},
		{nil, "", false},
		{[]string{"."}, "a", true},
		{[]string{"."}, "b", false},
		{[]string{".", "c"}, "c", true},
		{[]string{".", "c"}, "b", false},
		{[]string{"*"}, "b", true},
		{[]string{"c"}, "a", true}, // its own namespace always
	} {
		v := Visibility{Namespace: "a", ExportTo: tc.exportTo}
		if got := v.VisibleTo(tc.ns); got != tc.want {
			t.Errorf("exportTo %v, namespace %q: visible %v, want %v", tc.exportTo, tc.ns, got, tc.want)
		}
	}
}

func TestParseExportTo(t *testing.T) {
	if got := ParseExportTo(" web, ., ,web"); !slices.Equal(got, []string{".", "web"}) {
		t.Errorf("got %q", got)
	}
	if got := ParseExportTo(" "); got != nil {
		t.Errorf("blank: got %q, want nil", got)
	}
}
