package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/gwmcp/gw/plugins"
)

// PolicyKind is what a policy module decides.
type PolicyKind string

// Policy kinds.
const (
	PolicyCollision PolicyKind = "collision"
	PolicyAuthorize PolicyKind = "authorize"
)

// Export is the ABI export that serves the kind.
func (k PolicyKind) Export() string {
	if k == PolicyCollision {
		return ExportCollision
	}
	return ExportAuthorize
}

// PolicySpec names one policy module: an embedded policy's name or a path
// to a .wasm file, with the configuration handed to it.
type PolicySpec struct {
	Kind   PolicyKind
	Module string
	Config json.RawMessage // "" = {}
}

// IsPath reports whether the module is a file rather than an embedded name.
func (p PolicySpec) IsPath() bool {
	return strings.ContainsRune(p.Module, '/') || strings.HasSuffix(p.Module, ".wasm")
}

// PolicyLoader loads, checks and hot-swaps policy modules.
type PolicyLoader struct {
	Host    *plugins.Host
	Builtin func(name string) ([]byte, bool) // the embedded policies
	Limits  plugins.Limits
	Logger  *slog.Logger
}

// Load reads the module, compiles and instantiates it (the host checks the
// ABI), checks it offers the kind's export, and dry-runs it.
func (l *PolicyLoader) Load(ctx context.Context, spec PolicySpec) (*plugins.Module, error) {
	wasm, err := l.read(spec)
	if err != nil {
		return nil, err
	}
	return l.load(ctx, spec, wasm)
}

func (l *PolicyLoader) read(spec PolicySpec) ([]byte, error) {
	what := "policy " + string(spec.Kind)
	if spec.Kind == "" { // Check: any kind
		what = "policy module"
	}
	if spec.IsPath() {
		wasm, err := os.ReadFile(spec.Module)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		return wasm, nil
	}
	if l.Builtin != nil {
		if wasm, ok := l.Builtin(spec.Module); ok {
			return wasm, nil
		}
	}
	return nil, fmt.Errorf("%s: no embedded policy %q (give a .wasm path, or one of the embedded names)", what, spec.Module)
}

func (l *PolicyLoader) load(ctx context.Context, spec PolicySpec, wasm []byte) (*plugins.Module, error) {
	m, err := l.Host.Load(ctx, filepath.Base(spec.Module), wasm, orEmptyObject(spec.Config), l.Limits)
	if err != nil {
		return nil, fmt.Errorf("policy %s: %w", spec.Kind, err)
	}
	if !m.Has(spec.Kind.Export()) {
		_ = m.Close(ctx)
		return nil, fmt.Errorf("policy %s: module %q does not export %s (it exports %v)", spec.Kind, spec.Module, spec.Kind.Export(), m.Exports())
	}
	if err := DryRun(ctx, spec.Kind, m); err != nil {
		_ = m.Close(ctx)
		return nil, fmt.Errorf("policy %s: module %q failed its dry run: %w", spec.Kind, spec.Module, err)
	}
	return m, nil
}

// Check validates a module for policy authors: it loads it (the host checks
// the ABI and runs gw_init with cfg) and dry-runs every decision it
// exports. It returns the decision exports found.
func (l *PolicyLoader) Check(ctx context.Context, module string, cfg json.RawMessage) ([]string, error) {
	spec := PolicySpec{Module: module, Config: cfg}
	wasm, err := l.read(spec)
	if err != nil {
		return nil, err
	}
	m, err := l.Host.Load(ctx, filepath.Base(module), wasm, orEmptyObject(cfg), l.Limits)
	if err != nil {
		return nil, err
	}
	defer m.Close(ctx)
	var found []string
	for _, kind := range []PolicyKind{PolicyAuthorize, PolicyCollision} {
		if !m.Has(kind.Export()) {
			continue
		}
		if err := DryRun(ctx, kind, m); err != nil {
			return found, fmt.Errorf("%s dry run: %w", kind.Export(), err)
		}
		found = append(found, kind.Export())
	}
	if len(found) == 0 {
		return nil, errors.New("exports neither gw_authorize nor gw_collision")
	}
	return found, nil
}

// DryRun asks a module for one decision on a synthetic input and checks
// the answer is well-formed.
func DryRun(ctx context.Context, kind PolicyKind, m PolicyModule) error {
	switch kind {
	case PolicyCollision:
		servers := []ServerItems{
			{Server: "dry-run-a", Items: []Item{{Key: "search"}, {Key: "fetch"}}},
			{Server: "dry-run-b", Items: []Item{{Key: "search"}}},
		}
		res, err := WasmResolver{Module: m}.Resolve(KindTools, servers)
		if err != nil {
			return err
		}
		return ValidateResolution(KindTools, servers, res)
	default:
		_, err := WasmAuthorizer{Module: m}.Authorize(ctx, AuthzRequest{
			Caller: Caller{ID: "gw-dry-run"}, Server: "dry-run", Tool: "search", Name: "dry-run__search",
			Annotations: json.RawMessage(`{"readOnlyHint":true}`), Arguments: json.RawMessage(`{}`),
		})
		return err
	}
}

