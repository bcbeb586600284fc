package plugins_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/gwmcp/gw/plugins"
)

// A gateway loads a policy module into a Slot, calls it per request, and reloads it when the file
// changes: compile and check the new version, dry-run it, then swap. A failed reload keeps the
// old module.
func Example() {
	ctx := context.Background()
	host, err := plugins.NewHost(ctx, plugins.HostConfig{})
	if err != nil {
		panic(err)
	}
	defer host.Close(ctx)

	load := func(wasm []byte) (*plugins.Module, error) {
		m, err := host.Load(ctx, "authz", wasm, []byte(`{"mode":"read-only"}`), plugins.Limits{})
		if err != nil {
			return nil, err
		}
		if _, err := m.Call(ctx, plugins.ExportAuthorize, []byte(`{"caller":{"id":""},"tool":"dry-run"}`)); err != nil {
			m.Close(ctx)
			return nil, err
		}
		return m, nil
	}

	var slot plugins.Slot
	const path = "policy.wasm"
	if wasm, err := os.ReadFile(path); err == nil {
		if m, err := load(wasm); err == nil {
			slot.Swap(m)
		}
	}
	watchCtx, stop := context.WithCancel(ctx)
	defer stop()
	go plugins.Watch(watchCtx, path, time.Second, func(wasm []byte) {
		if m, err := load(wasm); err == nil {
			slot.Swap(m) // the old module finishes its calls, then closes itself
		}
	})

	out, err := slot.Call(ctx, plugins.ExportAuthorize, []byte(`{"caller":{"id":"alice"},"tool":"search"}`))
	fmt.Println(string(out), err)
	// Output: plugins: gw_authorize: no policy module loaded
}
