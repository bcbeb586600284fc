package gateway_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gwmcp/gw/gateway"
	"github.com/gwmcp/gw/gateway/policy"
	"github.com/gwmcp/gw/internal/mcptest"
	"github.com/gwmcp/gw/plugins"
	"github.com/gwmcp/gw/policies"
)

// The shipped policy modules, run by the real wazero host.

// testCacheDir keeps compiled modules across test binaries and runs:
// compiling a 2 MB Go module under the race detector takes many seconds.
var testCacheDir = filepath.Join(os.TempDir(), "gw-test-wasm-cache")

// policyLoader returns a loader over a fresh host; compiled modules are
// cached on disk for the whole test binary.
func policyLoader(t *testing.T) *policy.Loader {
	t.Helper()
	ctx := context.Background()
	host, err := plugins.NewHost(ctx, plugins.HostConfig{CacheDir: testCacheDir, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = host.Close(context.Background()) })
	// Generous deadlines: these tests are about decisions, not speed, and
	// the race detector on 2 busy cores is slow.
	return &policy.Loader{Host: host, Builtin: policies.Builtin, Logger: quietLogger(),
		Limits: plugins.Limits{CallTimeout: 10 * time.Second, CollisionTimeout: 20 * time.Second, InitTimeout: 20 * time.Second}}
}

func loadSlot(t *testing.T, l *policy.Loader, spec policy.Spec) *plugins.Slot {
	t.Helper()
	m, err := l.Load(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	slot := &plugins.Slot{}
	slot.Swap(m)
	t.Cleanup(func() { _ = slot.Close(context.Background()) })
	return slot
}

func TestWasmPrefixMatchesBuiltin(t *testing.T) {
	l := policyLoader(t)
	slot := loadSlot(t, l, policy.Spec{Kind: policy.Collision, Module: "prefix",
		Config: json.RawMessage(`{"separator":"__","max_length":40}`)})
	long := strings.Repeat("x", 90)
	servers := []gateway.ServerItems{
		{Server: "git.hub", Items: []gateway.Item{{Key: "repo/list"}, {Key: "a:b"}, {Key: "a_b"}, {Key: long}, {Key: long + "y"}}},
		{Server: "notes", Items: []gateway.Item{{Key: "search"}, {Key: "añadir"}}},
		{Server: "web", Items: []gateway.Item{{Key: "search"}}},
	}
	want, err := gateway.PrefixResolver{Separator: "__", MaxLength: 40}.Resolve(gateway.KindTools, servers)
	if err != nil {
		t.Fatal(err)
	}
	got, err := policy.Resolver{Module: slot, Timeout: 20 * time.Second}.Resolve(gateway.KindTools, servers)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Names) != len(want.Names) {
		t.Fatalf("wasm named %d items, Go %d", len(got.Names), len(want.Names))
	}
	for k, n := range want.Names {
		if got.Names[k] != n {
			t.Errorf("%v: wasm %q, Go %q", k, got.Names[k], n)
		}
	}
}

func TestWasmCollisionPolicies(t *testing.T) {
	l := policyLoader(t)
	servers := []gateway.ServerItems{
		{Server: "notes", Items: []gateway.Item{{Key: "add_note"}, {Key: "search"}}},
		{Server: "web", Items: []gateway.Item{{Key: "fetch"}, {Key: "search"}}},
	}
	for module, reason := range map[string]string{"reject": "collides with notes/search", "first-come": "shadowed by notes"} {
		slot := loadSlot(t, l, policy.Spec{Kind: policy.Collision, Module: module})
		res, err := policy.Resolver{Module: slot, Timeout: 20 * time.Second}.Resolve(gateway.KindTools, servers)
		if err != nil {
			t.Fatalf("%s: %v", module, err)
		}
		if err := gateway.ValidateResolution(gateway.KindTools, servers, res); err != nil {
			t.Fatalf("%s: %v", module, err)
		}
		if res.Names[gateway.ItemKey{Server: "notes", Name: "search"}] != "search" || len(res.Names) != 3 {
			t.Errorf("%s: names %v", module, res.Names)
		}
		if len(res.Rejected) != 1 || res.Rejected[0].Server != "web" || !strings.Contains(res.Rejected[0].Reason, reason) {
			t.Errorf("%s: rejected %+v; want web/search with %q", module, res.Rejected, reason)
		}
	}
}

