package interrupt

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// A few helpers write modules byte by byte: precise cases without a toolchain.

func sec(id byte, items ...[]byte) []byte {
	body := appendU32(nil, uint32(len(items)))
	for _, it := range items {
		body = append(body, it...)
	}
	return append(append([]byte{id}, appendU32(nil, uint32(len(body)))...), body...)
}

func wasmModule(sections ...[]byte) []byte {
	return append([]byte("\x00asm\x01\x00\x00\x00"), bytes.Join(sections, nil)...)
}

func str(s string) []byte { return appendName(nil, s) }

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func u32(v uint32) []byte { return appendU32(nil, v) }

// fnBody is a code section entry: no locals, then the instructions and end.
func fnBody(instrs ...[]byte) []byte {
	b := cat(append([][]byte{{0x00}}, append(instrs, []byte{0x0b})...)...)
	return append(u32(uint32(len(b))), b...)
}

// counting is a module exercising what the rewrite renumbers: an import before the defined
// functions, call, call_indirect through an element segment, ref.func, and an export.
//
//	type 0: (i32) -> (i32)      type 1: () -> ()
//	func 0: import env.note () -> ()
//	func 1: run(n): count n down in a loop, calling step through the table each time; note();
//	        return the sum of the step results
//	func 2: step(x) -> x + 1 (called via call_indirect)
func counting() []byte {
	i32 := byte(0x7f)
	types := sec(1, []byte{0x60, 1, i32, 1, i32}, []byte{0x60, 0, 0})
	imports := sec(2, cat(str("env"), str("note"), []byte{0x00}, u32(1)))
	funcs := sec(3, u32(0), u32(0))
	table := sec(4, []byte{0x70, 0x00, 1})
	exports := sec(7, cat(str("run"), []byte{0x00}, u32(1)), cat(str("step"), []byte{0x00}, u32(2)))
	elems := sec(9, cat(u32(0), []byte{0x41, 0, 0x0b}, u32(1), u32(2))) // table[0] = step
	run := cat(
		[]byte{0x01, 0x01, i32},                                      // one local (sum), i32
		[]byte{0x03, 0x40},                                           // loop
		[]byte{0x20, 0, 0x45, 0x04, 0x40},                            // if n == 0
		[]byte{0x10, 0, 0x20, 1, 0x0f, 0x0b},                         //   call note; return sum
		[]byte{0x20, 1, 0x41, 0, 0x41, 0, 0x11, 0, 0, 0x6a, 0x21, 1}, // sum = sum + step(0) via the table
		[]byte{0x20, 0, 0x41, 1, 0x6b, 0x21, 0},                      // n--
		[]byte{0x0c, 0, 0x0b},                                        // br 0 (to the loop), end loop
		[]byte{0x00, 0x0b},                                           // unreachable, end
	)
	// ref.func 2 (dropped) keeps the ref.func rewrite honest.
	step := cat([]byte{0x00, 0xd2, 2, 0x1a, 0x20, 0, 0x41, 1, 0x6a, 0x0b})
	code := sec(10, append(u32(uint32(len(run))), run...), append(u32(uint32(len(step))), step...))
	return wasmModule(types, imports, funcs, table, exports, elems, code)
}

// instantiate runs an instrumented module with env.note and the checkpoint counting calls.
func instantiate(t *testing.T, wasm []byte, checkpoint func()) (api.Module, *int) {
	t.Helper()
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	t.Cleanup(func() { rt.Close(ctx) })
	notes := new(int)
	if _, err := rt.NewHostModuleBuilder("env").NewFunctionBuilder().
		WithFunc(func() { *notes++ }).Export("note").Instantiate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.NewHostModuleBuilder("gw").NewFunctionBuilder().
		WithFunc(checkpoint).Export("checkpoint").Instantiate(ctx); err != nil {
		t.Fatal(err)
	}
	mod, err := rt.Instantiate(ctx, wasm)
	if err != nil {
		t.Fatal(err)
	}
	return mod, notes
}

var opts = Options{Module: "gw", Name: "checkpoint", Interval: 10}

