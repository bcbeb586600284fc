package plugins

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"

	"github.com/gwmcp/gw/plugins/internal/interrupt"
	"github.com/gwmcp/gw/plugins/internal/jsonvalid"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// HostConfig configures a Host. The zero value is usable.
type HostConfig struct {
	// CacheDir, when set, keeps compiled code on disk there (created if missing), so a restart
	// does not compile the same module again. "" keeps the compilation cache in memory only.
	// The directory must be private to gw: wazero trusts its contents.
	CacheDir string

	// Logger receives guest stdout and stderr (bounded, with the module name) and the host's
	// own diagnostics. nil discards them.
	Logger *slog.Logger
}

// Host runs policy modules. It owns one wazero runtime per distinct memory limit (the limit is a
// runtime setting in wazero), all sharing one compilation cache, each with
// wasi_snapshot_preview1 instantiated.
//
// A Host is safe for concurrent use. Close it when done; that closes every module it loaded.
type Host struct {
	logger    *slog.Logger
	cache     wazero.CompilationCache
	modConfig wazero.ModuleConfig

	// loads counts Load calls in progress; Close waits for them after setting closed, so no
	// module is created after Close has taken its snapshot.
	loads sync.WaitGroup

	// uninstrumented loads modules as they are, without checkpoints: their calls cannot be
	// stopped. Only BenchmarkCheckpoints sets it, to measure what the checkpoints cost.
	uninstrumented bool

	mu       sync.Mutex // guards the fields below; a leaf lock
	closed   bool
	runtimes map[uint32]*hostRuntime
	modules  map[*Module]struct{}
}

// hostRuntime is one wazero runtime and what it offers to guests.
type hostRuntime struct {
	rt   wazero.Runtime
	wasi map[string]api.FunctionDefinition // wasi_snapshot_preview1 exports
}

// NewHost returns a Host. ctx is used only while creating it.
func NewHost(ctx context.Context, cfg HostConfig) (*Host, error) {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var cache wazero.CompilationCache
	if cfg.CacheDir != "" {
		c, err := wazero.NewCompilationCacheWithDir(cfg.CacheDir)
		if err != nil {
			return nil, fmt.Errorf("plugins: compilation cache in %s: %w", cfg.CacheDir, err)
		}
		cache = c
	} else {
		cache = wazero.NewCompilationCache()
	}
	return &Host{
		logger: logger,
		cache:  cache,
		// The sandbox of ABI v1: no files, no environment, no arguments, no stdin; clocks and
		// crypto-grade randomness allowed; stdout and stderr are set per instance. Instances are
		// anonymous so one compiled module can be instantiated many times and no guest can
		// import another. No start function runs: _initialize is called by newInstance, and a
		// module exporting _start is refused before that.
		modConfig: wazero.NewModuleConfig().
			WithName("").
			WithStartFunctions().
			WithSysWalltime().
			WithSysNanotime().
			WithRandSource(rand.Reader),
		runtimes: make(map[uint32]*hostRuntime),
		modules:  make(map[*Module]struct{}),
	}, nil
}

// runtime returns the runtime for a memory limit, creating it on first use.
func (h *Host) runtime(ctx context.Context, pages uint32) (*hostRuntime, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, errHostClosed
	}
	if r := h.runtimes[pages]; r != nil {
		return r, nil
	}
	// NewRuntimeConfig picks the compiler where wazero supports it, else the interpreter.
	// Deadlines do not use CloseOnContextDone (it leaves compiled code for Go at every loop
	// head): Load instruments each module with a checkpoint import instead (watchdog.go).
	// Debug info is off: errors keep the first line only.
	cfg := wazero.NewRuntimeConfig().
		WithMemoryLimitPages(pages).
		WithCompilationCache(h.cache).
		WithDebugInfoEnabled(false)
	rt := wazero.NewRuntimeWithConfig(context.WithoutCancel(ctx), cfg)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		_ = rt.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("plugins: instantiate %s: %w", wasiModule, err)
	}
	if _, err := rt.NewHostModuleBuilder(checkpointModule).NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(checkpoint), nil, nil).
		Export(checkpointName).Instantiate(ctx); err != nil {
		_ = rt.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("plugins: instantiate %s: %w", checkpointModule, err)
	}
	r := &hostRuntime{rt: rt, wasi: rt.Module(wasiModule).ExportedFunctionDefinitions()}
	h.runtimes[pages] = r
	return r, nil
}

var errHostClosed = errors.New("host is closed")

