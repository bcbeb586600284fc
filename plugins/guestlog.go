package plugins

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/gwmcp/gw/internal/loglimit"
)

// Bounds on what a guest may write to stdout and stderr, per module (all its instances together).
const (
	guestLogBurst    = 64 << 10 // bytes that may be logged at once after a quiet period
	guestLogRate     = 16 << 10 // bytes per second, sustained
	guestLogLineMax  = 4 << 10  // longer lines are cut
	guestLogLineCost = 64       // charged per line on top of its length, so many short lines cost too
)

// guestLog is the destination of one module's guest stdout and stderr: lines go to the host's
// logger with the module name, through a token bucket (in bytes, each line charged
// guestLogLineCost more) so a chatty guest cannot flood the log.
// Lines over budget are dropped and counted; the count is logged with the next line that fits,
// and when the module closes.
//
// Logging happens on the goroutine of the call that wrote the line; the budget bounds how long
// that can take.
type guestLog struct {
	logger *slog.Logger
	now    func() time.Time
	limit  *loglimit.Limiter // in bytes: guestLogBurst, guestLogRate

	mu           sync.Mutex // orders a line's budget and the bytes dropped
	droppedBytes int
}

func newGuestLog(logger *slog.Logger, module string) *guestLog {
	return &guestLog{
		logger: logger.With("module", module),
		now:    time.Now,
		limit:  loglimit.New(guestLogRate, guestLogBurst),
	}
}

// admit takes the budget for one line of n bytes. It returns false when the line must be
// dropped, and otherwise the drops to report first.
func (g *guestLog) admit(n int) (ok bool, droppedLines, droppedBytes int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	ok, lines := g.limit.TakeAt(g.now(), n+guestLogLineCost)
	if !ok {
		g.droppedBytes += n
		return false, 0, 0
	}
	droppedBytes, g.droppedBytes = g.droppedBytes, 0
	return true, int(lines), droppedBytes
}

func (g *guestLog) emit(stream string, level slog.Level, line []byte, truncated bool) {
	ok, dl, db := g.admit(len(line))
	if !ok {
		return
	}
	ctx := context.Background()
	if dl > 0 {
		g.logger.LogAttrs(ctx, slog.LevelWarn, "policy output dropped: over the log budget",
			slog.Int("lines", dl), slog.Int("bytes", db))
	}
	attrs := []slog.Attr{slog.String("stream", stream), slog.String("line", string(line))}
	if truncated {
		attrs = append(attrs, slog.Bool("truncated", true))
	}
	g.logger.LogAttrs(ctx, level, "policy output", attrs...)
}

// reportDropped logs the lines dropped since the last line logged, if any.
func (g *guestLog) reportDropped() {
	g.mu.Lock()
	dl, db := int(g.limit.Flush()), g.droppedBytes
	g.droppedBytes = 0
	g.mu.Unlock()
	if dl > 0 {
		g.logger.LogAttrs(context.Background(), slog.LevelWarn, "policy output dropped: over the log budget",
			slog.Int("lines", dl), slog.Int("bytes", db))
	}
}

// lineWriter splits one instance's stdout or stderr into lines for a guestLog. It is used by one
// instance, hence one goroutine at a time. Write never fails and never blocks on the guest's
// behalf for longer than one log call.
type lineWriter struct {
	log       *guestLog
	stream    string
	level     slog.Level
	buf       []byte
	truncated bool
}

func (w *lineWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		chunk := p
		if i >= 0 {
			chunk = p[:i]
		}
		if room := guestLogLineMax - len(w.buf); len(chunk) > room {
			chunk = chunk[:room]
			w.truncated = true
		}
		w.buf = append(w.buf, chunk...)
		if i < 0 {
			break
		}
		w.flush()
		p = p[i+1:]
	}
	return n, nil
}

// flush emits the pending partial line, if any.
func (w *lineWriter) flush() {
	line := bytes.TrimSuffix(w.buf, []byte("\r"))
	if len(line) > 0 || w.truncated {
		w.log.emit(w.stream, w.level, line, w.truncated)
	}
	w.buf = w.buf[:0]
	w.truncated = false
}
