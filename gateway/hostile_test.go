package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gwmcp/gw/gateway"
	"github.com/gwmcp/gw/internal/mcptest"
	"github.com/gwmcp/gw/transport/stdio"
)

// countLines counts the log lines that contain every one of subs.
func countLines(log string, subs ...string) int {
	n := 0
	for line := range strings.Lines(log) {
		all := true
		for _, s := range subs {
			all = all && strings.Contains(line, s)
		}
		if all {
			n++
		}
	}
	return n
}

// TestGarbageFloodLogBounded: 500,000 non-JSON lines on a server's stdout
// give a bounded number of log lines (they once gave one WARN each, 90 MB of
// log), the suppressed ones are counted, and the server still answers.
func TestGarbageFloodLogBounded(t *testing.T) {
	var logs mcptest.SyncBuffer
	g := start(t, gateway.Options{
		Logger:  slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Servers: []gateway.ServerSpec{server(t, "noisy", mcptest.Options{})},
	})
	begin := time.Now()
	res := mustCall(t, g, "noisy__garbage_flood", map[string]any{"lines": 500_000})
	if got := text(t, res); got != "garbage sent" {
		t.Fatalf("garbage_flood: %q", got)
	}
	elapsed := time.Since(begin)
	mustCall(t, g, "noisy__echo", map[string]any{"text": "still here"})
	warned := countLines(logs.String(), "ignoring invalid line on stdout")
	// 20 at once, then 5 a second.
	if limit := 20 + 5*int(elapsed.Seconds()+1); warned == 0 || warned > limit {
		t.Fatalf("%d log lines for 500,000 garbage lines in %v; want 1..%d", warned, elapsed, limit)
	}
	if st := status(g, "noisy"); st.State != gateway.StateReady {
		t.Fatalf("server is %s after the flood", st.State)
	}
	_ = g.Close()
	if !strings.Contains(logs.String(), "suppressed=") {
		t.Fatalf("suppressed lines not counted in the log:\n%.2000s", logs.String())
	}
}

// TestInvalidUTF8Replaced: a reply with invalid UTF-8 reaches the caller as
// valid UTF-8, each bad sequence replaced by U+FFFD, and the rest of the
// text kept (docs/RELIABILITY.md: gw's answer to servers that send it).
func TestInvalidUTF8Replaced(t *testing.T) {
	for _, era := range []mcptest.Era{mcptest.EraLegacy, mcptest.EraModern} {
		t.Run(string(era), func(t *testing.T) {
			g := start(t, gateway.Options{Servers: []gateway.ServerSpec{server(t, "s", mcptest.Options{Era: era})}})
			res := mustCall(t, g, "s__bad_utf8", map[string]any{})
			if !utf8.Valid(res) {
				t.Fatalf("result is not valid UTF-8: %q", res)
			}
			if got, want := text(t, res), "a\uFFFD-\uFFFD-\uFFFDz"; got != want {
				t.Fatalf("text %q, want %q", got, want)
			}
		})
	}
}

// TestStderrStaysWithOperators: what a server prints on stderr (here a
// planted token) is in gw's log for operators, but not in the status, the
// status events or call errors, which reach any caller.
func TestStderrStaysWithOperators(t *testing.T) {
	const planted = "sk-live-PLANTED0123456789"
	var logs mcptest.SyncBuffer
	rec := newRecorder()
	spec := server(t, "leaky", mcptest.Options{})
	spec.Args = []string{"-c", `echo "using key ` + planted + `" >&2; exec "$0"`, spec.Command}
	spec.Command = "sh"
	g := start(t, gateway.Options{
		Events:  rec,
		Logger:  slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Servers: []gateway.ServerSpec{spec},
		// Restarts are slow enough for a call to meet the server down.
		InitialBackoff: 300 * time.Millisecond, MaxBackoff: 300 * time.Millisecond,
	})
	_, crashErr := call(context.Background(), g, "leaky__crash", map[string]any{})
	if crashErr == nil {
		t.Fatal("crash answered")
	}
	rec.waitFor(t, "restarting", func(e gateway.Event) bool {
		return e.Status != nil && e.Status.State == gateway.StateRestarting
	})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	_, downErr := call(ctx, g, "leaky__echo", map[string]any{"text": "x"})
	cancel()
	rec.waitFor(t, "ready again", func(e gateway.Event) bool {
		return e.Status != nil && e.Status.State == gateway.StateReady
	})

	var public strings.Builder
	for _, err := range []error{crashErr, downErr} {
		if err != nil {
			public.WriteString(err.Error() + "\n")
		}
	}
	rec.mu.Lock()
	for _, e := range rec.events {
		b, _ := json.Marshal(e)
		public.Write(b)
	}
	rec.mu.Unlock()
	b, _ := json.Marshal(g.Servers())
	public.Write(b)
	if strings.Contains(public.String(), planted) {
		t.Fatalf("the server's stderr reached callers:\n%s", public.String())
	}
	if !strings.Contains(public.String(), "exited") {
		t.Fatalf("the public status does not say the server exited:\n%s", public.String())
	}
	if !strings.Contains(logs.String(), planted) {
		t.Fatal("the stderr line is not in the operators' log either; the test proves nothing")
	}
}