// TestCheckpointFrequency: the rewritten module computes what the original did, calls every
// renumbered function correctly, and calls the checkpoint once per Interval loop heads and
// function entries.
func TestCheckpointFrequency(t *testing.T) {
	wasm, err := Instrument(counting(), opts)
	if err != nil {
		t.Fatal(err)
	}
	checkpoints := 0
	mod, notes := instantiate(t, wasm, func() { checkpoints++ })
	res, err := mod.ExportedFunction("run").Call(context.Background(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	if res[0] != 1000 || *notes != 1 {
		t.Fatalf("run(1000) = %d with %d notes, want 1000 and 1", res[0], *notes)
	}
	// 1001 loop heads, one checkpoint per 10. No entry checks: run enters its loop first
	// thing, and step calls nothing.
	if checkpoints != 100 {
		t.Errorf("%d checkpoints, want 100", checkpoints)
	}
	if res, err := mod.ExportedFunction("step").Call(context.Background(), 41); err != nil || res[0] != 42 {
		t.Errorf("step(41) = %v, %v", res, err)
	}
}

// TestCheckpointStops: a checkpoint that panics ends a guest that would loop forever.
func TestCheckpointStops(t *testing.T) {
	loop := wasmModule(
		sec(1, []byte{0x60, 0, 0}),
		sec(3, u32(0)),
		sec(7, cat(str("spin"), []byte{0x00}, u32(0))),
		sec(10, fnBody([]byte{0x03, 0x40, 0x0c, 0, 0x0b})),
	)
	wasm, err := Instrument(loop, opts)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	mod, _ := instantiate(t, wasm, func() {
		if n++; n == 1000 {
			panic("stop")
		}
	})
	_, err = mod.ExportedFunction("spin").Call(context.Background())
	if err == nil || !strings.Contains(err.Error(), "stop") {
		t.Fatalf("spin returned %v, want the checkpoint's panic", err)
	}
}

// bulkModule exports fill(n), copy(n) (memory.fill and memory.copy of n bytes at 0), grow(n)
// (memory.grow, the old size), tfill(n) (table.fill of n elements of its 2048) and spin(n) (a
// loop of n iterations).
func bulkModule() []byte {
	types := sec(1, []byte{0x60, 1, 0x7f, 0}, []byte{0x60, 1, 0x7f, 1, 0x7f}) // (i32) -> (), (i32) -> (i32)
	fill := fnBody([]byte{0x41, 0, 0x41, 0, 0x20, 0, 0xfc, 11, 0})            // memory.fill(0, 0, n)
	cpy := fnBody([]byte{0x41, 0, 0x41, 0, 0x20, 0, 0xfc, 10, 0, 0})          // memory.copy(0, 0, n)
	grow := fnBody([]byte{0x20, 0, 0x40, 0})                                  // memory.grow(n)
	tfill := fnBody([]byte{0x41, 0, 0xd0, 0x70, 0x20, 0, 0xfc, 17, 0})        // table.fill(0, null, n)
	spin := fnBody([]byte{0x02, 0x40, 0x03, 0x40, 0x20, 0, 0x45, 0x0d, 1,     // block loop; n == 0: out
		0x20, 0, 0x41, 1, 0x6b, 0x21, 0, 0x0c, 0, 0x0b, 0x0b}) // n--; br loop
	names := []string{"fill", "copy", "grow", "tfill", "spin"}
	var exports [][]byte
	for i, n := range names {
		exports = append(exports, cat(str(n), []byte{0x00}, u32(uint32(i))))
	}
	return wasmModule(types, sec(3, u32(0), u32(0), u32(1), u32(0), u32(0)),
		sec(4, []byte{0x70, 0x00, 0x80, 0x10}), // a table of 2048 funcref
		sec(5, []byte{0x00, 2}),                // 2 pages, no maximum
		sec(7, exports...), sec(10, fill, cpy, grow, tfill, spin))
}

// TestBulkCharges: bulk memory and table instructions charge the countdown one tick per
// BulkBytesPerTick bytes (8 bytes a table element, 64 KiB a page) and call the checkpoint when
// the charge uses it up; a count however large never raises the countdown.
func TestBulkCharges(t *testing.T) {
	wasm, err := Instrument(bulkModule(), opts) // Interval 10
	if err != nil {
		t.Fatal(err)
	}
	checkpoints := 0
	mod, _ := instantiate(t, wasm, func() { checkpoints++ })
	for i, c := range []struct {
		fn    string
		n     uint64
		after int // checkpoints so far
	}{
		{"fill", 64 << 10, 1},   // 64 ticks: more than the countdown of 10
		{"fill", 5 << 10, 1},    // 5 ticks: 5 left
		{"fill", 4 << 10, 1},    // 4: 1 left
		{"fill", 1 << 10, 2},    // 1: used up
		{"fill", 1023, 2},       // under a tick
		{"copy", 10 << 10, 3},   // 10: used up
		{"grow", 1, 4},          // a page: 64 ticks
		{"tfill", 1280, 5},      // 1280 elements of 8 bytes: 10 ticks
		{"grow", 0x03000000, 6}, // fails; its charge wraps to 0xC0000000, unsigned: a checkpoint
		{"spin", 25, 8},         // 26 loop heads: the countdown is 10 again, not raised
	} {
		if _, err := mod.ExportedFunction(c.fn).Call(context.Background(), c.n); err != nil {
			t.Fatalf("%d: %s(%d): %v", i, c.fn, c.n, err)
		}
		if checkpoints != c.after {
			t.Fatalf("%d: after %s(%d): %d checkpoints, want %d", i, c.fn, c.n, checkpoints, c.after)
		}
	}
	if got := mod.Memory().Size(); got != 3<<16 {
		t.Errorf("memory is %d bytes, want 3 pages: the charge changed what memory.grow did", got)
	}
}

// TestTableLimit: a table gets a maximum within MaxTableElements, so table.grow fails inside the
// guest beyond it; a larger minimum is refused.
func TestTableLimit(t *testing.T) {
	growType := sec(1, []byte{0x60, 1, 0x7f, 1, 0x7f})                       // (i32) -> (i32)
	grow := fnBody([]byte{0xd0, 0x70, 0x20, 0, 0xfc, 15, 0})                 // table.grow 0 (ref.null func, n)
	m := wasmModule(growType, sec(3, u32(0)), sec(4, []byte{0x70, 0x00, 1}), // min 1, no maximum
		sec(7, cat(str("grow"), []byte{0x00}, u32(0))), sec(10, grow))
	wasm, err := Instrument(m, opts)
	if err != nil {
		t.Fatal(err)
	}
	mod, _ := instantiate(t, wasm, func() {})
	for _, c := range []struct{ n, want uint64 }{
		{MaxTableElements, 0xffffffff}, // 1 + 2^20 > the maximum: -1
		{10, 1},                        // the old size
		{MaxTableElements - 11, 11},    // exactly to the maximum
	} {
		res, err := mod.ExportedFunction("grow").Call(context.Background(), c.n)
		if err != nil || uint32(res[0]) != uint32(c.want) {
			t.Errorf("table.grow(%d) = %v, %v; want %d", c.n, res, err, int32(c.want))
		}
	}
	huge := wasmModule(sec(4, cat([]byte{0x70, 0x00}, u32(MaxTableElements+1))))
	if _, err := Instrument(huge, opts); err == nil || !strings.Contains(err.Error(), "more than the 1048576 allowed") {
		t.Errorf("a table of 2^20+1 elements: %v", err)
	}
}

// TestShippedModules: every policy gw ships (Go and C builds) instruments into a module wazero
// compiles, with the same exports, deterministically.
func TestShippedModules(t *testing.T) {
	files, _ := filepath.Glob("../../../policies/*.wasm")
	if len(files) == 0 {
		t.Fatal("no shipped policies found")
	}
	ctx := context.Background()
	// The interpreter validates as the compiler does, at a fraction of the cost under -race.
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	defer rt.Close(ctx)
	for _, f := range files {
		orig, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		wasm, err := Instrument(orig, opts)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		again, _ := Instrument(orig, opts)
		if !bytes.Equal(wasm, again) {
			t.Errorf("%s: two rewrites differ", f)
		}
		before, err := rt.CompileModule(ctx, orig)
		if err != nil {
			t.Fatal(err)
		}
		after, err := rt.CompileModule(ctx, wasm)
		if err != nil {
			t.Errorf("%s: instrumented module does not compile: %v", f, err)
			continue
		}
		for name, def := range before.ExportedFunctions() {
			got, ok := after.ExportedFunctions()[name]
			if !ok || got.Index() != def.Index()+1 || !equalTypes(got, def) {
				t.Errorf("%s: export %s moved from %d to %v", f, name, def.Index(), got)
			}
		}
		imports := after.ImportedFunctions()
		last := imports[len(imports)-1]
		if mod, name, _ := last.Import(); mod != "gw" || name != "checkpoint" {
			t.Errorf("%s: last import is %s.%s", f, mod, name)
		}
		t.Logf("%s: %d → %d bytes", filepath.Base(f), len(orig), len(wasm))
	}
}

func equalTypes(a, b api.FunctionDefinition) bool {
	return bytes.Equal(a.ParamTypes(), b.ParamTypes()) && bytes.Equal(a.ResultTypes(), b.ResultTypes())
}

// TestRefuses: what cannot be instrumented safely is refused with a reason.
func TestRefuses(t *testing.T) {
	voidType := sec(1, []byte{0x60, 0, 0})
	oneFunc := sec(3, u32(0))
	cases := []struct {
		name, want string
		wasm       []byte
	}{
		{"not wasm", "not a WebAssembly 1.0 binary", []byte("hello, world")},
		{"truncated section", "unexpected end", wasmModule(voidType)[:12]},
		{"imports from the checkpoint's module", "reserves",
			wasmModule(voidType, sec(2, cat(str("gw"), str("checkpoint"), []byte{0x00}, u32(0))))},
		// global.get 0 in a module with no globals: after the rewrite it would name the budget.
		{"names a global that does not exist", "global 0 does not exist",
			wasmModule(voidType, oneFunc, sec(10, fnBody([]byte{0x23, 0, 0x1a})))},
		{"atomics", "not a WebAssembly 2.0 instruction",
			wasmModule(voidType, oneFunc, sec(10, fnBody([]byte{0xfe, 0x03, 0x00})))},
		{"exception handling", "not a WebAssembly 2.0 instruction",
			wasmModule(voidType, oneFunc, sec(10, fnBody([]byte{0x1f, 0x40, 0x00, 0x0b})))},
		{"body without end", "unexpected end",
			wasmModule(voidType, oneFunc, sec(10, append(u32(2), 0x00, 0x01)))},
		{"element flags", "not WebAssembly 2.0",
			wasmModule(voidType, sec(9, u32(8)))},
		// Counts that would make wazero allocate gigabytes before reading a byte.
		{"import count lies", "import section: a vector of 4294967295 elements in 0 bytes", wasmModule(append([]byte{2, 5}, u32(0xffffffff)...))},
		{"function count lies", "a vector of 4294967295 elements in 0 bytes", wasmModule(append([]byte{3, 5}, u32(0xffffffff)...))},
		{"table count lies", "a vector of", wasmModule(append([]byte{4, 5}, u32(0xffffffff)...))},
		{"param count lies", "type section: a vector of 4294967295", wasmModule(sec(1, cat([]byte{0x60}, u32(0xffffffff))))},
		{"data length lies", "data section: a vector of 4294967295", wasmModule(sec(11, cat(u32(0), []byte{0x41, 0, 0x0b}, u32(0xffffffff))))},
		{"custom name length lies", "unexpected end", wasmModule(append([]byte{0, 5}, u32(0xffffffff)...))},
		{"4 billion locals", "4294967295 locals", wasmModule(voidType, oneFunc,
			sec(10, cat(u32(8), u32(1), u32(0xffffffff), []byte{0x7f, 0x0b})))},
	}
	for _, c := range cases {
		_, err := Instrument(c.wasm, opts)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.name, err, c.want)
		}
	}
}

