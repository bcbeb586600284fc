package plugins

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strconv"
	"time"

	"github.com/gwmcp/gw/plugins/internal/jsonvalid"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"
)

// pageSize is the WebAssembly page size in bytes.
const pageSize = 65536

// instance is one instantiation of a Module. It is used by one call at a time.
type instance struct {
	mod       api.Module
	mem       api.Memory
	alloc     api.Function
	decisions [numDecisions]api.Function
	stack     [2]uint64 // parameters and results of CallWithStack; no allocation per call
	watch     watchdog  // interrupts the guest call in progress

	stdout, stderr *lineWriter
}

// close closes the wazero module and logs any partial output line. Only the instance's owner
// (or release, when nothing is in flight) may call it.
func (in *instance) close(ctx context.Context) {
	_ = in.mod.Close(ctx)
	in.stdout.flush()
	in.stderr.flush()
}

// newInstance instantiates the module and runs its initialization: _initialize if exported,
// gw_abi_version (must be 1), gw_init(config) if exported; all within Limits.InitTimeout and ctx.
// The new instance is registered as live; on error it is closed and the error returned.
func (m *Module) newInstance(ctx context.Context) (*instance, error) {
	in := &instance{
		stdout: &lineWriter{log: m.log, stream: "stdout", level: slog.LevelInfo},
		stderr: &lineWriter{log: m.log, stream: "stderr", level: slog.LevelWarn},
	}
	// Instantiation runs no guest code (no start functions): nothing to interrupt yet.
	mod, err := m.rt.InstantiateModule(ctx, m.compiled, m.host.modConfig.WithStdout(in.stdout).WithStderr(in.stderr))
	if err != nil {
		if ctx.Err() != nil {
			return nil, m.contextError(ctx, "", m.lim.InitTimeout, ctx.Err())
		}
		return nil, &Error{Module: m.name, Kind: ErrInvalidModule, Err: err,
			Detail: "instantiate: " + firstLine(err.Error())}
	}
	in.mod = mod
	in.mem = mod.ExportedMemory(exportMemory)
	in.alloc = mod.ExportedFunction(exportAlloc)
	for i, ok := range m.shape.decisions {
		if ok {
			in.decisions[i] = mod.ExportedFunction(decisionNames[i])
		}
	}
	in.watch.init(m.stopCtx)

	m.mu.Lock()
	stopping := m.stopCtx.Err() != nil
	if !stopping {
		m.live[in] = struct{}{}
	}
	m.mu.Unlock()
	if stopping {
		in.close(context.Background())
		return nil, m.closedError("")
	}

	if err := m.initialize(ctx, in); err != nil {
		m.mu.Lock()
		delete(m.live, in)
		m.mu.Unlock()
		in.close(context.Background())
		return nil, err
	}
	return in, nil
}

// initialize runs the initialization calls of a new instance, under one InitTimeout.
func (m *Module) initialize(ctx context.Context, in *instance) error {
	win := startWindow(m.lim.InitTimeout)
	first := exportVersion
	if m.shape.hasInitFunc {
		first = exportInitialize
	}
	export, err := m.guarded(ctx, in, win, first, func() (string, error) {
		if m.shape.hasInitFunc {
			if err := in.mod.ExportedFunction(exportInitialize).CallWithStack(in.watch.ctx, in.stack[:]); err != nil {
				return exportInitialize, err
			}
		}
		if err := in.mod.ExportedFunction(exportVersion).CallWithStack(in.watch.ctx, in.stack[:]); err != nil {
			return exportVersion, err
		}
		return exportVersion, nil
	})
	if err != nil {
		return m.guestError(ctx, export, win.timeout, err)
	}
	if v := int32(uint32(in.stack[0])); v != ABIVersion {
		return &Error{Module: m.name, Export: exportVersion, Kind: ErrABIVersion,
			Detail: "returned " + strconv.Itoa(int(v)) + ", this host implements " + strconv.Itoa(ABIVersion)}
	}

	if m.shape.hasInit {
		fn := in.mod.ExportedFunction(exportInit)
		out, err := m.exchange(ctx, in, fn, exportInit, win, m.config, true)
		if err != nil {
			return err
		}
		if reason, ok := initAnswer(out); !ok {
			return &Error{Module: m.name, Export: exportInit, Kind: ErrInit, Detail: reason}
		}
	}
	return nil
}

