package harness

import (
	"context"
	"maps"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// versionServer answers like podsim: x-version and x-pod in the response
// headers; x-canary: insider reaches "canary", x-fail fails the call.
type versionServer struct {
	testgrpc.UnimplementedTestServiceServer
}

func (versionServer) UnaryCall(ctx context.Context, _ *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	if len(md.Get("x-fail")) > 0 {
		return nil, status.Error(codes.Unavailable, "asked to fail")
	}
	version := "stable"
	if v := md.Get("x-canary"); len(v) == 1 && v[0] == "insider" {
		version = "canary"
	}
	if err := grpc.SetHeader(ctx, metadata.Pairs("x-version", version, "x-pod", "pod-"+version)); err != nil {
		return nil, err
	}
	return &testgrpc.SimpleResponse{}, nil
}

// TestCCoreClient runs the client program on a plain target (no xDS):
// tallies by header, request metadata, failed calls counted, several
// measurements over one process, a clean exit.
func TestCCoreClient(t *testing.T) {
	NeedCCore(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(srv, versionServer{})
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := startCCore(ctx, t.TempDir(), nil, []string{lis.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		n        int
		md       []string
		versions map[string]int
		pods     map[string]int
		errors   int
	}{
		{n: 300, versions: map[string]int{"stable": 300}, pods: map[string]int{"pod-stable": 300}},
		{n: 200, md: []string{"x-canary", "insider"}, versions: map[string]int{"canary": 200}, pods: map[string]int{"pod-canary": 200}},
		{n: 20, md: []string{"x-canary", "outsider"}, versions: map[string]int{"stable": 20}, pods: map[string]int{"pod-stable": 20}},
		{n: 10, md: []string{"x-fail", "1"}, versions: map[string]int{}, pods: map[string]int{}, errors: 10},
	} {
		tl, err := c.Send(ctx, tc.n, tc.md...)
		if err != nil {
			t.Fatal(err)
		}
		if !maps.Equal(tl.Versions, tc.versions) || !maps.Equal(tl.Pods, tc.pods) || tl.Errors != tc.errors {
			t.Errorf("Send(%d, %v) = versions %v, pods %v, %d errors; want %v, %v, %d errors",
				tc.n, tc.md, tl.Versions, tl.Pods, tl.Errors, tc.versions, tc.pods, tc.errors)
		}
		if tc.errors > 0 && (tl.LastErr == nil || !strings.Contains(tl.LastErr.Error(), "UNAVAILABLE: asked to fail")) {
			t.Errorf("last error %v, want the server's UNAVAILABLE", tl.LastErr)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestCCoreClientSetupFailure: a client whose first call is never answered
// reports it and exits, and starting it fails.
func TestCCoreClientSetupFailure(t *testing.T) {
	NeedCCore(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close() // nothing listens there now
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err = startCCore(ctx, t.TempDir(), nil, []string{"--setup-timeout=1", addr})
	if err == nil || !strings.Contains(err.Error(), "setup_error") {
		t.Fatalf("start = %v, want the program's setup_error", err)
	}
}