// FuzzInstrument: Instrument never panics, and whatever wazero accepts it can instrument into a
// module wazero accepts too. The seeds run with every go test; go test -fuzz FuzzInstrument
// explores further.
func FuzzInstrument(f *testing.F) {
	f.Add(counting())
	f.Add(bulkModule())
	f.Add(wasmModule(sec(1, []byte{0x60, 0, 0}), sec(3, u32(0)), sec(10, fnBody([]byte{0x03, 0x40, 0x0c, 0, 0x0b}))))
	if c, err := os.ReadFile("../../../policies/deny-destructive.wasm"); err == nil {
		f.Add(c)
	}
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	defer rt.Close(ctx)
	f.Fuzz(func(t *testing.T, wasm []byte) {
		out, err := Instrument(wasm, opts)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return // refused: wazero never sees it (gw compiles only what Instrument returns)
		}
		// What Instrument accepts has sane counts, so wazero may decode it without a memory
		// blow-up; if wazero accepts the original, it must accept the rewrite.
		orig, cerr := rt.CompileModule(ctx, wasm)
		if cerr != nil {
			return
		}
		defer orig.Close(ctx)
		after, err := rt.CompileModule(ctx, out)
		if err != nil {
			t.Fatalf("wazero accepts the module but not its instrumented form: %v", err)
		}
		after.Close(ctx)
	})
}
