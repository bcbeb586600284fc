//go:build unix

package stdio

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// DefaultMaxMessageSize is the default limit on one message read from the child's stdout.
const DefaultMaxMessageSize = 16 << 20

const (
	defaultStopGrace = 2 * time.Second

	// orphanDelay is how long the waiter lets stdout and stderr reach EOF on their own after the
	// leader has exited (and its group was killed) before it stops waiting for writers that
	// escaped the group. See pipeReader.
	orphanDelay = 200 * time.Millisecond

	// writeBufSize is the largest line that WriteMessage copies into its buffer to write at once.
	writeBufSize = 64 << 10
)

// Config describes the child process to run. The zero value of every field but Command is usable.
type Config struct {
	// Name names the server in errors and logs. "" means Command.
	Name string
	// Command is the program to run; a name without a slash is looked up in $PATH.
	Command string
	// Args are the arguments after the program name.
	Args []string
	// Env holds variables added to os.Environ(), replacing any of the same name.
	Env map[string]string
	// Dir is the working directory; "" means the current one.
	Dir string
	// MaxMessageSize is the maximum size in bytes of one line read from stdout, without its
	// terminator. 0 means DefaultMaxMessageSize.
	MaxMessageSize int
	// StopGrace is how long each step of Close waits for the child to exit. 0 means 2s.
	StopGrace time.Duration
	// Logger receives the child's stderr lines, at level Info with the attributes server=Name and
	// stream="stderr". nil means slog.Default().
	Logger *slog.Logger
	// Redact, when not nil, rewrites each stderr line before it is logged or returned by StderrTail:
	// a child that prints its secrets must not have them copied into the host's logs.
	Redact func(string) string
	// Contain says how far stopping the child reaches. The zero value, ContainCgroup, is the
	// strongest this system offers; see "Containment" in the package comment.
	Contain Containment
}

// Containment says which of the child's descendants die with it. Whatever it says, the child
// runs in its own process group, which is killed when the child exits or is stopped, and on
// Linux the child is killed when gw dies (the parent-death signal), and its group then too (by
// the reaper).
type Containment uint8

const (
	// ContainCgroup (the default) also puts the child in a cgroup v2 of its own where gw can
	// create one (Linux; gw's cgroup writable, as for root or with a delegated cgroup), so that
	// descendants that left the process group (setsid, setpgid) die with the child and, through
	// a reaper process, with gw. Where no cgroup can be created it is ContainGroup.
	ContainCgroup Containment = iota
	// ContainGroup reaches only the child's process group.
	ContainGroup
)

// noCgroupOnce makes the first failure to create a cgroup logged, not each.
var noCgroupOnce sync.Once

// Process is a running child process. Its methods are safe for concurrent use, except that only
// one goroutine at a time may call ReadMessage. Close must be called to release it.
type Process struct {
	name  string
	cmd   *exec.Cmd
	pid   int
	grace time.Duration

	stdin    *os.File        // our write end; non-blocking so write deadlines work
	rawStdin syscall.RawConn // stdin's descriptor, for a write tried once without deadlines
	try      *tryWrite
	writeSem chan struct{} // one slot: holding it is the write lock
	wbuf     []byte        // reused write buffer, at most writeBufSize; guarded by writeSem
	broken   atomic.Bool   // a write failed part-way: the stream can no longer be framed
	redact   func(string) string
	finisher sync.WaitGroup // finishWrite, while it holds writeSem

	readMu sync.Mutex // serialises ReadMessage
	stdout *pipeReader
	lines  *lineReader // guarded by readMu

	stderr   *pipeReader
	log      *slog.Logger    // Logger with server and stream attributes
	srvLog   *slog.Logger    // Logger with the server attribute
	queue    chan stderrLine // stderr reader -> stderr logger
	dropped  atomic.Int64    // lines dropped because queue was full, not yet reported
	tailMu   sync.Mutex
	tail     [][]byte // last tailLines stderr lines, a ring from tailNext; guarded by tailMu
	tailNext int      // the oldest line once the ring is full
	stderrG  sync.WaitGroup

	cg      *cgroup  // the child's own cgroup, nil for none
	spawner *spawner // whose thread started the child, released once it is reaped

	sigMu      sync.Mutex
	leaderGone bool // the leader has exited: its group id may no longer be ours; guarded by sigMu

	done    chan struct{} // closed by the waiter after the child was reaped
	exitErr error         // how the child ended; written before done is closed
	waited  chan struct{} // closed when the waiter goroutine ends

	closing   chan struct{} // closed when Close begins
	closeOnce sync.Once
	closeErr  error
}

