package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gwmcp/gw/internal/mcptest"
	"github.com/gwmcp/gw/policies"
	"github.com/gwmcp/gw/transport/natsface"
)

// TestAuditStream: with an authorize policy, gw run publishes every
// decision on mcp.v1.evt.audit.{principal} and keeps it in MCP_AUDIT, with
// the gateway, the caller, the tool, the reason and the policy module's
// digest, and without the arguments; gw audit reads them back, filtered.
func TestAuditStream(t *testing.T) {
	port := freePort(t)
	cfg := writeConfig(t, "gw.yaml", runHead(t, "audited", port)+`  authorize: {module: allowlist, config: {rules: [{callers: [alice], tools: ["s__*"]}]}}
servers:
  s:
    command: EXE
    env: {MCPTEST_SERVER: "1"}
`)
	stderr := runInBackground(t, cfg)
	nc := connectWhenUp(t, port, stderr)
	live, err := nc.SubscribeSync("mcp.v1.evt.audit.>")
	if err != nil {
		t.Fatal(err)
	}
	waitForTool(t, nc, "s__echo", stderr) // alice's calls: allowed
	m, err := nc.Request("mcp.v1.req.bob.tools.call.s__echo", []byte(`{"name":"s__echo","arguments":{"text":"bob-secret"}}`), 10*time.Second)
	if err != nil || !strings.Contains(string(m.Data), "denied") {
		t.Fatalf("bob's call: %v %s; want a denial", err, m.Data)
	}
	digest := digestOf(t, "allowlist")

	// Live: bob's denial on his own subject.
	for {
		msg, err := live.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatalf("no audit record of bob's call: %v\n%s", err, stderr.String())
		}
		if msg.Subject != "mcp.v1.evt.audit.bob" {
			continue
		}
		var r auditRecord
		if err := json.Unmarshal(msg.Data, &r); err != nil {
			t.Fatal(err)
		}
		if r.Gateway != "audited" || r.Principal != "bob" || r.Decision != "deny" || r.Tool != "s__echo" ||
			r.Server != "s" || r.ServerTool != "echo" || r.Reason == "" || r.Policy != digest || time.Since(r.Time) > time.Minute {
			t.Errorf("bob's record: %s", msg.Data)
		}
		if strings.Contains(string(msg.Data), "bob-secret") {
			t.Errorf("the record has the arguments: %s", msg.Data)
		}
		break
	}

	// Kept: gw audit reads them from the stream, through the running gw's NATS.
	records := func(args ...string) []auditRecord {
		t.Helper()
		code, stdout, errOut := runGW(t, append([]string{"audit", "-c", cfg, "--json"}, args...)...)
		if code != 0 {
			t.Fatalf("gw audit %v: exit %d\n%s", args, code, errOut)
		}
		var rs []auditRecord
		for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
			var r auditRecord
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				t.Fatalf("gw audit %v: line %q: %v", args, line, err)
			}
			rs = append(rs, r)
		}
		return rs
	}
	all := records()
	if len(all) < 2 || all[0].Principal != "alice" || all[0].Decision != "allow" || all[len(all)-1].Principal != "bob" {
		t.Errorf("gw audit: %+v; want alice's allowed calls, then bob's denial", all)
	}
	if denied := records("--decision", "deny"); len(denied) != 1 || denied[0].Principal != "bob" || denied[0].Policy != digest {
		t.Errorf("gw audit --decision deny: %+v", denied)
	}
	if alice := records("--principal", "alice", "-n", "1"); len(alice) != 1 || alice[0].Principal != "alice" {
		t.Errorf("gw audit --principal alice -n 1: %+v", alice)
	}
	code, table, _ := runGW(t, "audit", "-c", cfg, "--principal", "bob")
	t.Logf("gw audit --principal bob:\n%s", table)
	if code != 0 || !strings.Contains(table, "PRINCIPAL") || !strings.Contains(table, "deny") || !strings.Contains(table, digest[:19]) {
		t.Errorf("gw audit table: exit %d\n%s", code, table)
	}
	if code, _, errOut := runGW(t, "audit", "-c", cfg, "--decision", "maybe"); code != 2 || !strings.Contains(errOut, "want allow or deny") {
		t.Errorf("--decision maybe: exit %d, %s", code, errOut)
	}

	// Followed: the past denial, then a new one as it happens, until interrupted.
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut mcptest.SyncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"audit", "-c", cfg, "-f", "--decision", "deny", "--json"}, &out, &errOut)
	}()
	eventually(t, "the past denial printed", func() bool { return strings.Count(out.String(), `"deny"`) == 1 })
	if _, err := nc.Request("mcp.v1.req.carol.tools.call.s__echo", []byte(`{"name":"s__echo","arguments":{}}`), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	eventually(t, "carol's denial followed", func() bool { return strings.Contains(out.String(), `"principal":"carol"`) })
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("gw audit -f: exit %d\n%s", code, errOut.String())
	}
}

