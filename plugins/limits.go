package plugins

import (
	"runtime"
	"time"
)

// Defaults applied by Host.Load to the zero fields of Limits (docs/POLICY_ABI.md, "Limits").
const (
	DefaultCallTimeout      = 100 * time.Millisecond
	DefaultCollisionTimeout = 2 * time.Second
	DefaultInitTimeout      = 2 * time.Second
	DefaultMemoryLimitPages = 1024 // 64 MiB
	DefaultMaxOutput        = 1 << 20
)

// maxMemoryPages is the WebAssembly 1.0 ceiling: 65536 pages of 64 KiB = 4 GiB.
const maxMemoryPages = 65536

// MaxPoolSize bounds Limits.PoolSize.
const MaxPoolSize = 1024

// Limits bound what one policy module may use. The zero value means "all defaults".
type Limits struct {
	// CallTimeout is the deadline of one call to gw_authorize (and of any decision export that
	// has no timeout of its own). Default DefaultCallTimeout (100 ms). The caller's context may
	// shorten it, never lengthen it. It starts when the call enters the guest and covers
	// gw_alloc, the copy in and the decision call, bulk memory work included; not the wait for
	// an idle instance (which honours only the caller's context) nor creating one (InitTimeout).
	// A guest still running at the deadline is stopped at its next checkpoint; one that returns
	// after it fails with ErrTimeout too, whatever it answered (plugins/RATIONALE.md).
	CallTimeout time.Duration

	// CollisionTimeout is the deadline of one call to gw_collision. Default
	// DefaultCollisionTimeout (2 s).
	CollisionTimeout time.Duration

	// InitTimeout bounds the guest code that creates one instance: _initialize, the
	// gw_abi_version check and gw_init (instantiation itself runs none). Default
	// DefaultInitTimeout (2 s).
	InitTimeout time.Duration

	// MemoryLimitPages caps the linear memory of each instance, in 64 KiB pages; memory.grow
	// past it fails inside the guest. Default DefaultMemoryLimitPages (1024 = 64 MiB); at most
	// 65536 (4 GiB; more is ErrInvalidLimits). A module whose declared minimum exceeds it fails
	// to load.
	MemoryLimitPages uint32

	// MaxOutput is how much longer than its input, in bytes, the output of one call may be.
	// Default DefaultMaxOutput (1 MiB). The input counts because an answer may restate it: a
	// collision answer names every item it was given, and 18,000 tools from one server once
	// made an answer longer than a fixed 1 MiB.
	MaxOutput int

	// PoolSize is the most instances of the module alive at once, which is also the most calls
	// running at once; further calls wait for an idle instance. Default
	// runtime.GOMAXPROCS(0)*2; at most MaxPoolSize (more is ErrInvalidLimits).
	PoolSize int
}

// withDefaults returns l with every zero field set to its default.
func (l Limits) withDefaults() Limits {
	if l.CallTimeout <= 0 {
		l.CallTimeout = DefaultCallTimeout
	}
	if l.CollisionTimeout <= 0 {
		l.CollisionTimeout = DefaultCollisionTimeout
	}
	if l.InitTimeout <= 0 {
		l.InitTimeout = DefaultInitTimeout
	}
	if l.MemoryLimitPages == 0 {
		l.MemoryLimitPages = DefaultMemoryLimitPages
	}
	if l.MaxOutput <= 0 {
		l.MaxOutput = DefaultMaxOutput
	}
	if l.PoolSize <= 0 {
		l.PoolSize = runtime.GOMAXPROCS(0) * 2
	}
	return l
}

// timeout returns the deadline of one call to the decision export e.
func (l *Limits) timeout(e exportID) time.Duration {
	if e == exportCollision {
		return l.CollisionTimeout
	}
	return l.CallTimeout
}
