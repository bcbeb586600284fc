package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gwmcp/gw/internal/mcptest"
	"github.com/nats-io/nats.go"
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

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

// TestRunReloadsConfig edits the configuration of a running `gw run`: an
// added server starts, a removed one stops, an unchanged one keeps running.
func TestRunReloadsConfig(t *testing.T) {
	port := freePort(t)
	head := fmt.Sprintf(`
gateway: {config_watch: 100ms}
nats:
  gateway: reload-gw
  embedded: {port: %d, store_dir: %s}
policies:
  cache_dir: %s
servers:
  alpha:
    command: EXE
    env: {MCPTEST_SERVER: "1"}
`, port, t.TempDir(), filepath.Join(os.TempDir(), "gw-test-wasm-cache"))
	beta := `
  beta:
    command: EXE
    env: {MCPTEST_SERVER: "1", MCPTEST_ERA: modern}
`
	cfg := writeConfig(t, "gw.yaml", head)
	rewrite := func(body string) {
		t.Helper()
		exe, _ := os.Executable()
		tmp := cfg + ".tmp"
		if err := os.WriteFile(tmp, []byte(strings.ReplaceAll(body, "EXE", exe)), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, cfg); err != nil {
			t.Fatal(err)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr mcptest.SyncBuffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"run", "-c", cfg}, &bytes.Buffer{}, &stderr) }()

	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	eventually := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s\n%s", what, stderr.String())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	var nc *nats.Conn
	eventually("NATS", func() bool {
		var err error
		nc, err = nats.Connect(url)
		return err == nil
	})
	defer nc.Close()
	callOK := func(tool string) bool {
		msg, err := nc.Request("mcp.v1.req.alice.tools.call."+tool, []byte(`{"name":"`+tool+`","arguments":{"text":"x"}}`), 2*time.Second)
		return err == nil && strings.Contains(string(msg.Data), `"x"`)
	}
	alphaPid := func() float64 {
		msg, err := nc.Request("mcp.v1.req.alice.servers.list", []byte(`{}`), 2*time.Second)
		if err != nil {
			return 0
		}
		var r struct {
			Servers []struct {
				Name string  `json:"name"`
				Pid  float64 `json:"pid"`
			} `json:"servers"`
		}
		_ = json.Unmarshal(msg.Data, &r)
		for _, s := range r.Servers {
			if s.Name == "alpha" {
				return s.Pid
			}
		}
		return 0
	}
	eventually("alpha__echo", func() bool { return callOK("alpha__echo") })
	pid := alphaPid()

	rewrite(head + beta)
	eventually("beta__echo after adding beta", func() bool { return callOK("beta__echo") })

	rewrite(head)
	eventually("beta__echo gone after removing beta", func() bool {
		_, err := nc.Request("mcp.v1.req.alice.tools.call.beta__echo", []byte(`{"name":"beta__echo","arguments":{}}`), time.Second)
		return err != nil
	})
	rewrite(head + "  broken: [\n") // refused: the running configuration stays
	time.Sleep(500 * time.Millisecond)
	if !callOK("alpha__echo") || alphaPid() != pid || pid == 0 {
		t.Errorf("alpha was disturbed by the reloads (pid %v, now %v)", pid, alphaPid())
	}
	if !strings.Contains(stderr.String(), "configuration change refused") {
		t.Errorf("a broken file was not refused with a log line:\n%s", stderr.String())
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("gw run exited %d", code)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("gw run did not stop")
	}
}

// TestRunReloadKeepsOverrides starts `gw run` with part of a server's
// configuration given by --set and by a GW_ variable, then edits an
// unrelated part of the file: the reload is built from the same layers as
// the start, so the server is not restarted and keeps both settings.
func TestRunReloadKeepsOverrides(t *testing.T) {
	t.Setenv("GW_SERVERS__alpha__ENV__MCPTEST_ERA", "modern")
	port := freePort(t)
	head := fmt.Sprintf(`
gateway: {config_watch: 100ms}
nats:
  gateway: reload-set-gw
  embedded: {port: %d, store_dir: %s}
policies:
  cache_dir: %s
servers:
  alpha:
    command: EXE
    env: {MCPTEST_SERVER: "1"}
`, port, t.TempDir(), filepath.Join(os.TempDir(), "gw-test-wasm-cache"))
	cfg := writeConfig(t, "gw.yaml", head)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr mcptest.SyncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"run", "-c", cfg, "--set", "servers.alpha.env.MCPTEST_TOOLS=search"}, &bytes.Buffer{}, &stderr)
	}()
	eventually := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s\n%s", what, stderr.String())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	var nc *nats.Conn
	eventually("NATS", func() bool {
		var err error
		nc, err = nats.Connect(fmt.Sprintf("nats://127.0.0.1:%d", port))
		return err == nil
	})
	defer nc.Close()
	callOK := func(tool string) bool {
		msg, err := nc.Request("mcp.v1.req.alice.tools.call."+tool, []byte(`{"name":"`+tool+`","arguments":{"text":"x"}}`), 2*time.Second)
		return err == nil && !strings.Contains(string(msg.Data), `"error"`)
	}
	type status struct {
		Name string  `json:"name"`
		Pid  float64 `json:"pid"`
		Era  string  `json:"era"`
	}
	alpha := func() status {
		msg, err := nc.Request("mcp.v1.req.alice.servers.list", []byte(`{}`), 2*time.Second)
		if err != nil {
			return status{}
		}
		var r struct{ Servers []status }
		_ = json.Unmarshal(msg.Data, &r)
		for _, s := range r.Servers {
			if s.Name == "alpha" {
				return s
			}
		}
		return status{}
	}
	eventually("alpha__search (from --set)", func() bool { return callOK("alpha__search") })
	before := alpha()
	if before.Pid == 0 || before.Era != "modern" {
		t.Fatalf("alpha before the edit: %+v (want a pid and the modern era from GW_)", before)
	}

	exe, _ := os.Executable()
	edited := strings.ReplaceAll(head+`
  beta:
    command: EXE
    env: {MCPTEST_SERVER: "1"}
`, "EXE", exe)
	if err := os.WriteFile(cfg+".tmp", []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(cfg+".tmp", cfg); err != nil {
		t.Fatal(err)
	}
	eventually("beta__echo after the edit", func() bool { return callOK("beta__echo") })
	time.Sleep(300 * time.Millisecond) // a wrongful restart would have begun by now
	if after := alpha(); after != before {
		t.Errorf("alpha changed on an unrelated edit: before %+v, after %+v", before, after)
	}
	if !callOK("alpha__search") {
		t.Errorf("alpha lost its --set tools after the reload\n%s", stderr.String())
	}
	if strings.Contains(stderr.String(), `server restarted`) {
		t.Errorf("a server was restarted:\n%s", stderr.String())
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("gw run exited %d", code)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("gw run did not stop")
	}
}
