package plugins

import (
	"context"
	"errors"
	"slices"
	"sync"

	"github.com/tetratelabs/wazero"
)

// Module is a loaded policy module: compiled code plus a pool of instances of it.
//
// Instances are not goroutine-safe, so each call takes one from the pool for its whole duration;
// two concurrent calls never share an instance. The pool creates instances lazily, up to
// Limits.PoolSize; a call finding none idle and the pool full waits for one (honouring its
// context). An instance that trapped, timed out or answered badly is discarded, never reused;
// a fresh one is created by a later call.
//
// A Module is safe for concurrent use.
//
// # Lifecycle
//
// open (Load returned it) → retired (Close, or a Slot swapped it out: new calls fail with
// ErrClosed, in-flight calls go on) → closed (the last in-flight call returned: every instance
// and the compiled code are released). Close waits for the last step.
type Module struct {
	host     *Host
	name     string
	lim      Limits
	rt       wazero.Runtime
	compiled wazero.CompiledModule
	shape    shape
	config   []byte
	log      *guestLog
	digest   string // "sha256:" and the hex SHA-256 of the module's bytes

	// idle holds idle instances; slots holds one token per live instance. Both have capacity
	// lim.PoolSize, so put never blocks.
	idle  chan *instance
	slots chan struct{}

	// stopCtx is canceled when Close gives up waiting: Close then interrupts every call in
	// progress, and calls waiting for an instance wake up.
	stopCtx context.Context
	stop    context.CancelFunc

	done chan struct{} // closed once closed: everything released

	mu       sync.Mutex // guards the fields below; a leaf lock
	state    moduleState
	inflight int
	live     map[*instance]struct{}
}

type moduleState int

const (
	stateOpen moduleState = iota
	stateRetired
	stateClosed
)

func newModule(h *Host, name string, rt wazero.Runtime, compiled wazero.CompiledModule, sh shape,
	config []byte, lim Limits) *Module {
	stopCtx, stop := context.WithCancel(context.Background())
	return &Module{
		host:     h,
		name:     name,
		lim:      lim,
		rt:       rt,
		compiled: compiled,
		shape:    sh,
		config:   config,
		log:      newGuestLog(h.logger, name),
		idle:     make(chan *instance, lim.PoolSize),
		slots:    make(chan struct{}, lim.PoolSize),
		stopCtx:  stopCtx,
		stop:     stop,
		done:     make(chan struct{}),
		live:     make(map[*instance]struct{}),
	}
}

// Name returns the name given to Host.Load.
func (m *Module) Name() string { return m.name }

// Digest identifies the module's code: "sha256:" and the hex SHA-256 of the bytes given to Load
// (what sha256sum prints for its file). Its configuration is not part of it.
func (m *Module) Digest() string { return m.digest }

// Exports returns the decision exports the module has, among "gw_authorize" and "gw_collision",
// in that order.
func (m *Module) Exports() []string {
	var out []string
	for i, ok := range m.shape.decisions {
		if ok {
			out = append(out, decisionNames[i])
		}
	}
	return out
}

// Has reports whether the module has the decision export named export.
func (m *Module) Has(export string) bool {
	id, ok := decisionID(export)
	return ok && m.shape.decisions[id]
}

// Call runs one decision: gw_alloc(len(input)), input written there, export(ptr, len), and
// returns a copy of the output, which must be UTF-8 JSON no longer than Limits.MaxOutput.
// export is "gw_authorize" or "gw_collision" and must be one of Exports.
//
// The guest runs under the export's timeout (Limits.CallTimeout or CollisionTimeout) and the
// caller's context, whichever ends first. The wait for an idle instance honours only ctx; when
// the pool has to create an instance (it grows lazily, and replaces discarded ones on demand),
// that adds up to Limits.InitTimeout — a few milliseconds for a Go guest.
//
// Errors are *Error with Kind ErrMissingExport, ErrInputTooLarge, ErrTimeout, ErrCanceled,
// ErrTrap, ErrOutputTooLarge, ErrBadOutput, ErrClosed, or, when a new instance had to be
// created, any error of Load's instance checks.
func (m *Module) Call(ctx context.Context, export string, input []byte) ([]byte, error) {
	if !m.enter() {
		return nil, m.closedError(export)
	}
	defer m.leave()
	return m.call(ctx, export, input)
}

// CallDigest is Call that also returns the module's Digest, as Slot.CallDigest does.
func (m *Module) CallDigest(ctx context.Context, export string, input []byte) ([]byte, string, error) {
	out, err := m.Call(ctx, export, input)
	return out, m.digest, err
}

