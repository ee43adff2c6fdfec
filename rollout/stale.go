package rollout

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// staleRetry is when to look again at a Canary whose cached copy does not
// show the engine's last status write yet (its own watch event usually
// comes first).
const staleRetry = 100 * time.Millisecond

// staleWrites remembers, per Canary, the resourceVersion that the
// engine's last status write replaced. While the cache still shows that
// version, a decision would be made on the state before the write, and
// its status write would be refused as a conflict: the engine waits for
// the cache instead. With several workers, the next reconcile of a
// release often started before the cache had caught up.
type staleWrites struct {
	replaced sync.Map // types.NamespacedName → string
}

// wrote records a status write that took the Canary from resourceVersion
// before to after (a write the API server found unchanged keeps it, and
// records nothing).
func (s *staleWrites) wrote(key types.NamespacedName, before, after string) {
	if before != "" && before != after {
		s.replaced.Store(key, before)
	}
}

// stale reports whether rv, the cached Canary's resourceVersion, is the
// one the last status write replaced.
func (s *staleWrites) stale(key types.NamespacedName, rv string) bool {
	v, ok := s.replaced.Load(key)
	if !ok {
		return false
	}
	if v.(string) == rv {
		return true
	}
	s.replaced.Delete(key)
	return false
}

// forget drops what is known of a deleted Canary.
func (s *staleWrites) forget(key types.NamespacedName) { s.replaced.Delete(key) }
