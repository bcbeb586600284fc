//go:build linux

package stdio

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"go.uber.org/goleak"
)

// Generous bounds for "promptly" on a loaded machine.
const (
	prompt    = 5 * time.Second
	testGrace = 500 * time.Millisecond
)

// startChild starts the test binary as a child in the given mode and closes it at the end of the
// test.
func startChild(t *testing.T, mode string, edit ...func(*Config)) *Process {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Name:      "test-" + mode,
		Command:   exe,
		Env:       map[string]string{childEnv: mode},
		StopGrace: testGrace,
		Logger:    slog.New(slog.DiscardHandler),
	}
	for _, e := range edit {
		e(&cfg)
	}
	p, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

type readResult struct {
	msg []byte
	err error
}

// readWithin calls ReadMessage and fails the test if it does not return within d. A call left
// blocked is unblocked by Close in the test's cleanup.
func readWithin(t *testing.T, p *Process, d time.Duration) ([]byte, error) {
	t.Helper()
	ch := make(chan readResult, 1)
	go func() {
		msg, err := p.ReadMessage()
		ch <- readResult{msg, err}
	}()
	select {
	case r := <-ch:
		return r.msg, r.err
	case <-time.After(d):
		t.Fatalf("ReadMessage did not return within %v", d)
		return nil, nil
	}
}

// readLine reads one message and fails unless it is want.
func readLine(t *testing.T, p *Process, want string) {
	t.Helper()
	msg, err := readWithin(t, p, prompt)
	if err != nil || string(msg) != want {
		t.Fatalf("ReadMessage = (%q, %v), want %q", msg, err, want)
	}
}

// readEOF fails unless the next ReadMessage returns io.EOF promptly.
func readEOF(t *testing.T, p *Process) {
	t.Helper()
	msg, err := readWithin(t, p, prompt)
	if err != io.EOF {
		t.Fatalf("ReadMessage = (%q, %v), want io.EOF", msg, err)
	}
}

func write(t *testing.T, p *Process, msg string) {
	t.Helper()
	if err := p.WriteMessage(context.Background(), []byte(msg)); err != nil {
		t.Fatalf("WriteMessage(%q): %v", msg, err)
	}
}

// eventually polls cond until it holds or d has passed.
func eventually(d time.Duration, cond func() bool) bool {
	for end := time.Now().Add(d); ; time.Sleep(10 * time.Millisecond) {
		if cond() {
			return true
		}
		if time.Now().After(end) {
			return false
		}
	}
}

// processGone reports whether pid no longer runs: it does not exist or is a zombie (a reparented
// grandchild is reaped by whatever init the test runs under, if at all).
func processGone(pid int) bool {
	if err := syscall.Kill(pid, 0); err == syscall.ESRCH {
		return true
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return errors.Is(err, os.ErrNotExist)
	}
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	return len(fields) > 0 && (fields[0] == "Z" || fields[0] == "X")
}

// assertReaped fails unless pid has been reaped by us: not our child any more, and gone.
func assertReaped(t *testing.T, pid int) {
	t.Helper()
	var ws syscall.WaitStatus
	if _, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil); err != syscall.ECHILD {
		t.Errorf("wait4(%d) = %v, want ECHILD: the child was not reaped", pid, err)
	}
	if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("/proc/%d still exists (err %v)", pid, err)
	}
}

// stdinBuffered returns how many bytes wait in the stdin pipe for the child to read.
func stdinBuffered(t *testing.T, p *Process) int {
	t.Helper()
	rc, err := p.stdin.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var n int32
	var errno syscall.Errno
	if err := rc.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCINQ, uintptr(unsafe.Pointer(&n)))
	}); err != nil || errno != 0 {
		t.Fatalf("FIONREAD: %v %v", err, errno)
	}
	return int(n)
}

// awaitStdinFull waits until a write to the child, which never reads, has filled the stdin pipe:
// that write is then blocked part-way.
func awaitStdinFull(t *testing.T, p *Process) {
	t.Helper()
	if !eventually(prompt, func() bool { return stdinBuffered(t, p) >= 64<<10 }) {
		t.Fatalf("stdin pipe holds %d bytes, never filled", stdinBuffered(t, p))
	}
}

