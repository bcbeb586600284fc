package plugins

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// versionOf extracts N from the echo guest's answer {"allow":true,"version":N,...}.
func versionOf(out []byte) (int, error) {
	const prefix = `{"allow":true,"version":`
	s := string(out)
	if len(s) < len(prefix) || s[:len(prefix)] != prefix {
		return 0, fmt.Errorf("unexpected answer %q", out)
	}
	s = s[len(prefix):]
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return strconv.Atoi(s[:i])
}

// TestSlotHammer: 10,000 calls from 32 goroutines across the pool while the Slot is swapped
// twice. Every call must succeed, every answer must come from exactly one module version, no
// goroutine may see an older version after a newer one, and the swapped-out modules must close
// once drained.
func TestSlotHammer(t *testing.T) {
	const (
		goroutines = 32
		calls      = 10000
	)
	h := newHost(t)
	ctx := context.Background()
	lim := Limits{PoolSize: 8, CallTimeout: 10 * time.Second}
	versions := make([]*Module, 3)
	for i := range versions {
		versions[i] = load(t, h, "echo", echoWasm, fmt.Sprintf(`{"version":%d}`, i+1), lim)
	}
	var slot Slot
	if old := slot.Swap(versions[0]); old != nil {
		t.Fatal("empty slot returned a module")
	}

	var (
		next     atomic.Int64 // calls handed out
		counts   [4]atomic.Int64
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
		failed   atomic.Bool
	)
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err })
		failed.Store(true)
	}

	// The swapper replaces v1 by v2 after a third of the calls, and v2 by v3 after two thirds,
	// while the callers keep going. The caller that hands out call v*calls/3 waits for swap v,
	// so the swaps land mid-run however fast the calls are; the other callers do not wait.
	swapAt := [3]chan struct{}{nil, make(chan struct{}), make(chan struct{})}
	swapDone := [3]chan struct{}{nil, make(chan struct{}), make(chan struct{})}
	swapped := make(chan struct{})
	go func() {
		defer close(swapped)
		for v := 1; v <= 2; v++ {
			<-swapAt[v]
			if old := slot.Swap(versions[v]); old != versions[v-1] {
				fail(fmt.Errorf("swap %d returned the wrong module", v))
			}
			close(swapDone[v])
		}
	}()

	for range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			seen := 0
			for {
				n := next.Add(1)
				if n > calls {
					return
				}
				for v := 1; v <= 2; v++ {
					if n == int64(v*calls/3) {
						close(swapAt[v])
						<-swapDone[v]
					}
				}
				out, err := slot.Call(ctx, ExportAuthorize, []byte(`{"n":`+strconv.FormatInt(n, 10)+`}`))
				if err != nil {
					fail(fmt.Errorf("call %d: %w", n, err))
					return
				}
				v, err := versionOf(out)
				if err != nil || v < 1 || v > 3 {
					fail(fmt.Errorf("call %d: version %d, %v", n, v, err))
					return
				}
				if want := `,"input":{"n":` + strconv.FormatInt(n, 10) + `}}`; string(out[len(out)-len(want):]) != want {
					fail(fmt.Errorf("call %d: answer %s carries another call's input", n, out))
					return
				}
				if v < seen {
					fail(fmt.Errorf("call %d: version %d after version %d", n, v, seen))
					return
				}
				seen = v
				counts[v].Add(1)
			}
		}()
	}
	wg.Wait()
	<-swapped
	if firstErr != nil {
		t.Fatal(firstErr)
	}
	total := counts[1].Load() + counts[2].Load() + counts[3].Load()
	t.Logf("answers by version: v1 %d, v2 %d, v3 %d", counts[1].Load(), counts[2].Load(), counts[3].Load())
	if total != calls {
		t.Fatalf("%d answers, want %d", total, calls)
	}
	if counts[3].Load() == 0 {
		t.Error("no call reached the last version")
	}
	// The swapped-out modules closed themselves once drained.
	for _, m := range versions[:2] {
		select {
		case <-m.done:
		case <-time.After(5 * time.Second):
			t.Fatal("retired module not closed after its calls returned")
		}
	}
	if n := liveInstances(versions[2]); n < 1 || n > lim.PoolSize {
		t.Errorf("%d live instances, pool size %d", n, lim.PoolSize)
	}
	if err := slot.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := slot.Call(ctx, ExportAuthorize, []byte(`{}`)); !errors.Is(err, ErrNoModule) {
		t.Fatalf("call on emptied slot: %v", err)
	}
}

func TestSlotBasics(t *testing.T) {
	h := newHost(t)
	ctx := context.Background()
	var slot Slot
	_, err := slot.Call(ctx, ExportAuthorize, []byte(`{}`))
	wantErr(t, err, ErrNoModule, "plugins: gw_authorize: no policy module loaded")
	if slot.Current() != nil {
		t.Fatal("Current of empty slot")
	}
	a := load(t, h, "a", abiModule(guest{output: `{"allow":true}`}), "", Limits{})
	b := load(t, h, "b", abiModule(guest{output: `{"allow":false}`}), "", Limits{})
	slot.Swap(a)
	if slot.Swap(a) != a || slot.Current() != a {
		t.Fatal("swapping in the current module again")
	}
	if out, err := slot.Call(ctx, ExportAuthorize, []byte(`{}`)); err != nil || string(out) != `{"allow":true}` {
		t.Fatalf("a: %s %v", out, err)
	}
	if old := slot.Swap(b); old != a {
		t.Fatal("Swap did not return the previous module")
	}
	if out, err := slot.Call(ctx, ExportAuthorize, []byte(`{}`)); err != nil || string(out) != `{"allow":false}` {
		t.Fatalf("b: %s %v", out, err)
	}
	// a was retired and, with nothing in flight, closed at once.
	select {
	case <-a.done:
	default:
		t.Fatal("swapped-out idle module not closed")
	}
	_, err = a.Call(ctx, ExportAuthorize, []byte(`{}`))
	wantErr(t, err, ErrClosed, `plugins: module "a": gw_authorize: module is closed`)
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// The owner closing the current module makes the slot fail with ErrClosed.
	b.Close(ctx)
	_, err = slot.Call(ctx, ExportAuthorize, []byte(`{}`))
	wantErr(t, err, ErrClosed)
}

