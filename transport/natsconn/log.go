package natsconn

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// LevelTrace is the slog level of the embedded server's protocol traces (Tracef), below
// slog.LevelDebug. A handler enabled at this level switches tracing on, which logs every protocol
// message: it is meant for debugging only.
const LevelTrace = slog.LevelDebug - 4

// orDiscard returns l, or a logger that discards everything when l is nil.
func orDiscard(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}

// serverLogger routes nats-server's logs into slog. It implements server.Logger. A Fatalf does
// not exit: the first one is kept so that StartEmbedded can report it.
type serverLogger struct {
	log *slog.Logger

	mu    sync.Mutex
	fatal string // first Fatalf message, "" if none
}

func newServerLogger(l *slog.Logger) *serverLogger {
	return &serverLogger{log: l.With(slog.String("component", "nats-server"))}
}

// enabled reports whether the handler wants records at level.
func (l *serverLogger) enabled(level slog.Level) bool {
	return l.log.Enabled(context.Background(), level)
}

// logf formats and logs one record, only if the handler wants it. The record's source is the
// caller of the server.Logger method, inside nats-server.
func (l *serverLogger) logf(level slog.Level, format string, v []any) {
	ctx := context.Background()
	if !l.log.Enabled(ctx, level) {
		return
	}
	var pcs [1]uintptr
	runtime.Callers(3, pcs[:]) // runtime.Callers, logf, the server.Logger method
	r := slog.NewRecord(time.Now(), level, fmt.Sprintf(format, v...), pcs[0])
	_ = l.log.Handler().Handle(ctx, r)
}

func (l *serverLogger) Noticef(format string, v ...any) { l.logf(slog.LevelInfo, format, v) }
func (l *serverLogger) Warnf(format string, v ...any)   { l.logf(slog.LevelWarn, format, v) }
func (l *serverLogger) Errorf(format string, v ...any)  { l.logf(slog.LevelError, format, v) }
func (l *serverLogger) Debugf(format string, v ...any)  { l.logf(slog.LevelDebug, format, v) }
func (l *serverLogger) Tracef(format string, v ...any)  { l.logf(LevelTrace, format, v) }

// Fatalf logs at error level and remembers the first fatal message.
func (l *serverLogger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.mu.Lock()
	if l.fatal == "" {
		l.fatal = msg
	}
	l.mu.Unlock()
	l.logf(slog.LevelError, "%s", []any{msg})
}

// firstFatal returns the first Fatalf message, or "".
func (l *serverLogger) firstFatal() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fatal
}

// handlerOptions are the nats.go event handlers that log a connection's life through log. They run
// on nats.go's callback goroutine, never on the caller's.
func handlerOptions(log *slog.Logger) []nats.Option {
	attrs := func(nc *nats.Conn) []any {
		return []any{slog.String("conn", nc.Opts.Name)}
	}
	return []nats.Option{
		nats.ConnectHandler(func(nc *nats.Conn) {
			log.Info("nats: connected", append(attrs(nc), slog.String("url", nc.ConnectedUrlRedacted()))...)
		}),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if err == nil {
				// A disconnect without an error is the one that comes with Close.
				log.Debug("nats: disconnected", attrs(nc)...)
				return
			}
			log.Warn("nats: disconnected, reconnecting", append(attrs(nc), slog.Any("err", err))...)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("nats: reconnected", append(attrs(nc), slog.String("url", nc.ConnectedUrlRedacted()))...)
		}),
		nats.ReconnectErrHandler(func(nc *nats.Conn, err error) {
			log.Debug("nats: reconnect attempt failed", append(attrs(nc), slog.Any("err", err))...)
		}),
		nats.LameDuckModeHandler(func(nc *nats.Conn) {
			log.Warn("nats: server entering lame duck mode; will move to another server", attrs(nc)...)
		}),
		nats.ErrorHandler(func(nc *nats.Conn, sub *nats.Subscription, err error) {
			a := append(attrs(nc), slog.Any("err", err))
			if sub != nil {
				a = append(a, slog.String("subject", sub.Subject))
			}
			log.Error("nats: asynchronous error", a...)
		}),
		nats.ClosedHandler(func(nc *nats.Conn) {
			a := attrs(nc)
			if err := nc.LastError(); err != nil {
				log.Warn("nats: connection closed", append(a, slog.Any("err", err))...)
				return
			}
			log.Debug("nats: connection closed", a...)
		}),
	}
}
