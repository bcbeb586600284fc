package plugins

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// wantErr checks that err is an *Error of kind whose message contains every part.
func wantErr(t testing.TB, err error, kind error, parts ...string) *Error {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %v", kind)
	}
	if !errors.Is(err, kind) {
		t.Fatalf("got %v, want kind %v", err, kind)
	}
	e, ok := errors.AsType[*Error](err)
	if !ok {
		t.Fatalf("got %T (%v), want *Error", err, err)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not contain %q", err, p)
		}
	}
	return e
}

// good is a minimal well-behaved hand-made module.
var good = guest{output: `{"allow":true}`}

func TestEchoGuest(t *testing.T) {
	h := newHost(t)
	start := time.Now()
	m := load(t, h, "echo", echoWasm, `{"version":7}`, Limits{CallTimeout: 10 * time.Second}) // the big echo is slow under -race
	t.Logf("load (compile or cache hit, checks, first instance): %v, wasm %d bytes", time.Since(start), len(echoWasm))
	if got := strings.Join(m.Exports(), ","); got != "gw_authorize,gw_collision" {
		t.Errorf("Exports() = %s", got)
	}
	if m.Name() != "echo" || !m.Has(ExportCollision) || m.Has("gw_init") {
		t.Errorf("Name/Has wrong")
	}
	for _, export := range m.Exports() {
		out, err := m.Call(context.Background(), export, []byte(`{"tool":"x"}`))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := string(out), `{"allow":true,"version":7,"input":{"tool":"x"}}`; got != want {
			t.Fatalf("%s: got %s, want %s", export, got, want)
		}
	}
	// Large input and output, near the output limit.
	big := `"` + strings.Repeat("x", 900<<10) + `"`
	out, err := m.Call(context.Background(), ExportAuthorize, []byte(big))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(string(out), big+"}") {
		t.Fatalf("big echo mangled (len %d)", len(out))
	}
	// The pool reused one instance for all of that.
	if n := liveInstances(m); n != 1 {
		t.Errorf("%d live instances after sequential calls, want 1", n)
	}
}

func liveInstances(m *Module) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.live)
}

func TestHandMadeGood(t *testing.T) {
	h := newHost(t)
	m := load(t, h, "good", abiModule(guest{output: `{"allow":true}`, collision: true}), "", Limits{})
	for _, export := range []string{ExportAuthorize, ExportCollision} {
		out, err := m.Call(context.Background(), export, []byte(`{}`))
		if err != nil || string(out) != `{"allow":true}` {
			t.Fatalf("%s: %s, %v", export, out, err)
		}
	}
	_, err := m.Call(context.Background(), "gw_init", []byte(`{}`))
	wantErr(t, err, ErrMissingExport, `module "good"`, "gw_init")
	_, err = m.Call(context.Background(), "nope", nil)
	wantErr(t, err, ErrMissingExport)
}