// waitStatus extracts the wait status from an *exec.ExitError.
func waitStatus(t *testing.T, err error) syscall.WaitStatus {
	t.Helper()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("error %v is not an *exec.ExitError", err)
	}
	return ee.Sys().(syscall.WaitStatus)
}

func TestEcho(t *testing.T) {
	p := startChild(t, "echo")
	if p.Pid() <= 0 {
		t.Fatalf("Pid() = %d", p.Pid())
	}
	for _, m := range []string{`{"jsonrpc":"2.0","id":1}`, "second", " spaced "} {
		write(t, p, m)
		readLine(t, p, m)
	}
	if err := p.ExitError(); err != nil {
		t.Fatalf("ExitError before exit = %v, want nil", err)
	}
}

func TestHugeLineIsSkipped(t *testing.T) {
	p := startChild(t, "huge")
	_, err := readWithin(t, p, 30*time.Second)
	var tl *MessageTooLargeError
	if !errors.As(err, &tl) {
		t.Fatalf("ReadMessage = %v, want *MessageTooLargeError", err)
	}
	if tl.Size != hugeLineSize || tl.Limit != DefaultMaxMessageSize || len(tl.Head) != headMax {
		t.Fatalf("got Size %d Limit %d len(Head) %d", tl.Size, tl.Limit, len(tl.Head))
	}
	if strings.Trim(string(tl.Head), "x") != "" {
		t.Fatalf("Head is not the start of the line")
	}
	readLine(t, p, `{"ok":true}`)
}

func TestLongLinesSmallLimit(t *testing.T) {
	p := startChild(t, "long", func(c *Config) { c.MaxMessageSize = 10 })
	tooLarge := func(size int, head string) {
		t.Helper()
		msg, err := readWithin(t, p, prompt)
		var tl *MessageTooLargeError
		if !errors.As(err, &tl) {
			t.Fatalf("ReadMessage = (%q, %v), want *MessageTooLargeError", msg, err)
		}
		if tl.Size != size || tl.Limit != 10 || string(tl.Head) != head {
			t.Fatalf("got %+v, want Size %d Limit 10 Head %q", tl, size, head)
		}
	}
	readLine(t, p, "0123456789")
	tooLarge(11, "0123456789")
	readLine(t, p, "short")
	readLine(t, p, "0123456789")
	tooLarge(100, "yyyyyyyyyy")
	readLine(t, p, "end")
	readEOF(t, p)
	readEOF(t, p)
}

// recorder is a slog.Handler that keeps records and can block in Handle until released.
type recorder struct {
	st    *recorderState
	attrs []slog.Attr
}

type recorderState struct {
	gate chan struct{} // if not nil, Handle waits for it to be closed
	mu   sync.Mutex
	recs []record
}

type record struct {
	level slog.Level
	msg   string
	attrs map[string]slog.Value
}

func newRecorder(blocked bool) *recorder {
	st := &recorderState{}
	if blocked {
		st.gate = make(chan struct{})
	}
	return &recorder{st: st}
}

func (h *recorder) Enabled(context.Context, slog.Level) bool { return true }

func (h *recorder) WithAttrs(as []slog.Attr) slog.Handler {
	return &recorder{st: h.st, attrs: append(slices.Clip(h.attrs), as...)}
}

func (h *recorder) WithGroup(string) slog.Handler { panic("not used") }

func (h *recorder) Handle(_ context.Context, r slog.Record) error {
	if h.st.gate != nil {
		<-h.st.gate
	}
	rec := record{level: r.Level, msg: r.Message, attrs: map[string]slog.Value{}}
	for _, a := range h.attrs {
		rec.attrs[a.Key] = a.Value
	}
	r.Attrs(func(a slog.Attr) bool {
		rec.attrs[a.Key] = a.Value
		return true
	})
	h.st.mu.Lock()
	defer h.st.mu.Unlock()
	h.st.recs = append(h.st.recs, rec)
	return nil
}

func (h *recorder) records() []record {
	h.st.mu.Lock()
	defer h.st.mu.Unlock()
	return slices.Clone(h.st.recs)
}

