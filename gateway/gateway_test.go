package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gwmcp/gw/gateway"
	"github.com/gwmcp/gw/internal/mcptest"
	"github.com/gwmcp/gw/transport/jsonrpc"
	"github.com/gwmcp/gw/transport/stdio"
)

// TestMain lets the test binary serve as an MCP server (mcptest) when
// re-executed as a child, and checks that no test leaks a goroutine.
func TestMain(m *testing.M) {
	mcptest.MainIfChild()
	goleak.VerifyTestMain(m)
}

// server returns a spec that runs this test binary as an mcptest server.
func server(t testing.TB, name string, o mcptest.Options) gateway.ServerSpec {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if o.Name == "" {
		o.Name = name
	}
	env := map[string]string{}
	for _, kv := range o.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	return gateway.ServerSpec{Name: name, Command: exe, Env: env}
}

// recorder is an EventSink that keeps every event.
type recorder struct {
	mu     sync.Mutex
	events []gateway.Event
	next   int // waitFor looks at events from here on
	wake   chan struct{}
}

func newRecorder() *recorder { return &recorder{wake: make(chan struct{}, 1)} }

// catalogWith matches a catalog change whose catalog has the tool name.
func catalogWith(name string) func(gateway.Event) bool {
	return func(e gateway.Event) bool {
		if e.Kind != gateway.EventCatalogChanged {
			return false
		}
		_, ok := e.Catalog.Tool(name)
		return ok
	}
}

// catalogWithout matches a catalog change whose catalog lacks the tool name.
func catalogWithout(name string) func(gateway.Event) bool {
	return func(e gateway.Event) bool { return e.Kind == gateway.EventCatalogChanged && !catalogWith(name)(e) }
}

func (r *recorder) HandleEvent(e gateway.Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// waitFor waits for an event that ok accepts, after the one the previous
// waitFor returned.
func (r *recorder) waitFor(t testing.TB, what string, ok func(gateway.Event) bool) gateway.Event {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		r.mu.Lock()
		for ; r.next < len(r.events); r.next++ {
			if e := r.events[r.next]; ok(e) {
				r.next++
				r.mu.Unlock()
				return e
			}
		}
		r.mu.Unlock()
		select {
		case <-r.wake:
		case <-deadline:
			t.Fatalf("no %s event within 20s", what)
		}
	}
}

func (r *recorder) count(ok func(gateway.Event) bool) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.events {
		if ok(e) {
			n++
		}
	}
	return n
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
}

// start creates and starts a gateway that the test closes.
func start(t testing.TB, opts gateway.Options) *gateway.Gateway {
	t.Helper()
	g, startErr := startErr(t, opts)
	if startErr != nil {
		t.Fatalf("Start: %v", startErr)
	}
	return g
}

func startErr(t testing.TB, opts gateway.Options) (*gateway.Gateway, error) {
	t.Helper()
	g, err := gateway.New(withTestDefaults(opts))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close() })
	timeout := 30 * time.Second
	if opts.StartTimeout > timeout { // a test that starts something large gives more
		timeout = opts.StartTimeout + 10*time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return g, g.Start(ctx)
}

// withTestDefaults fills in what tests want unless they set it: quiet logs,
// short stops and backoffs, generous call timeouts.
func withTestDefaults(opts gateway.Options) gateway.Options {
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	if opts.StopGrace == 0 {
		opts.StopGrace = 500 * time.Millisecond
	}
	if opts.InitialBackoff == 0 {
		opts.InitialBackoff = 20 * time.Millisecond
	}
	if opts.MaxBackoff == 0 {
		opts.MaxBackoff = 200 * time.Millisecond
	}
	if opts.CallTimeout == 0 {
		opts.CallTimeout = 20 * time.Second
	}
	return opts
}

func params(name string, args any) json.RawMessage {
	b, _ := json.Marshal(map[string]any{"name": name, "arguments": args})
	return b
}

func call(ctx context.Context, g *gateway.Gateway, name string, args any) (json.RawMessage, error) {
	return g.CallTool(ctx, params(name, args), gateway.CallOptions{})
}

// text returns the first text content of a CallToolResult.
func text(t testing.TB, res json.RawMessage) string {
	t.Helper()
	var r struct {
		Content []struct {
			Type, Text string
		} `json:"content"`
	}
	if err := json.Unmarshal(res, &r); err != nil || len(r.Content) == 0 {
		t.Fatalf("not a CallToolResult with content: %s", res)
	}
	return r.Content[0].Text
}

func mustCall(t testing.TB, g *gateway.Gateway, name string, args any) json.RawMessage {
	t.Helper()
	res, err := call(context.Background(), g, name, args)
	if err != nil {
		t.Fatalf("call %s: %v", name, err)
	}
	return res
}

