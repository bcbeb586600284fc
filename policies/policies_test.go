package policies_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/gwmcp/gw/gateway"
	"github.com/gwmcp/gw/policies"
)

var (
	authorizers = []string{"allow-all", "allowlist", "deny-destructive", "read-only"}
	resolvers   = []string{"first-come", "prefix", "reject"}
)

func TestEmbedded(t *testing.T) {
	want := slices.Sorted(slices.Values(append(slices.Clone(authorizers), resolvers...)))
	if got := policies.Names(); !slices.Equal(got, want) {
		t.Fatalf("Names() = %v, want %v", got, want)
	}
	for _, name := range want {
		b, ok := policies.Builtin(name)
		if !ok || !bytes.HasPrefix(b, []byte("\x00asm\x01\x00\x00\x00")) {
			t.Errorf("Builtin(%q): ok=%v, not a wasm v1 module", name, ok)
		}
		b[0] = 'X' // a copy: the embedded bytes stay intact
		if again, _ := policies.Builtin(name); again[0] != 0 {
			t.Fatalf("Builtin(%q) returned the embedded bytes themselves", name)
		}
	}
	for _, name := range []string{"", "nope", "prefix.wasm", "../policies/prefix", "."} {
		if _, ok := policies.Builtin(name); ok {
			t.Errorf("Builtin(%q) = true", name)
		}
	}
}

// guest is one instance of a policy module, driven as gw's host does.
type guest struct {
	mod                  api.Module
	alloc, init, version api.Function
	authorize, collision api.Function
}

// cache shares compiled modules between the tests' runtimes, and on disk
// with the other packages' tests and later runs: compiling a 2 MB Go module
// under the race detector takes many seconds.
var cache = func() wazero.CompilationCache {
	c, err := wazero.NewCompilationCacheWithDir(filepath.Join(os.TempDir(), "gw-test-wasm-cache"))
	if err != nil {
		return wazero.NewCompilationCache()
	}
	return c
}()

func newRuntime(t testing.TB) wazero.Runtime {
	return newRuntimeConfig(t, true)
}

// newRuntimeConfig makes a runtime as gw's host does; closeOnDone is
// wazero's WithCloseOnContextDone, which gw needs for call deadlines and
// which costs a goroutine per call.
func newRuntimeConfig(t testing.TB, closeOnDone bool) wazero.Runtime {
	ctx := context.Background()
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().
		WithMemoryLimitPages(1024).WithCloseOnContextDone(closeOnDone).WithCompilationCache(cache))
	t.Cleanup(func() { r.Close(ctx) })
	wasi_snapshot_preview1.MustInstantiate(ctx, r)
	return r
}

// load compiles a builtin, checks its exports and imports against the ABI,
// instantiates it with a sandboxed WASI (no fs, env or args), runs
// _initialize and gw_init with config.
func load(t testing.TB, r wazero.Runtime, name, config string) *guest {
	t.Helper()
	ctx := context.Background()
	bin, ok := policies.Builtin(name)
	if !ok {
		t.Fatalf("no builtin %q", name)
	}
	cm, err := r.CompileModule(ctx, bin)
	if err != nil {
		t.Fatalf("%s: compile: %v", name, err)
	}
	for _, f := range cm.ImportedFunctions() {
		if mod, _, _ := f.Import(); mod != wasi_snapshot_preview1.ModuleName {
			t.Errorf("%s imports from %q", name, mod)
		}
	}
	exports := cm.ExportedFunctions()
	sig := func(export string, params, results []api.ValueType) {
		t.Helper()
		f, ok := exports[export]
		if !ok {
			t.Fatalf("%s: no export %s", name, export)
		}
		if !slices.Equal(f.ParamTypes(), params) || !slices.Equal(f.ResultTypes(), results) {
			t.Fatalf("%s: %s has signature %v -> %v", name, export, f.ParamTypes(), f.ResultTypes())
		}
	}
	i32, i64 := api.ValueTypeI32, api.ValueTypeI64
	sig("gw_abi_version", nil, []api.ValueType{i32})
	sig("gw_alloc", []api.ValueType{i32}, []api.ValueType{i32})
	sig("gw_init", []api.ValueType{i32, i32}, []api.ValueType{i64})
	_, hasAuthz := exports["gw_authorize"]
	_, hasColl := exports["gw_collision"]
	if hasAuthz != slices.Contains(authorizers, name) || hasColl != slices.Contains(resolvers, name) {
		t.Fatalf("%s: exports gw_authorize=%v gw_collision=%v: a module must export only what it implements", name, hasAuthz, hasColl)
	}
	if hasAuthz {
		sig("gw_authorize", []api.ValueType{i32, i32}, []api.ValueType{i64})
	} else {
		sig("gw_collision", []api.ValueType{i32, i32}, []api.ValueType{i64})
	}
	if _, ok := cm.ExportedMemories()["memory"]; !ok {
		t.Fatalf("%s: no memory export", name)
	}
	mod, err := r.InstantiateModule(ctx, cm, wazero.NewModuleConfig().WithName("").WithStartFunctions())
	if err != nil {
		t.Fatalf("%s: instantiate: %v", name, err)
	}
	t.Cleanup(func() { mod.Close(ctx) })
	if f := mod.ExportedFunction("_initialize"); f != nil {
		if _, err := f.Call(ctx); err != nil {
			t.Fatalf("%s: _initialize: %v", name, err)
		}
	}
	g := &guest{mod: mod, alloc: mod.ExportedFunction("gw_alloc"), init: mod.ExportedFunction("gw_init"),
		version: mod.ExportedFunction("gw_abi_version"), authorize: mod.ExportedFunction("gw_authorize"),
		collision: mod.ExportedFunction("gw_collision")}
	if v, err := g.version.Call(ctx); err != nil || api.DecodeI32(v[0]) != 1 {
		t.Fatalf("%s: gw_abi_version = %v, %v", name, v, err)
	}
	if out := g.must(t, g.init, config); out != `{"ok":true}` {
		t.Fatalf("%s: gw_init(%s) = %s", name, config, out)
	}
	return g
}

