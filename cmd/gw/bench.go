package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/gwmcp/gw/gateway"
	"github.com/gwmcp/gw/internal/config"
	"github.com/gwmcp/gw/internal/rpcclient"
	"github.com/gwmcp/gw/transport/stdio"
)

// gw bench drives one of the user's own servers directly and through each
// of gw's paths, in one run, and prints what gw adds. Every path calls the
// same tool with the same arguments; each (path, concurrency) runs for the
// duration after a warm-up that is not counted, with that many callers
// calling back to back.
//
//	direct   a pipelined client of our own (internal/rpcclient) on the server's stdio, in its era
//	gateway  gateway.CallTool in process: gw's floor
//	nats     the NATS face over that gateway, on an embedded nats-server, called from another connection
//	stdio    gw stdio -c FILE as a child process, driven by the same client as direct
//	http     the Streamable HTTP face over the gateway on 127.0.0.1:0 (legacy: one session; modern: stateless POSTs)
//
// gw stdio and the HTTP face are called in the server's era (clientEra).
//
// The in-process gateway starts every configured server, as gw run does;
// gw stdio starts its own. Every path calls as the same principal, the
// local user, so an authorize policy sees the same caller on each.

// selfEnv is added to the environment of gw's own executable when gw bench
// runs it as gw stdio. Tests set it so that their binary runs as gw.
var selfEnv map[string]string

// benchPathNames are the paths, in the table's order.
var benchPathNames = []string{"direct", "gateway", "nats", "stdio", "http"}

// benchFlags are gw bench's own flags.
type benchFlags struct {
	server, tool, args, concurrency, paths string
	duration                               time.Duration
}

func (b *benchFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&b.server, "server", "", "gw bench: the server (default: the first configured)")
	fs.StringVar(&b.tool, "tool", "", "gw bench: the tool, the server's own name or gw's")
	fs.StringVar(&b.args, "args", "", "gw bench: the tool's arguments, a JSON object")
	fs.StringVar(&b.concurrency, "concurrency", "1,16,256", "gw bench: callers at once, comma-separated")
	fs.DurationVar(&b.duration, "duration", 5*time.Second, "gw bench: how long each run measures")
	fs.StringVar(&b.paths, "paths", strings.Join(benchPathNames, ","), "gw bench: the paths to run")
}

// benchPlan is what the flags ask for, checked.
type benchPlan struct {
	server      string
	concurrency []int
	duration    time.Duration
	warmup      time.Duration
	paths       []string
	args        json.RawMessage // nil: not given
}

// usageError is a mistake in the command line: exit status 2.
type usageError struct{ error }

func newBenchPlan(cfg *config.Config, b benchFlags) (*benchPlan, error) {
	bad := func(format string, args ...any) (*benchPlan, error) {
		return nil, usageError{fmt.Errorf(format, args...)}
	}
	p := &benchPlan{server: b.server, duration: b.duration}
	if b.duration <= 0 {
		return bad("--duration must be positive, got %s", b.duration)
	}
	// A tenth of the run, within [100ms, 1s]: long enough for connections,
	// caches and the scheduler to settle.
	p.warmup = min(max(b.duration/10, 100*time.Millisecond), time.Second)
	for _, s := range strings.Split(b.concurrency, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > 10000 {
			return bad("--concurrency wants numbers from 1 to 10000, comma-separated; got %q", b.concurrency)
		}
		if !slices.Contains(p.concurrency, n) {
			p.concurrency = append(p.concurrency, n)
		}
	}
	for _, s := range strings.Split(b.paths, ",") {
		s = strings.TrimSpace(s)
		if !slices.Contains(benchPathNames, s) {
			return bad("--paths: unknown path %q (the paths: %s)", s, strings.Join(benchPathNames, ", "))
		}
		if !slices.Contains(p.paths, s) {
			p.paths = append(p.paths, s)
		}
	}
	// The table's order, whatever the flag's.
	slices.SortFunc(p.paths, func(a, b string) int { return slices.Index(benchPathNames, a) - slices.Index(benchPathNames, b) })
	if b.args != "" {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal([]byte(b.args), &obj); err != nil || obj == nil {
			return bad("--args must be a JSON object, got %q", b.args)
		}
		var c bytes.Buffer
		_ = json.Compact(&c, []byte(b.args))
		p.args = c.Bytes()
	}
	var enabled []string
	for _, name := range cfg.ServerNames() {
		if !cfg.Servers[name].Disabled {
			enabled = append(enabled, name)
		}
	}
	switch {
	case len(enabled) == 0:
		return bad("the configuration has no enabled server")
	case p.server == "":
		p.server = enabled[0]
	case !slices.Contains(enabled, p.server):
		return bad("no enabled server %q (the servers: %s)", p.server, strings.Join(enabled, ", "))
	}
	return p, nil
}

