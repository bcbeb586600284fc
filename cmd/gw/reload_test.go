package main

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gwmcp/gw/gateway"
	"github.com/gwmcp/gw/internal/config"
)

// TestReloadAllOrNothing: a reload whose second change fails (the server's
// new command crashes at start) undoes the first: both servers run their
// previous specs and serve.
func TestReloadAllOrNothing(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	a, b := mcptestServer("a", "legacy"), mcptestServer("b", "legacy")
	g, err := gateway.New(gateway.Options{Servers: []gateway.ServerSpec{a, b}, Logger: logger,
		StopGrace: 500 * time.Millisecond, InitialBackoff: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := g.Start(ctx); err != nil {
		t.Fatal(err)
	}

	a2, b2 := mcptestServer("a", "legacy"), mcptestServer("b", "legacy")
	a2.Env["MCPTEST_TOOLS"] = "extra"
	b2.Env["MCPTEST_CRASH_ON_START"] = "1"
	err = applyServers(g, []gateway.ServerSpec{a2, b2, mcptestServer("c", "legacy")}, logger)
	if err == nil || !strings.Contains(err.Error(), `"b"`) {
		t.Fatalf("applyServers = %v; want b's failure", err)
	}
	specs := g.ServerSpecs()
	if len(specs) != 2 || !sameSpec(specs[0], a) || !sameSpec(specs[1], b) {
		t.Fatalf("specs after the refused reload: %+v; want the previous a and b", specs)
	}
	for _, tool := range []string{"a__echo", "b__echo"} {
		args := []byte(`{"name":"` + tool + `","arguments":{"text":"x"}}`)
		if _, err := g.CallTool(ctx, args, gateway.CallOptions{}); err != nil {
			t.Errorf("%s after the refused reload: %v", tool, err)
		}
	}
}

// TestChangedSectionsPins: a changed pin file is a section that needs a
// restart (the store is opened once, at start).
func TestChangedSectionsPins(t *testing.T) {
	a, b := config.Default(), config.Default()
	b.Pins.File = "/elsewhere/pins.json"
	if got := changedSections(&a, &b); len(got) != 1 || got[0] != "pins" {
		t.Fatalf("changedSections: %v, want [pins]", got)
	}
}
