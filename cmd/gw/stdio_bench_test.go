package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gwmcp/gw/internal/rpcclient"
	"github.com/gwmcp/gw/transport/stdio"
)

// BenchmarkMCPFaces is a tools/call of echo from an MCP client, one at a
// time, both eras, straight to an mcptest server over stdio (the floor) and
// through each intermediary in front of the same server: gw stdio and the
// Go SDK proxy over stdio (sdkproxy_test.go); gw run's Streamable HTTP face
// and the Go SDK proxy's; mcp-hub (legacy only: its /mcp is HTTP+SSE). Every
// intermediary is a child process; besides the time per call it reports the
// median call (p50-µs) and the intermediary's own CPU per call (cpu-µs/call,
// /proc/PID/stat). See docs/BENCHMARKS.md.
func BenchmarkMCPFaces(b *testing.B) {
	for _, era := range []string{"legacy", "modern"} {
		for _, p := range facePaths {
			b.Run("era="+era+"/"+p.name, func(b *testing.B) {
				if why := p.unavailable(era); why != "" {
					b.Skip(why)
				}
				path := p.start(b, era)
				path.warm(b)
				lat := make([]time.Duration, 0, 1<<16)
				cpu0 := procCPU(b, path.pid)
				b.ResetTimer()
				for b.Loop() {
					start := time.Now()
					path.call(b)
					lat = append(lat, time.Since(start))
				}
				b.StopTimer()
				b.ReportMetric(p50(lat), "p50-µs")
				if path.pid != 0 {
					b.ReportMetric(float64(procCPU(b, path.pid)-cpu0)/float64(time.Microsecond)/float64(b.N), "cpu-µs/call")
				}
			})
		}
	}
}

// BenchmarkMCPFacesSideBySide starts every path of BenchmarkMCPFaces at once
// and calls each in turn, once per iteration, so that a shared machine's
// load falls on all of them alike: the ratios it reports (gw's p50 over the
// SDK proxy's, over mcp-hub's) compare calls made within microseconds of
// each other. A path that cannot run here (mcp-hub not installed, or the
// modern era) is left out and logged.
func BenchmarkMCPFacesSideBySide(b *testing.B) {
	for _, era := range []string{"legacy", "modern"} {
		b.Run("era="+era, func(b *testing.B) {
			var paths []*startedPath
			for _, p := range facePaths {
				if path := tryPath(b, p, era); path != nil {
					path.warm(b)
					paths = append(paths, path)
				}
			}
			lat := make([][]time.Duration, len(paths))
			cpu0 := make([]time.Duration, len(paths))
			for i, p := range paths {
				cpu0[i] = procCPU(b, p.pid)
			}
			b.ResetTimer()
			for b.Loop() {
				for i, p := range paths {
					start := time.Now()
					p.call(b)
					lat[i] = append(lat[i], time.Since(start))
				}
			}
			b.StopTimer()
			med := map[string]float64{}
			for i, p := range paths {
				med[p.name] = p50(lat[i])
				b.ReportMetric(med[p.name], p.name+"-p50-µs")
				if p.pid != 0 {
					b.ReportMetric(float64(procCPU(b, p.pid)-cpu0[i])/float64(time.Microsecond)/float64(b.N), p.name+"-cpu-µs/call")
				}
			}
			for _, r := range [][2]string{{"gw-stdio", "sdk-stdio"}, {"gw-http", "sdk-http"}, {"gw-http", "mcp-hub"}, {"gw-stdio", "mcp-hub"}} {
				if med[r[0]] > 0 && med[r[1]] > 0 {
					b.ReportMetric(med[r[0]]/med[r[1]], r[0]+"/"+r[1])
				}
			}
		})
	}
}

// TestMCPFacePaths makes a call of echo through every path BenchmarkMCPFaces
// measures, in both eras, and checks its answer: the Go SDK proxy forwards,
// mcp-hub runs with the mcptest server, and each path reaches the tool
// under the same name. mcp-hub is skipped where it is not installed
// (outside CI) and in the modern era.
func TestMCPFacePaths(t *testing.T) {
	for _, era := range []string{"legacy", "modern"} {
		for _, p := range facePaths {
			t.Run(era+"/"+p.name, func(t *testing.T) {
				if why := p.unavailable(era); why != "" {
					t.Skip(why)
				}
				path := p.start(t, era) // the first call, checked
				path.call(t)
				procCPU(t, path.pid) // the intermediary is alive and its stat reads
			})
		}
	}
}

// A facePath is one way for a benchmark client to reach the echo tool.
type facePath struct {
	name string
	// start makes the path ready in era (its first call made and checked)
	// and registers its teardown with b.Cleanup.
	start func(b testing.TB, era string) *startedPath
	// why says why the path cannot run here in era; nil: it always can.
	why func(era string) string
}

func (p facePath) unavailable(era string) string {
	if p.why == nil {
		return ""
	}
	return p.why(era)
}

// A startedPath makes one tools/call per call; pid is the intermediary
// whose CPU is counted (0 for the direct path).
type startedPath struct {
	name string
	call func(b testing.TB)
	pid  int
}

// warmCalls are made before the timer starts: Node's JIT (mcp-hub) and
// every process's first allocations are not what a long-running
// intermediary costs per call.
const warmCalls = 300

