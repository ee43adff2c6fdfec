package app

import (
	"bytes"
	"encoding/json"
	stdlog "log"
	"os"
	"strings"
	"sync"
	"testing"

	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc/grpclog"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// TestLibraryLogsAreJSONLines writes through every logger a library may use
// on its own and checks that serin's output is one JSON object per line,
// each carrying the text in msg.
func TestLibraryLogsAreJSONLines(t *testing.T) {
	var out syncBuffer
	log := zap.New(zap.WriteTo(&out), zap.Level(zapcore.DebugLevel))
	routeLibraryLogs(log)
	t.Cleanup(func() {
		stdlog.SetOutput(os.Stderr)
		klog.ClearLogger()
	})
	stdlog.Printf("http: TLS handshake error from 127.0.0.1:5555: EOF")
	stdlog.Print("two\nlines")
	klog.InfoS("attempting to acquire leader lease", "lease", "serin-system/serin.dev")
	grpclog.Errorf("transport: %s", "connection reset")
	grpclog.Warning("a warning")

	out.mu.Lock()
	text := out.b.String()
	out.mu.Unlock()
	lines := strings.Split(strings.TrimSpace(text), "\n")
	want := []string{"http: TLS handshake error from 127.0.0.1:5555: EOF", "two", "lines", "attempting to acquire leader lease", "transport: connection reset", "a warning"}
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(want), text)
	}
	for i, line := range lines {
		var entry map[string]any
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			t.Fatalf("line %d is not JSON: %q", i+1, line)
		}
		if entry["msg"] != want[i] {
			t.Errorf("line %d msg = %v, want %q", i+1, entry["msg"], want[i])
		}
	}
}