// TestStderrFloodIsolated: a server writing 1 GiB to stderr is drained at
// full speed while it and its neighbour keep answering; gw's log gets a
// bounded number of its lines and gw's heap stays small.
func TestStderrFloodIsolated(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 1 GiB through a pipe")
	}
	// Only each record's head is kept: the test measures gw's heap, not its own.
	var logs headWriter
	g := start(t, gateway.Options{
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
		Servers: []gateway.ServerSpec{
			server(t, "loud", mcptest.Options{}),
			server(t, "calm", mcptest.Options{}),
		},
	})
	var peakHeap atomic.Uint64
	var served atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peakHeap.Load() {
				peakHeap.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	})
	for _, srv := range []string{"loud", "calm"} {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				mustCall(t, g, srv+"__echo", map[string]any{"text": "hi"})
				served.Add(1)
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
	begin := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Lines of 64 KiB, the longest kept whole, and a few of 3 MiB.
	res, err := call(ctx, g, "loud__stderr_flood", map[string]any{"bytes": 1 << 30, "line_bytes": 64 << 10})
	if err == nil {
		_, err = call(ctx, g, "loud__stderr_flood", map[string]any{"bytes": 12 << 20, "line_bytes": 3 << 20})
	}
	elapsed := time.Since(begin)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("stderr_flood: %v", err)
	}
	if !strings.Contains(text(t, res), "wrote 1073741824 bytes") {
		t.Fatalf("stderr_flood: %s", res)
	}
	if served.Load() < 4 {
		t.Fatalf("only %d echo calls answered during %v of flood", served.Load(), elapsed)
	}
	logged := countLines(logs.String(), "eeee")
	if limit := 1000 + 100*int(elapsed.Seconds()+1); logged == 0 || logged > limit {
		t.Fatalf("%d stderr lines logged in %v; want 1..%d", logged, elapsed, limit)
	}
	if !strings.Contains(logs.String(), "stderr lines not logged") {
		t.Fatal("the lines not logged are not counted in the log")
	}
	if !strings.Contains(logs.String(), "truncated=true") {
		t.Fatal("no 3 MiB line was logged as truncated")
	}
	if peak := peakHeap.Load(); peak > 64<<20 {
		t.Fatalf("heap in use peaked at %d MiB while draining stderr", peak>>20)
	}
	t.Logf("1 GiB of stderr in %v; %d lines logged; %d calls served meanwhile; peak heap %d MiB",
		elapsed, logged, served.Load(), peakHeap.Load()>>20)
}

// headWriter keeps the first 100 and last 100 bytes of each write: slog
// handlers write one record per call.
type headWriter struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (w *headWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(p) > 200 {
		w.buf.Write(p[:100])
		w.buf.WriteString("…")
		w.buf.Write(p[len(p)-100:])
	} else {
		w.buf.Write(p)
	}
	return len(p), nil
}

func (w *headWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// TestHandshakeFailuresAtScale: of 45 servers started at once, 15 hang in
// the handshake, 15 exit during it and 15 are good. Start returns by the
// start timeout with one line per failed server, the good ones serve, and
// after Close no process, goroutine or file descriptor is left.
func TestHandshakeFailuresAtScale(t *testing.T) {
	before := snapshot(t)
	var specs []gateway.ServerSpec
	for i := range 15 {
		specs = append(specs,
			server(t, fmt.Sprintf("good%d", i), mcptest.Options{}),
			// Reads the first request and never answers.
			gateway.ServerSpec{Name: fmt.Sprintf("hang%d", i), Command: "sh", Args: []string{"-c", "read line; exec sleep 60"}, Restart: gateway.RestartNever},
			// Exits on the first request, mid-handshake.
			gateway.ServerSpec{Name: fmt.Sprintf("quit%d", i), Command: "sh", Args: []string{"-c", "read line; exit 3"}, Restart: gateway.RestartNever},
		)
	}
	const startTimeout = 3 * time.Second
	g, err := gateway.New(withTestDefaults(gateway.Options{
		Servers: specs, StartTimeout: startTimeout, DiscoverTimeout: 500 * time.Millisecond,
	}))
	if err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err = g.Start(ctx)
	took := time.Since(begin)
	if err == nil {
		t.Fatal("Start succeeded with 30 broken servers")
	}
	if lines := strings.Split(err.Error(), "\n"); len(lines) != 30 {
		t.Fatalf("%d error lines, want one per broken server (30):\n%v", len(lines), err)
	}
	// The good servers' own start is part of it: 45 processes on a loaded
	// machine. The bound is the timeout plus slack, not 15 timeouts in a row.
	if took > startTimeout+10*time.Second {
		t.Fatalf("Start took %v with a %v start timeout", took, startTimeout)
	}
	for i := range 15 {
		mustCall(t, g, fmt.Sprintf("good%d__echo", i), map[string]any{"text": "hi"})
		for _, bad := range []string{"hang", "quit"} {
			if st := status(g, fmt.Sprintf("%s%d", bad, i)); st.State != gateway.StateFailed {
				t.Errorf("%s%d is %s, want failed", bad, i, st.State)
			}
		}
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	before.expectSame(t)
	t.Logf("Start took %v; 30 failures reported", took)
}

// leakSnapshot counts what a test must give back: goroutines, open file
// descriptors, and child processes (zombies included).
type leakSnapshot struct {
	goroutines, fds, children int
}

func snapshot(t *testing.T) leakSnapshot {
	t.Helper()
	// The first child this process starts also starts its stdio reaper (a
	// process and a pipe kept for the process's life): have that happen first.
	reaperOnce.Do(func() {
		p, err := stdio.Start(stdio.Config{Command: "true"})
		if err == nil {
			_ = p.Close()
		}
	})
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	return leakSnapshot{goroutines: runtime.NumGoroutine(), fds: len(fds), children: len(childPids(t))}
}

var reaperOnce sync.Once

// childPids lists the processes whose parent is this one.
func childPids(t *testing.T) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	self := os.Getpid()
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so read after the last ')'.
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) < 2 || f[1] != strconv.Itoa(self) {
			continue
		}
		// The process's one stdio reaper (transport/stdio) lives as long as it does.
		if cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); bytes.HasPrefix(cmd, []byte("gw-stdio-reaper\x00")) {
			continue
		}
		pids = append(pids, pid)
	}
	return pids
}

