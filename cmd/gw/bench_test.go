package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gwmcp/gw/gateway"
	"github.com/gwmcp/gw/transport/natsconn"
	"github.com/gwmcp/gw/transport/natsface"
)

// BenchmarkNATSvsInProcess compares, in one run, a tools/call through the
// NATS face (embedded server, an agent on its own connection) with the same
// call on the in-process gateway, and a bare NATS request/reply on the same
// server. See docs/BENCHMARKS.md.
func BenchmarkNATSvsInProcess(b *testing.B) {
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	e, err := natsconn.StartEmbedded(ctx, natsconn.EmbeddedOptions{StoreDir: b.TempDir(), Port: 0, Logger: discardLogger()})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Shutdown()
	gwConn, err := e.Connect("gw")
	if err != nil {
		b.Fatal(err)
	}
	h := &faceHandler{}
	face, err := natsface.New(gwConn, h, natsface.Options{Gateway: "bench", Logger: discardLogger()})
	if err != nil {
		b.Fatal(err)
	}
	events := newEventBridge(face, discardLogger())
	g, err := gateway.New(gateway.Options{
		Logger: discardLogger(),
		Events: events,
		Servers: []gateway.ServerSpec{{Name: "s", Command: exe, Env: map[string]string{"MCPTEST_SERVER": "1"},
			Restart: gateway.RestartNever}},
	})
	if err != nil {
		b.Fatal(err)
	}
	h.g = g
	if err := face.Start(ctx); err != nil {
		b.Fatal(err)
	}
	if err := g.Start(ctx); err != nil {
		b.Fatal(err)
	}
	defer func() {
		_ = face.Stop(context.Background())
		_ = g.Close()
		events.close()
	}()
	agent, err := e.Connect("agent")
	if err != nil {
		b.Fatal(err)
	}
	defer agent.Close()
	params := json.RawMessage(`{"name":"s__echo","arguments":{"text":"benchmark"}}`)
	// Wait for the tool's endpoint to appear on NATS.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := agent.Request("mcp.v1.req.bench.tools.call.s__echo", params, time.Second); err == nil {
			break
		} else if time.Now().After(deadline) {
			b.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}

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
		defer reportCPU(b, 0)()
		for b.Loop() {
			if _, err := agent.Request("bench.echo", params, 10*time.Second); err != nil {
				b.Fatal(err)
			}
		}
	})
	serverPid := g.Servers()[0].Pid
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
		msg, err := agent.Request("mcp.v1.req.bench.tools.call.s__echo", params, 10*time.Second)
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
		defer reportCPU(b, 0)()
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
// with pid > 0 that process's too (the MCP server): unlike the wall time, they barely move when
// other work shares the machine, and they are what bounds the calls/s of a machine whose cores
// are busy.
func reportCPU(b *testing.B, pid int) func() {
	var before syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	childBefore := procCPU(pid)
	return func() {
		var after syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &after)
		used := time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano())
		b.ReportMetric(float64(used.Microseconds())/float64(b.N), "cpu-µs/op")
		if pid > 0 {
			b.ReportMetric(float64((procCPU(pid)-childBefore).Microseconds())/float64(b.N), "server-cpu-µs/op")
		}
	}
}

// procCPU is the user and system time of process pid so far, from /proc (clock ticks, 100 a
// second here: enough over the thousands of calls of a benchmark).
func procCPU(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The fields after the command (in parentheses, which may hold spaces): state is the 3rd
	// field, utime the 14th and stime the 15th.
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * (time.Second / 100)
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