// benchRow is one line of the table: a (path, concurrency) run, or a path
// that did not start.
type benchRow struct {
	Path            string   `json:"path"`
	Concurrency     int      `json:"concurrency,omitempty"`
	Calls           int      `json:"calls"`
	Errors          int      `json:"errors"`
	CallsPerSec     float64  `json:"calls_per_sec"`
	P50Micros       float64  `json:"p50_us"`
	P99Micros       float64  `json:"p99_us"`
	P50Ratio        *float64 `json:"p50_ratio,omitempty"`        // p50 / direct's p50, same concurrency
	ThroughputRatio *float64 `json:"throughput_ratio,omitempty"` // calls/s / direct's calls/s
	FirstError      string   `json:"first_error,omitempty"`
	Failed          string   `json:"failed,omitempty"` // the path did not start
}

// benchReport is gw bench --json.
type benchReport struct {
	Server      string          `json:"server"`
	Tool        string          `json:"tool"`
	Exposed     string          `json:"exposed,omitempty"` // gw's name of the tool
	Arguments   json.RawMessage `json:"arguments"`
	Era         string          `json:"era,omitempty"` // the server's, as direct opened it
	Duration    string          `json:"duration"`
	Warmup      string          `json:"warmup"`
	Interrupted bool            `json:"interrupted,omitempty"`
	Rows        []benchRow      `json:"rows"`
}

// benchCall makes one tools/call on a path; an error or a result with
// isError is an error.
type benchCall func(ctx context.Context) error

// bench is one run of gw bench.
type bench struct {
	plan      *benchPlan
	cfg       *config.Config
	f         cliFlags
	logger    *slog.Logger
	stderr    io.Writer
	principal string

	g       *gateway.Gateway
	direct  *rpcclient.Client
	dirErr  error  // the direct client did not open
	era     string // the server's, as the direct client opened it
	tool    string
	exposed string // "" when gw does not list the tool: expErr says why
	expErr  error
	params  json.RawMessage // tools/call params with the server's own name
	gwArgs  json.RawMessage // with gw's name
}

func runBench(ctx context.Context, cfg *config.Config, f cliFlags, logger *slog.Logger, stdout, stderr io.Writer) int {
	plan, err := newBenchPlan(cfg, f.bench)
	if err != nil {
		fmt.Fprintln(stderr, "gw bench:", err)
		return 2
	}
	b := &bench{plan: plan, cfg: cfg, f: f, logger: logger, stderr: stderr, principal: localUser()}
	g, _, release, err := newGateway(ctx, cfg, logger, nil)
	if err != nil {
		fmt.Fprintln(stderr, "gw:", err)
		return 1
	}
	defer release()
	defer g.Close()
	b.g = g
	if err := g.Start(ctx); err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintln(stderr, "gw:", line)
		}
	}
	if err := b.chooseTool(ctx); err != nil {
		fmt.Fprintln(stderr, "gw bench:", err)
		if errors.As(err, &usageError{}) {
			return 2
		}
		return 1
	}
	if b.direct != nil {
		defer b.direct.Close()
	}
	rep := benchReport{Server: plan.server, Tool: b.tool, Exposed: b.exposed, Arguments: b.args(), Era: b.era,
		Duration: plan.duration.String(), Warmup: plan.warmup.String()}
	failed := false
	for _, path := range plan.paths {
		if ctx.Err() != nil {
			break
		}
		call, stop, err := b.start(ctx, path)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			failed = true
			fmt.Fprintf(stderr, "gw bench: %s did not start: %v\n", path, err)
			rep.Rows = append(rep.Rows, benchRow{Path: path, Failed: err.Error()})
			continue
		}
		for _, c := range plan.concurrency {
			fmt.Fprintf(stderr, "gw bench: %s, %d at once\n", path, c)
			row, ok := measure(ctx, call, c, plan.warmup, plan.duration)
			if !ok {
				break
			}
			row.Path = path
			rep.Rows = append(rep.Rows, row)
		}
		stop()
	}
	rep.Interrupted = ctx.Err() != nil
	addRatios(rep.Rows)
	if f.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rep)
	} else {
		printBench(stdout, rep)
	}
	if rep.Interrupted {
		fmt.Fprintln(stderr, "gw bench: interrupted; the runs that finished are above")
		return 1
	}
	if failed {
		return 1
	}
	return 0
}

