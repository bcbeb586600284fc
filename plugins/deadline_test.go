package plugins

import (
	"context"
	"errors"
	"testing"
	"time"
)

// Deadlines: a call's deadline starts when the call starts, an answer after it is a timeout,
// and bulk memory work cannot outrun it.

const allowOutput = `{"allow":true}`

// countdown is the body of a loop of n iterations: local 1 (the input length, unused) counts.
func countdown(n int32, work ...[]byte) [][]byte {
	body := [][]byte{i32c(n), localSet(1), opLoop}
	body = append(body, work...)
	return append(body, localGet(1), i32c(1), opI32Sub, localTee(1), opBrIf0, opEnd,
		i64c(packed(outputAt, uint32(len(allowOutput)))))
}

// memoryFill and memoryCopy are memory.fill(dst, byte, n) and memory.copy(dst, src, n).
func memoryFill(dst, n int32) []byte {
	return cat(i32c(dst), i32c(0), i32c(n), []byte{0xfc, 11, 0})
}

func memoryCopy(dst, src, n int32) []byte {
	return cat(i32c(dst), i32c(src), i32c(n), []byte{0xfc, 10, 0, 0})
}

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// TestDeadlineStartsWithTheCall: the deadline counts from arm, the start of the call, not from
// the guest's first checkpoint: guest work before it (here, a sleep) counts too.
func TestDeadlineStartsWithTheCall(t *testing.T) {
	var w watchdog
	w.init(context.Background())
	if !w.arm(context.Background(), startWindow(10*time.Millisecond).deadline) {
		t.Fatal("arm refused a live context")
	}
	time.Sleep(20 * time.Millisecond) // the guest's work before its first checkpoint
	if err := w.check(); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("first checkpoint 20ms into a 10ms call: %v, want the deadline", err)
	}
	if err := w.disarm(); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("disarm: %v", err)
	}

	// The caller's deadline counts when it comes first, even before its context's timer fires.
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(time.Millisecond))
	defer cancel()
	w.arm(ctx, startWindow(time.Hour).deadline)
	time.Sleep(2 * time.Millisecond)
	if err := w.check(); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a checkpoint after the caller's deadline: %v", err)
	}
	w.disarm()
}

// TestLateAnswerIsTimeout: an answer that arrives after the deadline is a timeout — the same
// error as a call stopped at its deadline — never a decision, even when no checkpoint saw the
// deadline pass. The module here is loaded without checkpoints, so only the host's check after
// the guest returns can catch it.
func TestLateAnswerIsTimeout(t *testing.T) {
	h := newHost(t)
	h.uninstrumented = true
	wasm := abiModule(guest{output: allowOutput, decision: countdown(1 << 27)}) // some 50-500 ms
	ctx := context.Background()

	slow := load(t, h, "slow", wasm, "", Limits{CallTimeout: relaxed})
	start := time.Now()
	out, err := slow.Call(ctx, ExportAuthorize, []byte(`{}`))
	if err != nil || string(out) != allowOutput {
		t.Fatalf("with time to spare: %s, %v", out, err)
	}
	took := time.Since(start)
	t.Logf("the guest answers in %v", took)
	if took < 4*time.Millisecond {
		t.Fatalf("the guest answered in %v, too fast to test a 2ms deadline", took)
	}

	for _, c := range []struct {
		name   string
		lim    Limits
		ctx    func() (context.Context, context.CancelFunc)
		detail string
	}{
		{"own deadline", Limits{CallTimeout: 2 * time.Millisecond}, func() (context.Context, context.CancelFunc) {
			return context.WithCancel(ctx)
		}, "gw_authorize: answered after its deadline of 2ms"},
		{"caller's deadline", Limits{CallTimeout: relaxed}, func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(ctx, 2*time.Millisecond)
		}, "gw_authorize: caller's deadline exceeded"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := load(t, h, c.name, wasm, "", c.lim)
			defer m.Close(ctx)
			warm(t, m)
			cctx, cancel := c.ctx()
			defer cancel()
			out, err := m.Call(cctx, ExportAuthorize, []byte(`{}`))
			if err == nil {
				t.Fatalf("an answer after the deadline was used: %s", out)
			}
			wantErr(t, err, ErrTimeout, c.detail)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("%v does not match context.DeadlineExceeded", err)
			}
			if n := liveInstances(m); n != 0 {
				t.Errorf("%d live instances: the late one was kept", n)
			}
		})
	}
}

