package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gwmcp/gw/internal/mcptest"
)

const benchConfig = `
gateway: {config_watch: 0s, start_timeout: 30s}
servers:
  s:
    command: EXE
    env: {MCPTEST_SERVER: "1"}
`

// parseMicros reads the table's 123µs, 1.25ms, 2.00s.
func parseMicros(t *testing.T, s string) float64 {
	t.Helper()
	for _, u := range []struct {
		suffix string
		scale  float64
	}{{"µs", 1}, {"ms", 1e3}, {"s", 1e6}} {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("latency %q: %v", s, err)
			}
			return f * u.scale
		}
	}
	t.Fatalf("latency %q has no unit", s)
	return 0
}

func TestBenchTable(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	cfg := writeConfig(t, "gw.yaml", benchConfig)
	code, stdout, stderr := runGW(t, "bench", "-c", cfg, "--tool", "echo", "--args", `{"text": "bench"}`,
		"--duration", "300ms", "--concurrency", "1,4")
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if !strings.HasPrefix(stdout, "server s, legacy era, tool echo (gw: s__echo), arguments {\"text\":\"bench\"}") {
		t.Errorf("header:\n%s", stdout)
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(stdout, "\n") {
		f := strings.Fields(line)
		if len(f) != 8 || f[0] == "PATH" {
			continue
		}
		seen[f[0]+"/"+f[1]] = true
		perSec, _ := strconv.ParseFloat(f[2], 64)
		p50, p99 := parseMicros(t, f[3]), parseMicros(t, f[4])
		if perSec <= 0 || p50 <= 0 || p50 > p99 || f[5] != "0" {
			t.Errorf("row %q: calls/s %v, p50 %v µs, p99 %v µs, errors %s", line, perSec, p50, p99, f[5])
		}
		if f[0] == "direct" && (f[6] != "1.00×" || f[7] != "1.00×") {
			t.Errorf("direct's ratios: %q", line)
		}
		if !strings.HasSuffix(f[6], "×") || !strings.HasSuffix(f[7], "×") {
			t.Errorf("ratios: %q", line)
		}
	}
	for _, path := range benchPathNames {
		for _, c := range []string{"1", "4"} {
			if !seen[path+"/"+c] {
				t.Errorf("no row for %s at %s\n%s", path, c, stdout)
			}
		}
	}
}

// A modern server: gw's faces are called in its era too.
func TestBenchJSON(t *testing.T) {
	cfg := writeConfig(t, "gw.yaml", strings.Replace(benchConfig, `MCPTEST_SERVER: "1"`, `MCPTEST_SERVER: "1", MCPTEST_ERA: modern`, 1))
	// The server's name of the tool or gw's: the same tool.
	code, stdout, stderr := runGW(t, "bench", "-c", cfg, "--tool", "s__echo", "--args", `{"text":"x"}`,
		"--duration", "200ms", "--concurrency", "2", "--paths", "http,stdio,direct", "--json")
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	var rep benchReport
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("--json: %v\n%s", err, stdout)
	}
	if rep.Server != "s" || rep.Tool != "echo" || rep.Exposed != "s__echo" || rep.Era != "modern" || len(rep.Rows) != 3 {
		t.Fatalf("report %+v", rep)
	}
	for i, want := range []string{"direct", "stdio", "http"} {
		r := rep.Rows[i]
		if r.Path != want || r.Concurrency != 2 || r.Calls == 0 || r.Errors != 0 || r.CallsPerSec <= 0 || r.P50Micros > r.P99Micros ||
			r.P50Ratio == nil || r.ThroughputRatio == nil {
			t.Errorf("row %d: %+v", i, r)
		}
	}
	if *rep.Rows[0].P50Ratio != 1 {
		t.Errorf("direct's p50 ratio %v", *rep.Rows[0].P50Ratio)
	}

	// Without direct there are no ratios.
	code, stdout, stderr = runGW(t, "bench", "-c", cfg, "--server", "s", "--tool", "s__echo", "--args", `{"text":"x"}`,
		"--duration", "100ms", "--concurrency", "1", "--paths", "gateway", "--json")
	rep = benchReport{}
	if err := json.Unmarshal([]byte(stdout), &rep); code != 0 || err != nil || len(rep.Rows) != 1 || rep.Era != "modern" ||
		rep.Rows[0].Calls == 0 || rep.Rows[0].P50Ratio != nil {
		t.Errorf("exit %d, %v, %+v\nstderr:\n%s", code, err, rep, stderr)
	}
}

