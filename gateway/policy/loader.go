package policy

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

	"github.com/gwmcp/gw/gateway"
	"github.com/gwmcp/gw/plugins"
)

// Kind is what a policy module decides.
type Kind string

// Policy kinds.
const (
	Collision Kind = "collision"
	Authorize Kind = "authorize"
)

// Export is the ABI export that serves the kind.
func (k Kind) Export() string {
	if k == Collision {
		return ExportCollision
	}
	return ExportAuthorize
}

// Spec names one policy module: an embedded policy's name or a path
// to a .wasm file, with the configuration handed to it.
type Spec struct {
	Kind   Kind
	Module string
	Config json.RawMessage // "" = {}
}

// IsPath reports whether the module is a file rather than an embedded name.
func (p Spec) IsPath() bool {
	return strings.ContainsRune(p.Module, '/') || strings.HasSuffix(p.Module, ".wasm")
}

// Loader loads, checks and hot-swaps policy modules.
type Loader struct {
	Host    *plugins.Host
	Builtin func(name string) ([]byte, bool) // the embedded policies
	Limits  plugins.Limits
	Logger  *slog.Logger
}

// Load reads the module, compiles and instantiates it (the host checks the
// ABI), checks it offers the kind's export, and dry-runs it.
func (l *Loader) Load(ctx context.Context, spec Spec) (*plugins.Module, error) {
	wasm, err := l.read(spec)
	if err != nil {
		return nil, err
	}
	return l.load(ctx, spec, wasm)
}

func (l *Loader) read(spec Spec) ([]byte, error) {
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

func (l *Loader) load(ctx context.Context, spec Spec, wasm []byte) (*plugins.Module, error) {
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
func (l *Loader) Check(ctx context.Context, module string, cfg json.RawMessage) ([]string, error) {
	spec := Spec{Module: module, Config: cfg}
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
	for _, kind := range []Kind{Authorize, Collision} {
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
func DryRun(ctx context.Context, kind Kind, m Module) error {
	switch kind {
	case Collision:
		servers := []gateway.ServerItems{
			{Server: "dry-run-a", Items: []gateway.Item{{Key: "search"}, {Key: "fetch"}}},
			{Server: "dry-run-b", Items: []gateway.Item{{Key: "search"}}},
		}
		res, err := Resolver{Module: m}.Resolve(gateway.KindTools, servers)
		if err != nil {
			return err
		}
		return gateway.ValidateResolution(gateway.KindTools, servers, res)
	default:
		_, err := Authorizer{Module: m}.Authorize(ctx, gateway.AuthzRequest{
			Caller: gateway.Caller{ID: "gw-dry-run"}, Server: "dry-run", Tool: "search", Name: "dry-run__search",
			Annotations: json.RawMessage(`{"readOnlyHint":true}`), Arguments: json.RawMessage(`{}`),
		})
		return err
	}
}

// Watch reloads a file-based policy when its file changes: the new module
// is loaded, checked and dry-run (against the live catalog for a collision
// policy) before it replaces the old one in slot; a broken module is refused
// with a log line and the old one stays. swapped, if not nil, is called after
// each swap. It returns when ctx ends.
func (l *Loader) Watch(ctx context.Context, spec Spec, slot *plugins.Slot, interval time.Duration, g *gateway.Gateway, swapped func()) {
	if !spec.IsPath() || interval <= 0 {
		return
	}
	plugins.Watch(ctx, spec.Module, interval, func(wasm []byte) {
		log := l.Logger.With("policy", spec.Kind, "module", spec.Module)
		m, err := l.load(ctx, spec, wasm)
		if err == nil && spec.Kind == Collision && g != nil {
			if err = g.CheckResolver(Resolver{Module: m}); err != nil {
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
		if spec.Kind == Collision && g != nil {
			if err := g.RebuildCatalog(); err != nil {
				log.Error("catalog rebuild with the new policy failed; keeping the last catalog", "error", err)
			}
		}
		if swapped != nil {
			swapped()
		}
	})
}

// Set is the running policies of a gateway: one slot per kind.
type Set struct {
	Collision *plugins.Slot // nil = built-in prefix resolver
	Authorize *plugins.Slot // nil = no authorization

	// Swapped, when set before Watch, is called after each hot swap (on
	// the watcher's goroutine): gw run tells the bus which module is in use.
	Swapped func(Kind)

	loader *Loader
	specs  []Spec
	wg     sync.WaitGroup
	cancel context.CancelFunc
}

// LoadSet loads every spec into its slot.
func LoadSet(ctx context.Context, l *Loader, specs ...Spec) (*Set, error) {
	ps := &Set{loader: l, specs: specs}
	for _, spec := range specs {
		m, err := l.Load(ctx, spec)
		if err != nil {
			_ = ps.Close(ctx)
			return nil, err
		}
		slot := &plugins.Slot{}
		slot.Swap(m)
		switch spec.Kind {
		case Collision:
			ps.Collision = slot
		case Authorize:
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
// Deadlines are the modules' own call limits (Loader.Limits).
func (ps *Set) Apply(o *gateway.Options) {
	if ps.Collision != nil {
		o.Resolver = Resolver{Module: ps.Collision}
	}
	if ps.Authorize != nil {
		o.Authorizer = Authorizer{Module: ps.Authorize}
	}
}

// Watch starts hot swapping for file-based policies; Close stops it.
func (ps *Set) Watch(g *gateway.Gateway, interval time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	ps.cancel = cancel
	for _, spec := range ps.specs {
		slot := ps.Collision
		if spec.Kind == Authorize {
			slot = ps.Authorize
		}
		ps.wg.Add(1)
		go func() {
			defer ps.wg.Done()
			var swapped func()
			if ps.Swapped != nil {
				swapped = func() { ps.Swapped(spec.Kind) }
			}
			ps.loader.Watch(ctx, spec, slot, interval, g, swapped)
		}()
	}
}

// StopWatching stops hot swapping and waits for the watchers to end, so no
// swap rebuilds the catalog after it returns. Stop them before closing the
// gateway.
func (ps *Set) StopWatching() {
	if ps.cancel != nil {
		ps.cancel()
	}
	ps.wg.Wait()
}

// Close stops watching and closes the modules.
func (ps *Set) Close(ctx context.Context) error {
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
