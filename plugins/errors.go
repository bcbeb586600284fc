package plugins

import (
	"errors"
	"strconv"
)

// Sentinel errors. Every error returned by Load, Call and Slot.Call is an *Error whose Kind is one of these;
// compare with errors.Is. An *Error also wraps its cause where there is one (context.DeadlineExceeded
// for a timeout, context.Canceled for a cancellation, wazero's error for a trap).
var (
	// ErrInvalidModule: the bytes are not a valid WebAssembly module, or its memory needs more
	// pages than the limit allows.
	ErrInvalidModule = errors.New("plugins: invalid module")

	// ErrImport: the module imports something other than wasi_snapshot_preview1 functions.
	ErrImport = errors.New("plugins: forbidden import")

	// ErrNotReactor: the module exports _start (a WASI command); policy modules must be reactors.
	ErrNotReactor = errors.New("plugins: command module, not a reactor")

	// ErrMissingExport: a required export is absent (memory, gw_abi_version, gw_alloc, or every
	// decision export), or Call named an export the module does not have.
	ErrMissingExport = errors.New("plugins: missing export")

	// ErrBadSignature: an ABI export has the wrong kind or function type.
	ErrBadSignature = errors.New("plugins: export has the wrong signature")

	// ErrABIVersion: gw_abi_version returned a version this host does not implement.
	ErrABIVersion = errors.New("plugins: unsupported ABI version")

	// ErrInit: the configuration is not JSON, or gw_init refused it ({"error":"why"}) or answered
	// something else than {"ok":true}.
	ErrInit = errors.New("plugins: initialization refused")

	// ErrTimeout: a call into the guest ran past its deadline (the call timeout, the init timeout
	// or the caller's deadline): it was stopped there, or it returned after the deadline, and
	// whatever it answered was dropped. The instance was discarded. Such errors also match
	// context.DeadlineExceeded.
	ErrTimeout = errors.New("plugins: timed out")

	// ErrCanceled: the caller's context was canceled during a call into the guest. The instance
	// was stopped and discarded. Such errors also match context.Canceled.
	ErrCanceled = errors.New("plugins: canceled")

	// ErrTrap: the guest trapped (unreachable, out-of-bounds access, stack overflow...) or
	// exited (proc_exit, a Go panic, the Go runtime out of memory). A memory.grow past the memory
	// limit does not trap: it returns -1 to the guest, and a trap or an exit is the guest's own
	// reaction. The instance was discarded.
	ErrTrap = errors.New("plugins: trapped")

	// ErrInputTooLarge: the input of a call is larger than the module's memory limit.
	ErrInputTooLarge = errors.New("plugins: input too large")

	// ErrOutputTooLarge: the guest's output is longer than Limits.MaxOutput. Nothing was copied.
	ErrOutputTooLarge = errors.New("plugins: output too large")

	// ErrBadOutput: the guest answered something unusable: gw_alloc returned 0 or a pointer
	// outside memory, a decision export returned 0 (no output), an output outside memory, or
	// output that is not UTF-8 JSON.
	ErrBadOutput = errors.New("plugins: bad output")

	// ErrClosed: the Host or Module is closed (or retired by a Slot swap and drained).
	ErrClosed = errors.New("plugins: closed")

	// ErrInvalidLimits: Limits.MemoryLimitPages is above 65536 or Limits.PoolSize above
	// MaxPoolSize.
	ErrInvalidLimits = errors.New("plugins: invalid limits")

	// ErrNoModule: Slot.Call on a Slot that holds no module.
	ErrNoModule = errors.New("plugins: no module in slot")
)

// Error is the error type of this package. It names the module and the export involved.
//
// Error() reads like `plugins: module "authz": gw_authorize: timed out after 100ms`.
type Error struct {
	// Module is the name given to Host.Load.
	Module string
	// Export is the export being called ("gw_authorize", "gw_init", "_initialize"...), or ""
	// when the error is about the module as a whole.
	Export string
	// Kind is one of the package's sentinel errors.
	Kind error
	// Err is the underlying cause, or nil.
	Err error
	// Detail is a one-line human-readable explanation.
	Detail string
}

func (e *Error) Error() string {
	s := "plugins: "
	if e.Module != "" {
		s += "module " + strconv.Quote(e.Module) + ": "
	}
	if e.Export != "" {
		s += e.Export + ": "
	}
	return s + e.Detail
}

// Unwrap returns Kind and, when set, Err, so errors.Is matches either.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}