// Start launches the child in its own process group with stdin and stdout connected to pipes and
// stderr drained into Config.Logger. Errors name the server and wrap the cause, e.g.
//
//	server "x": start "nope": exec: "nope": executable file not found in $PATH
func Start(cfg Config) (*Process, error) {
	name := cfg.Name
	if name == "" {
		name = cfg.Command
	}
	switch {
	case cfg.Command == "":
		return nil, fmt.Errorf("server %q: no command", name)
	case cfg.MaxMessageSize < 0:
		return nil, fmt.Errorf("server %q: negative MaxMessageSize %d", name, cfg.MaxMessageSize)
	case cfg.StopGrace < 0:
		return nil, fmt.Errorf("server %q: negative StopGrace %v", name, cfg.StopGrace)
	case cfg.Contain > ContainGroup:
		return nil, fmt.Errorf("server %q: unknown Containment %d", name, cfg.Contain)
	}
	env, err := mergeEnv(os.Environ(), cfg.Env)
	if err != nil {
		return nil, fmt.Errorf("server %q: %w", name, err)
	}
	limit := cfg.MaxMessageSize
	if limit == 0 {
		limit = DefaultMaxMessageSize
	}
	grace := cfg.StopGrace
	if grace == 0 {
		grace = defaultStopGrace
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}

	// Our own pipes rather than cmd.StdinPipe and friends: cmd.Wait would close the read ends as
	// soon as the child exits, losing what it wrote last, and the stdin write end must be an
	// *os.File for write deadlines.
	var files []*os.File
	closeFiles := func() {
		for _, f := range files {
			_ = f.Close()
		}
	}
	pipe := func() (r, w *os.File) {
		if err != nil {
			return nil, nil
		}
		if r, w, err = os.Pipe(); err == nil {
			files = append(files, r, w)
		}
		return r, w
	}
	inR, inW := pipe()
	outR, outW := pipe()
	errR, errW := pipe()
	var stdout, stderr *pipeReader
	if err == nil {
		stdout, err = newPipeReader(outR)
	}
	if err == nil {
		stderr, err = newPipeReader(errR)
	}
	if err != nil {
		closeFiles()
		return nil, fmt.Errorf("server %q: %w", name, err)
	}

	var cg *cgroup
	if cfg.Contain == ContainCgroup {
		var err error
		if cg, err = newCgroup(name); err != nil {
			noCgroupOnce.Do(func() {
				logger.Info("servers run without a cgroup of their own: a process that leaves its server's process group may outlive the server",
					"error", err)
			})
		}
	}
	newCmd := func(cg *cgroup) *exec.Cmd {
		cmd := exec.Command(cfg.Command, cfg.Args...)
		cmd.Env = env
		cmd.Dir = cfg.Dir
		cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, errW
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		setParentDeath(cmd.SysProcAttr)
		cg.setAttr(cmd.SysProcAttr)
		return cmd
	}

	p := &Process{
		name:     name,
		grace:    grace,
		stdin:    inW,
		writeSem: make(chan struct{}, 1),
		redact:   cfg.Redact,
		stdout:   stdout,
		lines:    newLineReader(stdout, limit, 0),
		stderr:   stderr,
		log:      logger.With(slog.String("server", name), slog.String("stream", "stderr")),
		srvLog:   logger.With(slog.String("server", name)),
		queue:    make(chan stderrLine, stderrQueueLen),
		done:     make(chan struct{}),
		waited:   make(chan struct{}),
		closing:  make(chan struct{}),
	}
	if rc, err := inW.SyscallConn(); err == nil {
		p.rawStdin, p.try = rc, newTryWrite()
	}
	var cmd *exec.Cmd
	if p.spawner, err = spawn(func() (err error) {
		cmd, cg, err = startIn(newCmd, cg)
		return err
	}); err != nil {
		closeFiles()
		return nil, fmt.Errorf("server %q: start %q: %w", name, cfg.Command, err)
	}
	p.cmd, p.pid, p.cg = cmd, cmd.Process.Pid, cg
	registerGroup(p.pid)
	go p.wait()
	// The child has its copies; ours would keep the pipes from reporting EOF.
	_ = inR.Close()
	_ = outW.Close()
	_ = errW.Close()
	p.stderrG.Add(2)
	go p.readStderr()
	go p.logStderr()
	return p, nil
}