// Load compiles a policy module, checks it against ABI v1, and creates its first instance, so a
// broken module fails here rather than on its first call.
//
// name identifies the module in errors and logs. config is the policy's configuration JSON, given
// to gw_init in every instance; nil or empty means {}. lim's zero fields take the defaults.
//
// The checks, in order: the bytes compile (and the memory's declared minimum fits the limit);
// every import is a function of wasi_snapshot_preview1 that the host provides, with the same
// signature; no _start export (a command, not a reactor); exports memory, gw_abi_version () ->
// i32, gw_alloc (i32) -> i32, optional gw_init and _initialize, and at least one of
// gw_authorize and gw_collision, each (i32, i32) -> i64. Then the first instance runs
// _initialize, must answer 1 from gw_abi_version, and gw_init must accept config, all within
// lim.InitTimeout.
//
// ctx bounds the first instance's creation (with lim.InitTimeout); compilation itself is not
// interruptible. Compilation happens once per distinct module: the Host's compilation cache
// serves a module loaded again (a reload of the same bytes, or the same module with another
// config) while another copy is loaded, or always when HostConfig.CacheDir is set.
func (h *Host) Load(ctx context.Context, name string, wasm []byte, config []byte, lim Limits) (*Module, error) {
	lim = lim.withDefaults()
	if lim.MemoryLimitPages > maxMemoryPages {
		return nil, &Error{Module: name, Kind: ErrInvalidLimits,
			Detail: "memory limit of " + strconv.FormatUint(uint64(lim.MemoryLimitPages), 10) + " pages exceeds 65536 (4 GiB)"}
	}
	if lim.PoolSize > MaxPoolSize {
		return nil, &Error{Module: name, Kind: ErrInvalidLimits,
			Detail: "pool size " + itoa(lim.PoolSize) + " exceeds " + itoa(MaxPoolSize)}
	}
	if len(bytes.TrimSpace(config)) == 0 {
		config = []byte("{}")
	} else if !jsonvalid.Valid(config) {
		return nil, &Error{Module: name, Export: exportInit, Kind: ErrInit, Detail: "configuration is not UTF-8 JSON"}
	}

	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, &Error{Module: name, Kind: ErrClosed, Err: errHostClosed, Detail: "host is closed"}
	}
	h.loads.Add(1)
	h.mu.Unlock()
	defer h.loads.Done()

	sum := sha256.Sum256(wasm) // of the module as given, so that sha256sum of its file matches
	r, err := h.runtime(ctx, lim.MemoryLimitPages)
	if err != nil {
		if errors.Is(err, errHostClosed) {
			return nil, &Error{Module: name, Kind: ErrClosed, Err: err, Detail: "host is closed"}
		}
		return nil, &Error{Module: name, Kind: ErrInvalidModule, Err: err, Detail: err.Error()}
	}
	if !h.uninstrumented {
		wasm, err = interrupt.Instrument(wasm, interrupt.Options{
			Module: checkpointModule, Name: checkpointName, Interval: checkpointInterval})
		if err != nil {
			return nil, &Error{Module: name, Kind: ErrInvalidModule, Err: err, Detail: "compile: " + err.Error()}
		}
	}
	compiled, err := r.rt.CompileModule(ctx, wasm)
	if err != nil {
		return nil, &Error{Module: name, Kind: ErrInvalidModule, Err: err, Detail: "compile: " + firstLine(err.Error())}
	}
	sh, err := checkShape(name, compiled, r.wasi)
	if err != nil {
		_ = compiled.Close(context.WithoutCancel(ctx))
		return nil, err
	}

	m := newModule(h, name, r.rt, compiled, sh, bytes.Clone(config), lim)
	m.digest = "sha256:" + hex.EncodeToString(sum[:])
	m.slots <- struct{}{} // the first instance's pool slot; never blocks, the pool is empty
	in, err := m.newInstance(ctx)
	if err != nil {
		m.retire() // no calls yet: closes the compiled module now
		return nil, err
	}
	m.put(in)

	h.mu.Lock()
	closed := h.closed
	if !closed {
		h.modules[m] = struct{}{}
	}
	h.mu.Unlock()
	if closed {
		m.retire()
		return nil, &Error{Module: name, Kind: ErrClosed, Err: errHostClosed, Detail: "host is closed"}
	}
	return m, nil
}

// forget drops a closed module from the Host's list.
func (h *Host) forget(m *Module) {
	h.mu.Lock()
	delete(h.modules, m)
	h.mu.Unlock()
}

// Close closes every module the Host loaded, then the runtimes and the compilation cache.
//
// Shutdown order: (1) mark the Host closed, so Load fails with ErrClosed; (2) wait for Loads in
// progress (each is bounded by compilation and its InitTimeout); (3) retire every module, so none
// takes a new call; (4) wait until ctx is done for their in-flight calls, then stop the rest
// (they fail with ErrClosed); (5) close the runtimes and the cache. Close is idempotent; it
// returns ctx.Err() if calls had to be stopped.
func (h *Host) Close(ctx context.Context) error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	h.mu.Unlock()

	h.loads.Wait()

	h.mu.Lock()
	mods := make([]*Module, 0, len(h.modules))
	for m := range h.modules {
		mods = append(mods, m)
	}
	h.mu.Unlock()

	for _, m := range mods {
		m.retire()
	}
	var errs []error
	stopped := false
	for _, m := range mods {
		if err := m.Close(ctx); err != nil {
			stopped = true // Module.Close fails only when ctx ended before its calls did
		}
	}
	if stopped {
		errs = append(errs, ctx.Err())
	}

	bg := context.WithoutCancel(ctx)
	h.mu.Lock()
	runtimes := h.runtimes
	h.runtimes = nil
	h.mu.Unlock()
	for _, r := range runtimes {
		if err := r.rt.Close(bg); err != nil {
			errs = append(errs, err)
		}
	}
	if err := h.cache.Close(bg); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// firstLine returns s up to its first newline (wazero appends a wasm stack trace to traps).
func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
