package plugins

import (
	"context"
	"sync/atomic"
)

// Slot holds the current module of one policy and swaps it atomically. The zero value is an empty
// Slot, ready to use. A Slot is safe for concurrent use.
//
// A call admitted by a module runs to its end on that module, even if the Slot is swapped
// meanwhile; a swapped-out module is retired and closes itself when its last call returns
// (reference counting). Slot.Call never observes a half-swapped state: it runs on either the old
// or the new module, and never fails because of a swap.
//
// A Module must be in at most one Slot, and should not be closed by its owner while it is in one
// (Slot.Call would then fail with ErrClosed).
type Slot struct {
	cur atomic.Pointer[Module]
}

// Call runs export on the current module; see Module.Call. It returns ErrNoModule if the Slot is
// empty.
func (s *Slot) Call(ctx context.Context, export string, input []byte) ([]byte, error) {
	out, _, err := s.CallDigest(ctx, export, input)
	return out, err
}

// CallDigest is Call, and also returns the Digest of the module that ran the call (the Slot may
// be swapped during it), or "" if there was none.
func (s *Slot) CallDigest(ctx context.Context, export string, input []byte) (out []byte, digest string, err error) {
	for {
		m := s.cur.Load()
		if m == nil {
			return nil, "", &Error{Export: export, Kind: ErrNoModule, Detail: "no policy module loaded"}
		}
		if m.enter() {
			defer m.leave()
			out, err = m.call(ctx, export, input)
			return out, m.digest, err
		}
		// m was retired between the Load and enter. If a Swap did it, the Slot already holds
		// its successor: try that one. If m was closed by its owner, fail.
		if s.cur.Load() == m {
			return nil, m.digest, m.closedError(export)
		}
	}
}

// Swap makes m the current module (nil empties the Slot) and returns the previous one, or nil.
// The previous module is retired: it takes no new calls, its in-flight calls finish on it, and it
// closes itself when the last one returns. The caller may Close it to wait for that (and to bound
// the wait), but need not. Swapping in the current module again changes nothing.
func (s *Slot) Swap(m *Module) (old *Module) {
	old = s.cur.Swap(m)
	if old != nil && old != m {
		old.retire()
	}
	return old
}

// Current returns the current module, or nil.
func (s *Slot) Current() *Module { return s.cur.Load() }

// Close empties the Slot and closes the module it held, as Module.Close.
func (s *Slot) Close(ctx context.Context) error {
	if old := s.cur.Swap(nil); old != nil {
		return old.Close(ctx)
	}
	return nil
}
