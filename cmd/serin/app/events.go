package app

import (
	"fmt"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
)

// maxNote is the longest event note the API server accepts, in bytes; it
// refuses the whole event otherwise.
const maxNote = 1024

// boundedRecorder shortens event notes to what the API server accepts. A
// proxy's NACK message quotes the rejected resource and easily runs past
// the limit, and the rejection event would then never be recorded.
type boundedRecorder struct{ events.EventRecorder }

func (r boundedRecorder) Eventf(regarding, related runtime.Object, eventtype, reason, action, note string, args ...any) {
	r.EventRecorder.Eventf(regarding, related, eventtype, reason, action, "%s", boundNote(fmt.Sprintf(note, args...)))
}

// boundNote cuts s to maxNote bytes at a rune boundary, marking the cut.
func boundNote(s string) string {
	if len(s) <= maxNote {
		return s
	}
	const mark = "..."
	cut := maxNote - len(mark)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}