func TestWasmAuthorizeThroughGateway(t *testing.T) {
	l := policyLoader(t)
	slot := loadSlot(t, l, policy.Spec{Kind: policy.Authorize, Module: "allowlist",
		Config: json.RawMessage(`{"rules":[{"callers":["alice"],"tools":["s__*"]},{"callers":["group:readers"],"tools":["s__echo"]}]}`)})
	g := start(t, gateway.Options{
		Authorizer: policy.Authorizer{Module: slot, Timeout: 10 * time.Second},
		Servers:    []gateway.ServerSpec{server(t, "s", mcptest.Options{})},
	})
	as := func(id string, groups ...string) context.Context {
		return gateway.WithCaller(context.Background(), gateway.Caller{ID: id, Groups: groups})
	}
	if _, err := call(as("alice"), g, "s__slow", map[string]any{"ms": 1}); err != nil {
		t.Errorf("alice: %v", err)
	}
	if _, err := call(as("carol", "readers"), g, "s__echo", map[string]any{"text": "x"}); err != nil {
		t.Errorf("carol (readers) echo: %v", err)
	}
	_, err := call(as("carol", "readers"), g, "s__slow", map[string]any{"ms": 1})
	if !errors.Is(err, gateway.ErrDenied) || !strings.Contains(err.Error(), "carol") {
		t.Errorf("carol slow: %v; want a denial naming carol", err)
	}
	if _, err := call(context.Background(), g, "s__echo", map[string]any{"text": "x"}); !errors.Is(err, gateway.ErrDenied) {
		t.Errorf("anonymous: %v; want denied", err)
	}
}