func (b *bench) args() json.RawMessage {
	if b.plan.args != nil {
		return b.plan.args
	}
	return json.RawMessage(`{}`)
}

// toolDesc is what gw bench reads of a tool's definition.
type toolDesc struct {
	Name        string `json:"name"`
	InputSchema struct {
		Required []string `json:"required"`
	} `json:"inputSchema"`
	Annotations struct {
		ReadOnlyHint    *bool `json:"readOnlyHint"`
		DestructiveHint *bool `json:"destructiveHint"`
	} `json:"annotations"`
}

// chooseTool opens the direct client (its tools/list has the server's own
// order) and picks the tool: --tool, by the server's name or by gw's; else
// the first tool that requires no argument, preferring read-only ones and
// never one marked destructive. Without the direct client, the server's
// tools come from gw's catalog. The direct client stays open (b.direct)
// only when it listed the tools, a tool is chosen and the direct path is
// to run.
func (b *bench) chooseTool(ctx context.Context) (err error) {
	want := b.f.bench.tool
	cat := b.g.Catalog()
	if e, ok := cat.Tool(want); ok && want != "" && (b.f.bench.server == "" || b.f.bench.server == e.Server) {
		b.plan.server, want = e.Server, e.Original // gw's name
	}
	b.direct, b.dirErr = b.openDirect(ctx)
	defer func() {
		if b.direct != nil && (err != nil || b.dirErr != nil || !slices.Contains(b.plan.paths, "direct")) {
			_ = b.direct.Close()
			b.direct = nil
		}
	}()
	var tools []toolDesc
	if b.direct != nil {
		b.era = string(b.direct.Era())
		tools, b.dirErr = listTools(ctx, b.direct)
	}
	if b.dirErr != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		tools = nil
		for _, e := range cat.Tools {
			if e.Server == b.plan.server {
				var t toolDesc
				_ = json.Unmarshal(e.JSON, &t)
				t.Name = e.Original
				tools = append(tools, t)
			}
		}
		if len(tools) == 0 {
			return fmt.Errorf("server %s started neither on its own (%v) nor in gw: no tools to call", b.plan.server, b.dirErr)
		}
		fmt.Fprintf(b.stderr, "gw bench: direct: %v\n", b.dirErr)
	}
	t, err := pickTool(b.plan.server, tools, want)
	if err != nil {
		return err
	}
	if b.plan.args == nil && len(t.InputSchema.Required) > 0 {
		return usageError{fmt.Errorf("tool %s of server %s requires arguments (%s): give them with --args '{…}'",
			t.Name, b.plan.server, strings.Join(t.InputSchema.Required, ", "))}
	}
	b.tool = t.Name
	b.params, _ = json.Marshal(map[string]any{"name": t.Name, "arguments": b.args()})
	for _, e := range cat.Tools {
		if e.Server == b.plan.server && e.Original == t.Name {
			b.exposed = e.Name
		}
	}
	if b.exposed == "" {
		b.expErr = fmt.Errorf("gw does not list tool %s of server %s (see gw tools -c FILE)", t.Name, b.plan.server)
	} else {
		b.gwArgs, _ = json.Marshal(map[string]any{"name": b.exposed, "arguments": b.args()})
	}
	return nil
}