// TestBenchUsageErrors: a mistake in the arguments is exit status 2, and
// leaves nothing running (the direct client, opened to choose the tool,
// is closed).
func TestBenchUsageErrors(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	cfg := writeConfig(t, "gw.yaml", benchConfig)
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown tool", []string{"--tool", "nope"}, `server s has no tool "nope" (its tools: echo, slow,`},
		{"required arguments", []string{"--tool", "echo"}, "tool echo of server s requires arguments (text): give them with --args"},
		{"unknown server", []string{"--server", "x"}, `no enabled server "x" (the servers: s)`},
		{"bad arguments", []string{"--tool", "echo", "--args", "[1]"}, "--args must be a JSON object"},
		{"bad concurrency", []string{"--concurrency", "1,0"}, "--concurrency wants numbers"},
		{"bad path", []string{"--paths", "direct,carrier-pigeon"}, `unknown path "carrier-pigeon"`},
		{"bad duration", []string{"--duration", "-1s"}, "--duration must be positive"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runGW(t, append([]string{"bench", "-c", cfg}, tt.args...)...)
			if code != 2 || stdout != "" || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit 2 and %q", code, stdout, stderr, tt.want)
			}
		})
	}
}

// A tool that fails is timed all the same: its errors are counted and the
// first one shown, the tool's own on every path.
func TestBenchCountsErrors(t *testing.T) {
	cfg := writeConfig(t, "gw.yaml", benchConfig)
	for _, tool := range []string{"error_tool", "is_error"} {
		code, stdout, stderr := runGW(t, "bench", "-c", cfg, "--tool", tool, "--duration", "200ms",
			"--concurrency", "1", "--paths", "direct,gateway,nats,http", "--json")
		var rep benchReport
		if err := json.Unmarshal([]byte(stdout), &rep); code != 0 || err != nil || len(rep.Rows) != 4 {
			t.Fatalf("%s: exit %d, %v\nstdout:\n%s\nstderr:\n%s", tool, code, err, stdout, stderr)
		}
		for _, r := range rep.Rows {
			if r.Errors == 0 || r.Calls != 0 || !strings.Contains(r.FirstError, tool+" failed on purpose") {
				t.Errorf("%s: row %+v", tool, r)
			}
		}
	}
	// A result over NATS's payload limit comes claim-checked: the NATS path
	// fetches it, so it pays for it and sees its isError. (Such a call takes
	// a few hundred ms under the race detector: a window that fits several.)
	code, stdout, stderr := runGW(t, "bench", "-c", cfg, "--tool", "huge", "--args", `{"bytes":1500000,"error":true}`,
		"--duration", "2s", "--concurrency", "1", "--paths", "direct,nats", "--json")
	var rep benchReport
	if err := json.Unmarshal([]byte(stdout), &rep); code != 0 || err != nil || len(rep.Rows) != 2 {
		t.Fatalf("huge: exit %d, %v\nstdout:\n%s\nstderr:\n%s", code, err, stdout, stderr)
	}
	for _, r := range rep.Rows {
		if r.Errors == 0 || r.Calls != 0 || !strings.Contains(r.FirstError, "isError result: xxx") {
			t.Errorf("huge: row %+v\nstderr:\n%s", r, stderr)
		}
	}
	code, stdout, _ = runGW(t, "bench", "-c", cfg, "--tool", "is_error", "--duration", "100ms", "--concurrency", "1", "--paths", "direct")
	if code != 0 || !strings.Contains(stdout, "direct, 1 at once: ") || !strings.Contains(stdout, "errors; the first: isError result: is_error failed on purpose") {
		t.Errorf("exit %d, table:\n%s", code, stdout)
	}
}