// TestHotSwapAuthorizer swaps a policy file under a running gateway: a good
// new module takes over without a restart, a broken one is refused and the
// last good one stays.
func TestHotSwapAuthorizer(t *testing.T) {
	l := policyLoader(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "authz.wasm")
	copyBuiltin := func(name string) {
		b, ok := policies.Builtin(name)
		if !ok {
			t.Fatalf("no builtin %s", name)
		}
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil { // atomic, as deploy tools do
			t.Fatal(err)
		}
	}
	copyBuiltin("allow-all")
	spec := policy.Spec{Kind: policy.Authorize, Module: path}
	ps, err := policy.LoadSet(context.Background(), l, spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ps.Close(context.Background()) })
	var logs mcptest.SyncBuffer
	l.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	opts := gateway.Options{Servers: []gateway.ServerSpec{server(t, "s", mcptest.Options{})}}
	ps.Apply(&opts) // the loader's limits: 20s collision, 10s authorize
	g := start(t, opts)
	ps.Watch(g, 20*time.Millisecond)

	// echo has no annotations: allow-all lets it through, read-only will not.
	if _, err := call(context.Background(), g, "s__echo", map[string]any{"text": "x"}); err != nil {
		t.Fatalf("allow-all: %v", err)
	}
	copyBuiltin("read-only")
	waitFor(t, "read-only policy to take over", func() bool {
		_, err := call(context.Background(), g, "s__echo", map[string]any{"text": "x"})
		return errors.Is(err, gateway.ErrDenied)
	})
	if err := os.WriteFile(path, []byte("not a wasm module"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the broken module to be refused", func() bool { return strings.Contains(logs.String(), "refused") })
	if _, err := call(context.Background(), g, "s__echo", map[string]any{"text": "x"}); !errors.Is(err, gateway.ErrDenied) {
		t.Fatalf("after a broken module: %v; the read-only policy must stay", err)
	}
}

// TestHammerAuthorizeDuringSwaps runs many concurrent authorizations while
// the module is swapped twice: every call gets a decision from one module.
func TestHammerAuthorizeDuringSwaps(t *testing.T) {
	l := policyLoader(t)
	slot := loadSlot(t, l, policy.Spec{Kind: policy.Authorize, Module: "allow-all"})
	az := policy.Authorizer{Module: slot, Timeout: 10 * time.Second}
	req := gateway.AuthzRequest{Caller: gateway.Caller{ID: "alice"}, Server: "s", Tool: "t", Name: "s__t",
		Annotations: json.RawMessage(`{"readOnlyHint":true}`)}
	const n = 2000
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n / 16 {
				d, err := az.Authorize(context.Background(), req)
				if err != nil || !d.Allow {
					errs <- fmt.Errorf("worker %d call %d: %+v %v", w, i, d, err)
					return
				}
			}
		}()
	}
	for _, module := range []string{"read-only", "allow-all"} {
		time.Sleep(20 * time.Millisecond)
		m, err := l.Load(context.Background(), policy.Spec{Kind: policy.Authorize, Module: module})
		if err != nil {
			t.Fatal(err)
		}
		slot.Swap(m)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestPolicyLoadErrors(t *testing.T) {
	l := policyLoader(t)
	ctx := context.Background()
	for name, spec := range map[string]policy.Spec{
		"unknown builtin":    {Kind: policy.Authorize, Module: "no-such-policy"},
		"missing file":       {Kind: policy.Authorize, Module: "/nonexistent/authz.wasm"},
		"wrong kind":         {Kind: policy.Authorize, Module: "prefix"},
		"bad config":         {Kind: policy.Authorize, Module: "allowlist", Config: json.RawMessage(`{"rules":"all"}`)},
		"collision as authz": {Kind: policy.Collision, Module: "read-only"},
	} {
		if _, err := l.Load(ctx, spec); err == nil {
			t.Errorf("%s: loaded", name)
		}
	}
	exports, err := l.Check(ctx, "prefix", nil)
	if err != nil || len(exports) != 1 || exports[0] != policy.ExportCollision {
		t.Errorf("check prefix: %v %v", exports, err)
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// nativeReadOnly is the read-only policy written in plain Go: the baseline
// the Wasm module is compared with.
type nativeReadOnly struct{}

func (nativeReadOnly) Authorize(_ context.Context, req gateway.AuthzRequest) (gateway.Decision, error) {
	var ann struct {
		ReadOnlyHint *bool `json:"readOnlyHint"`
	}
	if len(req.Annotations) > 0 {
		if err := json.Unmarshal(req.Annotations, &ann); err != nil {
			return gateway.Decision{}, err
		}
	}
	if ann.ReadOnlyHint != nil && *ann.ReadOnlyHint {
		return gateway.Decision{Allow: true}, nil
	}
	return gateway.Decision{Reason: fmt.Sprintf("read-only policy: tool %q is not read-only", req.Name)}, nil
}

// nativeReadOnlyJSON is the read-only policy in plain Go handed what a Wasm
// policy is handed, the ABI input, and decoding it with encoding/json as a
// native policy would: the baseline where the JSON handling is included.
type nativeReadOnlyJSON struct{}

func (nativeReadOnlyJSON) Authorize(_ context.Context, req gateway.AuthzRequest) (gateway.Decision, error) {
	var buf bytes.Buffer
	policy.AuthorizeInput(&buf, req)
	var in struct {
		Caller struct {
			ID     string   `json:"id"`
			Groups []string `json:"groups"`
		} `json:"caller"`
		Server, Tool, Name string
		Annotations        struct {
			ReadOnlyHint, DestructiveHint, IdempotentHint, OpenWorldHint *bool
		} `json:"annotations"`
		Arguments json.RawMessage `json:"arguments"`
	}
	if err := json.Unmarshal(buf.Bytes(), &in); err != nil {
		return gateway.Decision{}, err
	}
	if in.Annotations.ReadOnlyHint != nil && *in.Annotations.ReadOnlyHint {
		return gateway.Decision{Allow: true}, nil
	}
	return gateway.Decision{Reason: fmt.Sprintf("read-only policy: tool %q is not read-only", in.Name)}, nil
}

// BenchmarkAuthorize measures one authorization as the call path pays it
// (encode the input, run the policy, decode the answer), for the shipped
// modules and a native Go policy, and reports the median next to the mean.
func BenchmarkAuthorize(b *testing.B) {
	req := gateway.AuthzRequest{Caller: gateway.Caller{ID: "alice"}, Server: "notes", Tool: "search", Name: "notes__search",
		Annotations: json.RawMessage(`{"readOnlyHint":true}`), Arguments: json.RawMessage(`{"query":"gateway"}`)}
	host, err := plugins.NewHost(context.Background(), plugins.HostConfig{CacheDir: testCacheDir, Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	defer host.Close(context.Background())
	l := &policy.Loader{Host: host, Builtin: policies.Builtin, Logger: quietLogger()}
	authorizers := map[string]gateway.Authorizer{"native-go": nativeReadOnly{}, "native-go-json": nativeReadOnlyJSON{}}
	for _, module := range []string{"allow-all", "read-only", "deny-destructive"} {
		m, err := l.Load(context.Background(), policy.Spec{Kind: policy.Authorize, Module: module})
		if err != nil {
			b.Fatal(err)
		}
		defer m.Close(context.Background())
		authorizers["wasm-"+module] = policy.Authorizer{Module: m}
	}
	for _, name := range []string{"native-go", "native-go-json", "wasm-allow-all", "wasm-read-only", "wasm-deny-destructive"} {
		az := authorizers[name]
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			times := make([]time.Duration, 0, 1<<16)
			b.ReportAllocs()
			for b.Loop() {
				t0 := time.Now()
				d, err := az.Authorize(ctx, req)
				if err != nil || !d.Allow {
					b.Fatal(d, err)
				}
				if len(times) < cap(times) {
					times = append(times, time.Since(t0))
				}
			}
			slices.Sort(times)
			if len(times) > 0 {
				b.ReportMetric(float64(times[len(times)/2].Nanoseconds()), "p50-ns")
				b.ReportMetric(float64(times[len(times)*99/100].Nanoseconds()), "p99-ns")
			}
		})
	}
	// A tool call's context can end (deadline, cancellation): the policy must honour it, which
	// the background context above does not exercise.
	b.Run("wasm-read-only-cancellable-ctx", func(b *testing.B) {
		az := authorizers["wasm-read-only"]
		ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
		defer cancel()
		b.ReportAllocs()
		for b.Loop() {
			if d, err := az.Authorize(ctx, req); err != nil || !d.Allow {
				b.Fatal(d, err)
			}
		}
	})
	b.Run("wasm-read-only-parallel", func(b *testing.B) {
		az := authorizers["wasm-read-only"]
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if d, err := az.Authorize(context.Background(), req); err != nil || !d.Allow {
					b.Error(d, err)
					return
				}
			}
		})
	})
}

