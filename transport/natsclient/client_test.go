package natsclient_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/gwmcp/gw/transport/face"
	"github.com/gwmcp/gw/transport/jsonrpc"
	"github.com/gwmcp/gw/transport/natsclient"
	"github.com/gwmcp/gw/transport/natsface"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func testLogger() *slog.Logger {
	if os.Getenv("GW_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startServer runs an embedded nats-server with JetStream, shut down when
// the test ends.
func startServer(t *testing.T) *server.Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{ServerName: "natsclient-test", DontListen: true, JetStream: true,
		StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}

func connect(t *testing.T, s *server.Server) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect("", nats.InProcessServer(s))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// fakeGateway serves tools named {gw}_…: echo, progress, sample, fail,
// deadline; and one prompt, {gw}_greet.
type fakeGateway struct{ name string }

func text(format string, args ...any) json.RawMessage {
	b, _ := json.Marshal(map[string]any{"content": []any{map[string]any{"type": "text", "text": fmt.Sprintf(format, args...)}}})
	return b
}

func (g fakeGateway) Serve(ctx context.Context, req *natsface.Request) (json.RawMessage, error) {
	var p struct {
		Name      string         `json:"name"`
		Arguments map[string]any `json:"arguments"`
	}
	_ = json.Unmarshal(req.Params, &p)
	switch req.Method {
	case "prompts/get":
		if p.Name != g.name+"_greet" {
			return nil, jsonrpc.NewError(jsonrpc.CodeInvalidParams, "unknown prompt %q", p.Name)
		}
		return json.RawMessage(`{"messages":[{"role":"user","content":{"type":"text","text":"hello from ` + g.name + `"}}]}`), nil
	case "resources/list":
		return json.RawMessage(`{"resources":[{"uri":"test://` + g.name + `","name":"r"}],"resourceTemplates":[]}`), nil
	case "resources/read":
		var r struct{ URI string }
		_ = json.Unmarshal(req.Params, &r)
		if r.URI != "test://"+g.name {
			return nil, jsonrpc.NewError(jsonrpc.CodeResourceNotFoundLegacy, "unknown resource")
		}
		return json.RawMessage(`{"contents":[{"uri":"test://` + g.name + `","text":"` + g.name + `"}]}`), nil
	case "tools/call":
	default:
		return nil, jsonrpc.NewError(jsonrpc.CodeMethodNotFound, "no %s", req.Method)
	}
	switch strings.TrimPrefix(p.Name, g.name+"_") {
	case "echo":
		return text("%s: %v as %s", g.name, p.Arguments["text"], req.Principal), nil
	case "progress":
		for i := 1; i <= 3; i++ {
			if req.Progress != nil {
				req.Progress(json.RawMessage(fmt.Sprintf(`{"progressToken":"t","progress":%d,"total":3}`, i)))
			}
		}
		return text("done"), nil
	case "sample":
		ask, ok := natsface.InputFromContext(ctx)
		if !ok {
			return nil, errors.New("no input")
		}
		res, err := ask(ctx, "sampling/createMessage", json.RawMessage(`{"maxTokens":5}`))
		if err != nil {
			return nil, err
		}
		return text("sampled %s", res), nil
	case "fail":
		return nil, &jsonrpc.Error{Code: -32001, Message: "it failed", Data: json.RawMessage(`{"why":"test"}`)}
	case "big": // over the max payload: claim-checked
		return text("%s", strings.Repeat("x", 2<<20)), nil
	case "deadline":
		dl, _ := ctx.Deadline()
		return text("%d", time.Until(dl).Milliseconds()), nil
	}
	return nil, jsonrpc.NewError(jsonrpc.CodeInvalidParams, "unknown tool %q", p.Name)
}

var toolSuffixes = []string{"echo", "progress", "sample", "fail", "deadline", "big"}

// startGateway starts a natsface.Face for a fakeGateway and publishes its
// catalog and its ready status, as gw run does.
func startGateway(t *testing.T, nc *nats.Conn, name string) *natsface.Face {
	t.Helper()
	f, err := natsface.New(nc, fakeGateway{name}, natsface.Options{Gateway: name, Logger: testLogger(),
		Methods: []string{"tools/list", "tools/call", "prompts/list", "prompts/get", "resources/list", "resources/read"}})
	if err != nil {
		t.Fatal(err)
	}
	var tools []string
	var items []string
	for _, s := range toolSuffixes {
		tools = append(tools, name+"_"+s)
		items = append(items, `{"name":"`+name+"_"+s+`","inputSchema":{"type":"object"}}`)
	}
	if err := f.SetTools(tools); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Stop(context.Background()) })
	catalog := `{"tools":[` + strings.Join(items, ",") + `],"prompts":[{"name":"` + name + `_greet"}]}`
	if err := f.PublishCatalog(ctx, json.RawMessage(catalog)); err != nil {
		t.Fatal(err)
	}
	if err := f.PublishGatewayStatus(ctx, json.RawMessage(`{"gateway":"`+name+`","state":"ready"}`)); err != nil {
		t.Fatal(err)
	}
	return f
}

