// Package plugins runs policy modules: WebAssembly modules that implement the policy ABI v1
// (docs/POLICY_ABI.md), on wazero.
//
// The package knows nothing of MCP. It loads modules, checks them against the ABI, pools their
// instances, calls their decision exports with bytes in and bytes out, enforces limits, and
// hot-swaps modules. Interpreting the JSON a decision returns is the caller's job; this package
// only guarantees it is UTF-8 JSON of bounded size, copied out of guest memory.
//
// # Pieces
//
//   - Host: the wazero runtimes (one per distinct memory limit, since the limit is a runtime
//     setting in wazero) sharing one compilation cache, in memory or on disk.
//   - Module: one compiled policy module and its pool of instances (Host.Load, Module.Call).
//   - Slot: the current Module of one policy, swapped atomically on reload.
//   - Watch: polls a module file and reports changes.
//
// # Sandbox
//
// A guest may import only wasi_snapshot_preview1, with no preopened directories, no environment,
// no arguments and no stdin; clocks and crypto/rand are available; stdout and stderr go to the
// Host's logger, line by line, with the module name, under a byte budget per module (excess lines
// are dropped and counted). Its memory is capped (Limits.MemoryLimitPages). Every call into the
// guest runs under a deadline that starts with the call: Load instruments the module
// (internal/interrupt) so that it calls a host checkpoint every thousand loop iterations and
// calls (bulk memory instructions count by their length), where a guest past its deadline is
// stopped and the Go runtime can preempt it; its instance is then discarded. An answer that
// arrives after the deadline is refused the same way.
//
// # Lifecycle of a module
//
// Host.Load: instrument → compile (cached) → check imports and exports → instantiate one instance (running
// _initialize, gw_abi_version, gw_init) → open. Module.Call: take an idle instance (or create
// one, or wait) → gw_alloc, copy in, call, check and copy out → return the instance to the pool,
// or discard it after a trap, a timeout or a bad answer. Module.Close or Slot.Swap retires the
// module; the last call out releases its instances and compiled code.
//
// # Goroutines and locks
//
// The package starts no goroutine of its own: deadlines, the caller's context and Close are
// checked at the guest's checkpoints, on the calling goroutine. Watch runs on its caller's
// goroutine.
//
// Host.mu and Module.mu are leaf locks, never held while taking another lock, calling the
// guest, or waiting for anything (Host.mu covers the creation of a runtime, which runs no
// guest code). Each Module's pool is a pair of buffered channels: idle instances, and one
// token per live instance (at most Limits.PoolSize).
package plugins