func stats(t testing.TB, g *gateway.Gateway, srv string) mcptest.Stats {
	t.Helper()
	var st mcptest.Stats
	if err := json.Unmarshal([]byte(text(t, mustCall(t, g, srv+"__stats", map[string]any{}))), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func status(g *gateway.Gateway, name string) gateway.ServerStatus {
	for _, s := range g.Servers() {
		if s.Name == name {
			return s
		}
	}
	return gateway.ServerStatus{}
}

func TestBothErasSideBySide(t *testing.T) {
	g := start(t, gateway.Options{Servers: []gateway.ServerSpec{
		server(t, "old", mcptest.Options{Era: mcptest.EraLegacy, Tools: []string{"search"}}),
		server(t, "new", mcptest.Options{Era: mcptest.EraModern, Tools: []string{"search"}}),
		server(t, "both", mcptest.Options{Era: mcptest.EraDual}),
	}})
	for name, era := range map[string]string{"old": "legacy", "new": "modern", "both": "modern"} {
		if st := status(g, name); st.Era != era || st.State != gateway.StateReady {
			t.Errorf("%s: era %q state %q; want %q ready", name, st.Era, st.State, era)
		}
	}
	for _, name := range []string{"old__search", "new__search"} {
		if got := text(t, mustCall(t, g, name, map[string]any{"text": "hi " + name})); got != "hi "+name {
			t.Errorf("%s answered %q", name, got)
		}
	}
	old := stats(t, g, "old")
	if old.Initialize != 1 || old.Initialized != 1 || old.Discover != 1 {
		t.Errorf("legacy server saw initialize=%d initialized=%d discover=%d; want 1 1 1", old.Initialize, old.Initialized, old.Discover)
	}
	modern := stats(t, g, "new")
	if modern.Initialize != 0 || len(modern.WithoutMeta) != 0 {
		t.Errorf("modern server saw initialize=%d and requests without _meta: %v", modern.Initialize, modern.WithoutMeta)
	}
	if m := modern.LastMeta; m == nil || m.ProtocolVersion != gateway.ModernVersion {
		t.Errorf("modern server's last _meta = %+v", m)
	}
}

// recordingConn keeps every line the server wrote.
type recordingConn struct {
	*stdio.Process
	mu    sync.Mutex
	lines [][]byte
}

func (c *recordingConn) ReadMessage() ([]byte, error) {
	line, err := c.Process.ReadMessage()
	if err == nil {
		c.mu.Lock()
		c.lines = append(c.lines, line)
		c.mu.Unlock()
	}
	return line, err
}

func TestResultIsByteForByte(t *testing.T) {
	for _, era := range []mcptest.Era{mcptest.EraLegacy, mcptest.EraModern} {
		t.Run(string(era), func(t *testing.T) {
			var conn *recordingConn
			g := start(t, gateway.Options{
				Servers: []gateway.ServerSpec{server(t, "s", mcptest.Options{Era: era})},
				Dial: func(ctx context.Context, spec gateway.ServerSpec) (gateway.Conn, error) {
					p, err := stdio.Start(stdio.Config{Name: spec.Name, Command: spec.Command, Env: spec.Env, StopGrace: 500 * time.Millisecond})
					if err != nil {
						return nil, err
					}
					conn = &recordingConn{Process: p}
					return conn, nil
				},
			})
			res := mustCall(t, g, "s__echo", map[string]any{"text": "é \u2028 <b>&"})
			conn.mu.Lock()
			defer conn.mu.Unlock()
			for _, line := range conn.lines {
				if m, err := jsonrpc.Decode(line); err == nil && string(m.Result) == string(res) {
					return
				}
			}
			t.Fatalf("result %s is not byte-for-byte any line the server wrote", res)
		})
	}
}

func TestPaginationFollowsCursors(t *testing.T) {
	extra := []string{"t1", "t2", "t3", "t4", "t5"}
	g := start(t, gateway.Options{Servers: []gateway.ServerSpec{
		server(t, "old", mcptest.Options{Era: mcptest.EraLegacy, Tools: extra, PageSize: 2}),
		server(t, "new", mcptest.Options{Era: mcptest.EraModern, Tools: extra, PageSize: 2}),
		server(t, "ref", mcptest.Options{Era: mcptest.EraLegacy, Tools: extra}),
	}})
	count := map[string]int{}
	for _, e := range g.Catalog().Tools {
		count[e.Server]++
	}
	if count["old"] != count["ref"] || count["new"] != count["ref"] || count["ref"] < len(extra)+5 {
		t.Fatalf("tools per server %v; paginated servers must list as many as the unpaginated one", count)
	}
	if n := stats(t, g, "new").ListCalls["tools/list"]; n != (count["ref"]+1)/2 {
		t.Errorf("modern server got %d tools/list pages; want %d (the first cursor is \"\", not the end)", n, (count["ref"]+1)/2)
	}
	if len(g.Catalog().Prompts) != 6 || len(g.Catalog().Resources) != 2 || len(g.Catalog().Templates) != 3 {
		t.Errorf("prompts %d resources %d templates %d; want 6 2 3 (a uri belongs to the first server)", len(g.Catalog().Prompts), len(g.Catalog().Resources), len(g.Catalog().Templates))
	}
}

func TestEraDetection(t *testing.T) {
	tests := []struct {
		name string
		o    mcptest.Options
		era  string
	}{
		{"discover-silent", mcptest.Options{Era: mcptest.EraLegacy, Discover: mcptest.DiscoverSilent}, "legacy"},
		{"preinit-32600", mcptest.Options{Era: mcptest.EraLegacy, PreinitError: -32600}, "legacy"},
		{"garbage-then-error", mcptest.Options{Era: mcptest.EraLegacy, Discover: mcptest.DiscoverGarbageThenError}, "legacy"},
		{"garbage-on-start", mcptest.Options{Era: mcptest.EraModern, GarbageOnStart: true}, "modern"},
	}
	var specs []gateway.ServerSpec
	for _, tt := range tests {
		specs = append(specs, server(t, tt.name, tt.o))
	}
	g := start(t, gateway.Options{Servers: specs, DiscoverTimeout: 500 * time.Millisecond})
	for _, tt := range tests {
		if st := status(g, tt.name); st.Era != tt.era {
			t.Errorf("%s: era %q; want %q", tt.name, st.Era, tt.era)
		}
		if got := text(t, mustCall(t, g, tt.name+"__echo", map[string]any{"text": "x"})); got != "x" {
			t.Errorf("%s: echo %q", tt.name, got)
		}
	}
}

// TestSlowModernServerWinsRace starts modern servers that begin reading only
// after the discover timeout, so the probe and initialize reach them
// together and both get answers: a modern-only server refuses initialize
// (often before it answers the probe), a dual-era one answers both. The
// probe's answer must win every time.
func TestSlowModernServerWinsRace(t *testing.T) {
	const rounds = 25 // two servers each: 50 handshakes
	for i := range rounds {
		g, err := startErr(t, gateway.Options{
			DiscoverTimeout: 150 * time.Millisecond,
			Servers: []gateway.ServerSpec{
				withRestart(server(t, "modern", mcptest.Options{Era: mcptest.EraModern, StartDelay: 250 * time.Millisecond, EOFGrace: -time.Millisecond}), gateway.RestartNever),
				withRestart(server(t, "dual", mcptest.Options{Era: mcptest.EraDual, StartDelay: 250 * time.Millisecond, EOFGrace: -time.Millisecond}), gateway.RestartNever),
			},
		})
		if err != nil {
			t.Fatalf("round %d: Start: %v", i, err)
		}
		for _, name := range []string{"modern", "dual"} {
			if st := status(g, name); st.Era != "modern" {
				t.Errorf("round %d: %s opened as %q; want modern", i, name, st.Era)
			}
		}
		if err := g.Close(); err != nil {
			t.Fatalf("round %d: Close: %v", i, err)
		}
	}
}

func TestUnsupportedVersion(t *testing.T) {
	_, err := startErr(t, gateway.Options{Servers: []gateway.ServerSpec{
		withRestart(server(t, "future", mcptest.Options{Era: mcptest.EraModern, SupportedVersions: []string{"2099-01-01"}}), gateway.RestartNever),
	}})
	if err == nil || !strings.Contains(err.Error(), `server "future"`) || !strings.Contains(err.Error(), "2099-01-01") {
		t.Fatalf("Start error = %v; want one naming the server and its versions", err)
	}
}

func withRestart(s gateway.ServerSpec, p gateway.RestartPolicy) gateway.ServerSpec {
	s.Restart = p
	return s
}

func TestConcurrentCallsOutOfOrder(t *testing.T) {
	g := start(t, gateway.Options{Servers: []gateway.ServerSpec{server(t, "s", mcptest.Options{Era: mcptest.EraModern})}})
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%2 == 0 {
				// slow replies arrive after the fast ones sent later
				if _, err := call(context.Background(), g, "s__slow", map[string]any{"ms": 100 - i}); err != nil {
					errs <- err
				}
				return
			}
			want := fmt.Sprintf("call %d", i)
			res, err := call(context.Background(), g, "s__echo", map[string]any{"text": want})
			if err != nil {
				errs <- err
			} else if got := text(t, res); got != want {
				errs <- fmt.Errorf("got %q want %q", got, want)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestTimeoutAndCancelSendCancelled(t *testing.T) {
	for _, era := range []mcptest.Era{mcptest.EraLegacy, mcptest.EraModern} {
		t.Run(string(era), func(t *testing.T) {
			spec := server(t, "s", mcptest.Options{Era: era})
			spec.CallTimeout = 300 * time.Millisecond
			g := start(t, gateway.Options{Servers: []gateway.ServerSpec{spec}})

			startAt := time.Now()
			_, err := call(context.Background(), g, "s__never", map[string]any{})
			if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), `server "s"`) {
				t.Fatalf("never: %v; want a deadline error naming the server", err)
			}
			if time.Since(startAt) > 5*time.Second {
				t.Errorf("timeout took %v", time.Since(startAt))
			}
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(50*time.Millisecond, cancel)
			if _, err := call(ctx, g, "s__never", map[string]any{}); !errors.Is(err, context.Canceled) {
				t.Fatalf("cancelled call: %v", err)
			}
			var st mcptest.Stats
			deadline := time.Now().Add(5 * time.Second)
			for time.Now().Before(deadline) {
				if st = stats(t, g, "s"); len(st.Cancelled) >= 2 {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			if len(st.Cancelled) != 2 {
				t.Fatalf("server saw %d notifications/cancelled; want 2", len(st.Cancelled))
			}
		})
	}
}

func TestCrashMidCallFailsAndRestarts(t *testing.T) {
	rec := newRecorder()
	g := start(t, gateway.Options{Events: rec, Servers: []gateway.ServerSpec{server(t, "s", mcptest.Options{})}})
	pid := status(g, "s").Pid
	startAt := time.Now()
	_, err := call(context.Background(), g, "s__crash", map[string]any{})
	if !errors.Is(err, gateway.ErrSessionClosed) || !strings.Contains(err.Error(), `server "s"`) {
		t.Fatalf("crash: %v; want ErrSessionClosed naming the server", err)
	}
	if d := time.Since(startAt); d > 5*time.Second {
		t.Errorf("the pending call failed after %v; want at once", d)
	}
	rec.waitFor(t, "restarting", func(e gateway.Event) bool {
		return e.Kind == gateway.EventServerStatus && e.Status.State == gateway.StateRestarting &&
			strings.Contains(e.Status.LastError, "exit status 3")
	})
	if got := text(t, mustCall(t, g, "s__echo", map[string]any{"text": "back"})); got != "back" {
		t.Fatalf("after restart: %q", got)
	}
	st := status(g, "s")
	if st.Restarts != 1 || st.Pid == pid || st.State != gateway.StateReady {
		t.Errorf("status after restart: %+v", st)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("crashed child %d still exists (zombie?): %v", pid, err)
	}
}

func TestKill9DuringConcurrentCalls(t *testing.T) {
	g := start(t, gateway.Options{Servers: []gateway.ServerSpec{server(t, "s", mcptest.Options{Era: mcptest.EraModern})}})
	pid := status(g, "s").Pid
	var wg sync.WaitGroup
	var mu sync.Mutex
	results := map[string]int{}
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := call(context.Background(), g, "s__slow", map[string]any{"ms": 300 + i})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				results["ok"]++
			case errors.Is(err, gateway.ErrSessionClosed), errors.Is(err, gateway.ErrServerDown):
				results["server gone"]++
			default:
				results[err.Error()]++
			}
		}()
	}
	time.Sleep(100 * time.Millisecond)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("calls still pending 15s after kill -9")
	}
	if results["ok"]+results["server gone"] != 100 {
		t.Errorf("outcomes %v; want every call to succeed or fail with a clear error", results)
	}
	if results["server gone"] == 0 {
		t.Errorf("outcomes %v; the kill should have failed some calls", results)
	}
	for i := range 10 {
		want := fmt.Sprint(i)
		if got := text(t, mustCall(t, g, "s__echo", map[string]any{"text": want})); got != want {
			t.Fatalf("after restart: %q", got)
		}
	}
}