// pickTool finds want among tools, or picks the default.
func pickTool(server string, tools []toolDesc, want string) (toolDesc, error) {
	names := make([]string, 0, len(tools))
	for _, t := range tools {
		if want != "" && t.Name == want {
			return t, nil
		}
		names = append(names, t.Name)
	}
	if len(names) > 12 {
		names = append(names[:12], "…")
	}
	if want != "" {
		return toolDesc{}, usageError{fmt.Errorf("server %s has no tool %q (its tools: %s)", server, want, strings.Join(names, ", "))}
	}
	var first *toolDesc
	for i, t := range tools {
		if len(t.InputSchema.Required) > 0 || (t.Annotations.DestructiveHint != nil && *t.Annotations.DestructiveHint) {
			continue
		}
		if t.Annotations.ReadOnlyHint != nil && *t.Annotations.ReadOnlyHint {
			return t, nil
		}
		if first == nil {
			first = &tools[i]
		}
	}
	if first == nil {
		return toolDesc{}, usageError{fmt.Errorf("no tool of server %s can be called without arguments (or all are marked destructive); name one with --tool NAME --args JSON", server)}
	}
	return *first, nil
}

// openDirect starts the server as its own process and opens a session.
func (b *bench) openDirect(ctx context.Context) (*rpcclient.Client, error) {
	s := b.cfg.Servers[b.plan.server]
	p, err := stdio.Start(stdio.Config{Name: b.plan.server, Command: s.Command, Args: s.Args, Env: s.Env, Dir: s.Cwd,
		MaxMessageSize: b.cfg.Gateway.MaxMessageSize, Logger: b.logger})
	if err != nil {
		return nil, err
	}
	octx, cancel := context.WithTimeout(ctx, b.cfg.Gateway.StartTimeout)
	defer cancel()
	c, err := rpcclient.Open(octx, p, rpcclient.Options{DiscoverTimeout: b.cfg.Gateway.DiscoverTimeout})
	if err != nil {
		return nil, fmt.Errorf("%w%s", err, lastStderr(p))
	}
	return c, nil
}

// lastStderr is the end of a child's stderr, for an error saying why it
// did not start.
func lastStderr(p *stdio.Process) string {
	tail := p.StderrTail()
	if len(tail) == 0 {
		return ""
	}
	return "; its stderr ends: " + oneLine(strings.Join(tail[max(len(tail)-3, 0):], " | "), 300)
}

// listTools reads every page of tools/list.
func listTools(ctx context.Context, c *rpcclient.Client) ([]toolDesc, error) {
	var tools []toolDesc
	var cursor string
	for range 1000 {
		params := json.RawMessage(`{}`)
		if cursor != "" {
			params, _ = json.Marshal(map[string]string{"cursor": cursor})
		}
		lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		res, err := c.Call(lctx, "tools/list", params)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("tools/list: %w", err)
		}
		var page struct {
			Tools      []toolDesc `json:"tools"`
			NextCursor string     `json:"nextCursor"`
		}
		if err := json.Unmarshal(res, &page); err != nil {
			return nil, fmt.Errorf("tools/list: %w", err)
		}
		tools = append(tools, page.Tools...)
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	return tools, nil
}

// measure runs c callers back to back for warmup+d and keeps the calls
// that ended within the last d. ok is false if ctx ended first.
func measure(ctx context.Context, call benchCall, c int, warmup, d time.Duration) (row benchRow, ok bool) {
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	t0 := time.Now().Add(warmup)
	t1 := t0.Add(d)
	type worker struct {
		lat    []time.Duration
		errors int
		first  error
	}
	workers := make([]worker, c)
	var wg sync.WaitGroup
	for i := range workers {
		w := &workers[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for runCtx.Err() == nil {
				start := time.Now()
				err := call(runCtx)
				end := time.Now()
				switch {
				case end.Before(t0):
					continue
				case end.After(t1):
					return
				case err != nil:
					w.errors++
					if w.first == nil {
						w.first = err
					}
				default:
					w.lat = append(w.lat, end.Sub(start))
				}
			}
		}()
	}
	timer := time.NewTimer(time.Until(t1))
	select {
	case <-timer.C:
	case <-ctx.Done():
		timer.Stop()
	}
	cancel() // calls still in flight end after t1 and are not counted
	wg.Wait()
	if ctx.Err() != nil {
		return benchRow{}, false
	}
	var lat []time.Duration
	row = benchRow{Concurrency: c}
	for _, w := range workers {
		lat = append(lat, w.lat...)
		row.Errors += w.errors
		if w.first != nil && row.FirstError == "" {
			row.FirstError = w.first.Error()
		}
	}
	slices.Sort(lat)
	row.Calls = len(lat)
	row.CallsPerSec = float64(len(lat)) / d.Seconds()
	row.P50Micros = micros(percentile(lat, 50))
	row.P99Micros = micros(percentile(lat, 99))
	return row, true
}

