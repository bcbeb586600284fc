package plugins

import (
	"context"
	"errors"
	"time"

	"github.com/tetratelabs/wazero/api"
)

// The checkpoint import that internal/interrupt adds to every module at load. The guest calls
// it every checkpointInterval loop iterations and calls.
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
// ends, or when the module is stopped: the guest's next checkpoint panics. It polls rather than
// being told, so it needs no lock, no timer and no goroutine: everything below belongs to the
// goroutine calling the guest, on which the checkpoint runs too. An interrupted instance is
// discarded, whatever the guest did next.
type watchdog struct {
	ctx  context.Context // the context of every guest call: carries the watchdog
	stop context.Context // the module's: ends when Close gives up on calls in flight

	caller   context.Context // the current call's; nil between calls
	timeout  time.Duration   // the current call's own limit
	deadline time.Time       // timeout after the call's first checkpoint; zero before it
	cause    error           // why the current call was interrupted
}

func (w *watchdog) init(stop context.Context) {
	w.ctx = context.WithValue(context.Background(), watchKey{}, w)
	w.stop = stop
}

// arm watches one call (or sequence of calls) of at most d under caller, and reports whether
// the guest may be called at all: not when caller or the module has already ended.
//
// The call's own deadline is set at its first checkpoint, not here: reading the clock costs
// about 100 ns on some virtual machines, a third of a small guest's call, and most calls end
// before a checkpoint. The guest work before the first checkpoint (under one interval) is not
// counted against the deadline.
func (w *watchdog) arm(caller context.Context, d time.Duration) bool {
	w.caller, w.timeout, w.deadline = caller, d, time.Time{}
	w.cause = w.ended()
	return w.cause == nil
}

// ended reports why the call may not go on regardless of time: the module stopped, or the
// caller's context ended.
func (w *watchdog) ended() error {
	if w.stop.Err() != nil {
		return errStopped
	}
	return w.caller.Err()
}

// disarm ends the watch and returns why the guest was interrupted, nil if it was not. A non-nil
// cause means the instance must be discarded.
func (w *watchdog) disarm() error {
	w.caller = nil
	return w.cause
}

// check runs at each checkpoint: the cause of an interrupt, or nil to go on.
func (w *watchdog) check() error {
	if w.cause != nil || w.caller == nil {
		return w.cause
	}
	if w.cause = w.ended(); w.cause != nil {
		return w.cause
	}
	switch now := time.Now(); {
	case w.deadline.IsZero():
		w.deadline = now.Add(w.timeout)
	case !now.Before(w.deadline):
		w.cause = context.DeadlineExceeded
	}
	return w.cause
}
