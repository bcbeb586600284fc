package router_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gwmcp/gw/gateway"
	"github.com/gwmcp/gw/gateway/router"
	"github.com/gwmcp/gw/internal/mcptest"
	"github.com/gwmcp/gw/transport/face"
	"github.com/gwmcp/gw/transport/jsonrpc"
)

func TestMain(m *testing.M) {
	mcptest.MainIfChild()
	goleak.VerifyTestMain(m)
}

func server(t *testing.T, name string, o mcptest.Options) gateway.ServerSpec {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	o.Name, o.EOFGrace = name, -time.Millisecond
	env := map[string]string{}
	for _, kv := range o.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	return gateway.ServerSpec{Name: name, Command: exe, Env: env}
}

// denyMallory refuses every call by the principal "mallory".
type denyMallory struct{}

func (denyMallory) Authorize(_ context.Context, req gateway.AuthzRequest) (gateway.Decision, error) {
	return gateway.Decision{Allow: req.Caller.ID != "mallory", Reason: "not mallory"}, nil
}

func start(t *testing.T, clients gateway.ClientHandler) *router.Router {
	t.Helper()
	g, err := gateway.New(gateway.Options{
		Servers: []gateway.ServerSpec{
			server(t, "old", mcptest.Options{Era: mcptest.EraLegacy}),
			server(t, "new", mcptest.Options{Era: mcptest.EraModern}),
		},
		Authorizer: denyMallory{},
		Handler:    clients,
		Logger:     slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})),
		StopGrace:  500 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := g.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return router.New(g)
}

func serve(t *testing.T, r *router.Router, req *face.Request) map[string]json.RawMessage {
	t.Helper()
	res, err := r.Serve(context.Background(), req)
	if err != nil {
		t.Fatalf("%s: %v", req.Method, err)
	}
	var out map[string]json.RawMessage
	if err := json.Unmarshal(res, &out); err != nil {
		t.Fatalf("%s: result %s: %v", req.Method, res, err)
	}
	return out
}

func TestMethods(t *testing.T) {
	r := start(t, router.Clients{})
	for _, m := range []struct{ method, params, key string }{
		{"ping", ``, ""},
		{"tools/list", ``, "tools"},
		{"tools/call", `{"name":"new__echo","arguments":{"text":"hi"}}`, "content"},
		{"prompts/list", ``, "prompts"},
		{"resources/list", ``, "resources"},
		{"resources/templates/list", ``, "resourceTemplates"},
		{"servers/list", ``, "servers"},
		{"logging/setLevel", `{"level":"info"}`, ""},
	} {
		out := serve(t, r, &face.Request{Method: m.method, Params: json.RawMessage(m.params), Principal: "alice"})
		if _, ok := out[m.key]; m.key != "" && !ok {
			t.Errorf("%s: result lacks %q: %v", m.method, m.key, out)
		}
	}
	var rpcErr *jsonrpc.Error
	if _, err := r.Serve(context.Background(), &face.Request{Method: "tools/fly"}); !errors.As(err, &rpcErr) || rpcErr.Code != jsonrpc.CodeMethodNotFound {
		t.Errorf("unknown method: %v; want -32601", err)
	}
	if _, err := r.Serve(context.Background(), &face.Request{Method: "resources/subscribe", Params: json.RawMessage(`{"URI":"test://a"}`)}); !errors.As(err, &rpcErr) || rpcErr.Code != jsonrpc.CodeInvalidParams {
		t.Errorf("subscribe with a mis-cased uri key: %v; want -32602", err)
	}
	if got := router.Methods(); len(got) < 10 {
		t.Errorf("Methods() = %v", got)
	}
}

func TestPrincipalReachesAuthorizer(t *testing.T) {
	r := start(t, router.Clients{})
	call := &face.Request{Method: "tools/call", Params: json.RawMessage(`{"name":"old__echo","arguments":{"text":"x"}}`), Principal: "mallory"}
	if _, err := r.Serve(context.Background(), call); !errors.Is(err, gateway.ErrDenied) {
		t.Fatalf("mallory's call: %v; want denied", err)
	}
	call.Principal = "alice"
	if _, err := r.Serve(context.Background(), call); err != nil {
		t.Fatalf("alice's call: %v", err)
	}
}

