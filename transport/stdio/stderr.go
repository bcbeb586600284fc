//go:build unix

package stdio

import (
	"bufio"
	"bytes"
	"context"
	"log/slog"
	"slices"
)

const (
	// stderrLineMax caps one stderr line; the rest of a longer line is dropped.
	stderrLineMax = 64 << 10
	// stderrQueueLen is how many stderr lines may wait for the logger before lines are dropped.
	stderrQueueLen = 128
	// tailLines is how many stderr lines StderrTail keeps.
	tailLines = 20
)

// stderrLine is one stderr line on its way to the logger.
type stderrLine struct {
	text      string
	truncated bool // the line was longer than stderrLineMax and was cut
}

// StderrTail returns the last stderr lines (at most 20, oldest first, each at most 64 KiB), for
// error messages such as "server exited: ...; last stderr: ...". After Close it holds everything
// up to the end of stderr.
func (p *Process) StderrTail() []string {
	p.tailMu.Lock()
	defer p.tailMu.Unlock()
	return slices.Clone(p.tail)
}

// readStderr is the stderr reader goroutine. It never waits for the logger, so the child is never
// blocked on a full stderr pipe by a slow Logger.
func (p *Process) readStderr() {
	defer p.stderrG.Done()
	defer close(p.queue)
	br := bufio.NewReaderSize(p.stderr, stderrLineMax)
	for {
		b, err := br.ReadSlice('\n')
		line := stderrLine{text: string(bytes.TrimRight(b, "\r\n"))}
		if p.redact != nil {
			line.text = p.redact(line.text)
		}
		for err == bufio.ErrBufferFull {
			line.truncated = true
			_, err = br.ReadSlice('\n')
		}
		if line.text != "" || line.truncated {
			p.addTail(line.text)
			select {
			case p.queue <- line:
			default:
				p.dropped.Add(1)
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *Process) addTail(s string) {
	p.tailMu.Lock()
	defer p.tailMu.Unlock()
	if len(p.tail) == tailLines {
		copy(p.tail, p.tail[1:])
		p.tail = p.tail[:tailLines-1]
	}
	p.tail = append(p.tail, s)
}

// logStderr is the stderr logger goroutine. It ends when readStderr closes the queue.
func (p *Process) logStderr() {
	defer p.stderrG.Done()
	ctx := context.Background()
	for line := range p.queue {
		p.reportDropped(ctx)
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
		p.log.LogAttrs(ctx, slog.LevelWarn, "stderr lines dropped", slog.Int64("dropped", n))
	}
}