// mergeEnv returns environ with the variables of extra set, replacing earlier definitions.
func mergeEnv(environ []string, extra map[string]string) ([]string, error) {
	if len(extra) == 0 {
		return environ, nil
	}
	out := make([]string, 0, len(environ)+len(extra))
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := extra[k]; !ok {
			out = append(out, kv)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(extra)) {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return nil, fmt.Errorf("invalid environment variable name %q", k)
		}
		out = append(out, k+"="+extra[k])
	}
	return out, nil
}

// Pid returns the process id of the child, which is also the id of its process group.
func (p *Process) Pid() int { return p.pid }

// Done returns a channel that is closed when the child has exited and been reaped, whether or not
// Close was called.
func (p *Process) Done() <-chan struct{} { return p.done }

// ExitError returns how the child ended once Done is closed: nil for exit status 0, an
// *exec.ExitError for a non-zero status or a signal, or another error from waiting for it.
// Before Done is closed it returns nil.
func (p *Process) ExitError() error {
	select {
	case <-p.done:
		return p.exitErr
	default:
		return nil
	}
}

// ReadMessage returns the next message from the child's stdout: the next line that is not empty or
// only spaces, tabs and CRs, without its "\n" or "\r\n" terminator. The slice belongs to the caller.
//
// Only one goroutine may call ReadMessage at a time (concurrent calls are serialised).
// It returns io.EOF when stdout is closed, and also once the child has exited and everything it
// wrote has been read, even if a grandchild still holds stdout open. After Close it returns io.EOF
// or ErrClosed; Close unblocks a pending call.
// A line longer than Config.MaxMessageSize is discarded and reported as a *MessageTooLargeError;
// the next call returns the following line.
func (p *Process) ReadMessage() ([]byte, error) {
	p.readMu.Lock()
	defer p.readMu.Unlock()
	msg, err := p.lines.next()
	if err == nil {
		return msg, nil
	}
	var tooLarge *MessageTooLargeError
	switch {
	case err == io.EOF, errors.As(err, &tooLarge):
		return nil, err
	case errors.Is(err, os.ErrClosed):
		return nil, ErrClosed
	}
	return nil, fmt.Errorf("server %q: read: %w", p.name, err)
}

// WriteMessage writes msg and a newline to the child's stdin. It is safe for concurrent use: whole
// messages are written one at a time and never interleave.
//
// msg must not contain '\n' (ErrNewline; nothing is written). Waiting for other writers and the
// write itself stop when ctx is done, returning ctx's error. When ctx ends after part of the line
// went out, the rest is written in the background so the stream stays framed: the error wraps
// ErrDetached and ctx's error, the child still receives the whole message (unless it dies or
// Close comes first), and later writes queue behind the rest. A write that fails part-way for
// any other reason (Close, EPIPE) breaks the stream: it returns an error wrapping ErrBroken and
// the cause, and every later write fails with ErrBroken. After Close has begun, writes fail with
// ErrClosed. If the child has exited, writes fail with an error wrapping syscall.EPIPE.
func (p *Process) WriteMessage(ctx context.Context, msg []byte) error {
	if bytes.IndexByte(msg, '\n') >= 0 {
		return ErrNewline
	}
	if err := p.writable(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case p.writeSem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-p.closing:
		return ErrClosed
	}
	if err := p.writable(); err != nil {
		<-p.writeSem
		return err
	}
	rest, err := p.writeLocked(ctx, msg)
	if rest == nil {
		<-p.writeSem
		return err
	}
	// The write lock passes to finishWrite, which releases it.
	p.finisher.Add(1)
	go p.finishWrite(rest)
	return err
}

// finishWrite writes the rest of a line whose writer gave up part-way, then releases the write
// lock it inherited. It waits for the child without a deadline: a child that never reads again
// is the keepalive's business, and Close ends the wait by closing stdin.
func (p *Process) finishWrite(rest []byte) {
	defer p.finisher.Done()
	defer func() { <-p.writeSem }()
	if _, err := p.stdin.Write(rest); err != nil {
		p.broken.Store(true)
		p.log.Debug("finishing an interrupted write failed; the stream is broken", "error", err)
	}
}

// writable returns ErrClosed or ErrBroken if writes can no longer succeed.
func (p *Process) writable() error {
	select {
	case <-p.closing:
		return ErrClosed
	default:
	}
	if p.broken.Load() {
		return ErrBroken
	}
	return nil
}