func TestHugeReplies(t *testing.T) {
	g := start(t, gateway.Options{Servers: []gateway.ServerSpec{server(t, "s", mcptest.Options{})}})
	const n = 12 << 20
	if got := len(text(t, mustCall(t, g, "s__huge", map[string]any{"bytes": n}))); got != n {
		t.Fatalf("huge reply text is %d bytes; want %d", got, n)
	}

	small := start(t, gateway.Options{MaxMessageSize: 1 << 20, Servers: []gateway.ServerSpec{server(t, "s", mcptest.Options{Era: mcptest.EraModern})}})
	startAt := time.Now()
	_, err := call(context.Background(), small, "s__huge", map[string]any{"bytes": 2 << 20})
	if err == nil || !strings.Contains(err.Error(), "too large") || !strings.Contains(err.Error(), `server "s"`) {
		t.Fatalf("oversized reply: %v; want a clear 'too large' error", err)
	}
	if d := time.Since(startAt); d > 5*time.Second {
		t.Errorf("oversized reply failed after %v; want at once, not a timeout", d)
	}
	if got := text(t, mustCall(t, small, "s__echo", map[string]any{"text": "still here"})); got != "still here" {
		t.Fatalf("after oversized reply: %q", got)
	}
}

func TestGarbageAndUnknownIDsAreSkipped(t *testing.T) {
	g := start(t, gateway.Options{Servers: []gateway.ServerSpec{server(t, "s", mcptest.Options{GarbageOnStart: true})}})
	res := mustCall(t, g, "s__garbage", map[string]any{})
	if text(t, res) == "" {
		t.Fatalf("garbage tool: %s", res)
	}
}

