package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"testing"

	"github.com/gwmcp/gw/gateway"
	"github.com/gwmcp/gw/internal/config"
)

// first-come gives a contested name to the first server in the
// configuration's order, not the first by name: "zeta" is listed before
// "alpha" and both offer "search". An explicit priority wins over the
// file's order.
func TestFirstComeFollowsConfigOrder(t *testing.T) {
	const yamlServers = `
policies: {collision: {module: first-come}}
servers:
  zeta:
    command: EXE
    env: {MCPTEST_SERVER: "1", MCPTEST_TOOLS: search}
  alpha:
    command: EXE
    env: {MCPTEST_SERVER: "1", MCPTEST_TOOLS: search}
`
	const jsonServers = `{
  "mcpServers": {
    "zeta": {"command": "EXE", "env": {"MCPTEST_SERVER": "1", "MCPTEST_TOOLS": "search"}},
    "alpha": {"command": "EXE", "env": {"MCPTEST_SERVER": "1", "MCPTEST_TOOLS": "search"}}
  },
  "policies": {"collision": {"module": "first-come"}}
}`
	tests := []struct {
		name, file, body string
		set              []string
		want             string
	}{
		{"yaml", "gw.yaml", yamlServers, nil, "zeta"},
		{"json", "claude_desktop_config.json", jsonServers, nil, "zeta"},
		{"priority over file order", "gw.yaml", yamlServers, []string{"--set", "servers.alpha.priority=1"}, "alpha"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := writeConfig(t, tt.file, tt.body)
			code, stdout, stderr := runGW(t, append([]string{"tools", "-c", cfg, "--json"}, tt.set...)...)
			if code != 0 {
				t.Fatalf("exit %d\n%s", code, stderr)
			}
			var rows []toolRow
			if err := json.Unmarshal([]byte(stdout), &rows); err != nil {
				t.Fatal(err)
			}
			i := slices.IndexFunc(rows, func(r toolRow) bool { return r.Name == "search" })
			if i < 0 {
				t.Fatalf("no tool named search:\n%s", stdout)
			}
			if rows[i].Server != tt.want {
				t.Errorf("search belongs to %q, want %q", rows[i].Server, tt.want)
			}
		})
	}
}

// On a reload, added servers go after the running ones unless their
// priority says otherwise; a restarted server keeps its place unless its
// priority changed.
func TestReloadKeepsServerOrder(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	load := func(body string) *config.Config {
		t.Helper()
		cfg, err := config.Load(config.Options{File: writeConfig(t, "gw.yaml", body), Environ: []string{}})
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	g, err := gateway.New(gatewayOptions(load(`
servers:
  zeta: {command: x}
  alpha: {command: x}
  mid: {command: x}
`), logger)) // not started: no process runs
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	order := func() []string {
		var names []string
		for _, s := range g.ServerSpecs() {
			names = append(names, s.Name)
		}
		return names
	}
	steps := []struct{ body, want string }{
		{"servers:\n  zeta: {command: x}\n  alpha: {command: x}\n  mid: {command: x}\n", "[zeta alpha mid]"},
		// Added at the top of the file, but after the running servers;
		// alpha restarts with new args and keeps its place.
		{"servers:\n  beta: {command: x}\n  zeta: {command: x}\n  alpha: {command: y}\n  mid: {command: x}\n", "[zeta alpha mid beta]"},
		// A priority moves a new server ahead, and a running one.
		{"servers:\n  beta: {command: x}\n  zeta: {command: x}\n  alpha: {command: y}\n  mid: {command: x, priority: 2}\n  top: {command: x, priority: 5}\n", "[top mid zeta alpha beta]"},
		// Back to priority 0: after the others of priority 0.
		{"servers:\n  beta: {command: x}\n  zeta: {command: x}\n  alpha: {command: y}\n  mid: {command: x}\n  top: {command: x, priority: 5}\n", "[top zeta alpha beta mid]"},
	}
	for i, st := range steps {
		if err := applyServers(g, gatewayOptions(load(st.body), logger).Servers, logger); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if got := order(); fmt.Sprint(got) != st.want {
			t.Errorf("step %d: order %v, want %s", i, got, st.want)
		}
	}
}