// expectSame waits up to 10 s for the counts to come back to s (goroutines
// within 5 of it: the runtime and the test framework keep a few of their own).
func (s leakSnapshot) expectSame(t *testing.T) {
	t.Helper()
	var now leakSnapshot
	for deadline := time.Now().Add(10 * time.Second); ; {
		now = snapshot(t)
		if now.goroutines <= s.goroutines+5 && now.fds <= s.fds && now.children <= s.children {
			return
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Errorf("leak: before %+v, after %+v (children now %v)", s, now, childPids(t))
}

// poisonResolver refuses any merge in which a server lists a tool named
// "poison", like a collision policy that traps on some input.
type poisonResolver struct{ gateway.PrefixResolver }

func (p poisonResolver) Resolve(kind gateway.Kind, servers []gateway.ServerItems) (gateway.Resolution, error) {
	for _, s := range servers {
		for _, it := range s.Items {
			if it.Key == "poison" {
				return gateway.Resolution{}, fmt.Errorf("policy refused the merge (poison from %s)", s.Server)
			}
		}
	}
	return p.PrefixResolver.Resolve(kind, servers)
}

// TestRefusedListsAreVisible: when the merge of a server's new lists is
// refused, the catalog keeps the last good ones and the server's status says
// so (ListError, with a status event), so a server is never "ready" with
// lists that silently went nowhere; a later merge that succeeds clears it.
func TestRefusedListsAreVisible(t *testing.T) {
	rec := newRecorder()
	g := start(t, gateway.Options{Events: rec, Resolver: poisonResolver{},
		Servers: []gateway.ServerSpec{server(t, "s", mcptest.Options{})}})
	if st := status(g, "s"); st.ListError != "" {
		t.Fatalf("listError %q at start", st.ListError)
	}
	mustCall(t, g, "s__add_tool", map[string]any{"name": "poison"})
	e := rec.waitFor(t, "a status with listError", func(e gateway.Event) bool {
		return e.Status != nil && e.Status.ListError != ""
	})
	if !strings.Contains(e.Status.ListError, "policy refused the merge") || e.Status.State != gateway.StateReady {
		t.Fatalf("status %+v", e.Status)
	}
	if _, ok := g.Catalog().Tool("s__echo"); !ok {
		t.Fatal("the last good catalog was not kept")
	}
	mustCall(t, g, "s__remove_tool", map[string]any{"name": "poison"})
	rec.waitFor(t, "a status with listError cleared", func(e gateway.Event) bool {
		return e.Status != nil && e.Status.ListError == ""
	})
}

// TestDeadlineNamedInError: a call that runs out of time says whose
// deadline it was: the caller's, or the server's call_timeout.
func TestDeadlineNamedInError(t *testing.T) {
	g := start(t, gateway.Options{CallTimeout: 300 * time.Millisecond,
		Servers: []gateway.ServerSpec{server(t, "s", mcptest.Options{})}})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := call(ctx, g, "s__slow", map[string]any{"ms": 5000})
	if err == nil || !strings.Contains(err.Error(), "caller's deadline") {
		t.Errorf("the caller's deadline first: %v", err)
	}
	_, err = call(context.Background(), g, "s__slow", map[string]any{"ms": 5000})
	if err == nil || !strings.Contains(err.Error(), "within 300ms (call_timeout)") {
		t.Errorf("call_timeout first: %v", err)
	}
}