// decide runs one decision call on in. On error the instance must be discarded.
func (m *Module) decide(ctx context.Context, in *instance, id exportID, input []byte) ([]byte, error) {
	return m.exchange(ctx, in, in.decisions[id], decisionNames[id], startWindow(m.lim.timeout(id)), input, false)
}

// guarded runs guest calls under in's watchdog within win and ctx, and the module's stop. run
// returns the export it was in and the error of its guest call. An interrupt, or a return after
// the deadline, wins over whatever the guest did: the instance is spent, and the error is a
// context error (never a trap, never an answer). first is the export run calls first, named
// when ctx has ended before it.
func (m *Module) guarded(ctx context.Context, in *instance, win window, first string,
	run func() (string, error)) (string, error) {
	if !in.watch.arm(ctx, win.deadline) {
		return first, interrupted{in.watch.disarm()}
	}
	export, err := run()
	if cause := in.watch.disarm(); cause != nil {
		return export, interrupted{cause}
	}
	return export, err
}

// interrupted is the error of a guest call the watchdog stopped.
type interrupted struct{ cause error }

func (e interrupted) Error() string { return "interrupted: " + e.cause.Error() }

// guestError turns an error from guarded into an *Error.
func (m *Module) guestError(ctx context.Context, export string, timeout time.Duration, err error) error {
	if i, ok := err.(interrupted); ok {
		return m.contextError(ctx, export, timeout, i.cause)
	}
	return m.callError(export, err)
}

// exchange is the ABI's call sequence: p = gw_alloc(len(input)); input written at p;
// r = fn(p, len(input)); r unpacked to (ptr, len), checked against the output limit and the
// memory size, and the bytes copied out; all under one watch of win and ctx. A zero result
// is an error unless zeroOK (gw_init); the output must be UTF-8 JSON.
func (m *Module) exchange(ctx context.Context, in *instance, fn api.Function, export string,
	win window, input []byte, zeroOK bool) ([]byte, error) {
	bad := func(kind error, detail string) error {
		return &Error{Module: m.name, Export: export, Kind: kind, Detail: detail}
	}

	n := uint32(len(input)) // Call bounded len(input) by the memory limit
	var p uint32
	var badAlloc error
	at, err := m.guarded(ctx, in, win, exportAlloc, func() (string, error) {
		in.stack[0] = uint64(n)
		if err := in.alloc.CallWithStack(in.watch.ctx, in.stack[:]); err != nil {
			return exportAlloc, err
		}
		p = uint32(in.stack[0])
		if p == 0 && n > 0 {
			badAlloc = bad(ErrBadOutput, "gw_alloc("+utoa(n)+") returned 0: the guest cannot allocate")
			return exportAlloc, nil
		}
		if !in.mem.Write(p, input) {
			badAlloc = bad(ErrBadOutput, "gw_alloc("+utoa(n)+") returned "+utoa(p)+
				", outside memory of "+utoa(in.mem.Size())+" bytes")
			return exportAlloc, nil
		}
		in.stack[0], in.stack[1] = uint64(p), uint64(n)
		return export, fn.CallWithStack(in.watch.ctx, in.stack[:])
	})
	if err != nil {
		return nil, m.guestError(ctx, at, win.timeout, err)
	}
	if badAlloc != nil {
		return nil, badAlloc
	}

	r := in.stack[0]
	if r == 0 {
		if zeroOK {
			return nil, nil
		}
		return nil, bad(ErrBadOutput, "returned 0 (no output)")
	}
	outPtr, outLen := uint32(r>>32), uint32(r)
	if limit := uint64(m.lim.MaxOutput) + uint64(n); uint64(outLen) > limit {
		return nil, bad(ErrOutputTooLarge, "output of "+utoa(outLen)+" bytes exceeds the limit of "+
			strconv.FormatUint(limit, 10)+" bytes")
	}
	size := in.mem.Size()
	if uint64(outPtr)+uint64(outLen) > uint64(size) {
		return nil, bad(ErrBadOutput, "output ["+utoa(outPtr)+", +"+utoa(outLen)+") is outside memory of "+
			utoa(size)+" bytes")
	}
	view, ok := in.mem.Read(outPtr, outLen)
	if !ok {
		return nil, bad(ErrBadOutput, "output is outside memory")
	}
	out := bytes.Clone(view) // view aliases guest memory: copy before the next call reuses it
	if !jsonvalid.Valid(out) {
		return nil, bad(ErrBadOutput, "output is not UTF-8 JSON ("+quoteHead(out)+")")
	}
	return out, nil
}