// TestNoisyStderrBlockedLogger checks that a Logger that blocks never blocks the child: its stderr
// is drained (lines dropped and counted) while stdout keeps working.
func TestNoisyStderrBlockedLogger(t *testing.T) {
	h := newRecorder(true)
	p := startChild(t, "noisy", func(c *Config) { c.Logger = slog.New(h) })
	readLine(t, p, "stderr-done") // the child wrote 8 MB of stderr and was not blocked
	write(t, p, "ping")
	readLine(t, p, "ping")

	close(h.st.gate)
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	var logged, dropped int64
	for _, r := range h.records() {
		if strings.HasPrefix(r.msg, "stderr lines not logged") {
			if r.level != slog.LevelWarn {
				t.Errorf("drop report at level %v", r.level)
			}
			dropped += r.attrs["dropped"].Int64()
			continue
		}
		logged++
	}
	if dropped == 0 {
		t.Fatalf("no dropped lines reported (logged %d): the logger cannot have blocked", logged)
	}
	if logged+dropped != noiseLines {
		t.Fatalf("logged %d + dropped %d lines, want %d in all", logged, dropped, noiseLines)
	}
	if tail := p.StderrTail(); len(tail) != tailLines || tail[len(tail)-1] != "noise end" {
		t.Fatalf("StderrTail ends %q (%d lines)", tail[len(tail)-1:], len(tail))
	}
}

func TestStderrTailAndLogAttrs(t *testing.T) {
	h := newRecorder(false)
	p := startChild(t, "stderr", func(c *Config) { c.Logger = slog.New(h) })
	readLine(t, p, "done")
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	var want []string
	for i := stderrCount - tailLines + 1; i <= stderrCount; i++ {
		want = append(want, fmt.Sprintf("err %d", i))
	}
	if got := p.StderrTail(); !slices.Equal(got, want) {
		t.Fatalf("StderrTail = %q, want %q", got, want)
	}
	recs := h.records()
	if len(recs) != stderrCount {
		t.Fatalf("logged %d records, want %d", len(recs), stderrCount)
	}
	for i, r := range recs {
		if r.msg != fmt.Sprintf("err %d", i+1) || r.level != slog.LevelInfo ||
			r.attrs["server"].String() != "test-stderr" || r.attrs["stream"].String() != "stderr" {
			t.Fatalf("record %d = %+v", i, r)
		}
	}
}

func TestCloseAfterStdinEOF(t *testing.T) {
	p := startChild(t, "echo", func(c *Config) { c.StopGrace = time.Minute })
	write(t, p, "hi")
	readLine(t, p, "hi")
	start := time.Now()
	if err := p.Close(); err != nil {
		t.Fatalf("Close = %v, want nil", err)
	}
	// With a one-minute grace, returning early means no signal was needed; exit 0 confirms it.
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("Close took %v", d)
	}
	if err := p.ExitError(); err != nil {
		t.Fatalf("ExitError = %v, want nil (exit 0 on stdin EOF)", err)
	}
	assertReaped(t, p.Pid())
}

func TestCloseSendsSIGTERM(t *testing.T) {
	p := startChild(t, "sleep")
	start := time.Now()
	if err := p.Close(); err != nil {
		t.Fatalf("Close = %v, want nil: the child died of SIGTERM", err)
	}
	if d := time.Since(start); d < testGrace {
		t.Fatalf("Close took %v, less than StopGrace %v", d, testGrace)
	}
	if ws := waitStatus(t, p.ExitError()); !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
		t.Fatalf("child ended with %v, want SIGTERM", ws)
	}
	assertReaped(t, p.Pid())
}

func TestCloseEscalatesToSIGKILL(t *testing.T) {
	const grace = 500 * time.Millisecond // leaves the child time to report each step
	p := startChild(t, "stubborn", func(c *Config) { c.StopGrace = grace })
	readLine(t, p, "ready") // SIGTERM is trapped from here on

	start := time.Now()
	err := p.Close()
	d := time.Since(start)
	if err == nil {
		t.Fatal("Close = nil, want an error: the child had to be killed")
	}
	if ws := waitStatus(t, err); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("Close error %v: child ended with %v, want SIGKILL", err, ws)
	}
	if !errors.Is(err, p.ExitError()) {
		t.Fatalf("Close error %v does not wrap ExitError %v", err, p.ExitError())
	}
	if d < 2*grace || d > 2*grace+prompt {
		t.Fatalf("Close took %v, want about %v", d, 2*grace)
	}
	tail := p.StderrTail()
	eof, term := slices.Index(tail, "stdin EOF"), slices.Index(tail, "got SIGTERM")
	if eof < 0 || term < 0 || eof > term {
		t.Fatalf("stderr %q: want stdin EOF, then SIGTERM", tail)
	}
	assertReaped(t, p.Pid())
}