func startClient(t *testing.T, nc *nats.Conn, principal string) (*natsclient.Client, chan natsclient.Change) {
	t.Helper()
	ch := make(chan natsclient.Change, 64)
	c, err := natsclient.New(nc, natsclient.Options{Principal: principal, Logger: testLogger(),
		OnChange: func(k natsclient.Change) {
			select {
			case ch <- k:
			default:
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	select {
	case <-c.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("client never ready")
	}
	return c, ch
}

func serve(t *testing.T, c *natsclient.Client, req *face.Request) (json.RawMessage, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return c.Serve(ctx, req)
}

func mustServe(t *testing.T, c *natsclient.Client, method, params string) string {
	t.Helper()
	res, err := serve(t, c, &face.Request{Method: method, Params: json.RawMessage(params)})
	if err != nil {
		t.Fatalf("%s %s: %v", method, params, err)
	}
	return string(res)
}

func toolNames(t *testing.T, c *natsclient.Client) []string {
	t.Helper()
	var list struct {
		Tools []struct {
			Name string `json:"name"`
		} `json:"tools"`
	}
	if err := json.Unmarshal([]byte(mustServe(t, c, "tools/list", `{}`)), &list); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tl := range list.Tools {
		names = append(names, tl.Name)
	}
	return names
}

func waitChange(t *testing.T, ch chan natsclient.Change, want natsclient.Change) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case k := <-ch:
			if k&want == want {
				return
			}
		case <-timeout:
			t.Fatalf("no change %v", want)
		}
	}
}

// TestUnionAndCalls: two gateways on one NATS; the client lists the union
// of their tools and prompts, calls a tool of each on the shared subject as
// its principal, gets a prompt from the gateway that has it, merges
// resources, reads one from the gateway that has it, keeps error codes, and
// answers an unknown tool with -32602.
func TestUnionAndCalls(t *testing.T) {
	s := startServer(t)
	startGateway(t, connect(t, s), "a")
	startGateway(t, connect(t, s), "b")
	c, _ := startClient(t, connect(t, s), "ada.lovelace")

	names := toolNames(t, c)
	if len(names) != 2*len(toolSuffixes) || names[0] != "a_big" || names[len(names)-1] != "b_sample" {
		t.Fatalf("union %v", names)
	}
	if got := mustServe(t, c, "prompts/list", `{}`); got != `{"prompts":[{"name":"a_greet"},{"name":"b_greet"}]}` {
		t.Errorf("prompts %s", got)
	}
	for _, gw := range []string{"a", "b"} {
		got := mustServe(t, c, "tools/call", `{"name":"`+gw+`_echo","arguments":{"text":"hi"}}`)
		// The principal is one subject token: its dot is encoded.
		if !strings.Contains(got, gw+": hi as ada~2Elovelace") {
			t.Errorf("%s_echo: %s", gw, got)
		}
		if got := mustServe(t, c, "prompts/get", `{"name":"`+gw+`_greet"}`); !strings.Contains(got, "hello from "+gw) {
			t.Errorf("%s_greet: %s", gw, got)
		}
		if got := mustServe(t, c, "resources/read", `{"uri":"test://`+gw+`"}`); !strings.Contains(got, `"text":"`+gw+`"`) {
			t.Errorf("read test://%s: %s", gw, got)
		}
	}
	if got := mustServe(t, c, "resources/list", `{}`); got != `{"resourceTemplates":[],"resources":[{"uri":"test://a","name":"r"},{"uri":"test://b","name":"r"}]}` {
		t.Errorf("resources %s", got)
	}
	_, err := serve(t, c, &face.Request{Method: "tools/call", Params: json.RawMessage(`{"name":"a_fail","arguments":{}}`)})
	var je *jsonrpc.Error
	if !errors.As(err, &je) || je.Code != -32001 || string(je.Data) != `{"why":"test"}` {
		t.Errorf("a_fail: %v", err)
	}
	_, err = serve(t, c, &face.Request{Method: "tools/call", Params: json.RawMessage(`{"name":"nope","arguments":{}}`)})
	if !errors.As(err, &je) || je.Code != jsonrpc.CodeInvalidParams || !strings.Contains(je.Message, "unknown tool") {
		t.Errorf("unknown tool: %v", err)
	}
	_, err = serve(t, c, &face.Request{Method: "prompts/get", Params: json.RawMessage(`{"name":"nope"}`)})
	if !errors.As(err, &je) || je.Code != jsonrpc.CodeInvalidParams {
		t.Errorf("unknown prompt: %v", err)
	}
	// A result over the max payload comes through the object store, plain
	// and streaming.
	for _, progress := range []func(json.RawMessage){nil, func(json.RawMessage) {}} {
		res, err := serve(t, c, &face.Request{Method: "tools/call", Params: json.RawMessage(`{"name":"b_big","arguments":{}}`), Progress: progress})
		if err != nil || len(res) < 2<<20 || !json.Valid(res) {
			t.Errorf("b_big (streaming %v): %d bytes, %v", progress != nil, len(res), err)
		}
	}
	// The ctx deadline becomes Mcp-Timeout-Ms.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	res, err := c.Serve(ctx, &face.Request{Method: "tools/call", Params: json.RawMessage(`{"name":"b_deadline","arguments":{}}`)})
	if err != nil || !strings.Contains(string(res), `"text":"2`) {
		t.Errorf("deadline seen by the gateway: %s %v (want about 2900 ms)", res, err)
	}
}

// TestStreaming: progress frames reach Progress, and an input frame is
// asked of Input and answered on the gateway's input subject.
func TestStreaming(t *testing.T) {
	s := startServer(t)
	startGateway(t, connect(t, s), "a")
	c, _ := startClient(t, connect(t, s), "ada")

	var mu sync.Mutex
	var progress []string
	res, err := serve(t, c, &face.Request{Method: "tools/call", Params: json.RawMessage(`{"name":"a_progress","arguments":{},"_meta":{"progressToken":"t"}}`),
		Progress: func(p json.RawMessage) { mu.Lock(); progress = append(progress, string(p)); mu.Unlock() }})
	if err != nil || !strings.Contains(string(res), "done") {
		t.Fatalf("a_progress: %s %v", res, err)
	}
	mu.Lock()
	if len(progress) != 3 || !strings.Contains(progress[2], `"progress":3`) {
		t.Errorf("progress %v", progress)
	}
	mu.Unlock()

	var asked string
	in := face.InputFunc(func(_ context.Context, method string, params json.RawMessage) (json.RawMessage, error) {
		asked = method + " " + string(params)
		return json.RawMessage(`{"role":"assistant","content":{"type":"text","text":"four"},"model":"m"}`), nil
	})
	res, err = serve(t, c, &face.Request{Method: "tools/call", Params: json.RawMessage(`{"name":"a_sample","arguments":{}}`), Input: in})
	if err != nil || !strings.Contains(string(res), "four") || asked != `sampling/createMessage {"maxTokens":5}` {
		t.Fatalf("a_sample: %s %v (asked %q)", res, err, asked)
	}
	// The caller's error reaches the server with its code.
	refuse := face.InputFunc(func(context.Context, string, json.RawMessage) (json.RawMessage, error) {
		return nil, jsonrpc.NewError(-32042, "no thanks")
	})
	_, err = serve(t, c, &face.Request{Method: "tools/call", Params: json.RawMessage(`{"name":"a_sample","arguments":{}}`), Input: refuse})
	var je *jsonrpc.Error
	if !errors.As(err, &je) || je.Code != -32042 {
		t.Errorf("refused sampling: %v", err)
	}
	// An unknown tool while streaming: no responders too.
	_, err = serve(t, c, &face.Request{Method: "tools/call", Params: json.RawMessage(`{"name":"nope","arguments":{}}`), Progress: func(json.RawMessage) {}})
	if !errors.As(err, &je) || je.Code != jsonrpc.CodeInvalidParams {
		t.Errorf("unknown tool, streaming: %v", err)
	}
}

// TestGatewaysLeaveAndReturn: a gateway that says it stopped leaves the
// union, one whose entry is deleted too, and one that writes its catalog
// again is back; each time OnChange hears it. A client started after a
// gateway stopped does not list it.
func TestGatewaysLeaveAndReturn(t *testing.T) {
	s := startServer(t)
	a := startGateway(t, connect(t, s), "a")
	b := startGateway(t, connect(t, s), "b")
	c, changed := startClient(t, connect(t, s), "ada")
	ctx := context.Background()

	if err := a.PublishGatewayStatus(ctx, json.RawMessage(`{"gateway":"a","state":"stopped"}`)); err != nil {
		t.Fatal(err)
	}
	waitChange(t, changed, natsclient.ChangeTools|natsclient.ChangePrompts)
	if names := toolNames(t, c); len(names) != len(toolSuffixes) || !strings.HasPrefix(names[0], "b_") {
		t.Fatalf("after a stopped: %v", names)
	}
	late, _ := startClient(t, connect(t, s), "bob")
	if names := toolNames(t, late); len(names) != len(toolSuffixes) {
		t.Fatalf("a client started later lists %v", names)
	}

	js, err := jetstream.New(connect(t, s))
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, natsface.DefaultCatalogBucket)
	if err != nil {
		t.Fatal(err)
	}
	if err := kv.Delete(ctx, "gw.b"); err != nil {
		t.Fatal(err)
	}
	waitChange(t, changed, natsclient.ChangeTools)
	if names := toolNames(t, c); len(names) != 0 {
		t.Fatalf("after b's entry was deleted: %v", names)
	}
	_ = b

	// a comes back: a new process writes its catalog anew.
	startGateway(t, connect(t, s), "a")
	waitChange(t, changed, natsclient.ChangeTools)
	if names := toolNames(t, c); len(names) != len(toolSuffixes) || !strings.HasPrefix(names[0], "a_") {
		t.Fatalf("after a came back: %v", names)
	}
}

// TestFleetAfterClient: a client started before any gateway lists nothing,
// then hears the first gateway join and lists its tools.
func TestFleetAfterClient(t *testing.T) {
	s := startServer(t)
	c, changed := startClient(t, connect(t, s), "ada")
	if names := toolNames(t, c); len(names) != 0 {
		t.Fatalf("no gateway yet, but %v", names)
	}
	startGateway(t, connect(t, s), "late")
	waitChange(t, changed, natsclient.ChangeTools)
	if names := toolNames(t, c); len(names) != len(toolSuffixes) {
		t.Fatalf("after the first gateway: %v", names)
	}
	if got := mustServe(t, c, "tools/call", `{"name":"late_echo","arguments":{"text":"x"}}`); !strings.Contains(got, "late: x") {
		t.Errorf("late_echo: %s", got)
	}
}
