package plugins

import (
	"context"
	"errors"
	"log/slog"
	"runtime"
	"strings"
	"testing"
	"time"
)

// stopSlack is how late past its deadline a runaway guest may be stopped before the test fails.
// The target is 100 ms; the test allows more because the race detector and a loaded CI machine
// delay goroutine scheduling. Measured values are logged.
const stopSlack = 500 * time.Millisecond

// TestHostileCalls loads modules that misbehave at call time: each call must fail with the right
// kind within its limit, and the host must keep serving — the good module answers after every
// hostile call, and the hostile module itself answers (fails again the same way) on a fresh
// instance.
func TestHostileCalls(t *testing.T) {
	h := newHost(t)
	ctx := context.Background()
	ok := load(t, h, "good", abiModule(good), "", Limits{})
	echo := load(t, h, "echo", echoWasm, `{"version":1}`, Limits{})
	const callTimeout = 100 * time.Millisecond

	cases := []struct {
		name    string
		wasm    []byte
		input   string
		kind    error
		also    error // another error the result must match, or nil
		parts   []string
		timeout bool   // stopped by its deadline: check how late
		lim     Limits // CallTimeout defaults to callTimeout
	}{
		{name: "infinite loop", wasm: abiModule(guest{decision: bodyLoop}), kind: ErrTimeout, also: context.DeadlineExceeded,
			parts: []string{`plugins: module "infinite loop": gw_authorize: timed out after 100ms`}, timeout: true},
		{name: "trap", wasm: abiModule(guest{decision: bodyTrap}), kind: ErrTrap, parts: []string{"gw_authorize: trapped: wasm error: unreachable"}},
		{name: "output pointer out of bounds", wasm: abiModule(guest{decision: [][]byte{i64c(packed(0xffff0000, 16))}}),
			kind: ErrBadOutput, parts: []string{"outside memory"}},
		{name: "output straddles the end of memory", wasm: abiModule(guest{decision: [][]byte{i64c(packed(65536-4, 16))}}),
			kind: ErrBadOutput, parts: []string{"outside memory"}},
		{name: "100 MiB output", wasm: abiModule(guest{decision: [][]byte{i64c(packed(0, 100<<20))}}),
			kind: ErrOutputTooLarge, parts: []string{"output of 104857600 bytes exceeds the limit of 1048588 bytes"}}, // 1 MiB + the 12-byte input
		{name: "zero output", wasm: abiModule(guest{decision: [][]byte{i64c(0)}}), kind: ErrBadOutput, parts: []string{"returned 0 (no output)"}},
		{name: "empty output", wasm: abiModule(guest{decision: [][]byte{i64c(packed(outputAt, 0))}}), kind: ErrBadOutput},
		{name: "non-JSON output", wasm: abiModule(guest{output: "allow: yes"}), kind: ErrBadOutput, parts: []string{`not UTF-8 JSON ("allow: yes")`}},
		{name: "invalid UTF-8 output", wasm: abiModule(guest{output: "\"\xff\""}), kind: ErrBadOutput},
		// Declares a 4 GiB maximum and grows a page at a time: memory.grow fails at the limit.
		{name: "memory bomb", wasm: abiModule(guest{decision: bodyMemoryBomb, memMax: 65536}), kind: ErrTrap,
			parts: []string{"unreachable"}, lim: Limits{MemoryLimitPages: 256, CallTimeout: 5 * time.Second}},
		{name: "gw_alloc returns 0", wasm: abiModule(guest{output: "{}", alloc: [][]byte{i32c(0)}}), input: "{}",
			kind: ErrBadOutput, parts: []string{"gw_alloc(2) returned 0"}},
		{name: "gw_alloc out of bounds", wasm: abiModule(guest{output: "{}", alloc: [][]byte{i32c(-8)}}), input: "{}",
			kind: ErrBadOutput, parts: []string{"outside memory"}},
		{name: "gw_alloc loops", wasm: abiModule(guest{output: "{}", alloc: [][]byte{opLoop, opBr0, opEnd, opUnreachable}}), input: "{}",
			kind: ErrTimeout, parts: []string{"gw_alloc: timed out"}, timeout: true},
		// 2^50 calls and not one loop: stopped at function entries.
		{name: "recursion without loops", wasm: recursionModule(), kind: ErrTimeout, also: context.DeadlineExceeded, timeout: true},
		{name: "Go panic", wasm: echoWasm, input: `"panic"`, kind: ErrTrap},
		{name: "Go infinite loop", wasm: echoWasm, input: `"spin"`, kind: ErrTimeout, also: context.DeadlineExceeded, timeout: true},
		{name: "Go out of memory", wasm: echoWasm, input: `"grow"`, kind: ErrTrap,
			lim: Limits{MemoryLimitPages: 256, CallTimeout: 5 * time.Second}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			lim := c.lim
			if lim.CallTimeout == 0 && c.timeout {
				lim.CallTimeout = callTimeout
			} // else load relaxes it: the other cases must fail for their own reason, even on a slow machine
			m := load(t, h, c.name, c.wasm, "", lim)
			defer m.Close(ctx)
			input := c.input
			if input == "" {
				input = `{"tool":"x"}`
			}
			for round := range 2 { // the second round runs on a fresh instance
				warm(t, m) // so that the timing below is the call's alone
				start := time.Now()
				_, err := m.Call(ctx, ExportAuthorize, []byte(input))
				took := time.Since(start)
				wantErr(t, err, c.kind, c.parts...)
				if c.also != nil && !errors.Is(err, c.also) {
					t.Errorf("%v does not match %v", err, c.also)
				}
				if c.timeout {
					late := took - callTimeout
					t.Logf("round %d: stopped %v after its %v deadline", round, late.Round(time.Microsecond), callTimeout)
					if late > stopSlack {
						t.Errorf("stopped %v after its deadline", late)
					}
				} else {
					t.Logf("round %d: failed in %v: %v", round, took.Round(time.Microsecond), err)
				}
				if n := liveInstances(m); n != 0 {
					t.Errorf("%d live instances after a failed call: the broken one was kept", n)
				}
				for _, good := range []*Module{ok, echo} {
					if _, err := good.Call(ctx, ExportAuthorize, []byte(`{}`)); err != nil {
						t.Fatalf("good module after hostile call: %v", err)
					}
				}
			}
		})
	}
}

