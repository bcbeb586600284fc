package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/nats-io/nats.go"

	"github.com/gwmcp/gw/internal/mcptest"
	"github.com/gwmcp/gw/transport/mcpface"
	"github.com/gwmcp/gw/transport/natsconn"
)

// fleetRun is one `gw run` in process, joined to a shared NATS server.
type fleetRun struct {
	stderr *mcptest.SyncBuffer
	done   chan int
	cancel context.CancelFunc
}

// startFleetRun runs `gw run` as gateway name, with servers (a YAML
// servers: body; EXE is this test binary), on the NATS server at url.
func startFleetRun(t *testing.T, url, name, servers string) *fleetRun {
	t.Helper()
	cfg := writeConfig(t, name+".yaml", fmt.Sprintf(`
nats:
  url: %s
  gateway: %s
policies:
  cache_dir: %s
http: {addr: ""}
gateway: {start_timeout: 60s}
servers:
%s`, url, name, filepath.Join(os.TempDir(), "gw-test-wasm-cache"), servers))
	ctx, cancel := context.WithCancel(context.Background())
	r := &fleetRun{stderr: &mcptest.SyncBuffer{}, done: make(chan int, 1), cancel: cancel}
	go func() { r.done <- run(ctx, []string{"run", "-c", cfg}, &bytes.Buffer{}, r.stderr) }()
	t.Cleanup(func() {
		r.stop(t)
		if t.Failed() {
			t.Logf("gw run %s stderr:\n%s", name, r.stderr.String())
		}
	})
	return r
}

// stop ends gw run (as SIGTERM does) and checks that it exits 0.
func (r *fleetRun) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case code, ok := <-r.done:
		if ok && code != 0 {
			t.Errorf("gw run exited %d", code)
		}
		if ok {
			close(r.done)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("gw run did not stop")
	}
}

// waitCallable waits until a tool answers on its shared subject.
func waitCallable(t *testing.T, nc *nats.Conn, tool string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, err := nc.Request("mcp.v1.req.probe.tools.call."+tool, []byte(`{"name":"`+tool+`","arguments":{"text":"x"}}`), 2*time.Second)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never callable: %v", tool, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestConnectFleet: two `gw run` gateways on one NATS server, each with its
// own mcptest server (alpha legacy on gateway one, beta modern on gateway
// two), and `gw connect` as a child of the official Go SDK client. The
// client lists the union of both gateways' tools, calls a tool on each,
// receives the progress a server sent through the NATS frames, answers the
// sampling that the modern server asks in the middle of a call (gw run →
// input frame → gw connect → the SDK client → the input subject), and,
// when gateway one stops, hears tools/list_changed and lists only gateway
// two's tools. Closing the client's end makes gw connect exit 0.
func TestConnectFleet(t *testing.T) {
	e, err := natsconn.StartEmbedded(context.Background(), natsconn.EmbeddedOptions{StoreDir: t.TempDir(), Port: -1, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Shutdown)
	url := e.ClientURL()
	probe, err := e.Connect("probe")
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	// One after the other: two policy hosts created at once in one process
	// race in wazero's lazily read version (internal/version), a test-only
	// concern since gw runs one per process.
	one := startFleetRun(t, url, "one", `  alpha: {command: EXE, env: {MCPTEST_SERVER: "1"}}
`)
	waitCallable(t, probe, "alpha__echo")
	startFleetRun(t, url, "two", `  beta: {command: EXE, env: {MCPTEST_SERVER: "1", MCPTEST_ERA: modern}}
`)
	waitCallable(t, probe, "beta__echo")

	cmd, _ := gwCommand(t, fmt.Sprintf("connect-%d", time.Now().UnixNano()), "connect", "--nats", url, "--principal", "ada")
	changed := make(chan struct{}, 16)
	var progress atomic.Int32
	client := mcp.NewClient(&mcp.Implementation{Name: "sdk-test", Version: "1"}, &mcp.ClientOptions{
		ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) {
			select {
			case changed <- struct{}{}:
			default:
			}
		},
		ProgressNotificationHandler: func(_ context.Context, req *mcp.ProgressNotificationClientRequest) {
			if req.Params.ProgressToken == "p-1" {
				progress.Add(1)
			}
		},
		CreateMessageHandler: func(context.Context, *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
			return &mcp.CreateMessageResult{Role: "assistant", Model: "sdk", Content: &mcp.TextContent{Text: "Paris, said the SDK client"}}, nil
		},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	// The legacy era: the one in which gw's face asks its client (sampling).
	cs, err := client.Connect(ctx, &mcp.CommandTransport{Command: cmd}, &mcp.ClientSessionOptions{ProtocolVersion: mcpface.LegacyVersion})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			_ = cs.Close()
		}
	}()

	names := listToolNames(ctx, t, cs)
	for _, want := range []string{"alpha__echo", "alpha__sample", "beta__echo", "beta__sample"} {
		if !slices.Contains(names, want) {
			t.Fatalf("%s missing from the union %v", want, names)
		}
	}
	for _, name := range []string{"alpha__echo", "beta__echo"} {
		if got := callText(ctx, t, cs, name, map[string]any{"text": "via the fleet " + name}); got != "via the fleet "+name {
			t.Errorf("%s: %q", name, got)
		}
	}

	params := &mcp.CallToolParams{Name: "beta__notify", Arguments: map[string]any{"n": 3}}
	params.SetProgressToken("p-1")
	if res, err := cs.CallTool(ctx, params); err != nil || res.IsError {
		t.Fatalf("beta__notify: %v %+v", err, res)
	}
	// The SDK hands notifications to their handlers on goroutines of its
	// own, so the last ones may run after CallTool returned.
	for deadline := time.Now().Add(5 * time.Second); progress.Load() < 3 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if n := progress.Load(); n != 3 {
		t.Errorf("%d progress notifications relayed; want 3", n)
	}

	if got := callText(ctx, t, cs, "beta__sample", map[string]any{"prompt": "capital of France?"}); !strings.Contains(got, "Paris, said the SDK client") {
		t.Errorf("sampling through the fleet: %q", got)
	}

	// Gateway one stops: its tools leave, and the client is told.
	one.stop(t)
	names = relistOnChange(ctx, t, cs, changed, names, 30*time.Second, "without alpha's tools",
		func(names []string) bool { return !slices.Contains(names, "alpha__echo") })
	if !slices.Contains(names, "beta__echo") {
		t.Errorf("beta's tools left too: %v", names)
	}

	closed = true
	if err := cs.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 0 {
		t.Errorf("gw connect exit: %v", cmd.ProcessState)
	}
}

// TestConnectFlags: gw connect needs --nats, takes no arguments, and
// refuses two kinds of credentials before dialling.
func TestConnectFlags(t *testing.T) {
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"connect"}, 2, "--nats URL is required"},
		{[]string{"connect", "--nats", "nats://127.0.0.1:1", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"connect", "--nats", "nats://127.0.0.1:1", "--token", "t", "--user", "u"}, 1, "set only one of"},
		{[]string{"help", "connect"}, 0, ""},
	} {
		code, stdout, stderr := runGW(t, tt.args...)
		if code != tt.code || !strings.Contains(stderr, tt.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d with %q", tt.args, code, stderr, tt.code, tt.want)
		}
		if tt.code == 0 && !strings.Contains(stdout, "gw connect --nats URL") {
			t.Errorf("help: %q", stdout)
		}
	}
}
