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

// errLate is the cause of a call whose guest returned after the deadline: no checkpoint saw the
// deadline pass, but the answer is too late all the same.
var errLate = errors.New("answered after the deadline")

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

// epoch anchors the watchdog's clock.
var epoch = time.Now()

// clock returns the time elapsed since epoch on the monotonic clock. time.Since reads only the
// monotonic clock when its argument carries a monotonic reading, as epoch does: about half the
// cost of time.Now, which reads the wall clock too.
func clock() time.Duration { return time.Since(epoch) }

// forever is a deadline that never comes.
const forever = time.Duration(1<<63 - 1)

// watchdog ends one instance's guest calls at the call's deadline, when the caller's context
// ends, or when the module is stopped: the guest's next checkpoint panics. It polls rather than
// being told, so it needs no lock, no timer and no goroutine: everything below belongs to the
// goroutine calling the guest, on which the checkpoint runs too. An interrupted instance is
// discarded, whatever the guest did next.
type watchdog struct {
	ctx  context.Context // the context of every guest call: carries the watchdog
	stop context.Context // the module's: ends when Close gives up on calls in flight

	caller   context.Context // the current call's; nil between calls
	deadline time.Duration   // the current call's, on clock()
	cause    error           // why the current call was interrupted
}

func (w *watchdog) init(stop context.Context) {
	w.ctx = context.WithValue(context.Background(), watchKey{}, w)
	w.stop = stop
}

// window is the time limit of one guest call or sequence of calls.
type window struct {
	timeout  time.Duration // as configured, for messages
	deadline time.Duration // on clock(): timeout after the window started
}

// startWindow returns a window of timeout starting now. The deadline thus covers all the guest
// does from here, including its work before the first checkpoint.
func startWindow(timeout time.Duration) window {
	now := clock()
	d := now + timeout
	if d < now { // overflow: timeout is all but infinite
		d = forever
	}
	return window{timeout, d}
}

// arm watches one call (or sequence of calls) under caller until deadline (on clock()), or
// the caller's deadline if that comes first, and reports whether the guest may be called at
// all: not when caller or the module has already ended.
func (w *watchdog) arm(caller context.Context, deadline time.Duration) bool {
	w.caller, w.deadline = caller, deadline
	if t, ok := caller.Deadline(); ok {
		w.deadline = min(w.deadline, t.Sub(epoch))
	}
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

// disarm ends the watch once the guest has returned, and returns why the call failed, nil if
// it did not: an interrupt, or the deadline having passed by the time the guest returned —
// whatever the guest answered then is too late, even if no checkpoint saw the deadline pass.
// A non-nil cause means the instance must be discarded.
func (w *watchdog) disarm() error {
	if w.cause == nil && clock() >= w.deadline {
		w.cause = errLate
	}
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
	if clock() >= w.deadline {
		w.cause = context.DeadlineExceeded
	}
	return w.cause
}
