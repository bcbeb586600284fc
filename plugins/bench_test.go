package plugins

import (
	"context"
	"fmt"
	"os"
	"testing"
)

// Benchmarks of the costs that matter for a gateway: a warm decision call, calls in parallel,
// loading (compiling) a module with and without a warm cache, creating an instance, and the
// memory an instance holds. The Go guest is testdata/echo (about 1.9 MB of wasm).
//
//	go test -run '^$' -bench . -benchmem ./plugins/

var benchInput = []byte(`{"caller":{"id":"alice","groups":["dev"]},"server":"notes","tool":"search",` +
	`"name":"notes__search","annotations":{"readOnlyHint":true},"arguments":{"query":"x"}}`)

// namedWasm is a module to benchmark, by name.
type namedWasm struct {
	name string
	wasm []byte
}

// benchGuests are a Go guest (the echo module) and a minimal hand-made one.
func benchGuests() []namedWasm {
	return []namedWasm{{"go-guest", echoWasm}, {"hand-made", abiModule(good)}}
}

func BenchmarkCall(b *testing.B) {
	h := newHost(b)
	for _, c := range benchGuests() {
		b.Run(c.name, func(b *testing.B) {
			m := load(b, h, c.name, c.wasm, `{"version":1}`, Limits{})
			ctx := context.Background()
			b.ReportAllocs()
			b.SetBytes(int64(len(benchInput)))
			for b.Loop() {
				if _, err := m.Call(ctx, ExportAuthorize, benchInput); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCheckpoints measures what the checkpoints (internal/interrupt) cost a warm call: the
// same modules loaded with and without them. Compare the pairs: "off" cannot be stopped.
func BenchmarkCheckpoints(b *testing.B) {
	modules := []namedWasm{{"echo", echoWasm}}
	for _, name := range []string{"read-only", "deny-destructive"} { // the Go kit, and C
		wasm, err := os.ReadFile("../policies/" + name + ".wasm")
		if err != nil {
			b.Fatal(err)
		}
		modules = append(modules, namedWasm{name, wasm})
	}
	for _, c := range modules {
		for _, off := range []bool{false, true} {
			b.Run(fmt.Sprintf("%s/checkpoints=%v", c.name, !off), func(b *testing.B) {
				h := newHost(b)
				h.uninstrumented = off
				m := load(b, h, c.name, c.wasm, "", Limits{PoolSize: 1})
				ctx := context.Background()
				for b.Loop() {
					if _, err := m.Call(ctx, ExportAuthorize, benchInput); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkCallParallel(b *testing.B) {
	h := newHost(b)
	m := load(b, h, "echo", echoWasm, `{"version":1}`, Limits{})
	var slot Slot
	slot.Swap(m)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := slot.Call(ctx, ExportAuthorize, benchInput); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(liveInstances(m)), "instances")
}

// BenchmarkLoad measures Host.Load of the Go guest: compile (or cache hit), ABI checks and the
// first instance.
func BenchmarkLoad(b *testing.B) {
	ctx := context.Background()
	b.Run("cold", func(b *testing.B) { // a fresh on-disk cache each time: full compilation
		for b.Loop() {
			dir, err := os.MkdirTemp("", "gw-bench-cache-")
			if err != nil {
				b.Fatal(err)
			}
			h, err := NewHost(ctx, HostConfig{CacheDir: dir})
			if err != nil {
				b.Fatal(err)
			}
			load(b, h, "echo", echoWasm, "", Limits{})
			h.Close(ctx)
			os.RemoveAll(dir)
		}
	})
	b.Run("warm-disk", func(b *testing.B) { // a new Host (as after a restart) on a warm cache dir
		dir := b.TempDir()
		h, err := NewHost(ctx, HostConfig{CacheDir: dir})
		if err != nil {
			b.Fatal(err)
		}
		load(b, h, "echo", echoWasm, "", Limits{})
		h.Close(ctx)
		for b.Loop() {
			h, err := NewHost(ctx, HostConfig{CacheDir: dir})
			if err != nil {
				b.Fatal(err)
			}
			load(b, h, "echo", echoWasm, "", Limits{})
			h.Close(ctx)
		}
	})
	b.Run("warm-memory", func(b *testing.B) { // same Host, the module already loaded (a reload)
		h, err := NewHost(ctx, HostConfig{})
		if err != nil {
			b.Fatal(err)
		}
		defer h.Close(ctx)
		load(b, h, "echo", echoWasm, "", Limits{})
		for b.Loop() {
			m := load(b, h, "echo", echoWasm, "", Limits{})
			m.Close(ctx)
		}
	})
}

// BenchmarkInstantiate measures creating one more instance of a loaded module (instantiation,
// _initialize, gw_abi_version, gw_init), what a call pays when the pool grows or replaces a
// discarded instance, and reports the linear memory an instance holds.
func BenchmarkInstantiate(b *testing.B) {
	h := newHost(b)
	for _, c := range benchGuests() {
		b.Run(c.name, func(b *testing.B) {
			m := load(b, h, c.name, c.wasm, `{"version":1}`, Limits{PoolSize: 1})
			ctx := context.Background()
			var after, afterCall uint32
			b.ReportAllocs()
			for b.Loop() {
				in, err := m.newInstance(ctx)
				if err != nil {
					b.Fatal(err)
				}
				after = in.mem.Size()
				if _, err := m.decide(ctx, in, exportAuthorize, benchInput); err != nil {
					b.Fatal(err)
				}
				afterCall = in.mem.Size()
				m.mu.Lock()
				delete(m.live, in)
				m.mu.Unlock()
				in.close(ctx)
			}
			b.ReportMetric(float64(after)/(1<<20), "MiB-mem/instance")
			b.ReportMetric(float64(afterCall)/(1<<20), "MiB-mem-after-call")
		})
	}
}