// sinkFunc adapts a function to EventSink.
type sinkFunc func(gateway.Event)

func (f sinkFunc) HandleEvent(e gateway.Event) { f(e) }

// TestSinkMayCallBack: the sink is called with no gateway lock held, so it
// may list tools (which re-lists stale servers and rebuilds the catalog)
// and read statuses from inside HandleEvent.
func TestSinkMayCallBack(t *testing.T) {
	var g *gateway.Gateway
	var ready sync.WaitGroup
	ready.Add(1)
	var handled sync.Map
	sink := sinkFunc(func(e gateway.Event) {
		ready.Wait()
		_ = g.ListTools(context.Background())
		_ = g.Servers()
		handled.Store(e.Kind, true)
	})
	opts := gateway.Options{Events: sink, Servers: []gateway.ServerSpec{
		server(t, "s", mcptest.Options{Era: mcptest.EraModern, TTLMs: 1}),
	}}
	var err error
	if g, err = gateway.New(withTestDefaults(opts)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close() })
	ready.Done()
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := g.Start(ctx); err != nil {
			done <- err
			return
		}
		_, err := call(ctx, g, "s__add_tool", map[string]any{"name": "extra"})
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("deadlock: the gateway waits on a sink that calls it back")
	}
	waitFor(t, "the new tool", func() bool { _, ok := g.Catalog().Tool("s__extra"); return ok })
	if _, ok := handled.Load(gateway.EventCatalogChanged); !ok {
		t.Fatal("no catalog event reached the sink")
	}
}