// writeLocked writes msg and '\n', honouring ctx. The caller holds writeSem. When ctx ends
// part-way, it returns a copy of what is left of the line for finishWrite.
func (p *Process) writeLocked(ctx context.Context, msg []byte) (rest []byte, err error) {
	if len(msg) < pipeBuf {
		n := p.tryWriteLine(msg)
		if n == len(msg)+1 {
			return nil, nil
		}
		msg = msg[n:] // 0, or, were stdin not a pipe, what is left but the newline
	}
	// The deadline first: a cancellation that fires meanwhile must not be overwritten by it.
	deadline, hasDeadline := ctx.Deadline()
	if hasDeadline {
		_ = p.stdin.SetWriteDeadline(deadline)
	}
	var stop func() bool
	var fired chan struct{}
	if ctx.Done() != nil {
		fired = make(chan struct{})
		stop = context.AfterFunc(ctx, func() {
			_ = p.stdin.SetWriteDeadline(time.Unix(1, 0))
			close(fired)
		})
	}
	n, total, err := p.writeLineLocked(msg)
	if stop != nil && !stop() {
		<-fired // let it finish before the deadline is cleared for the next writer
	}
	if hasDeadline || stop != nil {
		_ = p.stdin.SetWriteDeadline(time.Time{})
	}
	if err == nil {
		return nil, nil
	}

	var cause error
	switch {
	case errors.Is(err, os.ErrClosed):
		cause = ErrClosed
	case errors.Is(err, os.ErrDeadlineExceeded):
		cause = ctx.Err()
		if cause == nil { // the poller's timer can beat the context's
			cause = context.DeadlineExceeded
		}
	default:
		cause = fmt.Errorf("server %q: write: %w", p.name, err)
	}
	if n > 0 && n < total {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			rest = make([]byte, 0, total-n) // a copy: msg is the caller's
			if n < len(msg) {
				rest = append(rest, msg[n:]...)
			}
			return append(rest, '\n'), fmt.Errorf("%w: %w (wrote %d of %d bytes; the rest follows)", ErrDetached, cause, n, total)
		}
		p.broken.Store(true)
		return nil, fmt.Errorf("%w: %w (wrote %d of %d bytes)", ErrBroken, cause, n, total)
	}
	return nil, cause
}

// pipeBuf is the most that one write to a pipe moves all at once or not at all (PIPE_BUF).
const pipeBuf = 4096

// tryWriteLine writes msg and '\n' to stdin in one write if the pipe has room for them now, and
// returns how many bytes went: usually all, or none when the child has not read enough yet (or
// the write failed: the write with deadlines then meets the error again and reports it). It saves
// most writes the deadlines and the cancellation hook, which cost more than the write itself.
// The caller holds writeSem.
func (p *Process) tryWriteLine(msg []byte) int {
	if p.rawStdin == nil {
		return 0
	}
	p.try.buf = append(append(p.wbuf[:0], msg...), '\n')
	p.wbuf = p.try.buf[:0]
	if p.rawStdin.Write(p.try.write) != nil {
		return 0
	}
	return p.try.n
}

// tryWrite is tryWriteLine's one write, made once per Process so that a write allocates nothing
// (a closure handed to RawConn.Write would escape). Guarded by writeSem.
type tryWrite struct {
	buf   []byte
	n     int
	write func(fd uintptr) bool
}

func newTryWrite() *tryWrite {
	t := &tryWrite{}
	t.write = func(fd uintptr) bool {
		n, err := syscall.Write(int(fd), t.buf)
		if err != nil {
			n = 0
		}
		t.n = n
		return true // one try: never wait for room here
	}
	return t
}

// writeLineLocked writes msg and '\n' to stdin and returns how many of the total bytes were
// written. A short message is copied so that it goes out in one write (atomic up to PIPE_BUF);
// a long one is written as is, then the newline, rather than copied. The caller holds writeSem.
func (p *Process) writeLineLocked(msg []byte) (n, total int, err error) {
	total = len(msg) + 1
	if total <= writeBufSize {
		buf := append(append(p.wbuf[:0], msg...), '\n')
		p.wbuf = buf[:0]
		n, err = p.stdin.Write(buf)
		return n, total, err
	}
	if n, err = p.stdin.Write(msg); err != nil {
		return n, total, err
	}
	nl, err := p.stdin.Write(newline)
	return n + nl, total, err
}

