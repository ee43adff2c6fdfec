package podsim

import (
	"context"
	"net/http"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"
)

// TestServiceName is the full name of the echo service served on gRPC ports.
const TestServiceName = "grpc.testing.TestService"

// newGRPCServer builds the pod's gRPC server: health (SERVING for "" and the test
// service), reflection, and the test service behind the behaviour interceptors.
func (a *app) newGRPCServer() (*grpc.Server, *health.Server) {
	s := grpc.NewServer(
		grpc.ChainUnaryInterceptor(a.unaryInterceptor),
		grpc.ChainStreamInterceptor(a.streamInterceptor),
		// xDS clients keep connections alive with pings; do not punish them for it.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
	)
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus(TestServiceName, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(s, hs)
	reflection.Register(s)
	testgrpc.RegisterTestServiceServer(s, &testService{app: a})
	return s, hs
}

// bypassBehavior reports methods that are infrastructure, not app traffic.
func bypassBehavior(fullMethod string) bool {
	return strings.HasPrefix(fullMethod, "/grpc.health.v1.") || strings.HasPrefix(fullMethod, "/grpc.reflection.")
}

func (a *app) identityMD() metadata.MD {
	md := metadata.MD{}
	for _, kv := range a.identity() {
		md.Set(kv[0], kv[1])
	}
	return md
}

// unaryInterceptor applies the pod's behaviour to unary app calls and counts them.
func (a *app) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if bypassBehavior(info.FullMethod) {
		return handler(ctx, req)
	}
	start := time.Now()
	md := a.identityMD()
	_ = grpc.SetHeader(ctx, md)
	_ = grpc.SetTrailer(ctx, md)

	var resp any
	var err error
	out := a.outcome()
	switch werr := sleep(ctx, out.Delay); {
	case werr != nil:
		err = status.FromContextError(werr).Err()
	case out.Fail:
		err = status.Errorf(a.plan.Behavior.ErrorGRPCCode, "injected failure by %s", a.plan.Identity.Pod)
	default:
		resp, err = handler(ctx, req)
	}
	a.observeGRPC(ctx, err, start)
	return resp, err
}

// streamInterceptor counts streaming app calls; the behaviour applies to unary calls only.
func (a *app) streamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if bypassBehavior(info.FullMethod) {
		return handler(srv, ss)
	}
	start := time.Now()
	md := a.identityMD()
	_ = ss.SetHeader(md)
	ss.SetTrailer(md)
	err := handler(srv, ss)
	a.observeGRPC(ss.Context(), err, start)
	return err
}

// observeGRPC records a call the way Istio does: response_code is the HTTP status
// (200 for every call that got a gRPC status) and grpc_response_status the gRPC code.
func (a *app) observeGRPC(ctx context.Context, err error, start time.Time) {
	code := status.Code(err)
	var authority string
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get(":authority"); len(v) > 0 {
			authority = v[0]
		}
	}
	a.metrics.observe(request{
		protocol:  ProtocolGRPC,
		code:      http.StatusOK,
		grpcCode:  &code,
		authority: authority,
		duration:  time.Since(start),
	})
}

// testService implements the unary methods of grpc.testing.TestService.
type testService struct {
	testgrpc.UnimplementedTestServiceServer
	app *app
}

func (s *testService) EmptyCall(context.Context, *testgrpc.Empty) (*testgrpc.Empty, error) {
	return &testgrpc.Empty{}, nil
}

// UnaryCall echoes the request payload (or returns response_size zero bytes), names
// the pod in hostname and server_id, and honours response_status like the interop
// server does.
func (s *testService) UnaryCall(_ context.Context, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	if st := req.GetResponseStatus(); st.GetCode() != 0 {
		return nil, status.Error(codes.Code(st.GetCode()), st.GetMessage())
	}
	payload := req.GetPayload()
	if n := req.GetResponseSize(); n > 0 {
		if n > maxEchoBytes {
			return nil, status.Errorf(codes.InvalidArgument, "response_size %d exceeds %d", n, maxEchoBytes)
		}
		payload = &testgrpc.Payload{Type: testgrpc.PayloadType_COMPRESSABLE, Body: make([]byte, n)}
	}
	return &testgrpc.SimpleResponse{
		Payload:  payload,
		Hostname: s.app.plan.Identity.Pod,
		ServerId: s.app.plan.Identity.Pod,
	}, nil
}