// TestBulkWorkIsBounded: a guest spending its time in bulk memory instructions — each moving
// tens of MiB, so that a few hundred loop iterations take seconds — or growing its memory page
// by page is stopped at its deadline, not when it is done. Before bulk instructions were
// charged by their length, 600 fills of 60 MiB ran 3.7 s against a 100 ms deadline and their
// {"allow":true} was obeyed.
func TestBulkWorkIsBounded(t *testing.T) {
	h := newHost(t)
	ctx := context.Background()
	const (
		deadline = 100 * time.Millisecond
		mib      = 1 << 20
	)
	// growBomb grows memory 1 MiB at a time until memory.grow fails, then traps: 1024 grows to
	// 1 GiB, which take seconds (growing reallocates and copies), and one checkpoint without
	// the charge per page.
	growBomb := [][]byte{opLoop, i32c(16), opMemGrow, i32c(-1), opI32Eq, opIf, opUnreachable, opEnd, opBr0, opEnd, opUnreachable}
	cases := []struct {
		name   string
		g      guest
		lim    Limits
		within time.Duration // the whole call, deadline included
		trap   bool          // stopping at the memory limit is fine too
	}{
		{name: "600 memory.fill of 60 MiB", g: guest{memMin: 62 * 16, decision: countdown(600, memoryFill(mib, 60*mib))}},
		{name: "600 memory.copy of 30 MiB", g: guest{memMin: 62 * 16, decision: countdown(600, memoryCopy(mib, 31*mib, 30*mib))}},
		{name: "memory bomb, 1 MiB a grow", g: guest{decision: growBomb, memMax: 65536},
			lim: Limits{MemoryLimitPages: 16384}, trap: true},
		// Page by page to 64 MiB took 0.1-0.45 s, checked once at the 1000th page.
		{name: "memory bomb, a page a grow", g: guest{decision: bodyMemoryBomb, memMax: 65536},
			within: 400 * time.Millisecond, trap: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.g.output = allowOutput
			within := c.within
			if within == 0 {
				// Without the charges: 1.9 s (fill), 0.75 s (copy), 2.3 s
				// (bomb). Room above the 0.1-0.2 s seen here for a loaded
				// CI machine under -race.
				within = 700 * time.Millisecond
			}
			lim := c.lim
			lim.CallTimeout = deadline
			m := load(t, h, c.name, abiModule(c.g), "", lim)
			defer m.Close(ctx)
			for round := range 2 {
				warm(t, m)
				start := time.Now()
				out, err := m.Call(ctx, ExportAuthorize, []byte(`{}`))
				took := time.Since(start)
				t.Logf("round %d: %v after %v", round, err, took.Round(time.Millisecond))
				switch {
				case err == nil:
					t.Fatalf("answered %s after %v", out, took)
				case c.trap && errors.Is(err, ErrTrap): // reached the memory limit first
				default:
					wantErr(t, err, ErrTimeout)
				}
				if took > within {
					t.Errorf("stopped after %v, want under %v", took, within)
				}
			}
		})
	}
}

// TestInitIsOneWindow: the initialization of an instance — _initialize, gw_abi_version, then
// gw_alloc and gw_init — runs within one InitTimeout, not one for each step.
func TestInitIsOneWindow(t *testing.T) {
	h := newHost(t)
	m := &wasmModule{}
	clockTimeGet := m.importFunc("wasi_snapshot_preview1", "clock_time_get", []byte{i32, i64, i32}, []byte{i32})
	m.memory(1, 0)
	now := cat(i32c(1), i64c(0), i32c(8), call(clockTimeGet), opDrop, i32c(8), []byte{0x29, 3, 0}) // monotonic ns
	// busy(ms) spins until ms milliseconds have passed on the monotonic clock.
	busy := m.fn([]byte{i32}, nil, []byte{i64},
		now, localGet(0), []byte{0xad}, i64c(1e6), []byte{0x7e, 0x7c}, localSet(1), // end = now + ms·10⁶
		opLoop, now, localGet(1), []byte{0x54}, opBrIf0, opEnd) // while now < end
	m.export("gw_abi_version", m.fn(nil, []byte{i32}, nil, i32c(1)))
	m.export("gw_alloc", m.fn([]byte{i32}, []byte{i32}, nil, i32c(inputAt)))
	m.export("_initialize", m.fn(nil, nil, nil, i32c(60), call(busy)))
	const ok = `{"ok":true}`
	m.dataAt(initOutputAt, []byte(ok))
	m.export("gw_init", m.fn([]byte{i32, i32}, []byte{i64}, nil, i32c(60), call(busy),
		i64c(packed(initOutputAt, uint32(len(ok))))))
	m.export("gw_authorize", m.fn([]byte{i32, i32}, []byte{i64}, nil, i64c(packed(outputAt, 2))))
	m.dataAt(outputAt, []byte("{}"))
	wasm := m.bytes()

	if mod, err := h.Load(context.Background(), "slow init", wasm, nil, Limits{InitTimeout: relaxed}); err != nil {
		t.Fatalf("with time to spare: %v", err)
	} else {
		mod.Close(context.Background())
	}
	start := time.Now()
	_, err := h.Load(context.Background(), "slow init", wasm, nil, Limits{InitTimeout: 100 * time.Millisecond})
	t.Logf("%v after %v", err, time.Since(start).Round(time.Millisecond))
	// Stopped at a checkpoint ("timed out after") or, on a loaded machine,
	// caught answering late ("answered after its deadline"): a timeout of
	// gw_init either way, which two windows of 100 ms would not be.
	wantErr(t, err, ErrTimeout, "gw_init: ")
}