// percentile is the nearest-rank percentile of sorted durations.
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(float64(p)/100*float64(len(sorted)))) - 1
	return sorted[max(i, 0)]
}

func micros(d time.Duration) float64 { return math.Round(float64(d)/float64(time.Microsecond)*10) / 10 }

// addRatios sets each row's ratios to direct's row of the same
// concurrency.
func addRatios(rows []benchRow) {
	direct := map[int]benchRow{}
	for _, r := range rows {
		if r.Path == "direct" && r.Failed == "" {
			direct[r.Concurrency] = r
		}
	}
	for i := range rows {
		r := &rows[i]
		d, ok := direct[r.Concurrency]
		if !ok || r.Failed != "" || r.Calls == 0 {
			continue
		}
		if d.P50Micros > 0 {
			v := math.Round(r.P50Micros/d.P50Micros*100) / 100
			r.P50Ratio = &v
		}
		if d.CallsPerSec > 0 {
			v := math.Round(r.CallsPerSec/d.CallsPerSec*100) / 100
			r.ThroughputRatio = &v
		}
	}
}

func printBench(w io.Writer, rep benchReport) {
	name := rep.Tool
	if rep.Exposed != "" && rep.Exposed != rep.Tool {
		name += " (gw: " + rep.Exposed + ")"
	}
	era := ""
	if rep.Era != "" {
		era = ", " + rep.Era + " era"
	}
	fmt.Fprintf(w, "server %s%s, tool %s, arguments %s; %s per run after a %s warm-up\n\n", rep.Server, era, name, rep.Arguments, rep.Duration, rep.Warmup)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PATH\tCONCURRENCY\tCALLS/S\tP50\tP99\tERRORS\tP50 VS DIRECT\tCALLS/S VS DIRECT")
	ratio := func(v *float64) string {
		if v == nil {
			return "-"
		}
		return fmt.Sprintf("%.2f×", *v)
	}
	var notes []string
	for _, r := range rep.Rows {
		if r.Failed != "" {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\t-\t-\n", r.Path)
			notes = append(notes, fmt.Sprintf("%s did not start: %s", r.Path, oneLine(r.Failed, 300)))
			continue
		}
		p50, p99 := "-", "-"
		if r.Calls > 0 {
			p50, p99 = fmtMicros(r.P50Micros), fmtMicros(r.P99Micros)
		}
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%s\t%s\t%d\t%s\t%s\n", r.Path, r.Concurrency, r.CallsPerSec, p50, p99, r.Errors, ratio(r.P50Ratio), ratio(r.ThroughputRatio))
		if r.Errors > 0 {
			notes = append(notes, fmt.Sprintf("%s, %d at once: %d errors; the first: %s", r.Path, r.Concurrency, r.Errors, oneLine(r.FirstError, 300)))
		}
	}
	_ = tw.Flush()
	if len(notes) > 0 {
		fmt.Fprintln(w)
		for _, n := range notes {
			fmt.Fprintln(w, n)
		}
	}
}

func fmtMicros(us float64) string {
	switch {
	case us < 1000:
		return fmt.Sprintf("%.0fµs", us)
	case us < 1e6:
		return fmt.Sprintf("%.2fms", us/1000)
	}
	return fmt.Sprintf("%.2fs", us/1e6)
}