func TestCloseUnblocksReadMessage(t *testing.T) {
	p := startChild(t, "stubborn")
	readLine(t, p, "ready")
	ch := make(chan readResult, 1)
	go func() {
		msg, err := p.ReadMessage()
		ch <- readResult{msg, err}
	}()
	_ = p.Close()
	select {
	case r := <-ch:
		if r.err != io.EOF && r.err != ErrClosed {
			t.Fatalf("ReadMessage = (%q, %v), want io.EOF or ErrClosed", r.msg, r.err)
		}
	case <-time.After(prompt):
		t.Fatal("ReadMessage still blocked after Close")
	}
	if msg, err := p.ReadMessage(); err != io.EOF && err != ErrClosed {
		t.Fatalf("ReadMessage after Close = (%q, %v)", msg, err)
	}
	if err := p.WriteMessage(context.Background(), []byte("x")); err != ErrClosed {
		t.Fatalf("WriteMessage after Close = %v, want ErrClosed", err)
	}
}

func TestCloseIdempotentAndConcurrent(t *testing.T) {
	p := startChild(t, "echo")
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() { errs[i] = p.Close() })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Close #%d = %v", i, err)
		}
	}
	if err := p.Close(); err != nil {
		t.Errorf("Close again = %v", err)
	}
	select {
	case <-p.Done():
	default:
		t.Fatal("Done not closed after Close")
	}
	assertReaped(t, p.Pid())
}

// TestCrashDeliversWrittenLines reads only after the child has exited and the waiter has finished
// (pipes switched to non-waiting reads): what the child wrote before dying must still arrive.
func TestCrashDeliversWrittenLines(t *testing.T) {
	p := startChild(t, "crash")
	select {
	case <-p.Done():
	case <-time.After(prompt):
		t.Fatal("child did not exit")
	}
	<-p.waited
	for _, want := range []string{"one", "two", "three"} {
		readLine(t, p, want)
	}
	readEOF(t, p)
	if ws := waitStatus(t, p.ExitError()); ws.ExitStatus() != 3 {
		t.Fatalf("exit status %v, want 3", ws)
	}
	assertReaped(t, p.Pid()) // reaped without Close
	if err := p.WriteMessage(context.Background(), []byte("x")); !errors.Is(err, syscall.EPIPE) {
		t.Fatalf("WriteMessage to an exited child = %v, want EPIPE", err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("Close after the child exited = %v, want nil", err)
	}
}

// TestGrandchildIsKilled: the grandchildren in the server's process group die with it, whether
// the server exits on its own, dies of Close's SIGTERM or has to be killed, even when they hold
// its stdout or ignore SIGTERM. With ContainGroup, so the group kill alone is tested.
func TestGrandchildIsKilled(t *testing.T) {
	t.Run("holds stdout", func(t *testing.T) {
		p := startChild(t, "grandchild", func(c *Config) { c.Contain = ContainGroup })
		msg, err := readWithin(t, p, prompt)
		if err != nil {
			t.Fatal(err)
		}
		gpid, err := strconv.Atoi(string(msg))
		if err != nil {
			t.Fatalf("bad pid line %q", msg)
		}
		t.Cleanup(func() { _ = syscall.Kill(gpid, syscall.SIGKILL) })
		readEOF(t, p) // the grandchild held stdout open
		if !eventually(prompt, func() bool { return processGone(gpid) }) {
			t.Fatalf("grandchild %d still running after the leader exited", gpid)
		}
		if err := p.ExitError(); err != nil {
			t.Fatalf("ExitError = %v, want nil", err)
		}
		if err := p.Close(); err != nil {
			t.Fatalf("Close = %v", err)
		}
		goleak.VerifyNone(t)
	})
	for _, leader := range []string{"exit", "term", "stubborn"} {
		t.Run("ignores SIGTERM, leader "+leader, func(t *testing.T) {
			p, inGroup, setsid := startTree(t, leader, ContainGroup)
			stopTree(t, p, leader)
			if !eventually(prompt, func() bool { return processGone(inGroup) }) {
				t.Fatalf("grandchild %d, which ignores SIGTERM, still running after Close", inGroup)
			}
			if processGone(setsid) {
				t.Fatalf("grandchild %d in its own session is gone without a cgroup: the test proves nothing", setsid)
			}
		})
	}
}

// TestSetsidGrandchildIsKilled: with a cgroup, a grandchild that left the server's session and
// ignores SIGTERM dies with the server too, and the cgroup is removed.
func TestSetsidGrandchildIsKilled(t *testing.T) {
	for _, leader := range []string{"exit", "term", "stubborn"} {
		t.Run("leader "+leader, func(t *testing.T) {
			p, inGroup, setsid := startTree(t, leader, ContainCgroup)
			cg := p.cg.path()
			if cg == "" {
				t.Skipf("no cgroup for the server (%v): nothing reaches a grandchild in another session", host.err)
			}
			stopTree(t, p, leader)
			for _, pid := range []int{inGroup, setsid} {
				if !eventually(prompt, func() bool { return processGone(pid) }) {
					t.Errorf("grandchild %d still running after Close", pid)
				}
			}
			if _, err := os.Stat(cg); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("cgroup %s not removed after Close: %v", cg, err)
			}
			goleak.VerifyNone(t)
		})
	}
}