// call runs one ABI call sequence: gw_alloc, write, the export, copy out.
func (g *guest) call(fn api.Function, input []byte) ([]byte, error) {
	ctx := context.Background()
	res, err := g.alloc.Call(ctx, uint64(len(input)))
	if err != nil {
		return nil, err
	}
	ptr := uint32(res[0])
	if ptr == 0 || !g.mod.Memory().Write(ptr, input) {
		return nil, fmt.Errorf("gw_alloc(%d) = %#x", len(input), ptr)
	}
	res, err = fn.Call(ctx, uint64(ptr), uint64(len(input)))
	if err != nil {
		return nil, err
	}
	optr, olen := uint32(res[0]>>32), uint32(res[0])
	if res[0] == 0 {
		return nil, fmt.Errorf("no output")
	}
	out, ok := g.mod.Memory().Read(optr, olen)
	if !ok {
		return nil, fmt.Errorf("output %#x+%d outside memory", optr, olen)
	}
	return bytes.Clone(out), nil
}

func (g *guest) must(t testing.TB, fn api.Function, input string) string {
	t.Helper()
	out, err := g.call(fn, []byte(input))
	if err != nil {
		t.Fatalf("call(%s): %v", input, err)
	}
	if !json.Valid(out) {
		t.Fatalf("call(%s): output is not JSON: %q", input, out)
	}
	return string(out)
}

func TestAuthorizers(t *testing.T) {
	r := newRuntime(t)
	const (
		ro    = `{"caller":{"id":"alice","groups":["dev"]},"server":"notes","tool":"search","name":"notes__search","annotations":{"readOnlyHint":true},"arguments":{"query":"x"}}`
		del   = `{"caller":{"id":"bob"},"server":"notes","tool":"delete","name":"notes__delete","annotations":{"destructiveHint":true},"arguments":{"id":"1"}}`
		plain = `{"caller":{"id":"carol","groups":["ops"]},"server":"web","tool":"search","name":"web__search","arguments":{"q":"\"}]"}}`
		odd   = `{"caller":{"id":""},"server":"s","tool":"t","name":"we\"ird\u2028","annotations":{"destructiveHint":true,"readOnlyHint":false}}`
	)
	deny := func(policy, reason string) string {
		b, _ := json.Marshal(map[string]any{"allow": false, "reason": policy + " policy: " + reason})
		return string(b)
	}
	cases := []struct {
		module, config string
		want           map[string]string
	}{
		{"allow-all", `{}`, map[string]string{ro: `{"allow":true}`, del: `{"allow":true}`, plain: `{"allow":true}`}},
		{"read-only", `{}`, map[string]string{
			ro:    `{"allow":true}`,
			del:   deny("read-only", `tool "notes__delete" is not read-only`),
			plain: deny("read-only", `tool "web__search" is not read-only`),
		}},
		{"allowlist", `{"rules":[{"callers":["alice","group:ops"],"tools":["notes__*","web__search"]}]}`, map[string]string{
			ro:    `{"allow":true}`,
			del:   deny("allowlist", `caller "bob" may not call tool "notes__delete"`),
			plain: `{"allow":true}`,
			odd:   deny("allowlist", "anonymous caller may not call tool \"we\"ird\u2028\""),
		}},
		{"allowlist", `{}`, map[string]string{ro: deny("allowlist", `caller "alice" may not call tool "notes__search"`)}},
		{"deny-destructive", `{}`, map[string]string{
			ro:    `{"allow":true}`,
			del:   `{"allow":false,"reason":"deny-destructive policy: tool \"notes__delete\" is marked destructive"}`,
			plain: `{"allow":true}`,
			odd:   `{"allow":false,"reason":"deny-destructive policy: tool \"we\"ird\u2028\" is marked destructive"}`,
		}},
	}
	for _, c := range cases {
		g := load(t, r, c.module, c.config)
		for in, want := range c.want {
			got := g.must(t, g.authorize, in)
			if !sameJSON(got, want) {
				t.Errorf("%s(%s):\n got  %s\n want %s", c.module, in, got, want)
			}
		}
	}
}