// TestSwapDuringCall: a call in flight finishes on the module it started on; the old module
// closes when it returns.
func TestSwapDuringCall(t *testing.T) {
	h := newHost(t)
	ctx := context.Background()
	slow := load(t, h, "slow", abiModule(guest{decision: bodyLoop}), "", Limits{CallTimeout: 200 * time.Millisecond})
	fast := load(t, h, "fast", abiModule(good), "", Limits{})
	var slot Slot
	slot.Swap(slow)
	errc := make(chan error, 1)
	go func() {
		_, err := slot.Call(ctx, ExportAuthorize, []byte(`{}`))
		errc <- err
	}()
	waitFor(t, func() bool { return liveInstances(slow) == 1 && len(slow.idle) == 0 })
	slot.Swap(fast)
	if _, err := slot.Call(ctx, ExportAuthorize, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-slow.done:
		t.Fatal("old module closed while a call was in flight")
	default:
	}
	wantErr(t, <-errc, ErrTimeout, `module "slow"`, "timed out after 200ms") // ran on slow to its end
	select {
	case <-slow.done:
	case <-time.After(5 * time.Second):
		t.Fatal("old module not closed after its last call")
	}
}

// TestCloseWaits: Close waits for calls in flight; when its context ends first it stops them.
func TestCloseWaits(t *testing.T) {
	h := newHost(t)
	ctx := context.Background()

	t.Run("graceful", func(t *testing.T) {
		m := load(t, h, "loop", abiModule(guest{decision: bodyLoop}), "", Limits{CallTimeout: 150 * time.Millisecond})
		errc := make(chan error, 1)
		go func() {
			_, err := m.Call(ctx, ExportAuthorize, []byte(`{}`))
			errc <- err
		}()
		waitFor(t, func() bool { return len(m.idle) == 0 })
		start := time.Now()
		if err := m.Close(ctx); err != nil {
			t.Fatal(err)
		}
		t.Logf("Close waited %v for the call in flight", time.Since(start))
		wantErr(t, <-errc, ErrTimeout) // the call ran to its own deadline
	})

	t.Run("forced", func(t *testing.T) {
		m := load(t, h, "loop", abiModule(guest{decision: bodyLoop}), "", Limits{CallTimeout: time.Minute, PoolSize: 1})
		errc := make(chan error, 2)
		go func() {
			_, err := m.Call(ctx, ExportAuthorize, []byte(`{}`))
			errc <- err
		}()
		waitFor(t, func() bool { return len(m.idle) == 0 })
		go func() { // waits for the only instance
			_, err := m.Call(ctx, ExportAuthorize, []byte(`{}`))
			errc <- err
		}()
		waitFor(t, func() bool { m.mu.Lock(); defer m.mu.Unlock(); return m.inflight == 2 })
		cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := m.Close(cctx)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Close: %v", err)
		}
		t.Logf("forced Close returned after %v", time.Since(start))
		for range 2 {
			wantErr(t, <-errc, ErrClosed, "module")
		}
		if liveInstances(m) != 0 {
			t.Error("instances left after Close")
		}
	})
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestSlotCallDigest: a call names the digest of the module that ran it,
// the SHA-256 of the bytes as loaded, across a swap; an empty Slot names
// none.
func TestSlotCallDigest(t *testing.T) {
	h := newHost(t)
	ctx := context.Background()
	// The same guest with a custom section appended ("gw" plus a byte):
	// other bytes, the same behaviour.
	other := append(slices.Clone(echoWasm), 0x00, 0x04, 0x02, 'g', 'w', '2')
	var slot Slot
	if _, d, err := slot.CallDigest(ctx, ExportAuthorize, []byte(`{}`)); d != "" || !errors.Is(err, ErrNoModule) {
		t.Fatalf("empty slot: %q, %v", d, err)
	}
	for _, wasm := range [][]byte{echoWasm, other} {
		m := load(t, h, "echo", wasm, `{"version":1}`, Limits{})
		sum := sha256.Sum256(wasm)
		want := "sha256:" + hex.EncodeToString(sum[:])
		if m.Digest() != want {
			t.Fatalf("Digest() = %s; want %s", m.Digest(), want)
		}
		slot.Swap(m)
		if _, d, err := slot.CallDigest(ctx, ExportAuthorize, []byte(`{}`)); err != nil || d != want {
			t.Fatalf("CallDigest = %q, %v; want %s", d, err, want)
		}
	}
	if err := slot.Close(ctx); err != nil {
		t.Fatal(err)
	}
}
