package main

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/gwmcp/gw/transport/natsconn"
)

func TestPolicyCheckMissingFile(t *testing.T) {
	code, _, stderr := runGW(t, "policy", "check", "./nope.wasm")
	if code != 1 || strings.Contains(stderr, "policy :") || !strings.Contains(stderr, "policy module: open ./nope.wasm") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

// A second gw run on a host whose store is in use says what to do.
func TestSecondRunSaysWhatToDo(t *testing.T) {
	store := t.TempDir()
	first, err := natsconn.StartEmbedded(context.Background(), natsconn.EmbeddedOptions{StoreDir: store, Port: 0, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Shutdown()
	port := freePort(t)
	cfg := writeConfig(t, "gw.yaml", fmt.Sprintf(`
servers:
  a: {command: EXE, env: {MCPTEST_SERVER: "1"}}
nats:
  embedded: {port: %d, store_dir: %s}
`, port, store))
	code, _, stderr := runGW(t, "run", "-c", cfg)
	for _, want := range []string{"store_dir is in use", fmt.Sprintf("--set nats.url=nats://127.0.0.1:%d", port), "--set nats.embedded.store_dir=DIR"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr does not say %q:\n%s", want, stderr)
		}
	}
	if code != 1 {
		t.Errorf("exit %d", code)
	}
}
