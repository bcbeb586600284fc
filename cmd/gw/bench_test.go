package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gwmcp/gw/gateway"
	"github.com/gwmcp/gw/internal/rpcclient"
	"github.com/gwmcp/gw/transport/stdio"
)

// BenchmarkThroughput: how many calls/s one gateway serves on this machine,
// four servers called in turn by 64 callers at once, in process and over
// NATS, against bare pipelined clients of four more copies of the servers
// (the floor) in the same run; and where the CPU goes: this process (gw,
// with the embedded NATS server and the agent) and the servers. See
// docs/BENCHMARKS.md.
func BenchmarkThroughput(b *testing.B) {
	const servers = 4
	g, _, agent := benchStack(b, servers)
	ctx := context.Background()
	var pids []int
	params := make([][]byte, servers)
	for i, st := range g.Servers() {
		pids = append(pids, st.Pid)
		params[i] = []byte(fmt.Sprintf(`{"name":"s%d__echo","arguments":{"text":"benchmark"}}`, i))
	}
	// The floor: the same servers started on their own, each called by a
	// bare pipelined client (one connection, replies handed out by id).
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	direct := make([]*rpcclient.Client, servers)
	var directPids []int
	for i := range direct {
		p, err := stdio.Start(stdio.Config{Name: fmt.Sprintf("d%d", i), Command: exe, Env: map[string]string{"MCPTEST_SERVER": "1"},
			StopGrace: 2 * time.Second, Logger: discardLogger()})
		if err != nil {
			b.Fatal(err)
		}
		if direct[i], err = rpcclient.Open(ctx, p, rpcclient.Options{}); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = direct[i].Close() })
		directPids = append(directPids, p.Pid())
	}
	directParams := json.RawMessage(`{"name":"echo","arguments":{"text":"benchmark"}}`)
	var turn atomic.Uint64
	b.Run("direct-64", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(32)
		defer reportCPU(b, directPids...)()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := direct[turn.Add(1)%servers].Call(ctx, "tools/call", directParams); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	for _, path := range []string{"in-process", "nats"} {
		b.Run(path+"-64", func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(32)
			defer reportCPU(b, pids...)()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := turn.Add(1) % servers
					var err error
					if path == "nats" {
						_, err = agent.Request(fmt.Sprintf("mcp.v1.req.bench.tools.call.s%d__echo", i), params[i], 10*time.Second)
					} else {
						_, err = g.CallTool(ctx, params[i], gateway.CallOptions{})
					}
					if err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// BenchmarkNATSvsInProcess compares, in one run, a tools/call through the
// NATS face (embedded server, an agent on its own connection) with the same
// call on the in-process gateway, and a bare NATS request/reply on the same
// server. See docs/BENCHMARKS.md.
func BenchmarkNATSvsInProcess(b *testing.B) {
	g, gwConn, agent := benchStack(b, 1)
	ctx := context.Background()
	params := json.RawMessage(`{"name":"s0__echo","arguments":{"text":"benchmark"}}`)

	// The NATS floor: a request and its reply through the same embedded
	// server, to a responder that echoes at once (issue 12's target for
	// the face: p50 ≤ in-process + this + 15 %).
	echo, err := gwConn.Subscribe("bench.echo", func(m *nats.Msg) { _ = m.Respond(m.Data) })
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = echo.Unsubscribe() }()
	if err := gwConn.Flush(); err != nil {
		b.Fatal(err)
	}
	b.Run("bare-nats", func(b *testing.B) {
		b.ReportAllocs()
		defer reportCPU(b)()
		for b.Loop() {
			if _, err := agent.Request("bench.echo", params, 10*time.Second); err != nil {
				b.Fatal(err)
			}
		}
	})
	serverPid := g.Servers()[0].Pid // the one server
	b.Run("in-process", func(b *testing.B) {
		b.ReportAllocs()
		defer reportCPU(b, serverPid)()
		for b.Loop() {
			if _, err := g.CallTool(ctx, params, gateway.CallOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	natsCall := func(b *testing.B) {
		msg, err := agent.Request("mcp.v1.req.bench.tools.call.s0__echo", params, 10*time.Second)
		if err != nil || !strings.Contains(string(msg.Data), "benchmark") {
			b.Fatal(err)
		}
	}
	b.Run("nats", func(b *testing.B) {
		b.ReportAllocs()
		defer reportCPU(b, serverPid)()
		for b.Loop() {
			natsCall(b)
		}
	})
	// 16 callers at once (gw bench's middle concurrency): throughput, as time per call.
	b.Run("bare-nats-16", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(8)
		defer reportCPU(b)()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := agent.Request("bench.echo", params, 10*time.Second); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	b.Run("in-process-16", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(8)
		defer reportCPU(b, serverPid)()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := g.CallTool(ctx, params, gateway.CallOptions{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	b.Run("nats-16", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(8)
		defer reportCPU(b, serverPid)()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				natsCall(b)
			}
		})
	})
}

// reportCPU reports the CPU time this process (gw, and here the embedded NATS server and the
// agent) spent per operation, user and system, from now until the returned func is called, and
// that of the processes pids (the MCP servers): unlike the wall time, they barely move when other
// work shares the machine, and they are what bounds the calls/s of a machine whose cores are busy.
// It also reports the calls per second.
func reportCPU(b *testing.B, pids ...int) func() {
	var before syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	serversBefore := procsCPU(b, pids)
	start := time.Now()
	return func() {
		elapsed := time.Since(start)
		var after syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &after)
		used := time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano())
		b.ReportMetric(float64(used.Microseconds())/float64(b.N), "cpu-µs/op")
		if len(pids) > 0 {
			b.ReportMetric(float64((procsCPU(b, pids)-serversBefore).Microseconds())/float64(b.N), "server-cpu-µs/op")
		}
		b.ReportMetric(float64(b.N)/elapsed.Seconds(), "calls/s")
	}
}

func procsCPU(b testing.TB, pids []int) (sum time.Duration) {
	for _, pid := range pids {
		sum += procCPU(b, pid)
	}
	return sum
}

// benchStack runs the gw run stack of the NATS benchmarks (startStackWith)
// with n mcptest servers s0…s{n-1}, once every server's echo answers over
// NATS.
func benchStack(b *testing.B, n int) (g *gateway.Gateway, gwConn, agent *nats.Conn) {
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	specs := make([]gateway.ServerSpec, n)
	for i := range specs {
		specs[i] = gateway.ServerSpec{Name: fmt.Sprintf("s%d", i), Command: exe, Env: map[string]string{"MCPTEST_SERVER": "1"},
			Restart: gateway.RestartNever}
	}
	s := startStackWith(b, "", gateway.Options{Servers: specs})
	for i := range n {
		s.waitTool(b, fmt.Sprintf("s%d__echo", i))
	}
	return s.g, s.gwConn, s.agent
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
