package rollout

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/serin-dev/serin/api/v1alpha1"
)

func TestEditedByOthers(t *testing.T) {
	entry := func(manager, subresource, fields string) metav1.ManagedFieldsEntry {
		f := metav1.NewFieldsV1(fields)
		return metav1.ManagedFieldsEntry{Manager: manager, Subresource: subresource, FieldsV1: f}
	}
	tests := []struct {
		name    string
		entries []metav1.ManagedFieldsEntry
		want    bool
	}{
		{"only serin", []metav1.ManagedFieldsEntry{entry("serin", "", `{"f:spec":{"f:targetRef":{}}}`)}, false},
		{"status by another manager", []metav1.ManagedFieldsEntry{entry("serin", "", `{"f:spec":{}}`), entry("other", "status", `{"f:status":{}}`)}, false},
		{"annotations by the CLI", []metav1.ManagedFieldsEntry{entry("serin", "", `{"f:spec":{}}`), entry("kubectl-annotate", "", `{"f:metadata":{"f:annotations":{}}}`)}, false},
		{"spec applied by kubectl", []metav1.ManagedFieldsEntry{entry("serin", "", `{"f:spec":{}}`), entry("kubectl-client-side-apply", "", `{"f:spec":{"f:analysis":{}}}`)}, true},
	}
	for _, tt := range tests {
		c := &v1alpha1.Canary{ObjectMeta: metav1.ObjectMeta{ManagedFields: tt.entries}}
		if got := editedByOthers(c); got != tt.want {
			t.Errorf("%s: editedByOthers = %v, want %v", tt.name, got, tt.want)
		}
	}
}