// startTree starts a "tree <leader>" child and returns it with its two grandchildren, which are
// killed at the end of the test if still there.
func startTree(t *testing.T, leader string, contain Containment) (p *Process, inGroup, setsid int) {
	t.Helper()
	p = startChild(t, "tree "+leader, func(c *Config) { c.Contain = contain })
	msg, err := readWithin(t, p, prompt)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fmt.Sscanf(string(msg), "%d %d", &inGroup, &setsid); err != nil {
		t.Fatalf("bad pid line %q: %v", msg, err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(inGroup, syscall.SIGKILL)
		_ = syscall.Kill(setsid, syscall.SIGKILL)
	})
	return p, inGroup, setsid
}

// stopTree waits for a "tree exit" child to exit, or closes another one, and checks how it ended.
func stopTree(t *testing.T, p *Process, leader string) {
	t.Helper()
	if leader == "exit" {
		select {
		case <-p.Done():
		case <-time.After(prompt):
			t.Fatal("the leader did not exit")
		}
	}
	err := p.Close()
	want := map[string]syscall.Signal{"term": syscall.SIGTERM, "stubborn": syscall.SIGKILL}[leader]
	if want == 0 {
		if err != nil || p.ExitError() != nil {
			t.Fatalf("Close = %v, ExitError = %v; want nil", err, p.ExitError())
		}
	} else if ws := waitStatus(t, p.ExitError()); !ws.Signaled() || ws.Signal() != want {
		t.Fatalf("leader ended with %v, want %v", ws, want)
	}
	assertReaped(t, p.Pid())
}

// TestEscapedGrandchildDoesNotBlock: a grandchild in another session is out of reach of the
// group kill and keeps stdout and stderr open; reads and Close must not wait for it.
func TestEscapedGrandchildDoesNotBlock(t *testing.T) {
	p := startChild(t, "escapee", func(c *Config) { c.Contain = ContainGroup }) // a cgroup would kill it
	msg, err := readWithin(t, p, prompt)
	if err != nil {
		t.Fatal(err)
	}
	gpid, err := strconv.Atoi(string(msg))
	if err != nil {
		t.Fatalf("bad pid line %q", msg)
	}
	t.Cleanup(func() { _ = syscall.Kill(gpid, syscall.SIGKILL) })
	readEOF(t, p)
	if processGone(gpid) {
		t.Fatal("the escaped grandchild is gone: the test proves nothing")
	}
	start := time.Now()
	if err := p.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	if d := time.Since(start); d > prompt {
		t.Fatalf("Close took %v", d)
	}
	goleak.VerifyNone(t) // the pipe goroutines did not wait for the grandchild
}

func TestNoZombieAfterClose(t *testing.T) {
	for _, mode := range []string{"echo", "sleep", "stubborn"} {
		t.Run(mode, func(t *testing.T) {
			p := startChild(t, mode)
			_ = p.Close()
			assertReaped(t, p.Pid())
		})
	}
}