// TestCloseDuringPolicySwaps closes the gateway while its collision policy
// keeps being swapped: no panic, no race, and no event reaches the sink once
// Close has returned.
func TestCloseDuringPolicySwaps(t *testing.T) {
	l := policyLoader(t)
	path := filepath.Join(t.TempDir(), "collision.wasm")
	write := func(name string) {
		b, _ := policies.Builtin(name)
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, b, 0o644); err != nil {
			t.Error(err)
			return
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Error(err)
		}
	}
	write("prefix")
	ps, err := policy.LoadSet(context.Background(), l, policy.Spec{Kind: policy.Collision, Module: path})
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close(context.Background())
	var closed atomic.Bool
	var afterClose atomic.Int64
	var swaps atomic.Int64
	sink := sinkFunc(func(e gateway.Event) {
		if closed.Load() {
			afterClose.Add(1)
		}
		if e.Kind == gateway.EventCatalogChanged {
			swaps.Add(1)
		}
	})
	opts := gateway.Options{Events: sink, Servers: []gateway.ServerSpec{
		server(t, "a", mcptest.Options{Tools: []string{"search"}}),
		server(t, "b", mcptest.Options{Tools: []string{"search"}}),
	}}
	ps.Apply(&opts)
	g := start(t, opts)
	ps.Watch(g, 5*time.Millisecond)

	stop := make(chan struct{})
	var swapper sync.WaitGroup
	swapper.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(30 * time.Millisecond):
			}
			write([]string{"first-come", "prefix"}[i%2])
		}
	})
	waitFor(t, "a few swaps", func() bool { return swaps.Load() >= 4 })
	before := swaps.Load()
	_ = g.Close()
	closed.Store(true)
	time.Sleep(300 * time.Millisecond) // the watcher goes on swapping
	close(stop)
	swapper.Wait()
	if n := afterClose.Load(); n != 0 {
		t.Fatalf("%d events reached the sink after Close returned (%d catalogs before)", n, before)
	}
}

// TestLargeCatalogThroughWasmPolicy: one server with 20,000 tools is merged
// through a Wasm collision policy. The policy's answer names every tool and
// is longer than 1 MiB (the output limit counts the input: it was a fixed
// 1 MiB, and 18,000 tools were refused as a whole while the server showed
// ready); every tool is listed and callable.
func TestLargeCatalogThroughWasmPolicy(t *testing.T) {
	const tools = 20_000
	l := policyLoader(t)
	slot := loadSlot(t, l, policy.Spec{Kind: policy.Collision, Module: "prefix"})
	begin := time.Now()
	g := start(t, gateway.Options{
		Resolver: policy.Resolver{Module: slot, Timeout: 2 * time.Minute},
		Servers:  []gateway.ServerSpec{server(t, "s", mcptest.Options{ToolCount: tools})},
		// Listing and merging 20,000 tools under the race detector takes
		// about 25 s alone, more on a busy machine.
		StartTimeout: 2 * time.Minute,
	})
	took := time.Since(begin)
	if n := len(g.Catalog().Tools); n < tools {
		t.Fatalf("%d tools in the catalog, want at least %d", n, tools)
	}
	if got := text(t, mustCall(t, g, fmt.Sprintf("s__bulk-%05d", tools-1), map[string]any{"text": "last"})); got != "last" {
		t.Fatalf("the last tool answered %q", got)
	}
	t.Logf("%d tools listed and merged through the Wasm policy in %v", tools, took)
}