// sameJSON compares two outputs by meaning (escaping may differ).
func sameJSON(a, b string) bool {
	var x, y any
	return json.Unmarshal([]byte(a), &x) == nil && json.Unmarshal([]byte(b), &y) == nil &&
		fmt.Sprint(x) == fmt.Sprint(y)
}

// TestFailClosed: input gw would never send is a deny, never a trap or an
// allow; the instance stays usable.
func TestFailClosed(t *testing.T) {
	r := newRuntime(t)
	bad := []string{``, `{`, `[]`, `{"name":"x"} x`, `{"name":1}`, `{"name":"a","name":"b"}`,
		`{"annotations":{"destructiveHint":"yes"}}`, `{"annotations":5}`,
		`{"arguments":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`,
		"{\"name\":\"a\x01\"}", `{"arguments":{"a":01}}`}
	for _, name := range authorizers {
		g := load(t, r, name, `{}`)
		for _, in := range bad {
			out := g.must(t, g.authorize, in)
			var d struct {
				Allow  *bool
				Reason string
			}
			if json.Unmarshal([]byte(out), &d) != nil || d.Allow == nil || *d.Allow || d.Reason == "" {
				t.Errorf("%s(%.60q) = %s, want a deny with a reason", name, in, out)
			}
		}
		if got := g.must(t, g.authorize, `{"name":"x","annotations":{"readOnlyHint":true}}`); got != `{"allow":true}` && name != "allowlist" {
			t.Errorf("%s: after bad inputs: %s", name, got)
		}
	}
}

func TestInitConfig(t *testing.T) {
	r := newRuntime(t)
	for _, c := range []struct{ module, config, want string }{
		{"read-only", `{"x":1}`, `{"error":"this policy takes no config"}`},
		{"deny-destructive", `{"x":1}`, `{"error":"this policy takes no config"}`},
		{"reject", `[]`, `{"error":"this policy takes no config"}`},
		{"allowlist", `{"rules":[{"callers":["a"]}]}`, `{"error":"allowlist config: rules[0]: \"tools\" is missing or empty"}`},
		{"prefix", `{"max_length":200}`, `{"error":"prefix config: max_length must be between 10 and 128, got 200"}`},
		{"prefix", `{"separator":"/"}`, `{"error":"prefix config: separator \"/\" must be 1 to 8 of the characters A-Z a-z 0-9 _ . -"}`},
	} {
		g := load(t, r, c.module, `{}`)
		if got := g.must(t, g.init, c.config); got != c.want {
			t.Errorf("%s gw_init(%s) = %s, want %s", c.module, c.config, got, c.want)
		}
	}
	// A pointer gw_alloc did not return is refused, not trusted.
	g := load(t, r, "read-only", `{}`)
	if res, err := g.authorize.Call(context.Background(), 16, 4); err != nil || res[0] == 0 {
		t.Fatalf("foreign pointer: %v %v", res, err)
	}
}

type resolution struct {
	Names    []struct{ Server, Name, Exposed string }
	Rejected []struct{ Server, Name, Reason string }
}