var newline = []byte{'\n'}

// Close stops the child and releases the Process: it closes stdin and waits up to StopGrace for the
// child to exit, then sends SIGTERM to its process group and waits up to StopGrace again, then sends
// SIGKILL to the group. It reaps the child, unblocks ReadMessage and waits for the stderr goroutines
// to finish logging (at most 128 queued lines; a Logger that never returns blocks Close).
//
// Close returns nil if the child exited after stdin was closed or after SIGTERM (whatever its exit
// status; see ExitError), or had exited before Close; otherwise an error that wraps how it ended.
// It is idempotent and safe to call concurrently; every call returns the same result.
func (p *Process) Close() error {
	p.closeOnce.Do(func() { p.closeErr = p.shutdown() })
	return p.closeErr
}

// shutdown runs the shutdown steps documented in the package comment.
func (p *Process) shutdown() error {
	close(p.closing)
	_ = p.stdin.Close()
	p.finisher.Wait()
	var err error
	if !p.awaitExit(p.grace) {
		p.signalGroup(syscall.SIGTERM)
		if !p.awaitExit(p.grace) {
			p.signalGroup(syscall.SIGKILL)
			p.cg.kill()
			<-p.done
			if p.exitErr != nil {
				err = fmt.Errorf("server %q: still running %v after stdin was closed and %v after SIGTERM, killed: %w",
					p.name, p.grace, p.grace, p.exitErr)
			}
		}
	}
	<-p.waited
	p.stderrG.Wait()
	_ = p.stdout.f.Close()
	_ = p.stderr.f.Close()
	return err
}

// awaitExit waits up to d for the child to be reaped and reports whether it was.
func (p *Process) awaitExit(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-p.done:
		return true
	case <-t.C:
		return false
	}
}

// signalGroup sends sig to the child's process group, unless the leader has exited: then the
// waiter has already killed the group, and once the leader is reaped its id may belong to
// another process.
func (p *Process) signalGroup(sig syscall.Signal) {
	p.sigMu.Lock()
	defer p.sigMu.Unlock()
	if !p.leaderGone {
		_ = syscall.Kill(-p.pid, sig)
	}
}

// leaderExited kills what is left of the process group and the cgroup, and takes the group off
// the reaper's list, once. On Linux it runs while the leader is an unreaped zombie, so the group
// id cannot have been reused.
func (p *Process) leaderExited() {
	p.sigMu.Lock()
	first := !p.leaderGone
	if first {
		p.leaderGone = true
		_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	}
	p.sigMu.Unlock()
	if first {
		p.cg.kill() // the cgroup is ours until the waiter removes it: no lock needed
		forgetGroup(p.pid)
	}
}

// startIn starts newCmd's command in cg. When the kernel refuses to start it straight into the
// cgroup (clone3 blocked by a seccomp profile, say), it starts it outside and moves it in, and
// without the cgroup if that fails too. It returns the cgroup the child runs in.
func startIn(newCmd func(*cgroup) *exec.Cmd, cg *cgroup) (*exec.Cmd, *cgroup, error) {
	cmd := newCmd(cg)
	err := cmd.Start()
	if err != nil && cg != nil && cmd.Err == nil {
		cmd = newCmd(nil)
		if err = cmd.Start(); err == nil && cg.adopt(cmd.Process.Pid) != nil {
			_ = cg.remove()
			cg = nil
		}
	}
	cg.started()
	if err != nil {
		_ = cg.remove()
		return nil, nil, err
	}
	return cmd, cg, nil
}

// wait is the waiter goroutine; see the package comment.
func (p *Process) wait() {
	defer close(p.waited)
	if waitExitedNoReap(p.pid) {
		p.leaderExited()
	}
	err := p.cmd.Wait()
	p.spawner.release()
	p.leaderExited()
	p.exitErr = err
	close(p.done)

	// Normally both pipes reach EOF as soon as the group is gone. A writer that escaped the group
	// keeps them open: stop waiting for it.
	t := time.NewTimer(orphanDelay)
	defer t.Stop()
	timedOut := false
	for _, r := range []*pipeReader{p.stdout, p.stderr} {
		if timedOut {
			break
		}
		select {
		case <-r.eof:
		case <-t.C:
			timedOut = true
		}
	}
	p.stdout.orphan()
	p.stderr.orphan()
	if err := p.cg.remove(); err != nil {
		p.srvLog.Warn("could not remove the server's cgroup", "error", err)
	}
}