// callError classifies an error returned by a call into the guest that the watchdog did not
// interrupt.
func (m *Module) callError(export string, err error) error {
	if exit, ok := errors.AsType[*sys.ExitError](err); ok {
		if m.stopCtx.Err() != nil {
			return &Error{Module: m.name, Export: export, Kind: ErrClosed, Err: err, Detail: "module closed during the call"}
		}
		return &Error{Module: m.name, Export: export, Kind: ErrTrap, Err: err,
			Detail: "guest exited with code " + utoa(exit.ExitCode())}
	}
	return &Error{Module: m.name, Export: export, Kind: ErrTrap, Err: err, Detail: "trapped: " + firstLine(err.Error())}
}

// contextError explains why a call's context ended: the module being stopped, the caller's
// context, or the call's own timeout.
func (m *Module) contextError(ctx context.Context, export string, timeout time.Duration, cause error) error {
	switch {
	case m.stopCtx.Err() != nil:
		return &Error{Module: m.name, Export: export, Kind: ErrClosed, Err: cause, Detail: "module closed during the call"}
	case errors.Is(ctx.Err(), context.Canceled):
		return &Error{Module: m.name, Export: export, Kind: ErrCanceled, Err: context.Canceled, Detail: "canceled by the caller"}
	case ctx.Err() != nil || pastDeadline(ctx):
		return &Error{Module: m.name, Export: export, Kind: ErrTimeout, Err: context.DeadlineExceeded,
			Detail: "caller's deadline exceeded"}
	case errors.Is(cause, context.Canceled):
		return &Error{Module: m.name, Export: export, Kind: ErrCanceled, Err: context.Canceled, Detail: "canceled"}
	case cause == errLate:
		return &Error{Module: m.name, Export: export, Kind: ErrTimeout, Err: context.DeadlineExceeded,
			Detail: "answered after its deadline of " + timeout.String()}
	default:
		return &Error{Module: m.name, Export: export, Kind: ErrTimeout, Err: context.DeadlineExceeded,
			Detail: "timed out after " + timeout.String()}
	}
}

// pastDeadline reports whether ctx has a deadline that has passed, even if ctx's timer has not
// fired yet (the watchdog stops a call at the caller's deadline by the clock).
func pastDeadline(ctx context.Context) bool {
	d, ok := ctx.Deadline()
	return ok && !time.Now().Before(d)
}

func itoa(n int) string    { return strconv.Itoa(n) }
func utoa(n uint32) string { return strconv.FormatUint(uint64(n), 10) }
func quoteHead(b []byte) string {
	const max = 32
	if len(b) > max {
		return strconv.Quote(string(b[:max])) + "..."
	}
	return strconv.Quote(string(b))
}
