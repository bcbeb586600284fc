package natsface

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gwmcp/gw/transport/jsonrpc"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// startServer runs an embedded nats-server with JetStream (file store in a temp dir) and the
// default max payload of 1 MiB. It is shut down when the test ends.
func startServer(tb testing.TB, configure ...func(*server.Options)) *server.Server {
	tb.Helper()
	o := &server.Options{
		ServerName:         "natsface-test",
		DontListen:         true,
		JetStream:          true,
		StoreDir:           tb.TempDir(),
		JetStreamMaxMemory: 64 << 20,
		JetStreamMaxStore:  1 << 30,
		MaxPayload:         1 << 20,
		NoLog:              true,
		NoSigs:             true,
	}
	for _, fn := range configure {
		fn(o)
	}
	s, err := server.NewServer(o)
	if err != nil {
		tb.Fatal(err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		tb.Fatal("nats-server not ready")
	}
	tb.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s
}

// connect opens an in-process connection, closed when the test ends.
func connect(tb testing.TB, s *server.Server, opts ...nats.Option) *nats.Conn {
	tb.Helper()
	nc, err := nats.Connect("", append([]nats.Option{nats.InProcessServer(s)}, opts...)...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	return nc
}

// testLogger writes to stderr only when GW_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("GW_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startFace starts a face hosting tools (gateway "gw1" unless o says otherwise); it is stopped
// when the test ends and that Stop must succeed.
func startFace(tb testing.TB, nc *nats.Conn, h Handler, o Options, tools ...string) *Face {
	tb.Helper()
	f := startFaceNoCleanup(tb, nc, h, o, tools...)
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := f.Stop(ctx); err != nil {
			tb.Errorf("stop %s: %v", f.opts.Gateway, err)
		}
	})
	return f
}

// startFaceNoCleanup starts a face that the test must stop.
func startFaceNoCleanup(tb testing.TB, nc *nats.Conn, h Handler, o Options, tools ...string) *Face {
	tb.Helper()
	if o.Gateway == "" {
		o.Gateway = "gw1"
	}
	if o.Logger == nil {
		o.Logger = testLogger()
	}
	f, err := New(nc, h, o)
	if err != nil {
		tb.Fatal(err)
	}
	if err := f.SetTools(tools); err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.Start(ctx); err != nil {
		tb.Fatal(err)
	}
	return f
}

// fakeGateway is a realistic stand-in for the gateway side: tools that echo, sleep, fail, report
// their deadline, stream progress, ask for sampling, block, or return a huge result. It counts
// executions per tool.
type fakeGateway struct {
	name string

	mu      sync.Mutex
	execs   map[string]int
	entered chan string   // receives the tool name when a call starts, if non-nil
	release chan struct{} // "block" waits for it (or ctx)
	bigSize int
}

var toolNames = []string{"echo", "sleep", "fail", "deadline", "progress", "sample", "block", "big", "ns.dotted tool"}

func newFakeGateway(name string) *fakeGateway {
	return &fakeGateway{name: name, execs: map[string]int{}, release: make(chan struct{}), bigSize: 20 << 20}
}

func (g *fakeGateway) count(tool string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.execs[tool]
}

func (g *fakeGateway) total() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, v := range g.execs {
		n += v
	}
	return n
}

type callParams struct {
	Name      string         `json:"name"`
	Arguments map[string]any `json:"arguments"`
}

func textResult(format string, args ...any) json.RawMessage {
	b, _ := json.Marshal(map[string]any{"content": []any{map[string]any{"type": "text", "text": fmt.Sprintf(format, args...)}}})
	return b
}

