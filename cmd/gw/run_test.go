package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gwmcp/gw/internal/mcptest"
	"github.com/nats-io/nats.go"
)

func freePort(t testing.TB) int { return mcptest.FreePort(t) }

// TestRunServesOverEmbeddedNATS runs `gw run` with the embedded NATS
// server and calls a tool through it as an agent would.
func TestRunServesOverEmbeddedNATS(t *testing.T) {
	port := freePort(t)
	cfg := writeConfig(t, "gw.yaml", fmt.Sprintf(`
servers:
  alpha:
    command: EXE
    env: {MCPTEST_SERVER: "1", MCPTEST_TOOLS: search}
nats:
  gateway: test-gw
  embedded: {port: %d, store_dir: %s}
http: {addr: "127.0.0.1:0"}
policies:
  cache_dir: %s
`, port, t.TempDir(), filepath.Join(os.TempDir(), "gw-test-wasm-cache")))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr mcptest.SyncBuffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"run", "-c", cfg}, &bytes.Buffer{}, &stderr) }()

	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	var nc *nats.Conn
	deadline := time.Now().Add(60 * time.Second)
	for {
		var err error
		if nc, err = nats.Connect(url); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("embedded NATS never came up: %v\n%s", err, stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	defer nc.Close()

	events, err := nc.SubscribeSync("mcp.v1.evt.>")
	if err != nil {
		t.Fatal(err)
	}
	// The tool endpoint appears once the server is up.
	var reply *nats.Msg
	for {
		reply, err = nc.Request("mcp.v1.req.alice.tools.call.alpha__echo", []byte(`{"name":"alpha__echo","arguments":{"text":"over nats"}}`), 5*time.Second)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("tools.call: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(string(reply.Data), "over nats") {
		t.Fatalf("reply %s", reply.Data)
	}
	reply, err = nc.Request("mcp.v1.req.alice.tools.list", []byte(`{}`), 5*time.Second)
	if err != nil || !strings.Contains(string(reply.Data), `"alpha__search"`) {
		t.Fatalf("tools.list: %v %s", err, reply.Data)
	}
	var list struct {
		Tools []json.RawMessage `json:"tools"`
	}
	if err := json.Unmarshal(reply.Data, &list); err != nil || len(list.Tools) < 10 {
		t.Fatalf("tools.list result: %v %s", err, reply.Data)
	}
	// An error keeps its JSON-RPC code.
	reply, err = nc.Request("mcp.v1.req.alice.tools.call.alpha__error_tool", []byte(`{"name":"alpha__error_tool","arguments":{}}`), 5*time.Second)
	if err != nil || !strings.Contains(string(reply.Data), "-32603") {
		t.Fatalf("error tool: %v %s", err, reply.Data)
	}
	if _, err := events.NextMsg(10 * time.Second); err != nil {
		t.Errorf("no event on mcp.v1.evt.>: %v", err)
	}
	reply, err = nc.Request("mcp.v1.req.alice.servers.list", []byte(`{}`), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var servers struct {
		Servers []struct {
			Pid int `json:"pid"`
		} `json:"servers"`
	}
	if err := json.Unmarshal(reply.Data, &servers); err != nil || len(servers.Servers) != 1 || servers.Servers[0].Pid == 0 {
		t.Fatalf("servers.list: %v %s", err, reply.Data)
	}
	// A call in flight when gw stops is answered (or failed), not dropped.
	inflight := make(chan error, 1)
	go func() {
		_, err := nc.Request("mcp.v1.req.alice.tools.call.alpha__slow", []byte(`{"name":"alpha__slow","arguments":{"ms":300}}`), 20*time.Second)
		inflight <- err
	}()
	time.Sleep(100 * time.Millisecond)

	cancel() // what SIGINT/SIGTERM do
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("gw run exited %d\n%s", code, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("gw run did not stop on cancel")
	}
	select {
	case err := <-inflight:
		if err != nil {
			t.Errorf("in-flight call at shutdown: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Error("in-flight call never answered")
	}
	if err := syscall.Kill(servers.Servers[0].Pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("server process %d left behind: %v", servers.Servers[0].Pid, err)
	}
}

// reloadRun is a `gw run` whose configuration file a test edits: the file
// starts as head (EXE stands for this test binary), and an agent is
// connected to the embedded NATS.
type reloadRun struct {
	t      *testing.T
	cfg    string
	nc     *nats.Conn
	stderr *mcptest.SyncBuffer
	done   chan int
	cancel context.CancelFunc
}

// runHead is the part of a `gw run` test's file that places it: gw named
// name, the embedded NATS on port with a store of its own, the HTTP face on
// a free loopback port, the shared compiled-policy cache.
func runHead(t *testing.T, name string, port int) string {
	return fmt.Sprintf(`
nats:
  gateway: %s
  embedded: {port: %d, store_dir: %s}
http: {addr: "127.0.0.1:0"}
policies:
  cache_dir: %s
`, name, port, t.TempDir(), filepath.Join(os.TempDir(), "gw-test-wasm-cache"))
}

// reloadHead is the start of a reload test's file: runHead, a fast config
// watch, and server alpha.
func reloadHead(t *testing.T, name string) (head string, port int) {
	port = freePort(t)
	return runHead(t, name, port) + `gateway: {config_watch: 100ms}
servers:
  alpha:
    command: EXE
    env: {MCPTEST_SERVER: "1"}
`, port
}

func startReloadRun(t *testing.T, head string, port int, extraArgs ...string) *reloadRun {
	r := &reloadRun{t: t, cfg: writeConfig(t, "gw.yaml", head), stderr: &mcptest.SyncBuffer{}, done: make(chan int, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() {
		r.done <- run(ctx, append([]string{"run", "-c", r.cfg}, extraArgs...), &bytes.Buffer{}, r.stderr)
	}()
	r.eventually("NATS", func() bool {
		var err error
		r.nc, err = nats.Connect(fmt.Sprintf("nats://127.0.0.1:%d", port))
		return err == nil
	})
	return r
}

func (r *reloadRun) eventually(what string, ok func() bool) {
	r.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			r.t.Fatalf("timed out waiting for %s\n%s", what, r.stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// rewrite replaces the file atomically, as editors and deploy tools do.
func (r *reloadRun) rewrite(body string) {
	r.t.Helper()
	exe, _ := os.Executable()
	tmp := r.cfg + ".tmp"
	if err := os.WriteFile(tmp, []byte(strings.ReplaceAll(body, "EXE", exe)), 0o644); err != nil {
		r.t.Fatal(err)
	}
	if err := os.Rename(tmp, r.cfg); err != nil {
		r.t.Fatal(err)
	}
}

// callOK reports whether tool answers a call with its text echoed.
func (r *reloadRun) callOK(tool string) bool {
	msg, err := r.nc.Request("mcp.v1.req.alice.tools.call."+tool, []byte(`{"name":"`+tool+`","arguments":{"text":"x"}}`), 2*time.Second)
	return err == nil && strings.Contains(string(msg.Data), `"x"`)
}

type reloadStatus struct {
	Name string  `json:"name"`
	Pid  float64 `json:"pid"`
	Era  string  `json:"era"`
}

// server returns a server's status from servers.list, zero if none.
func (r *reloadRun) server(name string) reloadStatus {
	msg, err := r.nc.Request("mcp.v1.req.alice.servers.list", []byte(`{}`), 2*time.Second)
	if err != nil {
		return reloadStatus{}
	}
	var res struct {
		Servers []reloadStatus `json:"servers"`
	}
	_ = json.Unmarshal(msg.Data, &res)
	for _, s := range res.Servers {
		if s.Name == name {
			return s
		}
	}
	return reloadStatus{}
}

// stop ends gw run and checks it exits 0.
func (r *reloadRun) stop() {
	r.t.Helper()
	r.nc.Close()
	r.cancel()
	select {
	case code := <-r.done:
		if code != 0 {
			r.t.Errorf("gw run exited %d", code)
		}
	case <-time.After(30 * time.Second):
		r.t.Fatal("gw run did not stop")
	}
}

// TestRunReloadsConfig edits the configuration of a running `gw run`: an
// added server starts, a removed one stops, an unchanged one keeps running.
func TestRunReloadsConfig(t *testing.T) {
	head, port := reloadHead(t, "reload-gw")
	beta := `
  beta:
    command: EXE
    env: {MCPTEST_SERVER: "1", MCPTEST_ERA: modern}
`
	r := startReloadRun(t, head, port)
	defer r.stop()
	r.eventually("alpha__echo", func() bool { return r.callOK("alpha__echo") })
	pid := r.server("alpha").Pid

	r.rewrite(head + beta)
	r.eventually("beta__echo after adding beta", func() bool { return r.callOK("beta__echo") })

	r.rewrite(head)
	r.eventually("beta__echo gone after removing beta", func() bool {
		_, err := r.nc.Request("mcp.v1.req.alice.tools.call.beta__echo", []byte(`{"name":"beta__echo","arguments":{}}`), time.Second)
		return err != nil
	})
	r.rewrite(head + "  broken: [\n") // refused: the running configuration stays
	time.Sleep(500 * time.Millisecond)
	if !r.callOK("alpha__echo") || r.server("alpha").Pid != pid || pid == 0 {
		t.Errorf("alpha was disturbed by the reloads (pid %v, now %v)", pid, r.server("alpha").Pid)
	}
	if !strings.Contains(r.stderr.String(), "configuration change refused") {
		t.Errorf("a broken file was not refused with a log line:\n%s", r.stderr.String())
	}
}

// TestRunReloadKeepsOverrides starts `gw run` with part of a server's
// configuration given by --set and by a GW_ variable, then edits an
// unrelated part of the file: the reload is built from the same layers as
// the start, so the server is not restarted and keeps both settings.
func TestRunReloadKeepsOverrides(t *testing.T) {
	t.Setenv("GW_SERVERS__alpha__ENV__MCPTEST_ERA", "modern")
	head, port := reloadHead(t, "reload-set-gw")
	r := startReloadRun(t, head, port, "--set", "servers.alpha.env.MCPTEST_TOOLS=search")
	defer r.stop()
	r.eventually("alpha__search (from --set)", func() bool { return r.callOK("alpha__search") })
	before := r.server("alpha")
	if before.Pid == 0 || before.Era != "modern" {
		t.Fatalf("alpha before the edit: %+v (want a pid and the modern era from GW_)", before)
	}
	r.rewrite(head + `
  beta:
    command: EXE
    env: {MCPTEST_SERVER: "1"}
`)
	r.eventually("beta__echo after the edit", func() bool { return r.callOK("beta__echo") })
	time.Sleep(300 * time.Millisecond) // a wrongful restart would have begun by now
	if after := r.server("alpha"); after != before {
		t.Errorf("alpha changed on an unrelated edit: before %+v, after %+v", before, after)
	}
	if !r.callOK("alpha__search") {
		t.Errorf("alpha lost its --set tools after the reload\n%s", r.stderr.String())
	}
	if strings.Contains(r.stderr.String(), `server restarted`) {
		t.Errorf("a server was restarted:\n%s", r.stderr.String())
	}
}
