package main

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/gwmcp/gw/transport/mcpface"
	"github.com/gwmcp/gw/transport/natsconn"
)

const inputConfig = `
gateway: {start_timeout: 60s}
servers:
  legacy:
    command: EXE
    env: {MCPTEST_SERVER: "1"}
  modern:
    command: EXE
    env: {MCPTEST_SERVER: "1", MCPTEST_ERA: modern}
`

// TestStdioSDKModernInput: the official Go SDK client in the modern era
// (2026-07-28, with a CreateMessageHandler, so its requests declare
// sampling) calls tools that need sampling through `gw stdio`. gw answers
// each call with an InputRequiredResult, the SDK's multi round-trip
// middleware answers it with the handler and retries, and the parked
// gateway call gets the answer: a modern server's sample tool (its own
// input_required round trip, answered through the call's Input) and a
// legacy server's (its JSON-RPC request, asked through the client's open
// call). Two calls at once each get their answer.
func TestStdioSDKModernInput(t *testing.T) {
	cfg := writeConfig(t, "gw.yaml", inputConfig)
	mark := fmt.Sprintf("%s-%d", t.Name(), time.Now().UnixNano())
	cmd, _ := gwCommand(t, mark, "stdio", "-c", cfg)

	var asked atomic.Int32
	client := mcp.NewClient(&mcp.Implementation{Name: "sdk-test", Version: "1"}, &mcp.ClientOptions{
		CreateMessageHandler: func(_ context.Context, req *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
			asked.Add(1)
			q := ""
			if len(req.Params.Messages) > 0 {
				if tc, ok := req.Params.Messages[0].Content.(*mcp.TextContent); ok {
					q = tc.Text
				}
			}
			return &mcp.CreateMessageResult{Role: "assistant", Model: "sdk", Content: &mcp.TextContent{Text: "SDK answers " + q}}, nil
		},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cs, err := client.Connect(ctx, &mcp.CommandTransport{Command: cmd}, &mcp.ClientSessionOptions{ProtocolVersion: mcpface.ModernVersion})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			_ = cs.Close()
		}
	}()
	if v := cs.InitializeResult().ProtocolVersion; v != mcpface.ModernVersion {
		t.Fatalf("era %q", v)
	}
	names := listToolNames(ctx, t, cs)
	if !strings.Contains(strings.Join(names, ","), "legacy__sample") || !strings.Contains(strings.Join(names, ","), "modern__sample") {
		t.Fatalf("tools %v", names)
	}
	for _, server := range []string{"modern", "legacy"} {
		got := callText(ctx, t, cs, server+"__sample", map[string]any{"prompt": "capital of France? (" + server + ")"})
		if got != "SDK answers capital of France? ("+server+")" {
			t.Errorf("%s__sample: %q", server, got)
		}
	}
	if n := asked.Load(); n != 2 {
		t.Errorf("the client was asked %d times; want 2", n)
	}

	// Concurrent calls to the modern server: each retry resumes its own call.
	errs := make(chan error, 4)
	for i := range 4 {
		go func() {
			prompt := fmt.Sprintf("q%d", i)
			res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "modern__sample", Arguments: map[string]any{"prompt": prompt}})
			switch {
			case err != nil:
				errs <- err
			case res.IsError || resultText(res) != "SDK answers "+prompt:
				errs <- fmt.Errorf("%s: %q", prompt, resultText(res))
			default:
				errs <- nil
			}
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	closed = true
	if err := cs.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	if left := leftovers(mark); len(left) > 0 {
		t.Errorf("processes left behind:\n%s", strings.Join(left, "\n"))
	}
}

// TestConnectModernInput: through `gw connect` a modern SDK client answers
// the sampling a modern server asks in the middle of a call: gw run → input
// frame → natsclient asks the face request's Input → mcpface answers the
// client's call with an InputRequiredResult → the SDK retries with the
// answer → the input subject → the server.
func TestConnectModernInput(t *testing.T) {
	e, err := natsconn.StartEmbedded(context.Background(), natsconn.EmbeddedOptions{StoreDir: t.TempDir(), Port: -1, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Shutdown)
	probe, err := e.Connect("probe")
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	startFleetRun(t, e.ClientURL(), "one", `  beta: {command: EXE, env: {MCPTEST_SERVER: "1", MCPTEST_ERA: modern}}
`)
	waitCallable(t, probe, "beta__echo")

	cmd, _ := gwCommand(t, fmt.Sprintf("connect-mrtr-%d", time.Now().UnixNano()), "connect", "--nats", e.ClientURL(), "--principal", "ada")
	client := mcp.NewClient(&mcp.Implementation{Name: "sdk-test", Version: "1"}, &mcp.ClientOptions{
		CreateMessageHandler: func(context.Context, *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
			return &mcp.CreateMessageResult{Role: "assistant", Model: "sdk", Content: &mcp.TextContent{Text: "Paris, said the modern SDK client"}}, nil
		},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cs, err := client.Connect(ctx, &mcp.CommandTransport{Command: cmd}, &mcp.ClientSessionOptions{ProtocolVersion: mcpface.ModernVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	if got := callText(ctx, t, cs, "beta__sample", map[string]any{"prompt": "capital of France?"}); got != "Paris, said the modern SDK client" {
		t.Errorf("sampling through the fleet: %q", got)
	}
}
