package main

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// TestShadowingVisibleInCatalog: a name two servers offer goes to one of
// them by the collision policy (first-come: the file's order), and the
// published catalog lists the other as rejected, with the reason. When the
// earlier server later adds a tool that takes over a name the other one had,
// the take-over shows the same way.
func TestShadowingVisibleInCatalog(t *testing.T) {
	port := freePort(t)
	cfg := writeConfig(t, "gw.yaml", runHead(t, "shadow", port)+`  collision: {module: first-come}
servers:
  zeta:
    command: EXE
    env: {MCPTEST_SERVER: "1", MCPTEST_TOOLS: search}
  alpha:
    command: EXE
    env: {MCPTEST_SERVER: "1", MCPTEST_TOOLS: "search,lookup"}
`)
	stderr := runInBackground(t, cfg)
	nc := connectWhenUp(t, port, stderr)
	waitForTool(t, nc, "lookup", stderr)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}

	type rejection struct{ Server, Name, Reason string }
	type catalog struct {
		Tools []struct {
			Name string         `json:"name"`
			Meta map[string]any `json:"_meta"`
		} `json:"tools"`
		Rejected []rejection `json:"rejected"`
	}
	waitCatalog := func(what string, ok func(catalog) bool) catalog {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			kv, err := js.KeyValue(context.Background(), "mcp-catalog")
			if err == nil {
				if e, err := kv.Get(context.Background(), "catalog"); err == nil {
					var c catalog
					if json.Unmarshal(e.Value(), &c) == nil && ok(c) {
						return c
					}
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("no catalog with %s within 30s\n%s", what, stderr.String())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	has := func(c catalog, r rejection) bool {
		return slices.ContainsFunc(c.Rejected, func(x rejection) bool { return x.Server == r.Server && x.Name == r.Name && x.Reason != "" })
	}
	waitCatalog("alpha's search rejected", func(c catalog) bool { return has(c, rejection{Server: "alpha", Name: "search"}) })

	// zeta, first in the file, now offers lookup too: first-come gives it
	// the name, and alpha's lookup shows as rejected.
	if _, err := nc.Request("mcp.v1.req.alice.tools.call.search", []byte(`{"name":"search","arguments":{"text":"x"}}`), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if m, err := nc.Request("mcp.v1.req.alice.tools.call.add_tool", []byte(`{"name":"add_tool","arguments":{"name":"lookup"}}`), 10*time.Second); err != nil {
		t.Fatalf("add_tool: %v", err)
	} else if bytes.Contains(m.Data, []byte(`"error"`)) {
		t.Fatalf("add_tool: %s", m.Data)
	}
	waitCatalog("alpha's lookup rejected", func(c catalog) bool { return has(c, rejection{Server: "alpha", Name: "lookup"}) })
}