// Watch reloads a file-based policy when its file changes: the new module
// is loaded, checked and dry-run (against the live catalog for a collision
// policy) before it replaces the old one in slot; a broken module is refused
// with a log line and the old one stays. It returns when ctx ends.
func (l *PolicyLoader) Watch(ctx context.Context, spec PolicySpec, slot *plugins.Slot, interval time.Duration, g *Gateway) {
	if !spec.IsPath() || interval <= 0 {
		return
	}
	plugins.Watch(ctx, spec.Module, interval, func(wasm []byte) {
		log := l.Logger.With("policy", spec.Kind, "module", spec.Module)
		m, err := l.load(ctx, spec, wasm)
		if err == nil && spec.Kind == PolicyCollision && g != nil {
			if err = g.CheckResolver(WasmResolver{Module: m}); err != nil {
				_ = m.Close(ctx)
				err = fmt.Errorf("refused by the live catalog: %w", err)
			}
		}
		if err != nil {
			log.Error("new policy module refused; keeping the old one", "error", err)
			return
		}
		slot.Swap(m)
		log.Info("policy module swapped in")
		if spec.Kind == PolicyCollision && g != nil {
			if err := g.RebuildCatalog(); err != nil {
				log.Error("catalog rebuild with the new policy failed; keeping the last catalog", "error", err)
			}
		}
	})
}

// PolicySet is the running policies of a gateway: one slot per kind.
type PolicySet struct {
	Collision *plugins.Slot // nil = built-in prefix resolver
	Authorize *plugins.Slot // nil = no authorization

	loader *PolicyLoader
	specs  []PolicySpec
	wg     sync.WaitGroup
	cancel context.CancelFunc
}

// LoadPolicySet loads every spec into its slot.
func LoadPolicySet(ctx context.Context, l *PolicyLoader, specs ...PolicySpec) (*PolicySet, error) {
	ps := &PolicySet{loader: l, specs: specs}
	for _, spec := range specs {
		m, err := l.Load(ctx, spec)
		if err != nil {
			_ = ps.Close(ctx)
			return nil, err
		}
		slot := &plugins.Slot{}
		slot.Swap(m)
		switch spec.Kind {
		case PolicyCollision:
			ps.Collision = slot
		case PolicyAuthorize:
			ps.Authorize = slot
		default:
			_ = slot.Close(ctx)
			_ = ps.Close(ctx)
			return nil, fmt.Errorf("policy: unknown kind %q", spec.Kind)
		}
	}
	return ps, nil
}

// Apply sets the gateway options that the loaded policies serve.
// Deadlines are the modules' own call limits (PolicyLoader.Limits).
func (ps *PolicySet) Apply(o *Options) {
	if ps.Collision != nil {
		o.Resolver = WasmResolver{Module: ps.Collision}
	}
	if ps.Authorize != nil {
		o.Authorizer = WasmAuthorizer{Module: ps.Authorize}
	}
}

// Watch starts hot swapping for file-based policies; Close stops it.
func (ps *PolicySet) Watch(g *Gateway, interval time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	ps.cancel = cancel
	for _, spec := range ps.specs {
		slot := ps.Collision
		if spec.Kind == PolicyAuthorize {
			slot = ps.Authorize
		}
		ps.wg.Add(1)
		go func() {
			defer ps.wg.Done()
			ps.loader.Watch(ctx, spec, slot, interval, g)
		}()
	}
}

// StopWatching stops hot swapping and waits for the watchers to end, so no
// swap rebuilds the catalog after it returns. Stop them before closing the
// gateway.
func (ps *PolicySet) StopWatching() {
	if ps.cancel != nil {
		ps.cancel()
	}
	ps.wg.Wait()
}

// Close stops watching and closes the modules.
func (ps *PolicySet) Close(ctx context.Context) error {
	ps.StopWatching()
	var errs []error
	for _, s := range []*plugins.Slot{ps.Collision, ps.Authorize} {
		if s != nil {
			errs = append(errs, s.Close(ctx))
		}
	}
	return errors.Join(errs...)
}

// orEmptyObject is a policy's configuration, {} when none was given.
func orEmptyObject(cfg json.RawMessage) json.RawMessage {
	if len(bytes.TrimSpace(cfg)) == 0 {
		return json.RawMessage("{}")
	}
	return cfg
}
