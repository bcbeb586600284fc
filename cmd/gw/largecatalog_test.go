package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/gwmcp/gw/transport/face"
	"github.com/gwmcp/gw/transport/natsclient"
	"github.com/gwmcp/gw/transport/natsface"
)

// TestLargeCatalogPublished: a server of 8,000 tools makes a catalog of 2 MB, over
// the 1 MiB max payload of the embedded NATS. It is published in parts (the
// bucket and the event carry a manifest), read back whole, every tool is
// callable, and `nats micro ls` still sees the gateway. Each of these failed
// at this size before: the catalog stayed at its old revision, and $SRV.INFO
// exceeded the max payload.
func TestLargeCatalogPublished(t *testing.T) {
	const tools = 8_000
	port := freePort(t)
	cfg := writeConfig(t, "gw.yaml", runHead(t, "big", port)+fmt.Sprintf(`servers:
  s:
    command: EXE
    env: {MCPTEST_SERVER: "1", MCPTEST_TOOL_COUNT: "%d"}
`, tools))
	stderr := runInBackground(t, cfg)
	nc := connectWhenUp(t, port, stderr)
	last := fmt.Sprintf("s__bulk-%05d", tools-1)
	waitForTool(t, nc, last, stderr)

	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer rcancel()
	var catalog struct {
		Tools []struct {
			Name string `json:"name"`
		} `json:"tools"`
	}
	for {
		kv, err := js.KeyValue(rctx, natsface.DefaultCatalogBucket)
		if err == nil {
			if e, err := kv.Get(rctx, "gw.big"); err == nil {
				raw, err := natsface.ReadCatalog(rctx, kv, e.Value())
				if err == nil && json.Unmarshal(raw, &catalog) == nil && len(catalog.Tools) > tools {
					if !bytes.HasPrefix(e.Value(), []byte(`{"chunked":`)) {
						t.Fatalf("a %d-byte catalog stored whole", len(raw))
					}
					break
				}
			}
		}
		if rctx.Err() != nil {
			t.Fatalf("the catalog of %d tools was never published\n%.3000s", tools, stderr.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	// gw connect's union reads it too: tools/list through it lists every tool.
	client, err := natsclient.New(nc, natsclient.Options{Principal: "alice", Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Start(); err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	select {
	case <-client.Ready():
	case <-rctx.Done():
		t.Fatal("gw connect's client never became ready")
	}
	res, err := client.Serve(rctx, &face.Request{Method: "tools/list", Params: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(res, &catalog); err != nil || len(catalog.Tools) <= tools {
		t.Fatalf("gw connect lists %d tools (%v), want more than %d", len(catalog.Tools), err, tools)
	}
	msg, err := nc.Request("$SRV.INFO.gw", nil, 10*time.Second)
	if err != nil {
		t.Fatalf("$SRV.INFO: %v", err)
	}
	var info micro.Info
	if err := json.Unmarshal(msg.Data, &info); err != nil || info.Metadata["gateway"] != "big" {
		t.Fatalf("$SRV.INFO: %v %.200s", err, msg.Data)
	}
}