func TestBadServersNamedOthersServe(t *testing.T) {
	_, err := startErr(t, gateway.Options{
		StartTimeout:    2 * time.Second,
		DiscoverTimeout: 300 * time.Millisecond,
		Servers: []gateway.ServerSpec{
			server(t, "good", mcptest.Options{}),
			{Name: "missing", Command: "/nonexistent/gw-test-no-such-command", Restart: gateway.RestartNever},
			{Name: "chatty", Command: "sh", Args: []string{"-c", "echo hello from a shell; exec sleep 30"}, Restart: gateway.RestartNever},
			{Name: "quitter", Command: "sh", Args: []string{"-c", "echo 'fatal: no token' >&2; exit 7"}, Restart: gateway.RestartNever},
		},
	})
	if err == nil {
		t.Fatal("Start succeeded with three broken servers")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != 3 {
		t.Fatalf("want one line per broken server, got:\n%v", err)
	}
	for _, want := range []struct{ server, cause string }{
		{"missing", "no such file"},
		{"chatty", "hello from a shell"},
		{"quitter", "fatal: no token"},
	} {
		if !slices.ContainsFunc(lines, func(l string) bool {
			return strings.Contains(l, `server "`+want.server+`"`) && strings.Contains(l, want.cause)
		}) {
			t.Errorf("no error line names %q with %q:\n%v", want.server, want.cause, err)
		}
	}
}

func TestNotMCPStillServesOthers(t *testing.T) {
	g, err := startErr(t, gateway.Options{
		StartTimeout:    2 * time.Second,
		DiscoverTimeout: 300 * time.Millisecond,
		Servers: []gateway.ServerSpec{
			server(t, "good", mcptest.Options{}),
			{Name: "chatty", Command: "sh", Args: []string{"-c", "echo not json; exec sleep 30"}, Restart: gateway.RestartNever},
		},
	})
	if !errors.Is(err, gateway.ErrNotMCP) {
		t.Fatalf("Start: %v; want ErrNotMCP", err)
	}
	if got := text(t, mustCall(t, g, "good__echo", map[string]any{"text": "ok"})); got != "ok" {
		t.Fatalf("good server: %q", got)
	}
	if st := status(g, "chatty"); st.State != gateway.StateFailed {
		t.Errorf("chatty state %q; want failed", st.State)
	}
}

func TestCrashLoopGoesDegraded(t *testing.T) {
	rec := newRecorder()
	spec := withRestart(server(t, "loop", mcptest.Options{CrashOnStart: true}), gateway.RestartAlways)
	g, err := startErr(t, gateway.Options{Events: rec, Servers: []gateway.ServerSpec{spec, server(t, "fine", mcptest.Options{})}})
	if err == nil || !strings.Contains(err.Error(), `server "loop"`) {
		t.Fatalf("Start: %v", err)
	}
	e := rec.waitFor(t, "degraded", func(e gateway.Event) bool {
		return e.Kind == gateway.EventServerStatus && e.Server == "loop" && e.Status.State == gateway.StateDegraded
	})
	if e.Status.Failures < 3 || !strings.Contains(e.Status.LastError, "exit status 2") {
		t.Errorf("degraded status %+v", e.Status)
	}
	// A degraded server fails calls at once; the others serve.
	if _, err := call(context.Background(), g, "fine__echo", map[string]any{"text": "x"}); err != nil {
		t.Fatal(err)
	}
	if n := rec.count(func(e gateway.Event) bool {
		return e.Kind == gateway.EventServerStatus && e.Server == "loop" && e.Status.State == gateway.StateStarting
	}); n < 3 {
		t.Errorf("restarted %d times; want at least 3", n)
	}
}

func TestListChangedRefreshesCatalog(t *testing.T) {
	for _, era := range []mcptest.Era{mcptest.EraLegacy, mcptest.EraModern} {
		t.Run(string(era), func(t *testing.T) {
			rec := newRecorder()
			g := start(t, gateway.Options{Events: rec, Servers: []gateway.ServerSpec{server(t, "s", mcptest.Options{Era: era})}})
			if _, ok := g.Catalog().Tool("s__fresh"); ok {
				t.Fatal("s__fresh listed before it was added")
			}
			mustCall(t, g, "s__add_tool", map[string]any{"name": "fresh"})
			rec.waitFor(t, "catalog with s__fresh", catalogWith("s__fresh"))
			if got := text(t, mustCall(t, g, "s__fresh", map[string]any{"text": "new"})); got != "new" {
				t.Fatalf("fresh tool: %q", got)
			}
			mustCall(t, g, "s__remove_tool", map[string]any{"name": "fresh"})
			rec.waitFor(t, "catalog without s__fresh", catalogWithout("s__fresh"))
			if _, err := call(context.Background(), g, "s__fresh", map[string]any{}); !errors.Is(err, gateway.ErrUnknownTool) {
				t.Fatalf("removed tool: %v; want ErrUnknownTool", err)
			}
		})
	}
}

// handler answers client requests like a host with a model and a user.
type handler struct {
	root    string // the one root offered; default file:///work
	mu      sync.Mutex
	related []string
}

func (h *handler) Supports(context.Context, string) bool { return true }

func (h *handler) HandleClientRequest(_ context.Context, req gateway.ClientRequest) (json.RawMessage, error) {
	h.mu.Lock()
	h.related = append(h.related, req.Server+":"+req.Method+":"+req.Related)
	h.mu.Unlock()
	switch req.Method {
	case gateway.MethodSampling:
		return json.RawMessage(`{"role":"assistant","content":{"type":"text","text":"sampled answer"},"model":"test-model","stopReason":"endTurn"}`), nil
	case gateway.MethodElicitation:
		return json.RawMessage(`{"action":"accept","content":{"answer":"forty-two"}}`), nil
	case gateway.MethodRoots:
		root := h.root
		if root == "" {
			root = "file:///work"
		}
		return json.Marshal(map[string]any{"roots": []map[string]string{{"uri": root, "name": "root"}}})
	}
	return nil, &jsonrpc.Error{Code: jsonrpc.CodeMethodNotFound, Message: "no"}
}

func TestClientRequestsBothEras(t *testing.T) {
	h := &handler{}
	g := start(t, gateway.Options{Handler: h, Servers: []gateway.ServerSpec{
		server(t, "old", mcptest.Options{Era: mcptest.EraLegacy}),
		server(t, "new", mcptest.Options{Era: mcptest.EraModern}),
	}})
	for _, srv := range []string{"old", "new"} {
		for tool, want := range map[string]string{
			"sample": "sampled answer",
			"elicit": "forty-two",
			"roots":  "file:///work",
		} {
			res := mustCall(t, g, srv+"__"+tool, map[string]any{"prompt": "q", "message": "q"})
			if got := text(t, res); !strings.Contains(got, want) {
				t.Errorf("%s__%s: %q; want it to contain %q", srv, tool, got, want)
			}
		}
	}
	if got := text(t, mustCall(t, g, "old__ping_client", map[string]any{})); got != "pong-ok" {
		t.Errorf("ping_client: %q", got)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !slices.Contains(h.related, "new:sampling/createMessage:tools/call") || !slices.Contains(h.related, "old:sampling/createMessage:") {
		t.Errorf("handler saw %v", h.related)
	}
}

func TestNoHandlerRefusesClientRequests(t *testing.T) {
	g := start(t, gateway.Options{Servers: []gateway.ServerSpec{
		server(t, "old", mcptest.Options{Era: mcptest.EraLegacy}),
		server(t, "new", mcptest.Options{Era: mcptest.EraModern}),
	}})
	var r struct {
		IsError bool `json:"isError"`
	}
	res := mustCall(t, g, "old__sample", map[string]any{"prompt": "q"})
	if json.Unmarshal(res, &r); !r.IsError {
		t.Errorf("legacy sample without a handler: %s; want an isError result", res)
	}
	_, err := call(context.Background(), g, "new__sample", map[string]any{"prompt": "q"})
	if !errors.Is(err, &jsonrpc.Error{Code: jsonrpc.CodeMissingRequiredClientCapability}) {
		t.Errorf("modern sample without a handler: %v; want -32021", err)
	}
}

func TestProgressAndNotificationsPassThrough(t *testing.T) {
	for _, era := range []mcptest.Era{mcptest.EraLegacy, mcptest.EraModern} {
		t.Run(string(era), func(t *testing.T) {
			rec := newRecorder()
			g := start(t, gateway.Options{Events: rec, Servers: []gateway.ServerSpec{server(t, "s", mcptest.Options{Era: era})}})
			var mu sync.Mutex
			var got []json.RawMessage
			p, _ := json.Marshal(map[string]any{
				"name":      "s__notify",
				"arguments": map[string]any{"n": 3},
				"_meta":     map[string]any{"progressToken": "caller-token", "io.modelcontextprotocol/logLevel": "info"},
			})
			_, err := g.CallTool(context.Background(), p, gateway.CallOptions{Progress: func(params json.RawMessage) {
				mu.Lock()
				got = append(got, params)
				mu.Unlock()
			}})
			if err != nil {
				t.Fatal(err)
			}
			// Progress is dispatched in order before the reply is read, but on
			// another goroutine: wait for it.
			deadline := time.Now().Add(5 * time.Second)
			for {
				mu.Lock()
				n := len(got)
				mu.Unlock()
				if n >= 3 || time.Now().After(deadline) {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(got) != 3 {
				t.Fatalf("got %d progress notifications; want 3", len(got))
			}
			for _, p := range got {
				var pp struct {
					ProgressToken string `json:"progressToken"`
				}
				if json.Unmarshal(p, &pp); pp.ProgressToken != "caller-token" {
					t.Errorf("progress %s does not carry the caller's token", p)
				}
			}
			rec.waitFor(t, "notifications/message", func(e gateway.Event) bool {
				return e.Kind == gateway.EventServerNotification && e.Server == "s" && e.Method == "notifications/message"
			})
		})
	}
}

func TestRoutingErrorsKeepCodes(t *testing.T) {
	g := start(t, gateway.Options{Servers: []gateway.ServerSpec{server(t, "s", mcptest.Options{Era: mcptest.EraModern})}})
	_, err := call(context.Background(), g, "nope", map[string]any{})
	if !errors.Is(err, gateway.ErrUnknownTool) || !errors.Is(err, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams}) {
		t.Errorf("unknown tool: %v", err)
	}
	_, err = call(context.Background(), g, "s__error_tool", map[string]any{})
	var rpcErr *jsonrpc.Error
	if !errors.As(err, &rpcErr) || rpcErr.Code != jsonrpc.CodeInternalError || len(rpcErr.Data) == 0 {
		t.Errorf("server error: %v; want the server's -32603 with its data", err)
	}
	res, err := g.GetPrompt(context.Background(), json.RawMessage(`{"name":"s__greet","arguments":{"name":"Ada"}}`))
	if err != nil || !strings.Contains(string(res), "Ada") {
		t.Errorf("prompt: %s %v", res, err)
	}
	res, err = g.ReadResource(context.Background(), json.RawMessage(`{"uri":"test://static/a"}`))
	if err != nil || !strings.Contains(string(res), "test://static/a") {
		t.Errorf("resource: %s %v", res, err)
	}
	res, err = g.ReadResource(context.Background(), json.RawMessage(`{"uri":"test://item/42"}`))
	if err != nil || !strings.Contains(string(res), "test://item/42") {
		t.Errorf("templated resource: %s %v", res, err)
	}
	if _, err = g.ReadResource(context.Background(), json.RawMessage(`{"uri":"nope://x"}`)); !errors.Is(err, gateway.ErrUnknownResource) {
		t.Errorf("unknown resource: %v", err)
	}
}

func TestTTLRelistsStaleLists(t *testing.T) {
	g := start(t, gateway.Options{Servers: []gateway.ServerSpec{
		server(t, "ttl", mcptest.Options{Era: mcptest.EraModern, TTLMs: 1}),
		server(t, "old", mcptest.Options{Era: mcptest.EraLegacy}),
	}})
	before := stats(t, g, "ttl").ListCalls["tools/list"]
	oldBefore := stats(t, g, "old").ListCalls["tools/list"]
	time.Sleep(5 * time.Millisecond)
	g.ListTools(context.Background())
	if after := stats(t, g, "ttl").ListCalls["tools/list"]; after != before+1 {
		t.Errorf("stale modern list re-listed %d times; want once", after-before)
	}
	if after := stats(t, g, "old").ListCalls["tools/list"]; after != oldBefore {
		t.Errorf("legacy list without ttlMs re-listed %d times; want 0", after-oldBefore)
	}
}

func TestCloseStopsChildren(t *testing.T) {
	g := start(t, gateway.Options{Servers: []gateway.ServerSpec{
		server(t, "a", mcptest.Options{}),
		server(t, "b", mcptest.Options{Era: mcptest.EraModern}),
	}})
	pids := []int{status(g, "a").Pid, status(g, "b").Pid}
	pending := make(chan error, 1)
	go func() {
		_, err := call(context.Background(), g, "a__never", map[string]any{})
		pending <- err
	}()
	time.Sleep(100 * time.Millisecond)
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-pending:
		if err == nil {
			t.Error("pending call succeeded after Close")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("pending call still waiting after Close")
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("child %d still exists after Close: %v", pid, err)
		}
	}
	if st := status(g, "a"); st.State != gateway.StateStopped {
		t.Errorf("state after Close: %q", st.State)
	}
}

// hangingConn stops delivering the server's messages once hung is set,
// as a server whose event loop is stuck.
type hangingConn struct {
	*stdio.Process
	hung *atomic.Bool
}

func (c *hangingConn) ReadMessage() ([]byte, error) {
	for {
		line, err := c.Process.ReadMessage()
		if err != nil || !c.hung.Load() {
			return line, err
		}
	}
}

func TestKeepaliveRestartsHungServer(t *testing.T) {
	for _, era := range []mcptest.Era{mcptest.EraLegacy, mcptest.EraModern} {
		t.Run(string(era), func(t *testing.T) {
			rec := newRecorder()
			var hung atomic.Bool
			g := start(t, gateway.Options{
				Events:       rec,
				PingInterval: 100 * time.Millisecond,
				Servers:      []gateway.ServerSpec{server(t, "s", mcptest.Options{Era: era})},
				Dial: func(ctx context.Context, spec gateway.ServerSpec) (gateway.Conn, error) {
					hung.Store(false) // a restarted server is healthy
					p, err := stdio.Start(stdio.Config{Name: spec.Name, Command: spec.Command, Env: spec.Env, StopGrace: 200 * time.Millisecond})
					if err != nil {
						return nil, err
					}
					return &hangingConn{Process: p, hung: &hung}, nil
				},
			})
			time.Sleep(300 * time.Millisecond) // a few healthy pings first
			if st := status(g, "s"); st.Restarts != 0 {
				t.Fatalf("healthy server restarted: %+v", st)
			}
			hung.Store(true)
			e := rec.waitFor(t, "restart after missed keepalive", func(e gateway.Event) bool {
				return e.Kind == gateway.EventServerStatus && e.Status.State == gateway.StateRestarting
			})
			if !strings.Contains(e.Status.LastError, "keepalive") {
				t.Errorf("restart reason %q; want the missed keepalive", e.Status.LastError)
			}
			if got := text(t, mustCall(t, g, "s__echo", map[string]any{"text": "alive"})); got != "alive" {
				t.Fatalf("after restart: %q", got)
			}
		})
	}
}

// TestKeepaliveSparesBusyServer: a server that leaves every other ping
// unanswered for longer than the interval is busy, not hung: it is never
// restarted. A hung one is (TestKeepaliveRestartsHungServer).
func TestKeepaliveSparesBusyServer(t *testing.T) {
	const every = 200 * time.Millisecond
	g := start(t, gateway.Options{
		PingInterval: every,
		Servers: []gateway.ServerSpec{server(t, "busy", mcptest.Options{
			PingDelay: 3 * every, PingDelayEvery: 2, EOFGrace: -time.Millisecond,
		})},
	})
	time.Sleep(12 * every)
	if s := status(g, "busy"); s.Restarts != 0 || s.State != gateway.StateReady {
		t.Fatalf("busy server: %+v; want ready, never restarted", s)
	}
	if n := stats(t, g, "busy").Methods["ping"]; n < 6 {
		t.Fatalf("only %d pings in %v; the test proves nothing", n, 12*every)
	}
}

// readOnlyAuthorizer allows alice everything and others only read-only tools.
type readOnlyAuthorizer struct{ fail bool }

func (a readOnlyAuthorizer) Authorize(_ context.Context, req gateway.AuthzRequest) (gateway.Decision, error) {
	if a.fail {
		return gateway.Decision{}, errors.New("policy trapped")
	}
	if req.Caller.ID == "alice" {
		return gateway.Decision{Allow: true}, nil
	}
	var ann struct {
		ReadOnlyHint bool `json:"readOnlyHint"`
	}
	_ = json.Unmarshal(req.Annotations, &ann)
	if !ann.ReadOnlyHint {
		return gateway.Decision{Reason: req.Caller.ID + " may only call read-only tools; " + req.Tool + " is not"}, nil
	}
	return gateway.Decision{Allow: true}, nil
}

func TestAuthorizerGuardsEveryCall(t *testing.T) {
	bin := buildExamples(t)
	g := start(t, gateway.Options{Authorizer: readOnlyAuthorizer{}, Servers: []gateway.ServerSpec{{Name: "notes", Command: bin + "/notes"}}})
	bob := gateway.WithCaller(context.Background(), gateway.Caller{ID: "bob"})
	if _, err := call(bob, g, "notes__search", map[string]any{"query": "x"}); err != nil {
		t.Errorf("bob, read-only tool: %v", err)
	}
	_, err := call(bob, g, "notes__add_note", map[string]any{"title": "t", "text": "x"})
	if !errors.Is(err, gateway.ErrDenied) || !errors.Is(err, &jsonrpc.Error{Code: gateway.CodeDenied}) || !strings.Contains(err.Error(), "bob may only call read-only tools") {
		t.Errorf("bob, writing tool: %v; want a denial with the policy's reason", err)
	}
	alice := gateway.WithCaller(context.Background(), gateway.Caller{ID: "alice"})
	if _, err := call(alice, g, "notes__add_note", map[string]any{"title": "t", "text": "x"}); err != nil {
		t.Errorf("alice: %v", err)
	}

	broken := start(t, gateway.Options{Authorizer: readOnlyAuthorizer{fail: true}, Servers: []gateway.ServerSpec{{Name: "notes", Command: bin + "/notes"}}})
	if _, err := call(alice, broken, "notes__search", map[string]any{"query": "x"}); !errors.Is(err, gateway.ErrDenied) {
		t.Errorf("failing authorizer: %v; want the call denied (fail closed)", err)
	}
}

func TestResourceSubscriptionsSurviveRestart(t *testing.T) {
	for _, era := range []mcptest.Era{mcptest.EraLegacy, mcptest.EraModern} {
		t.Run(string(era), func(t *testing.T) {
			rec := newRecorder()
			g := start(t, gateway.Options{Events: rec, Servers: []gateway.ServerSpec{server(t, "s", mcptest.Options{Era: era})}})
			ctx := context.Background()
			updated := func(uri string) func(gateway.Event) bool {
				return func(e gateway.Event) bool {
					return e.Kind == gateway.EventServerNotification && e.Method == "notifications/resources/updated" &&
						strings.Contains(string(e.Params), `"`+uri+`"`)
				}
			}
			touch := func(uri string) {
				// Touch until the event arrives: a modern listen stream
				// re-opens asynchronously after a change of filter.
				deadline := time.Now().Add(10 * time.Second)
				for {
					mustCall(t, g, "s__touch_resource", map[string]any{"uri": uri})
					if rec.count(updated(uri)) > 0 || time.Now().After(deadline) {
						break
					}
					time.Sleep(50 * time.Millisecond)
				}
				rec.waitFor(t, "resources/updated "+uri, updated(uri))
			}
			if err := g.SubscribeResource(ctx, "test://static/a"); err != nil {
				t.Fatal(err)
			}
			touch("test://static/a")

			pid := status(g, "s").Pid
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			rec.waitFor(t, "ready after kill", func(e gateway.Event) bool {
				return e.Kind == gateway.EventServerStatus && e.Status.State == gateway.StateReady && e.Status.Pid != pid
			})
			before := rec.count(updated("test://static/a"))
			touch("test://static/a")
			if rec.count(updated("test://static/a")) <= before {
				t.Fatal("subscription lost across the restart")
			}

			if err := g.UnsubscribeResource(ctx, "test://static/a"); err != nil {
				t.Fatal(err)
			}
			if err := g.SubscribeResource(ctx, "test://static/b"); err != nil {
				t.Fatal(err)
			}
			time.Sleep(100 * time.Millisecond)
			afterUnsub := rec.count(updated("test://static/a"))
			mustCall(t, g, "s__touch_resource", map[string]any{"uri": "test://static/a"})
			touch("test://static/b") // b arriving shows a's touch was processed
			if n := rec.count(updated("test://static/a")); n != afterUnsub {
				t.Errorf("%d updates for an unsubscribed uri", n-afterUnsub)
			}
			if err := g.SubscribeResource(ctx, "nope://x"); !errors.Is(err, gateway.ErrUnknownResource) {
				t.Errorf("subscribe unknown: %v", err)
			}
		})
	}
}

func TestAddRemoveReplaceServers(t *testing.T) {
	rec := newRecorder()
	g := start(t, gateway.Options{Events: rec, Servers: []gateway.ServerSpec{server(t, "a", mcptest.Options{})}})

	if err := g.AddServer(server(t, "b", mcptest.Options{Era: mcptest.EraModern, Tools: []string{"extra"}})); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, "b's tools", catalogWith("b__extra"))
	if got := text(t, mustCall(t, g, "b__echo", map[string]any{"text": "added"})); got != "added" {
		t.Fatalf("b__echo: %q", got)
	}
	if err := g.AddServer(server(t, "b", mcptest.Options{})); err == nil {
		t.Error("adding b twice succeeded")
	}

	// Replace: a new process with a new spec; a's process is untouched.
	pidA, pidB := readyPid(t, g, "a"), readyPid(t, g, "b")
	if err := g.ReplaceServer(server(t, "b", mcptest.Options{Tools: []string{"other"}})); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, "b's new tools", catalogWith("b__other"))
	if _, ok := g.Catalog().Tool("b__extra"); ok {
		t.Error("b__extra still listed after the replace")
	}
	if status(g, "a").Pid != pidA {
		t.Error("replacing b restarted a")
	}
	if err := syscall.Kill(pidB, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("b's old process %d still exists: %v", pidB, err)
	}

	// Remove: pending calls fail, the tools leave, the process is gone.
	pidB = readyPid(t, g, "b")
	pending := make(chan error, 1)
	go func() {
		_, err := call(context.Background(), g, "b__never", map[string]any{})
		pending <- err
	}()
	time.Sleep(100 * time.Millisecond)
	if err := g.RemoveServer("b"); err != nil {
		t.Fatal(err)
	}
	if err := <-pending; err == nil {
		t.Error("a call pending on a removed server succeeded")
	}
	rec.waitFor(t, "catalog without b", catalogWithout("b__echo"))
	if _, err := call(context.Background(), g, "b__echo", map[string]any{}); !errors.Is(err, gateway.ErrUnknownTool) {
		t.Errorf("call to a removed server's tool: %v", err)
	}
	if err := syscall.Kill(pidB, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("removed server's process %d still exists: %v", pidB, err)
	}
	if err := g.RemoveServer("b"); !errors.Is(err, gateway.ErrServerDown) {
		t.Errorf("removing b twice: %v", err)
	}
	if got := text(t, mustCall(t, g, "a__echo", map[string]any{"text": "still"})); got != "still" {
		t.Fatalf("a after the changes: %q", got)
	}
	if n := len(g.Servers()); n != 1 {
		t.Errorf("%d servers listed; want 1", n)
	}
}

