package plugins

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero/api"
)

// The checkpoint import that internal/interrupt adds to every module at load. The guest calls
// it every checkpointInterval loop iterations and function entries.
const (
	checkpointModule   = "gw"
	checkpointName     = "checkpoint"
	checkpointInterval = 1000
)

// errStopped is the cause of an interrupt by Module.Close.
var errStopped = errors.New("module stopped")

// watchKey is the context key under which an instance's guest calls carry its watchdog to the
// checkpoint.
type watchKey struct{}

// checkpoint is the host function behind the checkpoint import. Being Go, it is also where the
// Go runtime can preempt a goroutine running a guest. It stops the guest by panicking: wazero
// turns the panic into the call's error, and the watchdog knows why.
func checkpoint(ctx context.Context, _ api.Module, _ []uint64) {
	if w, ok := ctx.Value(watchKey{}).(*watchdog); ok {
		if err := w.check(); err != nil {
			panic(err)
		}
	}
}

// watchdog ends one instance's guest calls at the call's deadline, when the caller's context
// ends, or when the module is stopped: the guest's next checkpoint panics. An interrupted
// instance is discarded, whatever the guest did next.
type watchdog struct {
	ctx context.Context // the context of every guest call: carries the watchdog

	// deadline and unhook belong to the goroutine calling the guest (the checkpoint runs on
	// it too).
	deadline time.Time
	unhook   func() bool

	interrupted atomic.Bool // cause is set: the checkpoint's fast path

	mu    sync.Mutex // guards the fields below; a leaf lock
	armed bool
	gen   uint64 // counts arms, so a context hook of an earlier call does nothing
	cause error  // why the call was interrupted
}

func (w *watchdog) init() { w.ctx = context.WithValue(context.Background(), watchKey{}, w) }

// arm watches one call (or sequence of calls) of at most d under ctx. A context already ended
// interrupts at once: the guest stops at its first checkpoint.
func (w *watchdog) arm(ctx context.Context, d time.Duration) {
	w.deadline = time.Now().Add(d)
	w.mu.Lock()
	w.armed = true
	w.gen++
	gen := w.gen
	w.mu.Unlock()
	if ctx.Done() != nil {
		w.unhook = context.AfterFunc(ctx, func() { w.interrupt(gen, ctx.Err()) })
		if err := ctx.Err(); err != nil {
			w.interrupt(gen, err)
		}
	}
}

// disarm ends the watch and returns why the guest was interrupted, nil if it was not. A non-nil
// cause means the instance must be discarded.
func (w *watchdog) disarm() error {
	if w.unhook != nil {
		w.unhook()
		w.unhook = nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.armed = false
	return w.cause
}

// check runs at each checkpoint: the cause of an interrupt, or nil to go on.
func (w *watchdog) check() error {
	if !w.interrupted.Load() && time.Now().Before(w.deadline) {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.armed {
		w.setLocked(context.DeadlineExceeded) // unless another cause came first
	}
	return w.cause
}

// interrupt stops the call armed as gen if it is still running.
func (w *watchdog) interrupt(gen uint64, cause error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.armed && w.gen == gen {
		w.setLocked(cause)
	}
}

// stop stops the call running, if any (Module.Close giving up on it).
func (w *watchdog) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.armed {
		w.setLocked(errStopped)
	}
}

func (w *watchdog) setLocked(cause error) {
	if w.cause == nil {
		w.cause = cause
		w.interrupted.Store(true)
	}
}