func TestStartErrors(t *testing.T) {
	_, err := Start(Config{Name: "x", Command: "gw-no-such-command"})
	if err == nil || !errors.Is(err, exec.ErrNotFound) ||
		!strings.Contains(err.Error(), `server "x"`) || !strings.Contains(err.Error(), `"gw-no-such-command"`) {
		t.Fatalf("Start = %v, want a not-found error naming the server and command", err)
	}

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for name, cfg := range map[string]Config{
		"no command":     {Name: "y"},
		"bad dir":        {Name: "y", Command: exe, Dir: filepath.Join(t.TempDir(), "missing")},
		"negative limit": {Name: "y", Command: exe, MaxMessageSize: -1},
		"negative grace": {Name: "y", Command: exe, StopGrace: -1},
		"bad env name":   {Name: "y", Command: exe, Env: map[string]string{"A=B": "c"}},
		"bad contain":    {Name: "y", Command: exe, Contain: ContainGroup + 1},
	} {
		if _, err := Start(cfg); err == nil || !strings.Contains(err.Error(), `server "y"`) {
			t.Errorf("%s: Start = %v, want an error naming the server", name, err)
		}
	}
}

func TestEnvAndDir(t *testing.T) {
	t.Setenv("GW_STDIO_VAL", "parent")
	dir := t.TempDir()
	p := startChild(t, "env", func(c *Config) {
		c.Env["GW_STDIO_VAL"] = "child"
		c.Dir = dir
	})
	msg, err := readWithin(t, p, prompt)
	if err != nil {
		t.Fatal(err)
	}
	var got envReport
	if err := json.Unmarshal(msg, &got); err != nil {
		t.Fatalf("%q: %v", msg, err)
	}
	wantWd, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.Val != "child" || got.Count != 1 || got.Wd != wantWd {
		t.Fatalf("child saw %+v, want val child, count 1, wd %s", got, wantWd)
	}
}

func TestConcurrentWritesDoNotInterleave(t *testing.T) {
	p := startChild(t, "echo")
	const writers, each = 50, 20
	type msg struct {
		G   int    `json:"g"`
		I   int    `json:"i"`
		Pad string `json:"pad"`
	}
	pad := func(g, i int) string { // mostly over PIPE_BUF, so the kernel would not keep them whole
		return strings.Repeat(string(rune('a'+g%26)), (g*131+i*977)%20000)
	}

	errs := make(chan error, writers)
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for i := range each {
				b, _ := json.Marshal(msg{g, i, pad(g, i)})
				if err := p.WriteMessage(context.Background(), b); err != nil {
					errs <- err
					return
				}
			}
		})
	}

	seen := map[[2]int]bool{}
	for range writers * each {
		line, err := readWithin(t, p, 30*time.Second)
		if err != nil {
			t.Fatalf("after %d messages: %v", len(seen), err)
		}
		var m msg
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("message %d is not intact (%v): %.80q...", len(seen), err, line)
		}
		k := [2]int{m.G, m.I}
		if m.Pad != pad(m.G, m.I) || seen[k] {
			t.Fatalf("message %v corrupt or repeated", k)
		}
		seen[k] = true
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestWriteRejectsNewline(t *testing.T) {
	p := startChild(t, "echo")
	if err := p.WriteMessage(context.Background(), []byte("a\nb")); err != ErrNewline {
		t.Fatalf("WriteMessage = %v, want ErrNewline", err)
	}
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.WriteMessage(canceled, []byte("canceled")); err != context.Canceled {
		t.Fatalf("WriteMessage with a canceled context = %v, want context.Canceled", err)
	}
	write(t, p, "ok")
	readLine(t, p, "ok") // nothing of the rejected messages reached the child
}

// TestWriteDeadlineDetaches: the child never reads, so a message larger than the pipe is cut off
// by the deadline part-way. The writer returns at its deadline; the rest of the line is still
// owed to the child, so the next writer queues behind it rather than breaking the stream.
func TestWriteDeadlineDetaches(t *testing.T) {
	p := startChild(t, "sleep")
	big := bytes.Repeat([]byte("a"), 4<<20)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	start := time.Now()
	err := p.WriteMessage(ctx, big)
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrDetached) || errors.Is(err, ErrBroken) {
		t.Fatalf("WriteMessage = %v, want DeadlineExceeded and ErrDetached", err)
	}
	if d := time.Since(start); d > prompt {
		t.Fatalf("WriteMessage returned after %v", d)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := p.WriteMessage(ctx, []byte("x")); err != context.DeadlineExceeded {
		t.Fatalf("next WriteMessage = %v, want DeadlineExceeded (queued behind the rest)", err)
	}
}