// Close retires the module (new calls fail with ErrClosed) and waits for the calls in flight.
// If ctx ends first, it stops them (they fail with ErrClosed), waits for them to unwind —
// which the guest cannot delay — and returns ctx.Err(). Either way everything is released when
// Close returns. Close is idempotent and safe to call concurrently.
func (m *Module) Close(ctx context.Context) error {
	m.retire()
	select {
	case <-m.done:
		return nil
	default:
	}
	select {
	case <-m.done:
		return nil
	case <-ctx.Done():
	}
	m.stop() // each call in flight stops at its next checkpoint
	<-m.done
	return ctx.Err()
}

// enter admits one call, unless the module is retired.
func (m *Module) enter() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.state != stateOpen {
		return false
	}
	m.inflight++
	return true
}

// leave ends one call admitted by enter; the last call out of a retired module closes it.
func (m *Module) leave() {
	m.mu.Lock()
	m.inflight--
	last := m.state == stateRetired && m.inflight == 0
	if last {
		m.state = stateClosed
	}
	m.mu.Unlock()
	if last {
		m.release()
	}
}

// retire stops admitting calls; if none is in flight the module is closed at once. Idempotent.
func (m *Module) retire() {
	m.mu.Lock()
	if m.state != stateOpen {
		m.mu.Unlock()
		return
	}
	m.state = stateRetired
	last := m.inflight == 0
	if last {
		m.state = stateClosed
	}
	m.mu.Unlock()
	if last {
		m.release()
	}
}

// release frees everything once the module is closed. It runs exactly once, on the goroutine
// that moved the state to closed, when no call is in flight: nobody else touches the instances.
func (m *Module) release() {
	m.mu.Lock()
	live := m.live
	m.live = nil
	m.mu.Unlock()
	ctx := context.Background()
	for in := range live {
		in.close(ctx)
	}
	_ = m.compiled.Close(ctx)
	m.stop()
	m.log.reportDropped()
	m.host.forget(m)
	close(m.done)
}

func (m *Module) closedError(export string) error {
	return &Error{Module: m.name, Export: export, Kind: ErrClosed, Detail: "module is closed"}
}

// call runs one decision on a pooled instance. The caller has entered the module.
func (m *Module) call(ctx context.Context, export string, input []byte) ([]byte, error) {
	id, ok := decisionID(export)
	if !ok || !m.shape.decisions[id] {
		return nil, &Error{Module: m.name, Export: export, Kind: ErrMissingExport,
			Detail: "not exported by this module (it has " + joinOr(m.Exports()) + ")"}
	}
	if uint64(len(input)) > uint64(m.lim.MemoryLimitPages)*pageSize {
		return nil, &Error{Module: m.name, Export: export, Kind: ErrInputTooLarge,
			Detail: "input is larger than the module's memory limit"}
	}
	in, err := m.get(ctx, export)
	if err != nil {
		return nil, err
	}
	out, err := m.decide(ctx, in, id, input)
	if err != nil {
		m.discard(in)
		return nil, err
	}
	m.put(in)
	return out, nil
}

// get takes an idle instance, or creates one if the pool is not full, or waits.
func (m *Module) get(ctx context.Context, export string) (*instance, error) {
	select {
	case in := <-m.idle:
		return in, nil
	default:
	}
	select {
	case in := <-m.idle:
		return in, nil
	case m.slots <- struct{}{}:
		in, err := m.newInstance(ctx)
		if err != nil {
			<-m.slots
			return nil, err
		}
		return in, nil
	case <-ctx.Done():
		return nil, m.waitError(ctx, export)
	case <-m.stopCtx.Done():
		return nil, m.closedError(export)
	}
}

func (m *Module) waitError(ctx context.Context, export string) error {
	err := ctx.Err()
	kind, what := ErrCanceled, "canceled"
	if errors.Is(err, context.DeadlineExceeded) {
		kind, what = ErrTimeout, "deadline exceeded"
	}
	return &Error{Module: m.name, Export: export, Kind: kind, Err: err,
		Detail: what + " while waiting for an idle instance (pool of " + itoa(m.lim.PoolSize) + ")"}
}

// put returns a healthy instance to the pool.
func (m *Module) put(in *instance) { m.idle <- in }

// discard closes a broken instance and frees its pool slot.
func (m *Module) discard(in *instance) {
	in.close(context.Background())
	m.mu.Lock()
	delete(m.live, in)
	m.mu.Unlock()
	<-m.slots
}

// joinOr renders a list of names for a message.
func joinOr(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	names = slices.Clone(names)
	s := names[0]
	for _, n := range names[1:] {
		s += " and " + n
	}
	return s
}