// TestAuditRecords: every decision of a Wasm authorize policy becomes an
// audit event naming the caller, the tool, the decision, its reason and the
// module's digest; arguments only when asked for; AuditDenied keeps the
// denials only.
func TestAuditRecords(t *testing.T) {
	l := policyLoader(t)
	slot := loadSlot(t, l, policy.Spec{Kind: policy.Authorize, Module: "allowlist",
		Config: json.RawMessage(`{"rules":[{"callers":["alice"],"tools":["s__*"]}]}`)})
	wasm, _ := policies.Builtin("allowlist")
	sum := sha256.Sum256(wasm)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	as := func(id string, groups ...string) context.Context {
		return gateway.WithCaller(context.Background(), gateway.Caller{ID: id, Groups: groups})
	}
	audited := func(e gateway.Event) bool { return e.Kind == gateway.EventAudit }
	for _, tc := range []struct {
		mode      gateway.AuditMode
		arguments bool
	}{{gateway.AuditAll, false}, {gateway.AuditAll, true}, {gateway.AuditDenied, false}} {
		rec := newRecorder()
		g := start(t, gateway.Options{
			Authorizer: policy.Authorizer{Module: slot, Timeout: 10 * time.Second},
			Audit:      tc.mode, AuditArguments: tc.arguments, Events: rec,
			Servers: []gateway.ServerSpec{server(t, "s", mcptest.Options{})},
		})
		if _, err := call(as("alice"), g, "s__echo", map[string]any{"text": "secret-1"}); err != nil {
			t.Fatalf("alice: %v", err)
		}
		if _, err := call(as("bob", "ops"), g, "s__echo", map[string]any{"text": "secret-2"}); !errors.Is(err, gateway.ErrDenied) {
			t.Fatalf("bob: %v; want denied", err)
		}
		var records []*gateway.AuditRecord
		if tc.mode == gateway.AuditAll {
			records = append(records, rec.waitFor(t, "audit", audited).Audit)
		}
		records = append(records, rec.waitFor(t, "audit", audited).Audit)
		for _, r := range records {
			if r.Server != "s" || r.Tool != "s__echo" || r.ServerTool != "echo" || r.Policy != digest || r.Time.IsZero() {
				t.Errorf("mode %d: record %+v; want s, s__echo, echo, policy %s", tc.mode, r, digest)
			}
			if secret := "secret-1"; r.Principal == "bob" {
				secret = "secret-2"
				if r.Decision != "deny" || r.Reason == "" || !slices.Equal(r.Groups, []string{"ops"}) {
					t.Errorf("bob's record %+v: want a denial with a reason and group ops", r)
				}
			} else if r.Principal != "alice" || r.Decision != "allow" {
				t.Errorf("record %+v; want alice allowed", r)
			} else if has := strings.Contains(string(r.Arguments), secret); has != tc.arguments {
				t.Errorf("mode %d, arguments %v: record's arguments %s", tc.mode, tc.arguments, r.Arguments)
			}
		}
		if tc.mode == gateway.AuditDenied && records[0].Principal != "bob" {
			t.Errorf("AuditDenied recorded %+v; want bob's denial only", records[0])
		}
		if err := g.FlushEvents(context.Background()); err != nil {
			t.Fatal(err)
		}
		if n := rec.count(audited); n != len(records) {
			t.Errorf("mode %d: %d audit events; want %d", tc.mode, n, len(records))
		}
	}
}