func TestLoadRefuses(t *testing.T) {
	h := newHost(t)
	initErr := guest{output: `{"allow":true}`, initOut: `{"error":"nope"}`}
	initLoop := guest{output: `{"allow":true}`, init: bodyLoop}
	initTrap := guest{output: `{"allow":true}`, initFunc: bodyTrap}
	cases := []struct {
		name   string
		wasm   []byte
		config string
		lim    Limits
		kind   error
		parts  []string
	}{
		{"not wasm", []byte("hello"), "", Limits{}, ErrInvalidModule, []string{"compile"}},
		{"empty", nil, "", Limits{}, ErrInvalidModule, nil},
		// 14 bytes declaring 2^32-1 imports: wazero alone would allocate ~300 GiB and the process
		// would die.
		{"lying import count", []byte("\x00asm\x01\x00\x00\x00\x02\x05\xff\xff\xff\xff\x0f"), "", Limits{},
			ErrInvalidModule, []string{"compile: import section: a vector of 4294967295 elements in 0 bytes"}},
		{"no memory", abiModule(guest{output: "{}", noMemory: true}), "", Limits{}, ErrMissingExport, []string{"memory: not exported"}},
		{"no gw_alloc", abiModule(guest{output: "{}", noAlloc: true}), "", Limits{}, ErrMissingExport, []string{"gw_alloc"}},
		{"no gw_abi_version", abiModule(guest{output: "{}", noVersion: true}), "", Limits{}, ErrMissingExport, []string{"gw_abi_version"}},
		{"no decision", abiModule(guest{noDecide: true}), "", Limits{}, ErrMissingExport, []string{"gw_authorize or gw_collision"}},
		{"decision (i32) -> i32", abiModule(guest{decParams: []byte{i32}, decResult: []byte{i32}, decision: [][]byte{i32c(0)}}),
			"", Limits{}, ErrBadSignature, []string{"gw_authorize: signature (i32) -> (i32), want (i32, i32) -> (i64)"}},
		{"decision () -> i64", abiModule(guest{decParams: []byte{}, decision: [][]byte{i64c(0)}}),
			"", Limits{}, ErrBadSignature, []string{"gw_authorize"}},
		{"abi version 2", abiModule(guest{output: "{}", version: 2}), "", Limits{}, ErrABIVersion, []string{"returned 2"}},
		{"abi version -1", abiModule(guest{output: "{}", version: -1}), "", Limits{}, ErrABIVersion, []string{"returned -1"}},
		{"imports env", abiModule(guest{output: "{}", imports: [][2]string{{"env", "host_fn"}}}), "", Limits{}, ErrImport, []string{"env.host_fn"}},
		{"imports unknown wasi function", abiModule(guest{output: "{}", imports: [][2]string{{"wasi_snapshot_preview1", "nope"}}}),
			"", Limits{}, ErrImport, []string{"does not provide"}},
		{"imports wasi function with wrong type", abiModule(guest{output: "{}", imports: [][2]string{{"wasi_snapshot_preview1", "proc_exit"}}}),
			"", Limits{}, ErrImport, []string{"proc_exit with signature () -> ()"}},
		{"command module", abiModule(guest{output: "{}", start: true}), "", Limits{}, ErrNotReactor, []string{"_start"}},
		{"memory minimum over limit", abiModule(guest{output: "{}", memMin: 2000}), "", Limits{}, ErrInvalidModule, []string{"over limit"}},
		{"memory minimum over custom limit", abiModule(guest{output: "{}", memMin: 20}), "", Limits{MemoryLimitPages: 16}, ErrInvalidModule, nil},
		{"limit over 4 GiB", abiModule(good), "", Limits{MemoryLimitPages: 65537}, ErrInvalidLimits, nil},
		{"huge pool", abiModule(good), "", Limits{PoolSize: 1 << 30}, ErrInvalidLimits, nil},
		{"config not JSON", abiModule(good), "{nope", Limits{}, ErrInit, []string{"not UTF-8 JSON"}},
		{"trailing garbage", append(abiModule(good), 0), "", Limits{}, ErrInvalidModule, nil},
		{"gw_init refuses", abiModule(initErr), "", Limits{}, ErrInit, []string{"gw_init: refused the configuration: nope"}},
		{"_initialize traps", abiModule(initTrap), "", Limits{}, ErrTrap, []string{"_initialize: trapped"}},
		{"gw_init loops", abiModule(initLoop), "", Limits{InitTimeout: 50 * time.Millisecond}, ErrTimeout, []string{"gw_init: timed out after 50ms"}},
		{"Go guest refuses its config", echoWasm, `{"fail":"no way"}`, Limits{}, ErrInit, []string{"gw_init: refused the configuration: no way"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := h.Load(context.Background(), "bad", c.wasm, []byte(c.config), c.lim)
			if err == nil {
				m.Close(context.Background())
			}
			wantErr(t, err, c.kind, append([]string{`plugins: module "bad": `}, c.parts...)...)
			t.Log(err)
		})
	}
}

// TestInitAnswers checks how gw_init's answer is read.
func TestInitAnswers(t *testing.T) {
	h := newHost(t)
	for _, c := range []struct {
		answer string
		kind   error // nil = loads
	}{
		{`{"ok":true}`, nil},
		{`{"ok":true,"extra":1}`, nil},
		{`{"error":"bad key"}`, ErrInit},
		{`{"OK":true}`, ErrInit}, // case-sensitive
		{`{"ok":false}`, ErrInit},
		{`[]`, ErrInit},
		{`not json`, ErrBadOutput},
		{``, nil}, // 0: no output is accepted from gw_init
	} {
		g := guest{output: `{"allow":true}`, init: [][]byte{i64c(0)}, initOut: c.answer}
		m, err := h.Load(context.Background(), "init", abiModule(g), nil, Limits{})
		if c.kind == nil {
			if err != nil {
				t.Errorf("%q: %v", c.answer, err)
				continue
			}
			m.Close(context.Background())
			continue
		}
		if !errors.Is(err, c.kind) {
			t.Errorf("%q: got %v, want %v", c.answer, err, c.kind)
		}
	}
}

func TestHostClose(t *testing.T) {
	h, err := NewHost(context.Background(), HostConfig{})
	if err != nil {
		t.Fatal(err)
	}
	m := load(t, h, "good", abiModule(good), "", Limits{MemoryLimitPages: 2})
	m2 := load(t, h, "good2", abiModule(good), "", Limits{})
	if len(h.runtimes) != 2 {
		t.Errorf("%d runtimes for 2 memory limits", len(h.runtimes))
	}
	if err := h.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, err = m.Call(context.Background(), ExportAuthorize, []byte(`{}`))
	wantErr(t, err, ErrClosed)
	_, err = m2.Call(context.Background(), ExportAuthorize, []byte(`{}`))
	wantErr(t, err, ErrClosed)
	_, err = h.Load(context.Background(), "late", abiModule(good), nil, Limits{})
	wantErr(t, err, ErrClosed, "host is closed")
}

func TestCacheDir(t *testing.T) {
	dir := t.TempDir()
	for i := range 2 {
		h, err := NewHost(context.Background(), HostConfig{CacheDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		m := load(t, h, "good", abiModule(good), "", Limits{})
		if _, err := m.Call(context.Background(), ExportAuthorize, []byte(`{}`)); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		if err := h.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := NewHost(context.Background(), HostConfig{CacheDir: "/proc/nope/cache"}); err == nil {
		t.Error("NewHost with an unusable cache dir: no error")
	}
}