// readyPid waits for a server's ready status and returns its pid (the
// catalog and calls can be ahead of the status by a moment).
func readyPid(t *testing.T, g *gateway.Gateway, name string) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if st := status(g, name); st.State == gateway.StateReady && st.Pid != 0 {
			return st.Pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never ready: %+v", name, status(g, name))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestMalformedToolSkipped: a tools/list entry without a usable name is left
// out and counted; the server's other tools are served and it stays ready.
func TestMalformedToolSkipped(t *testing.T) {
	g := start(t, gateway.Options{Servers: []gateway.ServerSpec{
		withRestart(server(t, "bad", mcptest.Options{BadTools: true}), gateway.RestartNever),
	}})
	st := status(g, "bad")
	if st.State != gateway.StateReady || st.Skipped != 3 {
		t.Fatalf("status = %s, skipped %d; want ready, 3 skipped", st.State, st.Skipped)
	}
	if got := text(t, mustCall(t, g, "bad__echo", map[string]any{"text": "still here"})); got != "still here" {
		t.Fatalf("echo = %q", got)
	}
}

// TestStalledServerSurvivesTimedOutWrite: a call whose arguments cannot all
// be written before its deadline (the server stopped reading) times out, but
// the rest of its line still goes out, so the stream stays framed: once the
// server reads again, later calls work, without a restart.
func TestStalledServerSurvivesTimedOutWrite(t *testing.T) {
	g := start(t, gateway.Options{Servers: []gateway.ServerSpec{server(t, "s", mcptest.Options{})}})
	mustCall(t, g, "s__stall_input", map[string]any{"ms": 1500})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	big := strings.Repeat("x", 256<<10) // more than the pipe holds
	if _, err := call(ctx, g, "s__echo", map[string]any{"text": big}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("call into a stalled server = %v; want its deadline", err)
	}
	for i := range 3 {
		if got := text(t, mustCall(t, g, "s__echo", map[string]any{"text": "after"})); got != "after" {
			t.Fatalf("call %d after the stall = %q", i, got)
		}
	}
	if st := status(g, "s"); st.State != gateway.StateReady || st.Restarts != 0 {
		t.Fatalf("status %+v; want ready and never restarted", st)
	}
}

// TestRequestFloodBounded: a server that stops reading and then sends 50,000
// pings costs gw a bounded number of goroutines and bytes; its session ends
// (restart, status) and the server serves again afterwards.
func TestRequestFloodBounded(t *testing.T) {
	rec := newRecorder()
	g := start(t, gateway.Options{Events: rec, Servers: []gateway.ServerSpec{
		server(t, "flood", mcptest.Options{EOFGrace: -time.Millisecond}),
	}})
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	base := runtime.NumGoroutine()

	var peakG, peakHeap atomic.Uint64
	stop := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Go(func() {
		var ms runtime.MemStats
		for i := 0; ; i++ {
			if n := uint64(runtime.NumGoroutine()); n > peakG.Load() {
				peakG.Store(n)
			}
			if i%10 == 0 {
				runtime.ReadMemStats(&ms)
				if ms.HeapAlloc > peakHeap.Load() {
					peakHeap.Store(ms.HeapAlloc)
				}
			}
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, _ = call(ctx, g, "flood__flood_pings", map[string]any{"count": 50000, "stop_reading": true})
	e := rec.waitFor(t, "restart after the flood", func(e gateway.Event) bool {
		return e.Kind == gateway.EventServerStatus && e.Status.State == gateway.StateRestarting
	})
	close(stop)
	sampler.Wait()
	if !strings.Contains(e.Status.LastError, "without waiting for the answers") {
		t.Errorf("restart reason %q; want the request flood", e.Status.LastError)
	}
	if grew := int64(peakG.Load()) - int64(base); grew > 100 {
		t.Errorf("goroutines grew by %d during the flood; want a bounded handful", grew)
	}
	if grew := int64(peakHeap.Load()) - int64(before.HeapAlloc); grew > 64<<20 {
		t.Errorf("heap grew by %d MiB during the flood", grew>>20)
	}
	if got := text(t, mustCall(t, g, "flood__echo", map[string]any{"text": "back"})); got != "back" {
		t.Fatalf("after the flood: %q", got)
	}
}

// TestReplaceServerInPlace: while a server restarts with a new spec, its
// tools never leave the catalog and calls wait for the new process instead
// of failing as unknown tools.
func TestReplaceServerInPlace(t *testing.T) {
	rec := newRecorder()
	g := start(t, gateway.Options{Events: rec, Servers: []gateway.ServerSpec{
		server(t, "s", mcptest.Options{EOFGrace: -time.Millisecond}),
	}})
	stop := make(chan struct{})
	var callers sync.WaitGroup
	var ok, unknown atomic.Int64
	for range 4 {
		callers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, found := g.Catalog().Tool("s__echo"); !found {
					unknown.Add(1)
				}
				_, err := call(context.Background(), g, "s__echo", map[string]any{"text": "x"})
				switch {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, gateway.ErrUnknownTool):
					unknown.Add(1)
				}
			}
		})
	}
	time.Sleep(100 * time.Millisecond)
	before := ok.Load()
	if err := g.ReplaceServer(server(t, "s", mcptest.Options{EOFGrace: -time.Millisecond, Tools: []string{"extra"}})); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the new spec's tool", func() bool { _, found := g.Catalog().Tool("s__extra"); return found })
	time.Sleep(100 * time.Millisecond)
	close(stop)
	callers.Wait()
	if n := unknown.Load(); n != 0 {
		t.Errorf("%d times s__echo was missing from the catalog or unknown during the restart", n)
	}
	if ok.Load() <= before {
		t.Error("no call succeeded after the restart")
	}
	if n := rec.count(func(e gateway.Event) bool {
		return e.Kind == gateway.EventCatalogChanged && !hasEcho(e.Catalog)
	}); n != 0 {
		t.Errorf("%d catalog events without s__echo", n)
	}
}

