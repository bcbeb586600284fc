package main

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gwmcp/gw/gateway"
	"github.com/gwmcp/gw/transport/natsconn"
	"github.com/gwmcp/gw/transport/natsface"
)

// stack is gw run's parts on an embedded NATS server, for tests.
type stack struct {
	g      *gateway.Gateway
	gwConn *nats.Conn // the face's connection
	agent  *nats.Conn
}

func startStack(t *testing.T, llmSubject string, servers ...gateway.ServerSpec) *stack {
	t.Helper()
	return startStackWith(t, llmSubject, gateway.Options{Servers: servers})
}

// startStackWith is startStack with more of the gateway's options (servers,
// authorizer, tracer provider); the stack sets the logger, events and
// client handler.
func startStackWith(t testing.TB, llmSubject string, opts gateway.Options) *stack {
	t.Helper()
	ctx := context.Background()
	e, gwConn := embeddedNATS(t)
	h := &faceHandler{}
	face, err := natsface.New(gwConn, h, natsface.Options{Gateway: "t", LLMSubject: llmSubject, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	events := newEventBridge(face, discardLogger())
	opts.Logger, opts.Events = discardLogger(), events
	opts.Handler = clientHandler{nc: gwConn, llmSubject: llmSubject, timeout: 10 * time.Second}
	g, err := gateway.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	h.g = g
	if err := face.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = face.Stop(context.Background())
		_ = g.Close()
		events.close()
	})
	if err := g.Start(ctx); err != nil {
		t.Fatal(err)
	}
	agent, err := e.Connect("agent")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(agent.Close)
	return &stack{g: g, gwConn: gwConn, agent: agent}
}

// embeddedNATS starts an embedded NATS server for the test and connects
// gw's connection to it; both end with the test.
func embeddedNATS(t testing.TB) (*natsconn.Embedded, *nats.Conn) {
	t.Helper()
	e, err := natsconn.StartEmbedded(context.Background(), natsconn.EmbeddedOptions{StoreDir: t.TempDir(), Port: 0, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Shutdown)
	nc, err := e.Connect("gw")
	if err != nil {
		t.Fatal(err)
	}
	return e, nc
}

func mcptestServer(name, era string) gateway.ServerSpec {
	exe, _ := os.Executable()
	return gateway.ServerSpec{Name: name, Command: exe, Env: map[string]string{"MCPTEST_SERVER": "1", "MCPTEST_ERA": era}}
}

// waitTool waits until the face serves a tool's subject.
func (s *stack) waitTool(t testing.TB, tool string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := s.agent.Request("mcp.v1.req.alice.tools.call."+tool, []byte(`{"name":"`+tool+`","arguments":{"text":"x"}}`), time.Second)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never reachable: %v", tool, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSamplingAnsweredByStreamingAgent: a modern server needs sampling in
// the middle of a tool call (multi round-trip); the agent that made the
// call, streaming, gets the input frame, answers it on its input subject,
// and receives the result.
func TestSamplingAnsweredByStreamingAgent(t *testing.T) {
	s := startStack(t, "", mcptestServer("m", "modern"))
	s.waitTool(t, "m__echo")

	inbox := nats.NewInbox()
	frames, err := s.agent.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	req := nats.NewMsg("mcp.v1.req.alice.tools.call.m__sample")
	req.Reply = inbox
	req.Header.Set(natsface.HeaderStream, "1")
	req.Data = []byte(`{"name":"m__sample","arguments":{"prompt":"capital of France?"}}`)
	if err := s.agent.PublishMsg(req); err != nil {
		t.Fatal(err)
	}
	for {
		f := nextFrame(t, frames)
		switch f.Type {
		case "input":
			if f.Method != gateway.MethodSampling {
				t.Fatalf("input frame for %q", f.Method)
			}
			answer := `{"result":{"role":"assistant","content":{"type":"text","text":"Paris, said the agent"},"model":"agent-model"}}`
			if _, err := s.agent.Request("mcp.v1.req.alice.at."+f.Gateway+".input."+f.ID, []byte(answer), 5*time.Second); err != nil {
				t.Fatal(err)
			}
		case "result":
			if !strings.Contains(string(f.Result), "Paris, said the agent") {
				t.Fatalf("result %s", f.Result)
			}
			return
		case "error":
			t.Fatalf("error frame: %+v", f.Error)
		}
	}
}

// TestSamplingByLLMHost: a legacy server asks for sampling on its own (a
// server-to-client request, not tied to a call); gw forwards it to the
// LLM-host subject, and a plain (non-streaming) caller gets the result.
func TestSamplingByLLMHost(t *testing.T) {
	s := startStack(t, "llm.hosts", mcptestServer("l", "legacy"))
	host, err := s.agent.QueueSubscribe("llm.hosts", "llm", func(m *nats.Msg) {
		var q struct {
			Method string `json:"method"`
		}
		_ = json.Unmarshal(m.Data, &q)
		if q.Method != gateway.MethodSampling {
			_ = m.Respond([]byte(`{"error":{"code":-32601,"message":"not here"}}`))
			return
		}
		_ = m.Respond([]byte(`{"result":{"role":"assistant","content":{"type":"text","text":"Paris, said the LLM host"},"model":"host-model"}}`))
	})
	if err != nil {
		t.Fatal(err)
	}
	defer host.Unsubscribe()
	s.waitTool(t, "l__echo")
	msg, err := s.agent.Request("mcp.v1.req.alice.tools.call.l__sample", []byte(`{"name":"l__sample","arguments":{"prompt":"capital of France?"}}`), 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(msg.Data), "Paris, said the LLM host") {
		t.Fatalf("reply %s", msg.Data)
	}
}

// TestNoSamplingWithoutAnyone: with no LLM host configured and a caller that
// does not stream, gw declares no sampling capability, so a modern server
// refuses the call clearly instead of waiting for an answer nobody gives.
func TestNoSamplingWithoutAnyone(t *testing.T) {
	s := startStack(t, "", mcptestServer("m", "modern"))
	s.waitTool(t, "m__echo")
	msg, err := s.agent.Request("mcp.v1.req.alice.tools.call.m__sample", []byte(`{"name":"m__sample","arguments":{"prompt":"q"}}`), 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(msg.Data), "-32021") {
		t.Fatalf("reply %s; want the server's missing-capability error", msg.Data)
	}
}

// nextFrame is the next streaming frame of a call on frames.
func nextFrame(t *testing.T, frames *nats.Subscription) natsface.Frame {
	t.Helper()
	msg, err := frames.NextMsg(20 * time.Second)
	if err != nil {
		t.Fatalf("no frame: %v", err)
	}
	var f natsface.Frame
	if err := json.Unmarshal(msg.Data, &f); err != nil {
		t.Fatal(err)
	}
	return f
}