// TestSamplingGoesToTheCaller: a modern server's sampling request raised
// while serving a call is answered by that call's caller; without one, and
// without a fallback, the server is told nobody offers it.
func TestSamplingGoesToTheCaller(t *testing.T) {
	r := start(t, router.Clients{})
	asked := ""
	in := face.InputFunc(func(_ context.Context, method string, _ json.RawMessage) (json.RawMessage, error) {
		asked = method
		return json.RawMessage(`{"role":"assistant","content":{"type":"text","text":"from the caller"},"model":"m"}`), nil
	})
	params := json.RawMessage(`{"name":"new__sample","arguments":{"prompt":"hello"}}`)
	out := serve(t, r, &face.Request{Method: "tools/call", Params: params, Principal: "alice", Input: in})
	if asked != gateway.MethodSampling || !strings.Contains(string(out["content"]), "from the caller") {
		t.Fatalf("asked %q, result %v; want the caller's sample", asked, out)
	}
	_, err := r.Serve(context.Background(), &face.Request{Method: "tools/call", Params: params, Principal: "alice"})
	if err == nil || !strings.Contains(err.Error(), "sampling") {
		t.Fatalf("sampling with nobody to ask: %v", err)
	}
}

func names(t *testing.T, r *router.Router, method, key string) []string {
	t.Helper()
	var items []struct {
		Name string `json:"name"`
		URI  string `json:"uri"`
	}
	if err := json.Unmarshal(serve(t, r, &face.Request{Method: method})[key], &items); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, it := range items {
		out = append(out, it.Name+it.URI)
	}
	return out
}

func TestView(t *testing.T) {
	all := start(t, router.Clients{})
	r := all.WithView(&router.View{Name: "short", Servers: []string{"old"}, Include: []string{"new__echo"}, Exclude: []string{"old__crash", "*slow*"}})
	tools := names(t, r, "tools/list", "tools")
	has := func(list []string, n string) bool { return slices.Contains(list, n) }
	if !has(tools, "old__echo") || !has(tools, "new__echo") || has(tools, "new__stats") || has(tools, "old__crash") || has(tools, "old__slow") {
		t.Fatalf("tools in the view: %v", tools)
	}
	if all := names(t, all, "tools/list", "tools"); len(all) <= len(tools) {
		t.Fatalf("the whole namespace (%d tools) is no larger than the view (%d)", len(all), len(tools))
	}
	// Resources follow their server: old serves them all, new none.
	if res := names(t, r, "resources/list", "resources"); len(res) == 0 {
		t.Fatal("no resources in the view")
	}
	if res := names(t, all.WithView(&router.View{Include: []string{"*"}}), "resources/list", "resources"); len(res) != 0 {
		t.Fatalf("resources in a view of tool patterns only: %v", res)
	}
	var rpcErr *jsonrpc.Error
	out := &face.Request{Method: "tools/call", Params: json.RawMessage(`{"name":"new__stats","arguments":{}}`)}
	if _, err := r.Serve(context.Background(), out); !errors.As(err, &rpcErr) || rpcErr.Code != jsonrpc.CodeInvalidParams || !strings.Contains(err.Error(), "unknown tool") {
		t.Fatalf("a call outside the view: %v; want an unknown tool", err)
	}
	if _, err := all.Serve(context.Background(), out); err != nil {
		t.Fatalf("the same call without the view: %v", err)
	}
	in := &face.Request{Method: "tools/call", Params: json.RawMessage(`{"name":"old__echo","arguments":{"text":"in"}}`)}
	if _, err := r.Serve(context.Background(), in); err != nil {
		t.Fatalf("a call inside the view: %v", err)
	}
}

// TestLegacySamplingRidesOnTheCall: a legacy server asks for sampling on
// its own (its request names no call) while serving a tool call; the
// gateway asks the caller of the call in flight, when servers were told gw
// can sample (Declare).
func TestLegacySamplingRidesOnTheCall(t *testing.T) {
	r := start(t, router.Clients{Declare: true})
	in := face.InputFunc(func(_ context.Context, method string, _ json.RawMessage) (json.RawMessage, error) {
		return json.RawMessage(`{"role":"assistant","content":{"type":"text","text":"from the caller"},"model":"m"}`), nil
	})
	params := json.RawMessage(`{"name":"old__sample","arguments":{"prompt":"hello"}}`)
	out := serve(t, r, &face.Request{Method: "tools/call", Params: params, Principal: "alice", Input: in})
	if !strings.Contains(string(out["content"]), "from the caller") {
		t.Fatalf("result %v; want the caller's sample", out)
	}
	// A caller who cannot answer: the server is told nobody can.
	out = serve(t, r, &face.Request{Method: "tools/call", Params: params, Principal: "bob"})
	if string(out["isError"]) != "true" {
		t.Fatalf("result %v; want the server's error for a caller who cannot sample", out)
	}
}