func resolve(t testing.TB, g *guest, in []gateway.ServerItems) resolution {
	t.Helper()
	type item struct {
		Name        string          `json:"name"`
		Description string          `json:"description,omitempty"`
		Annotations json.RawMessage `json:"annotations,omitempty"`
	}
	type server struct {
		Server string `json:"server"`
		Items  []item `json:"items"`
	}
	input := struct {
		Kind    string   `json:"kind"`
		Servers []server `json:"servers"`
	}{Kind: "tools"}
	for _, s := range in {
		srv := server{Server: s.Server, Items: []item{}}
		for _, it := range s.Items {
			srv.Items = append(srv.Items, item{Name: it.Key, Description: it.Description, Annotations: it.Annotations})
		}
		input.Servers = append(input.Servers, srv)
	}
	doc, _ := json.Marshal(input)
	out := g.must(t, g.collision, string(doc))
	var res resolution
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&res); err != nil {
		t.Fatalf("output %s: %v", out, err)
	}
	return res
}

func TestResolvers(t *testing.T) {
	r := newRuntime(t)
	in := []gateway.ServerItems{
		{Server: "notes", Items: []gateway.Item{{Key: "search", Description: "Find notes", Annotations: json.RawMessage(`{"readOnlyHint":true}`)}, {Key: "add"}}},
		{Server: "web", Items: []gateway.Item{{Key: "search"}, {Key: "fetch"}, {Key: "bad name"}}},
	}
	for module, want := range map[string]string{
		"reject":     `{[{notes search search} {notes add add} {web fetch fetch}] [{web search name collides with notes/search} {web bad name name breaks the MCP naming rule [A-Za-z0-9_.-]{1,128}}]}`,
		"first-come": `{[{notes search search} {notes add add} {web fetch fetch}] [{web search shadowed by notes} {web bad name name breaks the MCP naming rule [A-Za-z0-9_.-]{1,128}}]}`,
		"prefix":     `{[{notes search notes__search} {notes add notes__add} {web search web__search} {web fetch web__fetch} {web bad name web__bad_name}] []}`,
	} {
		g := load(t, r, module, `{}`)
		if got := fmt.Sprint(resolve(t, g, in)); got != want {
			t.Errorf("%s:\n got  %s\n want %s", module, got, want)
		}
		if _, err := g.call(g.collision, []byte(`{"servers":5}`)); err == nil {
			t.Errorf("%s: bad input must give no output", module)
		}
	}
}

