package podsim

import (
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
)

func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

func TestGRPCEcho(t *testing.T) {
	_, addrs := servePod(t, testPod(withEnv(EnvVersion, "v3")), nil)
	cc := dial(t, addrs["grpc"])
	client := testgrpc.NewTestServiceClient(cc)

	var header, trailer metadata.MD
	resp, err := client.UnaryCall(t.Context(), &testgrpc.SimpleRequest{
		Payload: &testgrpc.Payload{Body: []byte("hello")},
	}, grpc.Header(&header), grpc.Trailer(&trailer))
	if err != nil {
		t.Fatal(err)
	}
	if string(resp.GetPayload().GetBody()) != "hello" || resp.GetHostname() != "podinfo-7d9f8c6b5-x2x4z" || resp.GetServerId() != "podinfo-7d9f8c6b5-x2x4z" {
		t.Errorf("UnaryCall = %v", resp)
	}
	for _, md := range []metadata.MD{header, trailer} {
		if got := md.Get("x-version"); len(got) != 1 || got[0] != "v3" {
			t.Errorf("x-version = %v, want [v3]", got)
		}
		if got := md.Get("x-pod"); len(got) != 1 || got[0] != "podinfo-7d9f8c6b5-x2x4z" {
			t.Errorf("x-pod = %v", got)
		}
	}

	resp, err = client.UnaryCall(t.Context(), &testgrpc.SimpleRequest{ResponseSize: 1000})
	if err != nil || len(resp.GetPayload().GetBody()) != 1000 {
		t.Errorf("ResponseSize 1000: %v, %d bytes", err, len(resp.GetPayload().GetBody()))
	}
	_, err = client.UnaryCall(t.Context(), &testgrpc.SimpleRequest{ResponseStatus: &testgrpc.EchoStatus{Code: int32(codes.NotFound), Message: "gone"}})
	if st := status.Convert(err); st.Code() != codes.NotFound || st.Message() != "gone" {
		t.Errorf("ResponseStatus echo: %v", err)
	}
	if _, err := client.EmptyCall(t.Context(), &testgrpc.Empty{}); err != nil {
		t.Errorf("EmptyCall: %v", err)
	}
	if _, err := client.UnimplementedCall(t.Context(), &testgrpc.Empty{}); status.Code(err) != codes.Unimplemented {
		t.Errorf("UnimplementedCall: %v", err)
	}

	hc := healthpb.NewHealthClient(cc)
	for _, svc := range []string{"", TestServiceName} {
		r, err := hc.Check(t.Context(), &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health %q: %v %v", svc, r, err)
		}
	}

	stream, err := reflectionpb.NewServerReflectionClient(cc).ServerReflectionInfo(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	rr, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range rr.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	for _, want := range []string{"grpc.health.v1.Health", TestServiceName} {
		found := false
		for _, n := range names {
			found = found || n == want
		}
		if !found {
			t.Errorf("reflection lists %v, missing %s", names, want)
		}
	}
	_ = stream.CloseSend()
}

func TestGRPCInjectedFailures(t *testing.T) {
	for _, tt := range []struct {
		env  []string
		want codes.Code
	}{
		{[]string{EnvErrorRate, "1"}, codes.Internal},
		{[]string{EnvErrorRate, "1", EnvErrorGRPCCode, "UNAVAILABLE"}, codes.Unavailable},
	} {
		_, addrs := servePod(t, testPod(withEnv(tt.env...)), nil)
		cc := dial(t, addrs["grpc"])
		var header metadata.MD
		_, err := testgrpc.NewTestServiceClient(cc).UnaryCall(t.Context(), &testgrpc.SimpleRequest{}, grpc.Header(&header))
		if status.Code(err) != tt.want {
			t.Errorf("%v: UnaryCall error %v, want code %v", tt.env, err, tt.want)
		}
		if got := header.Get("x-pod"); len(got) != 1 {
			t.Errorf("%v: failed call carries x-pod %v, want the pod name", tt.env, got)
		}
		r, err := healthpb.NewHealthClient(cc).Check(t.Context(), &healthpb.HealthCheckRequest{})
		if err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("%v: health must not fail: %v %v", tt.env, r, err)
		}
	}
}

func TestGRPCErrorRate(t *testing.T) {
	const n = 300
	_, addrs := servePod(t, testPod(withEnv(EnvErrorRate, "0.5")), seeded(7))
	client := testgrpc.NewTestServiceClient(dial(t, addrs["grpc"]))
	failed := 0
	for range n {
		if _, err := client.EmptyCall(t.Context(), &testgrpc.Empty{}); err != nil {
			if status.Code(err) != codes.Internal {
				t.Fatalf("unexpected error %v", err)
			}
			failed++
		}
	}
	// Binomial(300, 0.5): standard deviation 8.7; 5 of them either side.
	if failed < 150-43 || failed > 150+43 {
		t.Errorf("%d of %d calls failed, want 150 ± 43", failed, n)
	}
}