// TestStalledChildGetsWholeLines: a child that stops reading for a while, then reads again, gets
// every line whole, the interrupted one included, and the writes after it work.
func TestStalledChildGetsWholeLines(t *testing.T) {
	p := startChild(t, "stall")
	readLine(t, p, "stalling")
	big := bytes.Repeat([]byte("b"), 1<<20)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := p.WriteMessage(ctx, big); !errors.Is(err, ErrDetached) {
		t.Fatalf("WriteMessage = %v, want ErrDetached", err)
	}
	wrote := make(chan error, 1)
	go func() { wrote <- p.WriteMessage(context.Background(), []byte("after")) }()
	if msg, err := readWithin(t, p, 5*time.Second); err != nil || !bytes.Equal(msg, big) {
		t.Fatalf("ReadMessage = (%d bytes, %v), want the whole %d-byte line", len(msg), err, len(big))
	}
	readLine(t, p, "after")
	if err := <-wrote; err != nil {
		t.Fatalf("WriteMessage after the stall = %v", err)
	}
}

// TestWriteTimeoutWithoutPartialWrite: writes of at most PIPE_BUF bytes are all or nothing, so a
// timed-out one wrote nothing and the stream stays usable.
func TestWriteTimeoutWithoutPartialWrite(t *testing.T) {
	p := startChild(t, "sleep")
	small := bytes.Repeat([]byte("s"), 1000)
	var err error
	for i := 0; i < 1000 && err == nil; i++ { // the pipe holds 64 KiB
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		err = p.WriteMessage(ctx, small)
		cancel()
	}
	if err != context.DeadlineExceeded {
		t.Fatalf("WriteMessage into a full pipe = %v, want context.DeadlineExceeded", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := p.WriteMessage(ctx, small); err != context.DeadlineExceeded {
		t.Fatalf("WriteMessage after a clean timeout = %v, want context.DeadlineExceeded", err)
	}
}

func TestWriteCancel(t *testing.T) {
	p := startChild(t, "sleep")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.WriteMessage(ctx, bytes.Repeat([]byte("c"), 4<<20)) }()
	awaitStdinFull(t, p)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrDetached) {
			t.Fatalf("WriteMessage = %v, want Canceled and ErrDetached", err)
		}
	case <-time.After(prompt):
		t.Fatal("WriteMessage did not return after cancel")
	}
}

// TestWriteWaitsForLockWithContext: a writer queued behind a blocked one gives up when its context
// ends, and Close interrupts the blocked one.
func TestWriteWaitsForLockWithContext(t *testing.T) {
	p := startChild(t, "sleep")
	first := make(chan error, 1)
	go func() { first <- p.WriteMessage(context.Background(), bytes.Repeat([]byte("f"), 4<<20)) }()
	awaitStdinFull(t, p) // the first writer holds the write lock and is blocked

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := p.WriteMessage(ctx, []byte("second")); err != context.DeadlineExceeded {
		t.Fatalf("queued WriteMessage = %v, want context.DeadlineExceeded", err)
	}
	select {
	case err := <-first:
		t.Fatalf("first writer returned early: %v", err)
	default:
	}

	_ = p.Close()
	select {
	case err := <-first:
		if !errors.Is(err, ErrClosed) || !errors.Is(err, ErrBroken) {
			t.Fatalf("blocked WriteMessage after Close = %v, want ErrClosed and ErrBroken", err)
		}
	case <-time.After(prompt):
		t.Fatal("Close did not unblock the writer")
	}
}

// TestWriteCloseHammer races writers, a reader and Close.
func TestWriteCloseHammer(t *testing.T) {
	p := startChild(t, "echo")
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			if _, err := p.ReadMessage(); err != nil {
				if err != io.EOF && err != ErrClosed {
					t.Errorf("reader: %v", err)
				}
				return
			}
		}
	})
	for g := range 8 {
		wg.Go(func() {
			msg := bytes.Repeat([]byte{'a' + byte(g)}, 100+g*3000)
			for {
				if err := p.WriteMessage(context.Background(), msg); err != nil {
					if !errors.Is(err, ErrClosed) && !errors.Is(err, ErrBroken) {
						t.Errorf("writer %d: %v", g, err)
					}
					return
				}
			}
		})
	}
	time.Sleep(50 * time.Millisecond)
	if err := p.Close(); err != nil {
		t.Errorf("Close = %v", err)
	}
	wg.Wait()
}

