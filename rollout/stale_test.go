package rollout

import (
	"testing"

	"k8s.io/apimachinery/pkg/types"
)

// TestStaleWrites: after a status write, the cached Canary is stale while
// it shows the version the write replaced, and fresh from the next
// version on; a write the API server left unchanged makes nothing stale.
func TestStaleWrites(t *testing.T) {
	var s staleWrites
	a, b := types.NamespacedName{Namespace: "ns", Name: "a"}, types.NamespacedName{Namespace: "ns", Name: "b"}
	if s.stale(a, "1") {
		t.Fatal("stale before any write")
	}
	s.wrote(a, "1", "2")
	if !s.stale(a, "1") {
		t.Error("the cache still shows the replaced version: want stale")
	}
	if s.stale(b, "1") {
		t.Error("another Canary is stale")
	}
	if s.stale(a, "2") {
		t.Error("the cache shows the written version: want fresh")
	}
	if s.stale(a, "1") {
		t.Error("stale again once the cache had caught up")
	}
	s.wrote(b, "5", "5")
	if s.stale(b, "5") {
		t.Error("an unchanged write made the Canary stale")
	}
	s.wrote(a, "7", "8")
	s.forget(a)
	if s.stale(a, "7") {
		t.Error("stale after forget")
	}
}
