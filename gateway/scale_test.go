package gateway_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gwmcp/gw/gateway"
	"github.com/gwmcp/gw/internal/mcptest"
	"github.com/gwmcp/gw/internal/rpcclient"
	"github.com/gwmcp/gw/transport/stdio"
)

// tinyTools is how many tools a tinymcp server lists.
const tinyTools = 13

// tinySpecs returns n tinymcp servers named t0000, t0001, …
func tinySpecs(bin string, n int, delay time.Duration) []gateway.ServerSpec {
	specs := make([]gateway.ServerSpec, n)
	for i := range specs {
		name := fmt.Sprintf("t%04d", i)
		specs[i] = gateway.ServerSpec{Name: name, Command: bin,
			Args: []string{"--name", name, "--delay-ms", strconv.Itoa(int(delay / time.Millisecond))}}
	}
	return specs
}

// scaleReport is what one scale run measured.
type scaleReport struct {
	servers int
	// ownP50 and ownMax: one server started alone, k times in a row, with a
	// bare client: spawn → initialize answered → tools listed.
	ownP50, ownMax time.Duration
	start          time.Duration // gateway Start to every server ready and merged
	tools          int
	gwCPU          time.Duration // this process's CPU during Start
	childCPU       time.Duration // the servers' CPU, read from /proc before they stop
	// Per idle server, after GC: the live heap, goroutine stacks, RSS.
	heapPer, stackPer, rssPer float64
	goroutinesPer, threadsPer float64
	catalogEvents             int
	readyP10, readyP50        time.Duration // when servers became ready, from Start
	idleCPU                   time.Duration // gw's CPU per second while the servers idle (0: not measured)
	callP50One, callP50Many   time.Duration
}

func (r scaleReport) String() string {
	return fmt.Sprintf("%d servers, %d tools: own start alone p50 %v, slowest %v; gateway start to all ready and merged %v (%.1f× the slowest own start); "+
		"CPU during start: gw %v, servers %v; per idle server: heap %.0f KiB, stacks %.0f KiB, RSS %.0f KiB, %.1f goroutines, %.2f threads; "+
		"%d catalog events; servers ready after p10 %v, p50 %v; idle gw CPU %v/s; call p50 with 1 server %v, with %d %v",
		r.servers, r.tools, r.ownP50, r.ownMax, r.start, float64(r.start)/float64(r.ownMax),
		r.gwCPU, r.childCPU, r.heapPer/1024, r.stackPer/1024, r.rssPer/1024, r.goroutinesPer, r.threadsPer,
		r.catalogEvents, r.readyP10, r.readyP50, r.idleCPU, r.callP50One, r.servers, r.callP50Many)
}

// countingSink counts catalog events.
type countingSink struct{ catalogs chan struct{} }

func (s countingSink) HandleEvent(e gateway.Event) {
	if e.Kind == gateway.EventCatalogChanged {
		select {
		case s.catalogs <- struct{}{}:
		default:
		}
	}
}