// TestFollowersLetGWRunStart: gw audit -f and gw status --watch started
// before any gw run, on the embedded store, do not keep it: they say they
// wait, a gw run then starts on that store, and both follow it (the
// denial it records, the gateway it publishes) until interrupted.
func TestFollowersLetGWRunStart(t *testing.T) {
	port := freePort(t)
	cfg := writeConfig(t, "gw.yaml", runHead(t, "late", port)+`  authorize: {module: allowlist, config: {rules: [{callers: [alice], tools: ["s__*"]}]}}
servers:
  s:
    command: EXE
    env: {MCPTEST_SERVER: "1"}
`)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type follower struct {
		out, errOut mcptest.SyncBuffer
		done        chan int
	}
	follow := func(args ...string) *follower {
		f := &follower{done: make(chan int, 1)}
		go func() { f.done <- run(ctx, args, &f.out, &f.errOut) }()
		return f
	}
	audit := follow("audit", "-c", cfg, "-f", "--json")
	status := follow("status", "-c", cfg, "--watch", "--json", "--interval", "100ms")
	for name, f := range map[string]*follower{"gw audit": audit, "gw status": status} {
		eventually(t, name+" waiting for a gw run", func() bool {
			return strings.Contains(f.errOut.String(), "waiting for one on nats://127.0.0.1:")
		})
	}

	stderr := runInBackground(t, cfg) // fails to start if a follower still held the store
	nc := connectWhenUp(t, port, stderr)
	waitForTool(t, nc, "s__echo", stderr)
	if _, err := nc.Request("mcp.v1.req.bob.tools.call.s__echo", []byte(`{"name":"s__echo","arguments":{}}`), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	eventually(t, "bob's denial followed", func() bool {
		return strings.Contains(audit.out.String(), `"principal":"bob"`) && strings.Contains(audit.out.String(), `"deny"`)
	})
	eventually(t, "the late gateway watched", func() bool { return strings.Contains(status.out.String(), `"late"`) })
	cancel()
	for name, f := range map[string]*follower{"gw audit": audit, "gw status": status} {
		if code := <-f.done; code != 0 {
			t.Errorf("%s: exit %d\n%s", name, code, f.errOut.String())
		}
	}
}

// TestSwapRepublishesGatewayStatus: a hot swap of a policy file publishes
// the gateway status again, naming the new module's digest, so the status
// page and gw status show the version in use without waiting for a call.
func TestSwapRepublishesGatewayStatus(t *testing.T) {
	port := freePort(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "authz.wasm")
	install := func(module string) string {
		t.Helper()
		wasm, ok := policies.Builtin(module)
		if !ok {
			t.Fatalf("no builtin %s", module)
		}
		if err := os.WriteFile(path+".tmp", wasm, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(path+".tmp", path); err != nil { // atomic, as deploy tools do
			t.Fatal(err)
		}
		return digestOf(t, module)
	}
	first := install("allow-all")
	cfg := writeConfig(t, "gw.yaml", runHead(t, "swapper", port)+`  watch: 50ms
  authorize: {module: `+path+`}
servers:
  s:
    command: EXE
    env: {MCPTEST_SERVER: "1"}
`)
	stderr := runInBackground(t, cfg)
	nc := connectWhenUp(t, port, stderr)
	statuses, err := nc.SubscribeSync("mcp.v1.evt.gw.swapper.status")
	if err != nil {
		t.Fatal(err)
	}
	waitForTool(t, nc, "s__echo", stderr)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	// The status of the start, from the stream (it may predate the subscription).
	stream, err := js.Stream(context.Background(), natsface.DefaultEventStream)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := stream.GetLastMsgForSubject(context.Background(), "mcp.v1.evt.gw.swapper.status")
	if err != nil {
		t.Fatalf("the start's status: %v", err)
	}
	if !strings.Contains(string(msg.Data), `"authorize":"`+first+`"`) {
		t.Fatalf("the start's status %s; want %s", msg.Data, first)
	}
	second := install("read-only")
	deadline := time.After(20 * time.Second)
	for {
		select {
		case <-deadline:
			t.Fatalf("no gateway status naming %s after the swap\n%s", second, stderr.String())
		default:
		}
		m, err := statuses.NextMsg(time.Second)
		if err == nil && strings.Contains(string(m.Data), `"authorize":"`+second+`"`) {
			return
		}
	}
}
