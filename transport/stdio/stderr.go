//go:build unix

package stdio

import (
	"bufio"
	"bytes"
	"context"
	"log/slog"

	"github.com/gwmcp/gw/internal/loglimit"
)

const (
	// stderrLineMax caps one stderr line; the rest of a longer line is dropped.
	stderrLineMax = 64 << 10
	// stderrReadBuf is the stderr reader's buffer; longer lines are gathered up to stderrLineMax.
	stderrReadBuf = 4 << 10
	// stderrQueueLen is how many stderr lines may wait for the logger before lines are dropped.
	stderrQueueLen = 128
	// tailLines is how many stderr lines StderrTail keeps.
	tailLines = 20
	// A child gets stderrLogBurst lines logged at once, then stderrLogRate a
	// second; the rest are counted and reported as dropped. A child may write
	// gigabytes to stderr: it is drained at full speed, and only the lines
	// logged are redacted and copied into the log.
	stderrLogRate  = 100
	stderrLogBurst = 1000
)

// stderrLine is one stderr line on its way to the logger.
type stderrLine struct {
	text      string
	truncated bool // the line was longer than stderrLineMax and was cut
}

// StderrTail returns the last stderr lines (at most 20, oldest first, each at most 64 KiB), for
// error messages such as "server exited: ...; last stderr: ...". After Close it holds everything
// up to the end of stderr. Lines are redacted (Config.Redact).
func (p *Process) StderrTail() []string {
	p.tailMu.Lock()
	tail := make([]string, 0, len(p.tail))
	for i := range len(p.tail) {
		tail = append(tail, string(p.tail[(p.tailNext+i)%len(p.tail)]))
	}
	p.tailMu.Unlock()
	if p.redact != nil {
		for i, line := range tail {
			tail[i] = p.redact(line)
		}
	}
	return tail
}

// readStderr is the stderr reader goroutine. It never waits for the logger, so the child is never
// blocked on a full stderr pipe by a slow Logger.
//
// Its buffer is small (a thousand idle servers hold a thousand of them); a longer line is
// gathered in acc, kept for the next long line, up to stderrLineMax.
func (p *Process) readStderr() {
	defer p.stderrG.Done()
	defer close(p.queue)
	br := bufio.NewReaderSize(p.stderr, stderrReadBuf)
	limit := loglimit.New(stderrLogRate, stderrLogBurst)
	var acc []byte
	for {
		b, err := br.ReadSlice('\n')
		truncated := false
		if err == bufio.ErrBufferFull {
			acc = append(acc[:0], b...)
			for err == bufio.ErrBufferFull {
				b, err = br.ReadSlice('\n')
				acc = append(acc, b[:min(len(b), stderrLineMax+2-len(acc))]...)
			}
			b = acc
		}
		b = bytes.TrimRight(b, "\r\n")
		if len(b) > stderrLineMax {
			b, truncated = b[:stderrLineMax], true
		}
		if len(b) > 0 || truncated {
			p.addTail(b)
			if ok, _ := limit.Allow(); !ok {
				p.dropped.Add(1)
			} else {
				select {
				case p.queue <- stderrLine{text: string(b), truncated: truncated}:
				default:
					p.dropped.Add(1)
				}
			}
		}
		if err != nil {
			return
		}
	}
}

// addTail keeps a copy of line in the tail ring, reusing the buffer of the
// line it replaces: draining a flood of stderr allocates nothing per line.
func (p *Process) addTail(line []byte) {
	p.tailMu.Lock()
	defer p.tailMu.Unlock()
	if len(p.tail) < tailLines {
		p.tail = append(p.tail, bytes.Clone(line))
		return
	}
	p.tail[p.tailNext] = append(p.tail[p.tailNext][:0], line...)
	p.tailNext = (p.tailNext + 1) % tailLines
}

// logStderr is the stderr logger goroutine. It ends when readStderr closes the queue.
func (p *Process) logStderr() {
	defer p.stderrG.Done()
	ctx := context.Background()
	for line := range p.queue {
		p.reportDropped(ctx)
		if p.redact != nil {
			line.text = p.redact(line.text)
		}
		if line.truncated {
			p.log.LogAttrs(ctx, slog.LevelInfo, line.text, slog.Bool("truncated", true))
		} else {
			p.log.LogAttrs(ctx, slog.LevelInfo, line.text)
		}
	}
	p.reportDropped(ctx)
}

// reportDropped logs how many lines were dropped since the last report, if any.
func (p *Process) reportDropped(ctx context.Context) {
	if n := p.dropped.Swap(0); n > 0 {
		p.log.LogAttrs(ctx, slog.LevelWarn, "stderr lines not logged (rate limit or slow logger)", slog.Int64("dropped", n))
	}
}