func hasEcho(c *gateway.Catalog) bool { _, ok := c.Tool("s__echo"); return ok }

// TestReplaceServerRollsBack: a new spec that does not start is undone: the
// previous one runs again and serves.
func TestReplaceServerRollsBack(t *testing.T) {
	g := start(t, gateway.Options{Servers: []gateway.ServerSpec{server(t, "s", mcptest.Options{Tools: []string{"old"}})}})
	err := g.ReplaceServer(server(t, "s", mcptest.Options{CrashOnStart: true}))
	if err == nil || !strings.Contains(err.Error(), "previous") {
		t.Fatalf("ReplaceServer with a crashing spec = %v; want an error saying the previous spec runs", err)
	}
	if got := text(t, mustCall(t, g, "s__old", map[string]any{"text": "back"})); got != "back" {
		t.Fatalf("after the rollback: %q", got)
	}
	if specs := g.ServerSpecs(); len(specs) != 1 || specs[0].Env[mcptest.EnvCrashOnStart] != "" {
		t.Fatalf("specs after the rollback: %+v", specs)
	}
}

// TestStaleListRelistedOnce: twenty callers that find a server's list stale
// at once cause one re-list, not twenty.
func TestStaleListRelistedOnce(t *testing.T) {
	g := start(t, gateway.Options{Servers: []gateway.ServerSpec{
		server(t, "s", mcptest.Options{Era: mcptest.EraModern, TTLMs: 500}),
	}})
	lists := func() int { return stats(t, g, "s").ListCalls["tools/list"] }
	before := lists()
	time.Sleep(600 * time.Millisecond) // the list is stale now
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() { g.ListTools(context.Background()) })
	}
	wg.Wait()
	if n := lists() - before; n != 1 {
		t.Fatalf("%d re-lists for 20 concurrent callers; want 1", n)
	}
}

