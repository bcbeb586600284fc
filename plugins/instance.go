package plugins

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strconv"
	"time"

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
	ictx, cancel := context.WithTimeout(ctx, m.lim.InitTimeout)
	defer cancel()
	unhook := context.AfterFunc(m.stopCtx, cancel)
	defer unhook()

	in := &instance{
		stdout: &lineWriter{log: m.log, stream: "stdout", level: slog.LevelInfo},
		stderr: &lineWriter{log: m.log, stream: "stderr", level: slog.LevelWarn},
	}
	mod, err := m.rt.InstantiateModule(ictx, m.compiled, m.host.modConfig.WithStdout(in.stdout).WithStderr(in.stderr))
	if err != nil {
		if ictx.Err() != nil {
			return nil, m.contextError(ctx, "", m.lim.InitTimeout, ictx.Err())
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

	if err := m.initialize(ctx, ictx, in); err != nil {
		m.mu.Lock()
		delete(m.live, in)
		m.mu.Unlock()
		in.close(context.Background())
		return nil, err
	}
	return in, nil
}

// initialize runs the initialization calls of a new instance.
func (m *Module) initialize(ctx, ictx context.Context, in *instance) error {
	timeout := m.lim.InitTimeout
	if m.shape.hasInitFunc {
		if err := in.mod.ExportedFunction(exportInitialize).CallWithStack(ictx, in.stack[:]); err != nil {
			return m.callError(ctx, exportInitialize, timeout, err)
		}
		if err := ictx.Err(); err != nil {
			return m.contextError(ctx, exportInitialize, timeout, err)
		}
	}

	if err := in.mod.ExportedFunction(exportVersion).CallWithStack(ictx, in.stack[:]); err != nil {
		return m.callError(ctx, exportVersion, timeout, err)
	}
	if err := ictx.Err(); err != nil {
		return m.contextError(ctx, exportVersion, timeout, err)
	}
	if v := int32(uint32(in.stack[0])); v != ABIVersion {
		return &Error{Module: m.name, Export: exportVersion, Kind: ErrABIVersion,
			Detail: "returned " + strconv.Itoa(int(v)) + ", this host implements " + strconv.Itoa(ABIVersion)}
	}

	if m.shape.hasInit {
		fn := in.mod.ExportedFunction(exportInit)
		out, err := m.exchange(ctx, ictx, in, fn, exportInit, timeout, m.config, true)
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
	timeout := m.lim.timeout(id)
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	unhook := context.AfterFunc(m.stopCtx, cancel)
	defer unhook()
	return m.exchange(ctx, cctx, in, in.decisions[id], decisionNames[id], timeout, input, false)
}

// exchange is the ABI's call sequence: p = gw_alloc(len(input)); input written at p;
// r = fn(p, len(input)); r unpacked to (ptr, len), checked against the output limit and the
// memory size, and the bytes copied out. ctx is the caller's context, cctx the call's (with its
// deadline). A zero result is an error unless zeroOK (gw_init); the output must be UTF-8 JSON.
func (m *Module) exchange(ctx, cctx context.Context, in *instance, fn api.Function, export string,
	timeout time.Duration, input []byte, zeroOK bool) ([]byte, error) {
	bad := func(kind error, detail string) error {
		return &Error{Module: m.name, Export: export, Kind: kind, Detail: detail}
	}

	n := uint32(len(input)) // Call bounded len(input) by the memory limit
	in.stack[0] = uint64(n)
	if err := in.alloc.CallWithStack(cctx, in.stack[:]); err != nil {
		return nil, m.callError(ctx, exportAlloc, timeout, err)
	}
	if err := cctx.Err(); err != nil {
		// The deadline passed while the guest was returning: wazero may close the instance at
		// any moment now, so treat the call as timed out.
		return nil, m.contextError(ctx, exportAlloc, timeout, err)
	}
	p := uint32(in.stack[0])
	if p == 0 && n > 0 {
		return nil, bad(ErrBadOutput, "gw_alloc("+utoa(n)+") returned 0: the guest cannot allocate")
	}
	if !in.mem.Write(p, input) {
		return nil, bad(ErrBadOutput, "gw_alloc("+utoa(n)+") returned "+utoa(p)+
			", outside memory of "+utoa(in.mem.Size())+" bytes")
	}

	in.stack[0], in.stack[1] = uint64(p), uint64(n)
	if err := fn.CallWithStack(cctx, in.stack[:]); err != nil {
		return nil, m.callError(ctx, export, timeout, err)
	}
	if err := cctx.Err(); err != nil {
		return nil, m.contextError(ctx, export, timeout, err)
	}

	r := in.stack[0]
	if r == 0 {
		if zeroOK {
			return nil, nil
		}
		return nil, bad(ErrBadOutput, "returned 0 (no output)")
	}
	outPtr, outLen := uint32(r>>32), uint32(r)
	if uint64(outLen) > uint64(m.lim.MaxOutput) {
		return nil, bad(ErrOutputTooLarge, "output of "+utoa(outLen)+" bytes exceeds the limit of "+
			itoa(m.lim.MaxOutput)+" bytes")
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
	if !validJSON(out) {
		return nil, bad(ErrBadOutput, "output is not UTF-8 JSON ("+quoteHead(out)+")")
	}
	return out, nil
}

// callError classifies an error returned by a call into the guest.
func (m *Module) callError(ctx context.Context, export string, timeout time.Duration, err error) error {
	if exit, ok := errors.AsType[*sys.ExitError](err); ok {
		switch code := exit.ExitCode(); code {
		case sys.ExitCodeDeadlineExceeded:
			return m.contextError(ctx, export, timeout, context.DeadlineExceeded)
		case sys.ExitCodeContextCanceled:
			return m.contextError(ctx, export, timeout, context.Canceled)
		default:
			if m.stopCtx.Err() != nil {
				return &Error{Module: m.name, Export: export, Kind: ErrClosed, Err: err, Detail: "module closed during the call"}
			}
			return &Error{Module: m.name, Export: export, Kind: ErrTrap, Err: err,
				Detail: "guest exited with code " + utoa(code)}
		}
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
	case ctx.Err() != nil:
		return &Error{Module: m.name, Export: export, Kind: ErrTimeout, Err: context.DeadlineExceeded,
			Detail: "caller's deadline exceeded"}
	case errors.Is(cause, context.Canceled):
		return &Error{Module: m.name, Export: export, Kind: ErrCanceled, Err: context.Canceled, Detail: "canceled"}
	default:
		return &Error{Module: m.name, Export: export, Kind: ErrTimeout, Err: context.DeadlineExceeded,
			Detail: "timed out after " + timeout.String()}
	}
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