func (p *startedPath) warm(b testing.TB) {
	for range warmCalls {
		p.call(b)
	}
}

var facePaths = []facePath{
	{"direct", func(b testing.TB, era string) *startedPath {
		return stdioPath(b, era, "echo", stdio.Config{Name: "direct", Env: mcptestEnv(era)})
	}, nil},
	{"gw-stdio", func(b testing.TB, era string) *startedPath {
		cfg := gwBenchConfig(b, era, "")
		return stdioPath(b, era, "s__echo", stdio.Config{Name: "gw-stdio", Args: []string{"stdio", "-c", cfg},
			Env: map[string]string{envRunAsGW: "1"}})
	}, nil},
	{"sdk-stdio", func(b testing.TB, era string) *startedPath {
		return stdioPath(b, era, "s__echo", stdio.Config{Name: "sdk-stdio",
			Env: map[string]string{envSDKProxy: "stdio", envSDKProxyEra: era}})
	}, nil},
	{"gw-http", gwHTTPPath, nil},
	{"sdk-http", sdkHTTPPath, nil},
	{"mcp-hub", mcpHubPath, mcpHubUnavailable},
}

// tryPath starts p in era, or logs why it cannot run here and returns nil.
func tryPath(b testing.TB, p facePath, era string) *startedPath {
	if why := p.unavailable(era); why != "" {
		b.Logf("%s left out: %s", p.name, why)
		return nil
	}
	return p.start(b, era)
}

// mcptestEnv is the environment that makes this test binary an mcptest
// server in era.
func mcptestEnv(era string) map[string]string {
	return map[string]string{"MCPTEST_SERVER": "1", "MCPTEST_ERA": era}
}

// gwBenchConfig writes a gw config with one mcptest server s in era; extra
// is put before the servers section.
func gwBenchConfig(b testing.TB, era, extra string) string {
	exe := testExe(b)
	cfg := filepath.Join(b.TempDir(), "gw.yaml")
	body := fmt.Sprintf("gateway: {config_watch: 0s}\nlog: {level: error}\n%sservers:\n  s: {command: %s, env: {MCPTEST_SERVER: \"1\", MCPTEST_ERA: %s}}\n", extra, exe, era)
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		b.Fatal(err)
	}
	return cfg
}

func testExe(b testing.TB) string {
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	return exe
}

// stdioPath starts this test binary with cfg's arguments and environment,
// opens a session in era and calls tool with rpcclient's serial mode (on
// the caller's goroutine: no reader goroutine).
func stdioPath(b testing.TB, era, tool string, cfg stdio.Config) *startedPath {
	cfg.Command = testExe(b)
	cfg.StopGrace = 2 * time.Second
	cfg.Logger = slog.New(slog.DiscardHandler) // the child's own logs, on its stderr
	p, err := stdio.Start(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close() })
	ctx := context.Background()
	c, err := rpcclient.Open(ctx, p, rpcclient.Options{Era: rpcclient.Era(era), Serial: true})
	if err != nil {
		b.Fatalf("%s: %v\n%s", cfg.Name, err, strings.Join(p.StderrTail(), "\n"))
	}
	b.Cleanup(func() { c.Close() })
	params := json.RawMessage(`{"name":"` + tool + `","arguments":{"text":"benchmark"}}`)
	call := func(b testing.TB) []byte {
		res, err := c.Call(ctx, "tools/call", params)
		if err != nil {
			b.Fatalf("%s: %v", cfg.Name, err)
		}
		return res
	}
	checkEcho(b, cfg.Name, call(b)) // gw stdio starts its servers at the first request
	pid := p.Pid()
	if cfg.Name == "direct" {
		pid = 0
	}
	return &startedPath{name: cfg.Name, call: func(b testing.TB) { call(b) }, pid: pid}
}

// checkEcho fails b unless reply is echo's answer to "benchmark": a path
// that answers errors fast must not pass for a fast path.
func checkEcho(b testing.TB, name string, reply []byte) {
	if !bytes.Contains(reply, []byte(`benchmark`)) || bytes.Contains(reply, []byte(`"isError":true`)) {
		b.Fatalf("%s: the first call answered %s", name, reply)
	}
}

// p50 is the median of lat in µs.
func p50(lat []time.Duration) float64 {
	if len(lat) == 0 {
		return 0
	}
	s := slices.Clone(lat)
	slices.Sort(s)
	return float64(s[len(s)/2]) / float64(time.Microsecond)
}

// procCPU is the user plus system CPU time pid has used (every thread,
// /proc/PID/stat; children not included), 0 for pid 0. Linux counts it in
// clock ticks of 10 ms: over a benchmark's thousands of calls that is well
// under 1 % of the total.
func procCPU(b testing.TB, pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatalf("CPU of %d: %v", pid, err)
	}
	// Fields after the command name, which is in parentheses and may hold
	// spaces: state is field 3, utime 14, stime 15.
	rest := stat[bytes.LastIndexByte(stat, ')')+2:]
	f := strings.Fields(string(rest))
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		b.Fatalf("CPU of %d: %q", pid, stat)
	}
	const tick = 10 * time.Millisecond // USER_HZ, 100 on every Linux Go runs on
	return time.Duration(utime+stime) * tick
}
