package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gwmcp/gw/gateway/router"
	"github.com/gwmcp/gw/transport/face"
	"github.com/gwmcp/gw/transport/mcpface"
)

// stormFaceHandler is the router under an MCP face, noting when it takes a
// call and when it answers it, and giving it its deadline.
type stormFaceHandler struct {
	ledger *stormLedger
	h      face.Handler
}

func (s stormFaceHandler) Serve(ctx context.Context, req *face.Request) (json.RawMessage, error) {
	id := s.ledger.take(req.Params)
	defer s.ledger.finish(id)
	if id >= 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.ledger.calls[id].timeout)
		defer cancel()
	}
	return s.h.Serve(ctx, req)
}

// TestStormMCP storms the MCP face (gw stdio's, in process over pipes): a
// legacy client's stormCalls tools/call requests written at once to the slow
// tools of four servers, legacy and modern (one in ten to a tool that sends
// progress first: all of it must come before the result, none after the
// answer; one in twenty cancelled by the client), while servers are killed
// with SIGKILL. The face admits them all (MaxInFlight), so that they are all
// in flight in the gateway rather than refused as busy.
func TestStormMCP(t *testing.T) {
	skipStorm(t)
	ctx := context.Background()
	mark := fmt.Sprintf("mcp-%d", time.Now().UnixNano())
	ledger := newStormLedger(stormPlan(stormCalls, 5*time.Second, true, true), true)
	g := stormGateway(t, mark, nil)
	f := mcpface.New(stormFaceHandler{ledger, router.New(g)}, mcpface.Options{
		Principal:   "storm",
		MaxInFlight: 2 * stormCalls,
		Logger:      discardLogger(),
	})
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	served := make(chan error, 1)
	go func() {
		served <- f.Serve(ctx, inR, outW)
		_ = outW.Close()
	}()
	readDone := make(chan struct{})
	defer func() {
		_ = inW.Close()
		select {
		case err := <-served:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Serve did not return after its input closed")
		}
		<-readDone
	}()

	// The client: one writer at a time; answers to numbered requests go to
	// the ledger, the others (warm-up) to named.
	var writeMu sync.Mutex
	write := func(line string) bool {
		writeMu.Lock()
		defer writeMu.Unlock()
		if _, err := io.WriteString(inW, line+"\n"); err != nil {
			ledger.problem("writing to the face: %v", err)
			return false
		}
		return true
	}
	named := make(chan map[string]json.RawMessage, 16)
	go func() {
		defer close(readDone)
		sc := bufio.NewScanner(outR)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			at := time.Now()
			var msg map[string]json.RawMessage
			if err := json.Unmarshal(sc.Bytes(), &msg); err != nil {
				ledger.problem("the face wrote a line that is not JSON: %q", sc.Bytes())
				continue
			}
			if string(msg["method"]) == `"notifications/progress"` {
				var p struct {
					Token string `json:"progressToken"`
				}
				_ = json.Unmarshal(msg["params"], &p)
				ledger.progressFor(p.Token)
				continue
			}
			raw, ok := msg["id"]
			if !ok || msg["method"] != nil {
				continue // another notification, or a request to the client
			}
			id, err := strconv.Atoi(string(raw))
			if err != nil {
				named <- msg
				continue
			}
			if e, ok := msg["error"]; ok {
				var je struct{ Message string }
				_ = json.Unmarshal(e, &je)
				ledger.answer(id, at, "", "error: "+je.Message)
				continue
			}
			ledger.answer(id, at, toolText(msg["result"]), "")
		}
	}()
	ask := func(id, method, params string) map[string]json.RawMessage {
		t.Helper()
		write(fmt.Sprintf(`{"jsonrpc":"2.0","id":%q,"method":%q,"params":%s}`, id, method, params))
		select {
		case msg := <-named:
			if got := string(msg["id"]); got != strconv.Quote(id) {
				t.Fatalf("answer to %s, want one to %s", got, id)
			}
			return msg
		case <-time.After(30 * time.Second):
			t.Fatalf("no answer to %s", id)
		}
		return nil
	}
	ask("init", "initialize", `{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"storm","version":"1"}}`)
	write(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	n := 0
	ready := func(what string) {
		stormReady(t, g, mark, what, func(tool string) bool {
			n++
			msg := ask(fmt.Sprintf("echo-%d", n), "tools/call", fmt.Sprintf(`{"name":%q,"arguments":{"text":"x"}}`, tool))
			return toolText(msg["result"]) == "x"
		})
	}
	ready("ready")
	before := settledLeaks(t, nil)

	start := time.Now()
	killed := stormKiller(mark, ledger.done)
	go func() {
		for _, c := range ledger.calls {
			ledger.send(c.id)
			if !write(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":%s}`, c.id, c.params(""))) {
				return
			}
			if c.cancel > 0 {
				time.AfterFunc(c.cancel, func() {
					write(fmt.Sprintf(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":%d,"reason":"storm"}}`, c.id))
				})
			}
		}
	}()
	ledger.wait(t, time.Minute)
	t.Logf("%d servers killed; every call answered after %v", <-killed, time.Since(start).Round(time.Millisecond))

	ready("again after the storm")
	checkLeaks(t, before, settledLeaks(t, &before))
}