// TestPrefixMatchesGateway: prefix.wasm and gw's built-in PrefixResolver
// give the same names on random catalogs (odd characters, long names,
// collisions after sanitising, duplicates).
func TestPrefixMatchesGateway(t *testing.T) {
	r := newRuntime(t)
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", "b", "_", "-", ".", "/", " ", "é", "\u2028", "x", "\ufffd", "__"}
	word := func(max int) string {
		var b strings.Builder
		for n := 1 + rng.IntN(max); n > 0; n-- {
			b.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		return b.String()
	}
	for _, cfg := range []struct {
		sep string
		max int
	}{{"__", 64}, {".", 12}, {"-", 10}, {"_", 128}} {
		g := load(t, r, "prefix", fmt.Sprintf(`{"separator":%q,"max_length":%d}`, cfg.sep, cfg.max))
		pr := gateway.PrefixResolver{Separator: cfg.sep, MaxLength: cfg.max}
		for round := 0; round < 150; round++ {
			var in []gateway.ServerItems
			for s := rng.IntN(5); s >= 0; s-- {
				srv := gateway.ServerItems{Server: word(4)}
				for i := rng.IntN(6); i >= 0; i-- {
					srv.Items = append(srv.Items, gateway.Item{Key: word(3 + rng.IntN(2)*40)})
				}
				in = append(in, srv)
			}
			want, err := pr.Resolve(gateway.KindTools, in)
			if err != nil {
				t.Fatal(err)
			}
			got := resolve(t, g, in)
			names := map[gateway.ItemKey]string{}
			for _, n := range got.Names {
				names[gateway.ItemKey{Server: n.Server, Name: n.Name}] = n.Exposed
			}
			var rejected []gateway.Rejection
			for _, rj := range got.Rejected {
				rejected = append(rejected, gateway.Rejection{Server: rj.Server, Name: rj.Name, Reason: rj.Reason})
			}
			if fmt.Sprint(names) != fmt.Sprint(want.Names) || fmt.Sprint(rejected) != fmt.Sprint(want.Rejected) {
				t.Fatalf("sep %q max %d, input %+v:\n wasm    %v %v\n gateway %v %v", cfg.sep, cfg.max, in, names, rejected, want.Names, want.Rejected)
			}
			if err := gateway.ValidateResolution(gateway.KindTools, in, gateway.Resolution{Names: names}); err != nil {
				t.Fatalf("gw refuses the answer: %v", err)
			}
		}
	}
}

// sample90 is a 90-byte authorize input.
const sample90 = `{"caller":{"id":"bob"},"server":"notes","tool":"read","name":"notes__read","arguments":{}}`

// BenchmarkAuthorize measures one host call sequence (gw_alloc, write,
// gw_authorize, read) per module, with and without CloseOnContextDone;
// "boundary" is a bare gw_abi_version call, the cost of crossing into the
// guest and back.
func BenchmarkAuthorize(b *testing.B) {
	if len(sample90) != 90 {
		b.Fatalf("sample is %d bytes", len(sample90))
	}
	b.Run("deadlines", func(b *testing.B) { benchAuthorize(b, newRuntimeConfig(b, true)) })
	b.Run("no-deadlines", func(b *testing.B) { benchAuthorize(b, newRuntimeConfig(b, false)) })
}

func benchAuthorize(b *testing.B, r wazero.Runtime) {
	b.Run("boundary", func(b *testing.B) {
		g := load(b, r, "allow-all", `{}`)
		ctx := context.Background()
		for b.Loop() {
			if _, err := g.version.Call(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, name := range []string{"allow-all", "read-only", "allowlist", "deny-destructive"} {
		b.Run(name, func(b *testing.B) {
			config := `{}`
			if name == "allowlist" {
				config = `{"rules":[{"callers":["alice","bob"],"tools":["notes__*"]}]}`
			}
			g := load(b, r, name, config)
			in := []byte(sample90)
			for b.Loop() {
				if _, err := g.call(g.authorize, in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCompile is the one-time cost of compiling each module.
func BenchmarkCompile(b *testing.B) {
	for _, name := range policies.Names() {
		bin, _ := policies.Builtin(name)
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				r := wazero.NewRuntime(context.Background())
				if _, err := r.CompileModule(context.Background(), bin); err != nil {
					b.Fatal(err)
				}
				r.Close(context.Background())
			}
		})
	}
}

// FuzzAuthorizeFailsClosed drives the read-only (Go kit) and
// deny-destructive (C) modules with arbitrary input: every answer is valid
// JSON with an allow member, and neither ever allows what it must not —
// invalid JSON, a tool not marked read-only, a tool marked destructive (as
// encoding/json reads the input).
func FuzzAuthorizeFailsClosed(f *testing.F) {
	f.Add([]byte(`{"caller":{"id":"alice"},"name":"notes__search","annotations":{"readOnlyHint":true},"arguments":{"q":"x"}}`))
	f.Add([]byte(`{"name":"x","annotations":{"destructiveHint":true,"readOnlyHint":true}}`))
	f.Add([]byte(`{"name":"a\"b","annotations":{"destructiveHint":false},"arguments":["}",{"annotations":{"destructiveHint":true}}]}`))
	f.Add([]byte(`{"annotations":{"destructiveHint":true},"annotations":{}}`))
	r := newRuntime(f)
	ro := load(f, r, "read-only", `{}`)
	dd := load(f, r, "deny-destructive", `{}`)
	f.Fuzz(func(t *testing.T, in []byte) {
		// Maps, not structs: encoding/json matches struct fields
		// case-insensitively, gw's policies (rightly) do not.
		var top, ann map[string]json.RawMessage
		valid := json.Valid(in) && json.Unmarshal(in, &top) == nil
		if a, ok := top["annotations"]; ok && string(a) != "null" {
			valid = valid && json.Unmarshal(a, &ann) == nil
		}
		hint := func(name string) string { return string(ann[name]) }
		for _, c := range []struct {
			g       *guest
			mayPass bool
		}{
			{ro, valid && hint("readOnlyHint") == "true"},
			{dd, valid && hint("destructiveHint") != "true"},
		} {
			out, err := c.g.call(c.g.authorize, in)
			if err != nil {
				t.Fatalf("%q: %v", in, err)
			}
			var d struct{ Allow *bool }
			if json.Unmarshal(out, &d) != nil || d.Allow == nil {
				t.Fatalf("%q: bad output %q", in, out)
			}
			if *d.Allow && !c.mayPass {
				t.Fatalf("%q allowed: %s", in, out)
			}
		}
	})
}
