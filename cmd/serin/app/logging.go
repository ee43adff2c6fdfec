package app

import (
	"fmt"
	"io"
	stdlog "log"
	"strings"

	"github.com/go-logr/logr"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc/grpclog"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
)

// setupLogAndConfig makes the logger of the flags, controller-runtime's
// too, and the API server connection of the controller.
func setupLogAndConfig(conn *connFlags, o controllerOptions) (logr.Logger, *rest.Config, error) {
	log, err := newLogger(o)
	if err != nil {
		return logr.Logger{}, nil, &exitError{code: 2, err: err}
	}
	ctrl.SetLogger(log)
	routeLibraryLogs(log)
	cfg, err := conn.loader().ClientConfig()
	if err != nil {
		return logr.Logger{}, nil, err
	}
	cfg.QPS, cfg.Burst = o.kubeAPIQPS, o.kubeAPIBurst
	return log, cfg, nil
}

func newLogger(o controllerOptions) (logr.Logger, error) {
	var level zapcore.Level
	switch o.logLevel {
	case "debug":
		level = zapcore.DebugLevel
	case "info":
		level = zapcore.InfoLevel
	case "error":
		level = zapcore.ErrorLevel
	default:
		return logr.Logger{}, fmt.Errorf("--log-level %q: want debug, info or error", o.logLevel)
	}
	if o.logFormat != "json" && o.logFormat != "console" {
		return logr.Logger{}, fmt.Errorf("--log-format %q: want json or console", o.logFormat)
	}
	return zap.New(zap.Level(level), zap.UseDevMode(o.logFormat == "console")), nil
}

// routeLibraryLogs sends what libraries log on their own through serin's
// structured logger, so that serin's output is JSON lines only: the
// standard library's log package (net/http's servers write TLS handshake
// errors there), klog (client-go, leader election) and grpclog.
func routeLibraryLogs(log logr.Logger) {
	stdlog.SetFlags(0)
	stdlog.SetPrefix("")
	stdlog.SetOutput(lineLogger{log: log.WithName("stdlib")})
	klog.SetLogger(log.WithName("klog"))
	grpclog.SetLoggerV2(grpcLogger{log: log.WithName("grpc")})
}

// lineLogger logs each line written to it as one entry.
type lineLogger struct{ log logr.Logger }

var _ io.Writer = lineLogger{}

func (w lineLogger) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			w.log.Info(line)
		}
	}
	return len(p), nil
}

// grpcLogger is grpclog.LoggerV2 on logr: grpc's info at V(2), warnings
// at V(1), errors as errors.
type grpcLogger struct{ log logr.Logger }

var _ grpclog.LoggerV2 = grpcLogger{}

func (g grpcLogger) Info(args ...any)                 { g.log.V(2).Info(fmt.Sprint(args...)) }
func (g grpcLogger) Infoln(args ...any)               { g.log.V(2).Info(sprintln(args...)) }
func (g grpcLogger) Infof(format string, args ...any) { g.log.V(2).Info(fmt.Sprintf(format, args...)) }
func (g grpcLogger) Warning(args ...any)              { g.log.V(1).Info(fmt.Sprint(args...)) }
func (g grpcLogger) Warningln(args ...any)            { g.log.V(1).Info(sprintln(args...)) }
func (g grpcLogger) Warningf(format string, args ...any) {
	g.log.V(1).Info(fmt.Sprintf(format, args...))
}
func (g grpcLogger) Error(args ...any)   { g.log.Error(nil, fmt.Sprint(args...)) }
func (g grpcLogger) Errorln(args ...any) { g.log.Error(nil, sprintln(args...)) }
func (g grpcLogger) Errorf(format string, args ...any) {
	g.log.Error(nil, fmt.Sprintf(format, args...))
}
func (g grpcLogger) Fatal(args ...any)                 { g.fatal(fmt.Sprint(args...)) }
func (g grpcLogger) Fatalln(args ...any)               { g.fatal(sprintln(args...)) }
func (g grpcLogger) Fatalf(format string, args ...any) { g.fatal(fmt.Sprintf(format, args...)) }
func (g grpcLogger) V(l int) bool                      { return g.log.V(l).Enabled() }

// fatal is what grpclog's own logger does on Fatal: log, then exit.
func (g grpcLogger) fatal(msg string) {
	g.log.Error(nil, msg)
	klog.FlushAndExit(klog.ExitFlushTimeout, 1)
}

func sprintln(args ...any) string { return strings.TrimSuffix(fmt.Sprintln(args...), "\n") }
