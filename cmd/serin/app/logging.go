package app

import (
	"fmt"

	"github.com/go-logr/logr"
	"go.uber.org/zap/zapcore"
	"k8s.io/client-go/rest"
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
	cfg, err := conn.loader().ClientConfig()
	if err != nil {
		return logr.Logger{}, nil, err
	}
	cfg.QPS, cfg.Burst = 50, 100
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