// TestGoGuestOutputIsBounded: a guest writing 20,000 lines gets a bounded share of the log.
func TestGoGuestOutputIsBounded(t *testing.T) {
	var logs logBuffer
	h, err := NewHost(context.Background(), HostConfig{CacheDir: cacheDir, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(context.Background())
	m := load(t, h, "chatty", echoWasm, `{"version":1}`, Limits{CallTimeout: 5 * time.Second})
	out, err := m.Call(context.Background(), ExportAuthorize, []byte(`"print"`))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), `"allow":true`) {
		t.Fatalf("answer %s", out)
	}
	m.Close(context.Background()) // reports the dropped lines
	text := logs.String()
	lines := strings.Count(text, "msg=\"policy output\"")
	if lines == 0 || lines > 2000 {
		t.Errorf("%d guest lines logged out of 20000, want a bounded non-zero share", lines)
	}
	if !strings.Contains(text, "stream=stdout") || !strings.Contains(text, "stream=stderr") ||
		!strings.Contains(text, "module=chatty") || !strings.Contains(text, `line="line 0"`) {
		t.Errorf("log lacks stream, module or line attributes:\n%.500s", text)
	}
	if !strings.Contains(text, "policy output dropped") {
		t.Error("dropped lines were not reported")
	}
	t.Logf("%d of 20000 lines logged, %d bytes of log", lines, len(text))
}

// recursionModule's gw_authorize makes a call tree of 2^50 calls without a single loop.
func recursionModule() []byte {
	m := &wasmModule{}
	m.memory(1, 0)
	m.export("gw_abi_version", m.fn(nil, []byte{i32}, nil, i32c(1)))
	m.export("gw_alloc", m.fn([]byte{i32}, []byte{i32}, nil, i32c(inputAt)))
	rec := uint32(len(m.imports) + len(m.funcs)) // the next function: rec(n) calls rec(n-1) twice
	dec := [][]byte{localGet(0), i32c(1), opI32Sub, call(rec)}
	m.fn([]byte{i32}, nil, nil, append(append(append([][]byte{localGet(0), opIf}, dec...), dec...), opEnd)...)
	m.export("gw_authorize", m.fn([]byte{i32, i32}, []byte{i64}, nil, i32c(50), call(rec), i64c(0)))
	return m.bytes()
}

// TestRunawayGuestLetsGCRun: compiled guest code never passes a Go safe point, so a guest
// spinning without checkpoints would stall every stop-the-world phase of the garbage collector
// — the whole gateway — until it returned. The checkpoint is where the runtime preempts it.
func TestRunawayGuestLetsGCRun(t *testing.T) {
	h := newHost(t)
	m := load(t, h, "loop", abiModule(guest{decision: bodyLoop}), "", Limits{CallTimeout: 2 * time.Second})
	done := make(chan error, 1)
	go func() {
		_, err := m.Call(context.Background(), ExportAuthorize, []byte(`{}`))
		done <- err
	}()
	time.Sleep(50 * time.Millisecond) // the guest is spinning now
	for i := range 5 {
		start := time.Now()
		runtime.GC()
		took := time.Since(start)
		t.Logf("GC %d while the guest spins: %v", i, took)
		if took > stopSlack {
			t.Errorf("GC took %v while a guest spun", took)
		}
	}
	select {
	case err := <-done:
		t.Fatalf("the call returned before its deadline: %v", err)
	default:
	}
	wantErr(t, <-done, ErrTimeout)
}