// firstComeResolver exposes names as they are; a later server's duplicate is
// left out.
type firstComeResolver struct{}

func (firstComeResolver) Resolve(_ gateway.Kind, servers []gateway.ServerItems) (gateway.Resolution, error) {
	res := gateway.Resolution{Names: map[gateway.ItemKey]string{}}
	taken := map[string]bool{}
	for _, s := range servers {
		for _, it := range s.Items {
			if taken[it.Key] {
				res.Rejected = append(res.Rejected, gateway.Rejection{Server: s.Server, Name: it.Key, Reason: "taken"})
				continue
			}
			taken[it.Key] = true
			res.Names[gateway.ItemKey{Server: s.Server, Name: it.Key}] = it.Key
		}
	}
	return res, nil
}

// TestLogsSayThingsOnce: a rejected tool is logged once, not at every
// catalog rebuild, and a server's stderr lines name it once.
func TestLogsSayThingsOnce(t *testing.T) {
	var logs mcptest.SyncBuffer
	g := start(t, gateway.Options{
		Logger:   slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Resolver: firstComeResolver{},
		Servers: []gateway.ServerSpec{
			server(t, "a", mcptest.Options{Tools: []string{"search"}, StderrSpamKiB: 1}),
			server(t, "b", mcptest.Options{Tools: []string{"search"}}),
		},
	})
	for i := range 3 { // each add_tool rebuilds the catalog
		mustCall(t, g, "add_tool", map[string]any{"name": fmt.Sprintf("new%d", i)})
	}
	waitFor(t, "the added tools", func() bool { _, ok := g.Catalog().Tool("new2"); return ok })
	if n := strings.Count(logs.String(), `"left out of the catalog" server=b name=search`); n != 1 {
		t.Errorf("the rejected b/search was logged %d times; want once", n)
	}
	var stderrLines int
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "stream=stderr") && strings.Contains(line, "server=a") {
			stderrLines++
			if n := strings.Count(line, "server="); n != 1 {
				t.Fatalf("a stderr line names the server %d times: %s", n, line)
			}
		}
	}
	if stderrLines == 0 {
		t.Fatal("no stderr line of server a was logged; the test proves nothing")
	}
}