// runScale starts n tinymcp servers behind one gateway and measures the
// start, gw's memory per idle session and the cost of a call beside a
// gateway of one server; with idle > 0, gw's CPU over that much idle time
// (a keepalive period, 15 s, to include every server's ping). Each gateway is closed when t ends.
func runScale(t testing.TB, bin string, n int, delay time.Duration, calls int, idle time.Duration) (*gateway.Gateway, scaleReport) {
	t.Helper()
	r := scaleReport{servers: n}
	r.ownP50, r.ownMax = ownStart(t, bin, delay, 10)

	one := start(t, gateway.Options{Servers: tinySpecs(bin, 1, 0)})
	defer one.Close()

	sink := countingSink{catalogs: make(chan struct{}, 1<<20)}
	g, err := gateway.New(withTestDefaults(gateway.Options{
		Servers: tinySpecs(bin, n, delay), Events: sink, StartTimeout: 5 * time.Minute,
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close() })
	memBefore, procBefore := memNow(), procNow(t)
	cpuBefore := selfCPU(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	begin := time.Now()
	if err := g.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	r.start = time.Since(begin)
	r.gwCPU = selfCPU(t) - cpuBefore
	r.tools = len(g.Catalog().Tools)
	if r.tools != n*tinyTools {
		t.Fatalf("the catalog has %d tools, want %d", r.tools, n*tinyTools)
	}
	var readyAt []time.Duration
	for _, st := range g.Servers() {
		readyAt = append(readyAt, st.Since.Sub(begin))
		if st.State != gateway.StateReady {
			t.Fatalf("server %s is %s after Start", st.Name, st.State)
		}
		r.childCPU += procCPU(st.Pid)
	}
	slices.Sort(readyAt)
	r.readyP10, r.readyP50 = readyAt[len(readyAt)/10], readyAt[len(readyAt)/2]
	if err := g.FlushEvents(ctx); err != nil {
		t.Fatal(err)
	}
	r.catalogEvents = len(sink.catalogs)

	// Idle: give the start's garbage time to settle, then see what n idle
	// sessions keep and cost gw (keepalive pings, timers) once the GCs
	// memNow forces have collected it.
	time.Sleep(time.Second)
	memAfter, procAfter := memNow(), procNow(t)
	if path := os.Getenv("GW_SCALE_HEAPPROFILE"); path != "" {
		writeHeapProfile(t, path)
	}
	if idle > 0 {
		idleFrom := selfCPU(t)
		time.Sleep(idle)
		r.idleCPU = time.Duration(float64(selfCPU(t)-idleFrom) / idle.Seconds())
	}
	per := func(after, before uint64) float64 { return (float64(after) - float64(before)) / float64(n) }
	r.heapPer = per(memAfter.heap, memBefore.heap)
	r.stackPer = per(memAfter.stacks, memBefore.stacks)
	r.rssPer = per(procAfter.rss, procBefore.rss)
	r.goroutinesPer = per(memAfter.goroutines, memBefore.goroutines)
	r.threadsPer = per(procAfter.threads, procBefore.threads)

	// The same tool of one server, through a gateway of one server and one
	// of n, call by call in turn, so that the machine's other load hits
	// both alike.
	pOne := params("t0000__echo", map[string]any{"text": "x"})
	pMany := params(fmt.Sprintf("t%04d__echo", n/2), map[string]any{"text": "x"})
	var one1, many []time.Duration
	for range calls {
		one1 = append(one1, timeCall(t, one, pOne))
		many = append(many, timeCall(t, g, pMany))
	}
	r.callP50One, r.callP50Many = p50(one1), p50(many)
	return g, r
}

// ownStart starts one server alone k times, each time with a bare client
// (rpcclient, legacy era, as tinymcp speaks), and returns the median and the
// slowest time from spawn to its tools listed.
func ownStart(t testing.TB, bin string, delay time.Duration, k int) (median, slowest time.Duration) {
	t.Helper()
	ctx := context.Background()
	var took []time.Duration
	for range k {
		begin := time.Now()
		p, err := stdio.Start(stdio.Config{Command: bin, Args: tinySpecs(bin, 1, delay)[0].Args, StopGrace: 500 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		c, err := rpcclient.Open(ctx, p, rpcclient.Options{Era: rpcclient.EraLegacy, Serial: true})
		if err != nil {
			t.Fatal(err)
		}
		res, err := c.Call(ctx, "tools/list", nil)
		took = append(took, time.Since(begin))
		if err != nil || !bytes.Contains(res, []byte(`"tool12"`)) {
			t.Fatalf("tools/list: %v %s", err, res)
		}
		_ = c.Close()
	}
	return p50(took), slices.Max(took)
}

// writeHeapProfile writes the live heap's profile to path, for a look at
// what an idle session keeps (go tool pprof -sample_index inuse_space).
func writeHeapProfile(t testing.TB, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := pprof.WriteHeapProfile(f); err != nil {
		t.Fatal(err)
	}
}

// timeCall times one call of echo with the text "x".
func timeCall(t testing.TB, g *gateway.Gateway, p []byte) time.Duration {
	t.Helper()
	begin := time.Now()
	res, err := g.CallTool(context.Background(), p, gateway.CallOptions{})
	took := time.Since(begin)
	if err != nil || !bytes.Contains(res, []byte(`"x"`)) {
		t.Fatalf("call: %v %s", err, res)
	}
	return took
}

func p50(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

type memSample struct{ heap, stacks, goroutines uint64 }

// memNow is the live heap and the goroutine stacks after a full GC.
func memNow() memSample {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memSample{heap: ms.HeapAlloc, stacks: ms.StackInuse, goroutines: uint64(runtime.NumGoroutine())}
}

type procSample struct{ rss, threads uint64 }

// procNow reads this process's resident memory and thread count.
func procNow(t testing.TB) procSample {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	var s procSample
	for line := range strings.Lines(string(b)) {
		k, v, _ := strings.Cut(line, ":")
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, _ := strconv.ParseUint(f[0], 10, 64)
		switch k {
		case "VmRSS":
			s.rss = n << 10
		case "Threads":
			s.threads = n
		}
	}
	return s
}

// selfCPU is the CPU time (user and system) this process used so far.
func selfCPU(t testing.TB) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procCPU is the CPU time a live process used (its exec and everything
// since), from /proc/PID/schedstat in nanoseconds; 0 when unknown.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/schedstat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	ns, _ := strconv.ParseInt(f[0], 10, 64)
	return time.Duration(ns)
}

// TestManyServersReady starts 200 tinymcp servers at once: Start returns
// with every one ready and its 13 tools merged into one catalog (2,600
// tools), calls reach servers across the set, and after Close no process,
// goroutine or file descriptor is left. The numbers are logged, not
// checked: BenchmarkScale1000 is the measurement.
func TestManyServersReady(t *testing.T) {
	bin := mcptest.TinyServer(t)
	before := snapshot(t)
	g, r := runScale(t, bin, 200, 0, 200, 0)
	for _, i := range []int{0, 1, 99, 199} {
		name := fmt.Sprintf("t%04d", i)
		res := mustCall(t, g, name+"__tool12", map[string]any{})
		if want := "tool12 of " + name; !strings.Contains(string(res), want) {
			t.Errorf("%s__tool12 answered %s, want %q", name, res, want)
		}
	}
	t.Log(r)
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	before.expectSame(t)
}

// BenchmarkScale1000 is issue 12's scale target, measured with 1,000 real
// tinymcp processes (13 tools each): the time from Start to every server
// ready and merged against one server's own start, gw's CPU and the
// servers', gw's memory per idle session, and a call's p50 with 1 and with
// 1,000 servers. One iteration is the whole run; the numbers are reported
// as metrics and logged. Run it alone: go test -run '^$' -bench Scale1000
// -benchtime 1x ./gateway/ (docs/BENCHMARKS.md, "1,000 servers").
func BenchmarkScale1000(b *testing.B) {
	bin := mcptest.TinyServer(b)
	for _, delay := range []time.Duration{0, time.Second} {
		b.Run(fmt.Sprintf("delay=%v", delay), func(b *testing.B) {
			for b.Loop() {
				g, r := runScale(b, bin, 1000, delay, 2000, 15*time.Second)
				b.Log(r)
				b.ReportMetric(r.start.Seconds(), "start-s")
				b.ReportMetric(float64(r.start)/float64(r.ownMax), "start/slowest-own")
				b.ReportMetric(r.gwCPU.Seconds(), "gw-cpu-s")
				b.ReportMetric(r.childCPU.Seconds(), "servers-cpu-s")
				b.ReportMetric(r.heapPer/1024, "heap-KiB/server")
				b.ReportMetric(r.rssPer/1024, "rss-KiB/server")
				b.ReportMetric(float64(r.callP50One.Microseconds()), "call-p50-1-µs")
				b.ReportMetric(float64(r.callP50Many.Microseconds()), "call-p50-1000-µs")
				_ = g.Close()
			}
		})
	}
}