// A path that does not start is reported in the table; the others run.
func TestBenchPathFails(t *testing.T) {
	saved := selfEnv
	selfEnv = maps.Clone(saved)
	selfEnv["GW_GATEWAY__CALL_TIMEOUT"] = "soon" // gw stdio cannot load its configuration
	t.Cleanup(func() { selfEnv = saved })
	cfg := writeConfig(t, "gw.yaml", benchConfig)
	start := time.Now()
	code, stdout, stderr := runGW(t, "bench", "-c", cfg, "--tool", "echo", "--args", `{"text":"x"}`, "--duration", "100ms",
		"--concurrency", "1", "--paths", "gateway,stdio")
	if code != 1 || !strings.Contains(stdout, "stdio    -") || !strings.Contains(stdout, "stdio did not start: gw stdio: ") ||
		!strings.Contains(stdout, "its stderr ends: gw: config: ") || !strings.Contains(stdout, "gateway.call_timeout") ||
		!strings.Contains(stdout, "\ngateway  1 ") {
		t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("took %s", d)
	}

	// A server that starts nowhere has no tools to call.
	broken := writeConfig(t, "broken.yaml", "servers:\n  s: {command: EXE, env: {MCPTEST_SERVER: \"1\", MCPTEST_CRASH_ON_START: \"1\"}}\n")
	code, stdout, stderr = runGW(t, "bench", "-c", broken, "--tool", "echo", "--args", `{"text":"x"}`)
	if code != 1 || stdout != "" || !strings.Contains(stderr, "server s started neither on its own (") ||
		!strings.Contains(stderr, "crashing on start as asked") {
		t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
}

// TestToolError: gw bench counts a result as a tool error as the metrics
// and spans do (jsonrpc.IsToolError), and shows its first text.
func TestToolError(t *testing.T) {
	for _, tt := range []struct{ res, want string }{
		{`{"content":[{"type":"text","text":"no\nluck"}],"isError":true}`, "isError result: no luck"},
		{`{"content":[{"type":"text","text":"escaped"}],"\u0069sError":true}`, "isError result: escaped"},
		{`{"content":[],"isError":true}`, "isError result: (no text)"},
		{`{"content":[{"type":"text","text":"x","isError":true}]}`, ""},
		{`{"content":[],"isError":false}`, ""},
		{`{"content":[],"IsError":true}`, ""},
	} {
		err := toolError(json.RawMessage(tt.res))
		if got := fmt.Sprint(err); err == nil && tt.want != "" || err != nil && got != tt.want {
			t.Errorf("toolError(%s) = %v, want %q", tt.res, err, tt.want)
		}
	}
}

func TestPickTool(t *testing.T) {
	tools := func(js string) []toolDesc {
		var ts []toolDesc
		if err := json.Unmarshal([]byte(js), &ts); err != nil {
			t.Fatal(err)
		}
		return ts
	}
	for _, tt := range []struct {
		name, tools, want string
	}{
		{"first without required arguments", `[{"name":"a","inputSchema":{"required":["x"]}},{"name":"b","inputSchema":{}},{"name":"c"}]`, "b"},
		{"read-only first", `[{"name":"a"},{"name":"b","annotations":{"readOnlyHint":true}}]`, "b"},
		{"never destructive", `[{"name":"a","annotations":{"destructiveHint":true}},{"name":"b","annotations":{"readOnlyHint":false}}]`, "b"},
		{"none", `[{"name":"a","annotations":{"destructiveHint":true}},{"name":"b","inputSchema":{"required":["x"]}}]`, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := pickTool("s", tools(tt.tools), "")
			if tt.want == "" {
				if err == nil || !strings.Contains(err.Error(), "no tool of server s can be called without arguments") {
					t.Fatalf("got %q, %v", got.Name, err)
				}
				return
			}
			if err != nil || got.Name != tt.want {
				t.Fatalf("got %q, %v; want %q", got.Name, err, tt.want)
			}
		})
	}
}

// Ctrl-C (the end of run's context) stops the run under way at once; the
// runs that finished are printed.
func TestBenchInterrupted(t *testing.T) {
	cfg := writeConfig(t, "gw.yaml", benchConfig)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr mcptest.SyncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"bench", "-c", cfg, "--tool", "echo", "--args", `{"text":"x"}`, "--duration", "1m",
			"--paths", "direct,gateway", "--json"}, &stdout, &stderr)
	}()
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(stderr.String(), "direct, 1 at once"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the first run never started\n%s", stderr.String())
		}
	}
	cancel()
	select {
	case code := <-done:
		var rep benchReport
		if err := json.Unmarshal([]byte(stdout.String()), &rep); code != 1 || err != nil || !rep.Interrupted || len(rep.Rows) != 0 ||
			!strings.Contains(stderr.String(), "gw bench: interrupted") {
			t.Errorf("exit %d, %v, %+v\nstderr:\n%s", code, err, rep, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("gw bench did not stop")
	}
}