// TestSecretsRedactedFromStderr: a server that prints its API key on stderr
// and dies does not get the key copied into gw's logs, status or events.
func TestSecretsRedactedFromStderr(t *testing.T) {
	const secret = "sk-planted-0123456789"
	var logs mcptest.SyncBuffer
	rec := newRecorder()
	g, _ := startErr(t, gateway.Options{
		Events: rec,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Servers: []gateway.ServerSpec{{
			Name: "leaky", Command: "sh", Args: []string{"-c", `echo "starting with key $API_KEY" >&2; exit 1`},
			Env: map[string]string{"API_KEY": secret, "LEVEL": "debug"}, Restart: gateway.RestartNever,
		}},
	})
	if st := status(g, "leaky"); st.LastError == "" || strings.Contains(st.LastError, "starting with key") {
		t.Fatalf("lastError %q; want the failure without the stderr line (TestStderrStaysWithOperators)", st.LastError)
	}
	var seen strings.Builder
	seen.WriteString(logs.String())
	rec.mu.Lock()
	for _, e := range rec.events {
		b, _ := json.Marshal(e.Status)
		seen.Write(b)
	}
	rec.mu.Unlock()
	if strings.Contains(seen.String(), secret) {
		t.Fatalf("the secret reached gw's logs or events:\n%s", seen.String())
	}
	if !strings.Contains(logs.String(), "starting with key [redacted]") {
		t.Fatal("the stderr line was not logged at all; the test proves nothing")
	}
}

// TestServerThatStopsReading: a server that stops reading its stdin while
// calls keep coming costs bounded goroutines; every call ends by its
// deadline; the keepalive restarts the server, which then serves again.
func TestServerThatStopsReading(t *testing.T) {
	rec := newRecorder()
	g := start(t, gateway.Options{Events: rec, PingInterval: 200 * time.Millisecond, Servers: []gateway.ServerSpec{
		server(t, "deaf", mcptest.Options{EOFGrace: -time.Millisecond}),
	}})
	mustCall(t, g, "deaf__stall_input", map[string]any{"ms": 60000})
	base := runtime.NumGoroutine()
	big := strings.Repeat("x", 64<<10)
	var wg sync.WaitGroup
	var late, ok atomic.Int64
	for range 30 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			begin := time.Now()
			_, err := call(ctx, g, "deaf__echo", map[string]any{"text": big})
			if err == nil {
				ok.Add(1)
			}
			if time.Since(begin) > 2*time.Second {
				late.Add(1)
			}
		})
	}
	peak := 0
	for i := 0; i < 20; i++ {
		peak = max(peak, runtime.NumGoroutine())
		time.Sleep(10 * time.Millisecond)
	}
	wg.Wait()
	if ok.Load() != 0 || late.Load() != 0 {
		t.Fatalf("%d calls answered by a server that reads nothing, %d ended long after their deadline", ok.Load(), late.Load())
	}
	if grew := peak - base; grew > 30+20 {
		t.Errorf("goroutines grew by %d for 30 stuck calls", grew)
	}
	e := rec.waitFor(t, "the keepalive's restart", func(e gateway.Event) bool {
		return e.Kind == gateway.EventServerStatus && e.Status.State == gateway.StateRestarting
	})
	if !strings.Contains(e.Status.LastError, "keepalive") {
		t.Errorf("restarted for %q; want the missed keepalive", e.Status.LastError)
	}
	if got := text(t, mustCall(t, g, "deaf__echo", map[string]any{"text": "hears again"})); got != "hears again" {
		t.Fatalf("after the restart: %q", got)
	}
}

// TestNotificationFloodIsolated: a server flooding notifications while the
// sink is stuck costs bounded memory (excess notifications are dropped),
// never delays another server's calls, and never costs a catalog event.
func TestNotificationFloodIsolated(t *testing.T) {
	release := make(chan struct{})
	var notes, catalogs atomic.Int64
	var once sync.Once
	sink := sinkFunc(func(e gateway.Event) {
		switch e.Kind {
		case gateway.EventServerNotification:
			notes.Add(1)
			once.Do(func() { <-release }) // the sink is stuck on the first one
		case gateway.EventCatalogChanged:
			if _, ok := e.Catalog.Tool("quiet__late"); ok {
				catalogs.Add(1)
			}
		}
	})
	g := start(t, gateway.Options{Events: sink, Servers: []gateway.ServerSpec{
		server(t, "noisy", mcptest.Options{EOFGrace: -time.Millisecond}),
		server(t, "quiet", mcptest.Options{EOFGrace: -time.Millisecond}),
	}})
	defer close(release)
	var flood sync.WaitGroup
	for range 8 {
		flood.Go(func() { _, _ = call(context.Background(), g, "noisy__notify", map[string]any{"n": 10000}) })
	}
	for i := range 20 {
		begin := time.Now()
		mustCall(t, g, "quiet__echo", map[string]any{"text": "x"})
		if d := time.Since(begin); d > time.Second {
			t.Fatalf("quiet call %d took %v during the flood", i, d)
		}
	}
	flood.Wait()
	mustCall(t, g, "quiet__add_tool", map[string]any{"name": "late"})
	waitFor(t, "the late tool", func() bool { _, ok := g.Catalog().Tool("quiet__late"); return ok })
	release <- struct{}{}
	waitFor(t, "the catalog event queued behind the flood", func() bool { return catalogs.Load() > 0 })
	if n := notes.Load(); n >= 80000 {
		t.Fatalf("%d of 80,000 notifications were queued for a stuck sink; want the excess dropped", n)
	}
}

// TestCallTakesItsLogs: log messages a legacy server raises while a call
// with a Log callback is in flight go to that call, not to the events; and
// SetLogLevel reaches the server.
func TestCallTakesItsLogs(t *testing.T) {
	rec := newRecorder()
	g := start(t, gateway.Options{Events: rec, Servers: []gateway.ServerSpec{server(t, "s", mcptest.Options{})}})
	g.SetLogLevel(context.Background(), "debug")
	var got atomic.Int64
	if _, err := g.CallTool(context.Background(), params("s__notify", map[string]any{"n": 3}), gateway.CallOptions{
		Log: func(json.RawMessage) { got.Add(1) },
	}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the call's three log messages", func() bool { return got.Load() == 3 })
	if n := rec.count(func(e gateway.Event) bool { return e.Method == "notifications/message" }); n != 0 {
		t.Errorf("%d of the call's log messages also became events", n)
	}
	if n := stats(t, g, "s").Methods["logging/setLevel"]; n != 1 {
		t.Errorf("the server got logging/setLevel %d times; want 1", n)
	}
}
