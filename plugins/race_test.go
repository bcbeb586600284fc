package plugins

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// TestCloseDuringCalls: Module.Close while calls hammer the module. Every call either succeeds or
// fails with ErrClosed, Close returns, and nothing is left alive.
func TestCloseDuringCalls(t *testing.T) {
	h := newHost(t)
	ctx := context.Background()
	for _, wasm := range [][]byte{abiModule(good), echoWasm} {
		m := load(t, h, "m", wasm, `{"version":1}`, Limits{PoolSize: 4})
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					_, err := m.Call(ctx, ExportAuthorize, []byte(`{}`))
					if err != nil {
						if !errors.Is(err, ErrClosed) {
							errs <- err
						}
						return
					}
				}
			}()
		}
		time.Sleep(20 * time.Millisecond)
		if err := m.Close(ctx); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("call during Close: %v", err)
		}
		if liveInstances(m) != 0 {
			t.Error("instances alive after Close")
		}
	}
}

// TestHostCloseDuringLoads: Host.Close while Loads and calls are under way. Each Load either
// succeeds (and its module is then closed by the Host) or fails with ErrClosed.
func TestHostCloseDuringLoads(t *testing.T) {
	h, err := NewHost(context.Background(), HostConfig{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				m, err := h.Load(ctx, "m", abiModule(good), nil, Limits{MemoryLimitPages: uint32(1 + i%2), CallTimeout: relaxed})
				if err != nil {
					if !errors.Is(err, ErrClosed) {
						errs <- err
					}
					return
				}
				if _, err := m.Call(ctx, ExportAuthorize, []byte(`{}`)); err != nil && !errors.Is(err, ErrClosed) {
					errs <- err
				}
			}
		}()
	}
	time.Sleep(30 * time.Millisecond)
	if err := h.Close(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("during Host.Close: %v", err)
	}
	if n := len(h.modules); n != 0 {
		t.Errorf("%d modules left after Host.Close", n)
	}
}