// TestNoFDLeak checks that Start and Close release every descriptor, also when Start fails.
func TestNoFDLeak(t *testing.T) {
	countFDs := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	}
	cycle := func() {
		p := startChild(t, "echo")
		_ = p.Close()
		_, _ = Start(Config{Command: "gw-no-such-command"})
	}
	cycle() // warm up the runtime's own descriptors
	before := countFDs()
	for range 5 {
		cycle()
	}
	if after := countFDs(); after != before {
		t.Fatalf("%d descriptors open before, %d after", before, after)
	}
}

// TestKilledGWLeavesNoServer kills a gw (the test binary in mode "gw …", with a "tree stubborn"
// server: it and both its grandchildren ignore SIGTERM) with SIGKILL. The server dies of the
// parent-death signal, the grandchild in its group by the reaper; with a cgroup, the reaper
// kills the grandchild in a session of its own too and removes gw's cgroups. "exit" is a gw
// that exits without closing its server: the same must happen.
func TestKilledGWLeavesNoServer(t *testing.T) {
	for _, contain := range []string{"group", "cgroup", "exit"} {
		t.Run(contain, func(t *testing.T) {
			exe, err := os.Executable()
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(exe)
			cmd.Env = append(os.Environ(), childEnv+"=gw "+contain)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
			lines := make(chan string, 1)
			go func() {
				line, _ := bufio.NewReader(out).ReadString('\n')
				lines <- line
			}()
			var line string
			select {
			case line = <-lines:
			case <-time.After(2 * prompt):
				t.Fatalf("the gw child said nothing; stderr: %s", &stderr)
			}
			var leader, inGroup, setsid int
			var cg string
			if _, err := fmt.Sscanf(line, "%d %d %d %s", &leader, &inGroup, &setsid, &cg); err != nil {
				t.Fatalf("bad line %q: %v; stderr: %s", line, err, &stderr)
			}
			t.Cleanup(func() {
				for _, pid := range []int{leader, inGroup, setsid} {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			})
			if contain == "cgroup" && cg == "-" {
				t.Skip("the gw child found no cgroup to use: nothing reaches the grandchild in its own session")
			}

			if contain != "exit" {
				if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
			}
			if err := cmd.Wait(); (err == nil) != (contain == "exit") {
				t.Fatalf("the gw child ended with %v", err)
			}
			if !eventually(prompt, func() bool { return processGone(leader) }) {
				t.Errorf("server %d still running after gw was killed: no parent-death signal", leader)
			}
			if !eventually(prompt, func() bool { return processGone(inGroup) }) {
				t.Errorf("grandchild %d in the server's group still running after gw was killed", inGroup)
			}
			if cg == "-" {
				return // the grandchild in its own session is out of reach
			}
			if !eventually(prompt, func() bool { return processGone(setsid) }) {
				t.Errorf("grandchild %d in its own session still running after gw was killed", setsid)
			}
			parent := filepath.Dir(cg)
			if !eventually(prompt, func() bool {
				_, err := os.Stat(parent)
				return errors.Is(err, os.ErrNotExist)
			}) {
				t.Errorf("gw's cgroup %s still there after gw was killed", parent)
			}
		})
	}
}

// TestWriteWithRoomCostsNothing: a line that fits in the pipe goes in one
// try, without the deadline and the cancellation hook a blocked write
// needs, so a call's write allocates nothing even with a cancellable,
// deadlined context. (A full pipe takes the other way: TestWriteCancel,
// TestWriteDeadlineDetaches.)
func TestWriteWithRoomCostsNothing(t *testing.T) {
	p := startChild(t, "echo")
	go func() { // drain the echoes
		for {
			if _, err := p.ReadMessage(); err != nil {
				return
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	msg := []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}`)
	if err := p.WriteMessage(ctx, msg); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(200, func() {
		if err := p.WriteMessage(ctx, msg); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per write; want 0", allocs)
	}
}