// TestCallerContext: the caller's cancellation and deadline stop a call, and are told apart
// from the call's own timeout.
func TestCallerContext(t *testing.T) {
	h := newHost(t)
	m := load(t, h, "loop", abiModule(guest{decision: bodyLoop}), "", Limits{CallTimeout: 10 * time.Second})

	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	_, err := m.Call(ctx, ExportAuthorize, []byte(`{}`))
	wantErr(t, err, ErrCanceled, "canceled by the caller")
	if !errors.Is(err, context.Canceled) {
		t.Errorf("%v does not match context.Canceled", err)
	}

	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = m.Call(ctx, ExportAuthorize, []byte(`{}`))
	wantErr(t, err, ErrTimeout, "caller's deadline exceeded")
	if took := time.Since(start); took > 30*time.Millisecond+stopSlack {
		t.Errorf("caller's deadline honoured after %v", took)
	}

	// An already-canceled context fails without running anything.
	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	_, err = m.Call(ctx, ExportAuthorize, []byte(`{}`))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("canceled context: %v", err)
	}
}

// TestPoolWait: with every instance busy, a call waits for one, honouring its context.
func TestPoolWait(t *testing.T) {
	h := newHost(t)
	m := load(t, h, "loop", abiModule(guest{decision: bodyLoop}), "", Limits{CallTimeout: 300 * time.Millisecond, PoolSize: 2})
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := m.Call(context.Background(), ExportAuthorize, []byte(`{}`))
			errs <- err
		}()
	}
	// Wait until both instances are busy.
	deadline := time.Now().Add(5 * time.Second)
	for len(m.idle) != 0 || liveInstances(m) != 2 {
		if time.Now().After(deadline) {
			t.Fatal("the two calls did not start")
		}
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := m.Call(ctx, ExportAuthorize, []byte(`{}`))
	wantErr(t, err, ErrTimeout, "while waiting for an idle instance (pool of 2)")
	for range 2 {
		wantErr(t, <-errs, ErrTimeout)
	}
	// A waiting call gets an instance once one frees up.
	_, err = m.Call(context.Background(), ExportAuthorize, []byte(`{}`))
	wantErr(t, err, ErrTimeout, "timed out after 300ms")
}

// TestInputTooLarge: input larger than the memory limit is refused before touching the guest.
func TestInputTooLarge(t *testing.T) {
	h := newHost(t)
	m := load(t, h, "small", abiModule(good), "", Limits{MemoryLimitPages: 1})
	_, err := m.Call(context.Background(), ExportAuthorize, make([]byte, 65537))
	wantErr(t, err, ErrInputTooLarge)
	if _, err := m.Call(context.Background(), ExportAuthorize, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
}

// warm makes sure m has an idle instance, creating one if the pool has none.
func warm(t *testing.T, m *Module) {
	t.Helper()
	if len(m.idle) > 0 {
		return
	}
	m.slots <- struct{}{}
	in, err := m.newInstance(context.Background())
	if err != nil {
		<-m.slots
		t.Fatal(err)
	}
	m.put(in)
}

// TestFailedGrowReturnsToTheGuest: memory.grow past the memory limit fails inside the guest —
// it returns -1 and the guest goes on — rather than trapping. (A guest may trap on it, as the
// memory bomb does, or exit, as the Go runtime does when it runs out of memory.)
func TestFailedGrowReturnsToTheGuest(t *testing.T) {
	h := newHost(t)
	const answer = `{"allow":false,"reason":"out of memory"}`
	body := [][]byte{i32c(2), opMemGrow, i32c(-1), opI32Eq, // 1 page + 2 > the limit of 2
		opIf, i64c(packed(outputAt, uint32(len(answer)))), {0x0f}, opEnd, // return the answer
		opUnreachable}
	m := load(t, h, "grow", abiModule(guest{output: answer, decision: body, memMax: 65536}), "",
		Limits{MemoryLimitPages: 2})
	out, err := m.Call(context.Background(), ExportAuthorize, []byte(`{}`))
	if err != nil || string(out) != answer {
		t.Fatalf("got %s, %v; want the guest's answer after memory.grow returned -1", out, err)
	}
}