func (g *fakeGateway) Serve(ctx context.Context, req *Request) (json.RawMessage, error) {
	switch req.Method {
	case "tools/list":
		tools := []any{}
		for _, n := range toolNames {
			tools = append(tools, map[string]any{"name": n, "inputSchema": map[string]any{"type": "object"}})
		}
		return json.Marshal(map[string]any{"tools": tools})
	case "servers/list":
		return json.RawMessage(`{"servers":[{"name":"notes","state":"ready"}]}`), nil
	case "prompts/get":
		var p struct{ Name string }
		_ = json.Unmarshal(req.Params, &p)
		return textResult("prompt %s for %s", p.Name, req.Principal), nil
	case "tools/call":
	default:
		return nil, jsonrpc.NewError(jsonrpc.CodeMethodNotFound, "method %q not found", req.Method)
	}
	var p callParams
	if err := json.Unmarshal(req.Params, &p); err != nil {
		return nil, jsonrpc.NewError(jsonrpc.CodeInvalidParams, "bad params: %v", err)
	}
	g.mu.Lock()
	g.execs[p.Name]++
	entered := g.entered
	g.mu.Unlock()
	if entered != nil {
		entered <- p.Name
	}
	switch p.Name {
	case "echo", "ns.dotted tool":
		return textResult("%s says %v to %s via %s", g.name, p.Arguments["text"], req.Principal, req.Method), nil
	case "sleep":
		ms, _ := p.Arguments["ms"].(float64)
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
			return textResult("slept %vms", ms), nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	case "fail":
		return nil, &jsonrpc.Error{Code: -32001, Message: "the tool failed", Data: json.RawMessage(`{"why":"test"}`)}
	case "deadline":
		dl, ok := ctx.Deadline()
		if !ok {
			return textResult("none"), nil
		}
		return textResult("%d", time.Until(dl).Milliseconds()), nil
	case "progress":
		for i := 1; i <= 3; i++ {
			if req.Progress != nil {
				req.Progress(json.RawMessage(`{"progressToken":"t","progress":` + strconv.Itoa(i) + `,"total":3}`))
			}
		}
		return textResult("done"), nil
	case "sample":
		if req.Progress != nil {
			req.Progress(json.RawMessage(`{"progressToken":"t","progress":0}`))
		}
		ask, ok := InputFromContext(ctx)
		if !ok {
			return nil, jsonrpc.NewError(jsonrpc.CodeInternalError, "no input func")
		}
		res, err := ask(ctx, "sampling/createMessage", json.RawMessage(`{"messages":[{"role":"user","content":{"type":"text","text":"2+2?"}}],"maxTokens":10}`))
		if err != nil {
			return nil, err
		}
		return textResult("sampled: %s", res), nil
	case "block":
		select {
		case <-g.release:
			return textResult("released"), nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	case "big":
		size := g.bigSize
		if v, ok := p.Arguments["size"].(float64); ok {
			size = int(v)
		}
		b := make([]byte, size)
		for i := range b {
			b[i] = 'a' + byte(i%26)
		}
		return json.Marshal(map[string]any{"content": []any{map[string]any{"type": "text", "text": string(b)}}})
	}
	return nil, jsonrpc.NewError(jsonrpc.CodeInvalidParams, "unknown tool %q", p.Name)
}

// request sends a request and waits for the single reply.
func request(tb testing.TB, nc *nats.Conn, subject, body string, hdr nats.Header) *nats.Msg {
	tb.Helper()
	msg, err := requestErr(nc, subject, body, hdr, 10*time.Second)
	if err != nil {
		tb.Fatalf("request %s: %v", subject, err)
	}
	return msg
}

func requestErr(nc *nats.Conn, subject, body string, hdr nats.Header, timeout time.Duration) (*nats.Msg, error) {
	msg := &nats.Msg{Subject: subject, Data: []byte(body), Header: hdr}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return nc.RequestMsgWithContext(ctx, msg)
}

type reply struct {
	msg *nats.Msg
	err error
}

// goRequest sends a request from a new goroutine; the reply (or error) arrives on the channel.
func goRequest(nc *nats.Conn, subject, body string, hdr nats.Header) <-chan reply {
	ch := make(chan reply, 1)
	go func() {
		msg, err := requestErr(nc, subject, body, hdr, 10*time.Second)
		ch <- reply{msg, err}
	}()
	return ch
}

// wait returns the reply from ch, failing the test on an error.
func wait(tb testing.TB, ch <-chan reply) *nats.Msg {
	tb.Helper()
	r := <-ch
	if r.err != nil {
		tb.Fatal(r.err)
	}
	return r.msg
}

// replyError returns the error object of an error reply, or nil, checking that the micro headers
// agree with the body.
func replyError(tb testing.TB, msg *nats.Msg) *jsonrpc.Error {
	tb.Helper()
	code := msg.Header.Get(micro.ErrorCodeHeader)
	if code == "" {
		return nil
	}
	var e jsonrpc.Error
	if err := json.Unmarshal(msg.Data, &e); err != nil {
		tb.Fatalf("error reply body %q: %v", msg.Data, err)
	}
	if strconv.FormatInt(e.Code, 10) != code || msg.Header.Get(micro.ErrorHeader) == "" {
		tb.Fatalf("error headers %v disagree with body %s", msg.Header, msg.Data)
	}
	return &e
}

// resultText returns the first text content of a tools/call result.
func resultText(tb testing.TB, data []byte) string {
	tb.Helper()
	var r struct {
		Content []struct{ Text string } `json:"content"`
	}
	if err := json.Unmarshal(data, &r); err != nil || len(r.Content) == 0 {
		tb.Fatalf("not a text result: %.200s (%v)", data, err)
	}
	return r.Content[0].Text
}

func callBody(tool string, args map[string]any) string {
	b, _ := json.Marshal(map[string]any{"name": tool, "arguments": args})
	return string(b)
}

func callSubject(principal, tool string) string {
	return "mcp.v1.req." + principal + ".tools.call." + EncodeToken(tool)
}
