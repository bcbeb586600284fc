package mcpface

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gwmcp/gw/transport/face"
	"github.com/gwmcp/gw/transport/jsonrpc"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testHandler is a tiny router: a few tools, and a record of what it saw.
type testHandler struct {
	mu       sync.Mutex
	seen     []string      // "method uri" of resources/(un)subscribe
	released chan struct{} // closed by "slow" when its ctx ends
	release  chan struct{} // "wait" returns once it is closed
}

func (h *testHandler) record(s string) {
	h.mu.Lock()
	h.seen = append(h.seen, s)
	h.mu.Unlock()
}

func (h *testHandler) saw() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.seen...)
}

func (h *testHandler) Serve(ctx context.Context, req *face.Request) (json.RawMessage, error) {
	switch req.Method {
	case "tools/list":
		return json.RawMessage(`{"tools":[{"name":"echo","inputSchema":{"type":"object"}}]}`), nil
	case "resources/subscribe", "resources/unsubscribe":
		h.record(req.Method + " " + URIOf(req.Params))
		return json.RawMessage(`{}`), nil
	case "tools/call":
	default:
		return nil, jsonrpc.NewError(jsonrpc.CodeMethodNotFound, "unknown method %q", req.Method)
	}
	var p struct {
		Name string `json:"name"`
	}
	_ = json.Unmarshal(req.Params, &p)
	switch p.Name {
	case "echo":
		return json.RawMessage(`{"content":[{"type":"text","text":"hi"}]}`), nil
	case "empty":
		return nil, nil
	case "typed":
		return json.RawMessage(`{"resultType":"complete","content":[]}`), nil
	case "wait":
		select {
		case <-h.release:
		case <-ctx.Done():
			h.record("wait cancelled")
			return nil, ctx.Err()
		}
		return json.RawMessage(`{"content":[]}`), nil
	case "slow":
		<-ctx.Done()
		close(h.released)
		return nil, ctx.Err()
	case "progress":
		req.Progress(json.RawMessage(`{"progressToken":"p1","progress":1,"total":2}`))
		req.Progress(json.RawMessage(`{"progressToken":"p1","progress":2,"total":2}`))
		return json.RawMessage(`{"content":[]}`), nil
	case "twice":
		// Two rounds: roots, then sampling.
		roots, err := req.Input.Ask(ctx, "roots/list", nil)
		if err != nil {
			return nil, err
		}
		res, err := req.Input.Ask(ctx, "sampling/createMessage", json.RawMessage(`{"messages":[],"maxTokens":5}`))
		if err != nil {
			return nil, err
		}
		out, _ := json.Marshal(map[string]any{"content": []any{map[string]any{"type": "text", "text": string(roots) + " " + string(res)}}})
		return out, nil
	case "sample":
		if req.Input == nil || !req.Input.Supports("sampling/createMessage") {
			return nil, jsonrpc.NewError(jsonrpc.CodeMethodNotFound, "no sampling")
		}
		res, err := req.Input.Ask(ctx, "sampling/createMessage", json.RawMessage(`{"messages":[],"maxTokens":5}`))
		if err != nil {
			if ctx.Err() != nil {
				h.record("cancelled: " + context.Cause(ctx).Error())
			}
			return nil, err
		}
		out, _ := json.Marshal(map[string]any{"content": []any{map[string]any{"type": "text", "text": string(res)}}})
		return out, nil
	}
	return nil, jsonrpc.NewError(jsonrpc.CodeInvalidParams, "unknown tool")
}

// harness runs a Face over pipes and reads its lines.
type harness struct {
	t      *testing.T
	f      *Face
	h      *testHandler
	in     *io.PipeWriter
	lines  chan string
	served chan error
	cancel context.CancelFunc
}

func newHarness(t *testing.T, opts Options) *harness {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	th := &testHandler{released: make(chan struct{}), release: make(chan struct{})}
	f := New(th, opts)
	ctx, cancel := context.WithCancel(context.Background())
	hs := &harness{t: t, f: f, h: th, in: inW, lines: make(chan string, 100), served: make(chan error, 1), cancel: cancel}
	go func() {
		hs.served <- f.Serve(ctx, inR, outW)
		_ = outW.Close()
	}()
	go func() {
		defer close(hs.lines)
		sc := bufio.NewScanner(outR)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			hs.lines <- sc.Text()
		}
		_ = outR.CloseWithError(io.EOF) // unblock writes after a failed test
	}()
	t.Cleanup(func() {
		_ = inW.Close()
		cancel()
		select {
		case <-hs.served:
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return")
		}
		for range hs.lines {
		}
	})
	return hs
}

func (hs *harness) send(line string) {
	hs.t.Helper()
	if _, err := io.WriteString(hs.in, line+"\n"); err != nil {
		hs.t.Fatal(err)
	}
}

// msg is a line from the face.
type msg struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
	Result json.RawMessage `json:"result"`
	Error  *jsonrpc.Error  `json:"error"`
	raw    string
}

func (hs *harness) next() msg {
	hs.t.Helper()
	select {
	case line, ok := <-hs.lines:
		if !ok {
			hs.t.Fatal("face output ended")
		}
		var m msg
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			hs.t.Fatalf("line is not JSON: %q", line)
		}
		m.raw = line
		return m
	case <-time.After(5 * time.Second):
		hs.t.Fatal("no line from the face")
	}
	return msg{}
}

// call sends a request and returns the next line, which must answer it.
func (hs *harness) call(id, line string) msg {
	hs.t.Helper()
	hs.send(line)
	m := hs.next()
	if string(m.ID) != id {
		hs.t.Fatalf("want the answer to %s, got %s", id, m.raw)
	}
	return m
}

func (m msg) wantError(t *testing.T, code int64) *jsonrpc.Error {
	t.Helper()
	if m.Error == nil || m.Error.Code != code {
		t.Fatalf("want error %d, got %s", code, m.raw)
	}
	return m.Error
}

func (m msg) wantResult(t *testing.T) map[string]json.RawMessage {
	t.Helper()
	var r map[string]json.RawMessage
	if m.Error != nil || json.Unmarshal(m.Result, &r) != nil {
		t.Fatalf("want a result object, got %s", m.raw)
	}
	return r
}

const (
	modernMeta = `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":{"name":"t","version":"1"}}`
	initLine   = `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{"sampling":{}},"clientInfo":{"name":"t","version":"1"}}}`
)

func (hs *harness) initialize() {
	hs.t.Helper()
	hs.call("0", initLine).wantResult(hs.t)
	hs.send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
}

// TestLegacyHandshake: initialize answers gw's version, capabilities and
// serverInfo, decides the legacy era, and results pass untouched.
func TestLegacyHandshake(t *testing.T) {
	hs := newHarness(t, Options{Info: Implementation{Version: "1.2.3"}, Instructions: "one server"})
	r := hs.call("0", initLine).wantResult(t)
	if string(r["protocolVersion"]) != `"2025-11-25"` || string(r["serverInfo"]) != `{"name":"gw","version":"1.2.3"}` || string(r["instructions"]) != `"one server"` {
		t.Errorf("initialize result %v", r)
	}
	var caps struct {
		Tools     struct{ ListChanged bool }            `json:"tools"`
		Prompts   struct{ ListChanged bool }            `json:"prompts"`
		Resources struct{ Subscribe, ListChanged bool } `json:"resources"`
	}
	if json.Unmarshal(r["capabilities"], &caps) != nil || !caps.Tools.ListChanged || !caps.Prompts.ListChanged || !caps.Resources.Subscribe || !caps.Resources.ListChanged {
		t.Errorf("capabilities %s", r["capabilities"])
	}
	<-hs.f.Started()
	if hs.f.Era() != EraLegacy {
		t.Errorf("era %v", hs.f.Era())
	}
	hs.send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	hs.call("1", `{"jsonrpc":"2.0","id":1,"method":"ping"}`).wantResult(t)
	if m := hs.call(`"a"`, `{"jsonrpc":"2.0","id":"a","method":"tools/list"}`); string(m.Result) != `{"tools":[{"name":"echo","inputSchema":{"type":"object"}}]}` {
		t.Errorf("tools/list not passed through untouched: %s", m.raw)
	}
	hs.call("2", `{"jsonrpc":"2.0","id":2,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{}}}`).wantError(t, jsonrpc.CodeInvalidRequest)
	hs.call("3", `{"jsonrpc":"2.0","id":3,"method":"server/discover","params":{`+modernMeta+`}}`).wantError(t, jsonrpc.CodeMethodNotFound)
	hs.call("4", `{"jsonrpc":"2.0","id":4,"method":"nope/nope"}`).wantError(t, jsonrpc.CodeMethodNotFound)
}

// TestLegacyVersionChoice: a legacy version gw speaks is echoed; another is
// answered with 2025-11-25.
func TestLegacyVersionChoice(t *testing.T) {
	for requested, want := range map[string]string{"2025-06-18": "2025-06-18", "2030-01-01": "2025-11-25", "2026-07-28": "2025-11-25"} {
		hs := newHarness(t, Options{})
		r := hs.call("1", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"`+requested+`","capabilities":{}}}`).wantResult(t)
		if string(r["protocolVersion"]) != `"`+want+`"` {
			t.Errorf("asked %s, answered %s; want %s", requested, r["protocolVersion"], want)
		}
	}
}

// TestPreInitialize: before initialize only ping is served.
func TestPreInitialize(t *testing.T) {
	hs := newHarness(t, Options{})
	hs.call("1", `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`).wantError(t, jsonrpc.CodeInvalidRequest)
	hs.call("2", `{"jsonrpc":"2.0","id":2,"method":"ping"}`).wantResult(t)
	hs.call("3", `{"jsonrpc":"2.0","id":3,"method":"initialize","params":{"capabilities":{}}}`).wantError(t, jsonrpc.CodeInvalidParams)
	if hs.f.Era() != EraUnknown {
		t.Errorf("era decided by refused requests: %v", hs.f.Era())
	}
	hs.initialize()
	hs.call("4", `{"jsonrpc":"2.0","id":4,"method":"tools/list"}`).wantResult(t)
}

// TestModernDiscover: server/discover decides the modern era; every result
// carries resultType, spliced into handler results that lack it.
func TestModernDiscover(t *testing.T) {
	hs := newHarness(t, Options{Info: Implementation{Version: "9"}})
	r := hs.call("1", `{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{`+modernMeta+`}}`).wantResult(t)
	if string(r["resultType"]) != `"complete"` || string(r["supportedVersions"]) != `["2026-07-28"]` ||
		string(r["_meta"]) != `{"io.modelcontextprotocol/serverInfo":{"name":"gw","version":"9"}}` || len(r["capabilities"]) == 0 {
		t.Errorf("discover result %v", r)
	}
	if hs.f.Era() != EraModern {
		t.Errorf("era %v", hs.f.Era())
	}
	m := hs.call("2", `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo",`+modernMeta+`}}`)
	if string(m.Result) != `{"resultType":"complete","content":[{"type":"text","text":"hi"}]}` {
		t.Errorf("resultType not spliced: %s", m.Result)
	}
	m = hs.call("3", `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"typed",`+modernMeta+`}}`)
	if string(m.Result) != `{"resultType":"complete","content":[]}` {
		t.Errorf("result with resultType changed: %s", m.Result)
	}
	m = hs.call("7", `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"empty",`+modernMeta+`}}`)
	if string(m.Result) != `{"resultType":"complete"}` {
		t.Errorf("empty result: %s", m.Result)
	}
	hs.call("4", `{"jsonrpc":"2.0","id":4,"method":"tools/list"}`).wantError(t, jsonrpc.CodeInvalidParams)
	hs.call("5", `{"jsonrpc":"2.0","id":5,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{}}}`).wantError(t, jsonrpc.CodeInvalidRequest)
	hs.call("6", `{"jsonrpc":"2.0","id":6,"method":"resources/subscribe","params":{"uri":"x://a",`+modernMeta+`}}`).wantError(t, jsonrpc.CodeMethodNotFound)
}

// TestModernWithoutDiscover: a modern request is served inline, no
// discover needed.
func TestModernWithoutDiscover(t *testing.T) {
	hs := newHarness(t, Options{})
	r := hs.call("1", `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{`+modernMeta+`}}`).wantResult(t)
	if string(r["resultType"]) != `"complete"` || len(r["tools"]) == 0 {
		t.Errorf("tools/list %v", r)
	}
}

// TestUnsupportedVersion: -32022 names the versions gw speaks and the one
// asked; the era stays open, so the client can fall back to initialize.
func TestUnsupportedVersion(t *testing.T) {
	hs := newHarness(t, Options{})
	e := hs.call("1", `{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"1900-01-01","io.modelcontextprotocol/clientCapabilities":{}}}}`).
		wantError(t, jsonrpc.CodeUnsupportedProtocolVersion)
	var data struct {
		Supported []string `json:"supported"`
		Requested string   `json:"requested"`
	}
	if json.Unmarshal(e.Data, &data) != nil || data.Requested != "1900-01-01" || len(data.Supported) == 0 || data.Supported[0] != ModernVersion {
		t.Errorf("data %s", e.Data)
	}
	hs.initialize()
	if hs.f.Era() != EraLegacy {
		t.Errorf("era %v", hs.f.Era())
	}
}

// TestBadInput: not JSON (-32700, id null), not JSON-RPC (-32600, with the
// id when readable), a batch, and a line over the limit; the connection
// goes on after each.
func TestBadInput(t *testing.T) {
	hs := newHarness(t, Options{MaxMessageSize: 1024})
	for _, tt := range []struct {
		line string
		id   string
		code int64
	}{
		{`{"jsonrpc":"2.0","id":1,`, "null", jsonrpc.CodeParseError},
		{`hello`, "null", jsonrpc.CodeParseError},
		{`{"id":7,"method":"ping"}`, "7", jsonrpc.CodeInvalidRequest},
		{`{"jsonrpc":"1.0","id":"x","method":"ping"}`, `"x"`, jsonrpc.CodeInvalidRequest},
		{`[{"jsonrpc":"2.0","id":1,"method":"ping"}]`, "null", jsonrpc.CodeInvalidRequest},
		{`42`, "null", jsonrpc.CodeInvalidRequest},
		{`{"jsonrpc":"2.0","id":1,"method":"ping","params":{"pad":"` + strings.Repeat("x", 4096) + `"}}`, "null", jsonrpc.CodeInvalidRequest},
	} {
		hs.send(tt.line)
		m := hs.next()
		if string(m.ID) != tt.id || m.Error == nil || m.Error.Code != tt.code {
			t.Errorf("%.40q: got %s; want id %s, code %d", tt.line, m.raw, tt.id, tt.code)
		}
	}
	hs.call("9", `{"jsonrpc":"2.0","id":9,"method":"ping"}`).wantResult(t)
}

// TestTooDeep: a message nested past MaxDepth is answered with -32600 (with
// its id when it can be read) instead of the handler's result.
func TestTooDeep(t *testing.T) {
	hs := newHarness(t, Options{MaxDepth: 8})
	hs.initialize()
	args := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	// The envelope, params and arguments are three levels.
	m := hs.call("5", `{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"echo","arguments":{"a":`+args(6)+`}}}`)
	m.wantError(t, jsonrpc.CodeInvalidRequest)
	m = hs.call("null", `{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"echo","arguments":{"a":`+args(10001)+`}}}`)
	m.wantError(t, jsonrpc.CodeInvalidRequest)
	hs.call("7", `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"a":`+args(5)+`}}}`).wantResult(t)
}

// TestCancellation: notifications/cancelled cancels the request's context
// and the request gets no answer.
func TestCancellation(t *testing.T) {
	hs := newHarness(t, Options{})
	hs.initialize()
	hs.send(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"slow"}}`)
	time.Sleep(20 * time.Millisecond) // let it start; a cancel before is ignored
	hs.send(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":7,"reason":"user"}}`)
	select {
	case <-hs.h.released:
	case <-time.After(5 * time.Second):
		t.Fatal("the handler's context was not cancelled")
	}
	// The next line is ping's answer: nothing came for 7.
	hs.call("8", `{"jsonrpc":"2.0","id":8,"method":"ping"}`).wantResult(t)
}

// TestProgress: a request with a progressToken gets its notifications
// before its result, with the params the handler gave.
func TestProgress(t *testing.T) {
	hs := newHarness(t, Options{})
	hs.initialize()
	hs.send(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"progress","_meta":{"progressToken":"p1"}}}`)
	for i := 1; i <= 2; i++ {
		m := hs.next()
		if m.Method != "notifications/progress" || !strings.Contains(string(m.Params), `"progress":`+string(rune('0'+i))) || !strings.Contains(string(m.Params), `"progressToken":"p1"`) {
			t.Fatalf("want progress %d, got %s", i, m.raw)
		}
	}
	if m := hs.next(); string(m.ID) != "1" || m.Error != nil {
		t.Fatalf("want the result, got %s", m.raw)
	}
}

// TestBusy: beyond MaxInFlight a request is refused at once.
func TestBusy(t *testing.T) {
	hs := newHarness(t, Options{MaxInFlight: 1})
	hs.initialize()
	hs.send(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"slow"}}`)
	time.Sleep(20 * time.Millisecond)
	e := hs.call("2", `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo"}}`).wantError(t, jsonrpc.CodeInternalError)
	if !strings.Contains(e.Message, "busy") {
		t.Errorf("message %q", e.Message)
	}
	hs.call("3", `{"jsonrpc":"2.0","id":3,"method":"ping"}`).wantResult(t) // ping needs no slot
}

// TestListChangedLegacy: changes are announced once the client is
// initialized, one notification per kind.
func TestListChangedLegacy(t *testing.T) {
	hs := newHarness(t, Options{})
	hs.call("0", initLine).wantResult(t)
	hs.f.ListChanged(KindTools) // before initialized: not announced
	hs.send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	hs.call("1", `{"jsonrpc":"2.0","id":1,"method":"ping"}`).wantResult(t)
	hs.f.ListChanged(KindTools | KindResources)
	for _, want := range []string{"notifications/tools/list_changed", "notifications/resources/list_changed"} {
		if m := hs.next(); m.Method != want || len(m.Params) != 0 {
			t.Fatalf("want %s, got %s", want, m.raw)
		}
	}
	// Updates go only to subscribed resources.
	hs.call("2", `{"jsonrpc":"2.0","id":2,"method":"resources/subscribe","params":{"uri":"x://a"}}`).wantResult(t)
	hs.f.ResourceUpdated("x://b")
	hs.f.ResourceUpdated("x://a")
	if m := hs.next(); m.Method != "notifications/resources/updated" || string(m.Params) != `{"uri":"x://a"}` {
		t.Fatalf("want x://a updated, got %s", m.raw)
	}
}

// TestListenModern: subscriptions/listen is acknowledged with the agreed
// filter, carries the kinds it asked for with its subscriptionId, subscribes
// its resources through the handler, and ends without an answer when
// cancelled.
func TestListenModern(t *testing.T) {
	hs := newHarness(t, Options{})
	hs.send(`{"jsonrpc":"2.0","id":"L","method":"subscriptions/listen","params":{` + modernMeta + `,"notifications":{"toolsListChanged":true,"resourceSubscriptions":["x://a"]}}}`)
	ack := hs.next()
	if ack.Method != "notifications/subscriptions/acknowledged" ||
		string(ack.Params) != `{"_meta":{"io.modelcontextprotocol/subscriptionId":"L"},"notifications":{"resourceSubscriptions":["x://a"],"toolsListChanged":true}}` {
		t.Fatalf("ack %s", ack.raw)
	}
	hs.f.ListChanged(KindPrompts) // not asked for
	hs.f.ListChanged(KindTools)
	if m := hs.next(); m.Method != "notifications/tools/list_changed" || string(m.Params) != `{"_meta":{"io.modelcontextprotocol/subscriptionId":"L"}}` {
		t.Fatalf("want tools list_changed on L, got %s", m.raw)
	}
	hs.f.ResourceUpdated("x://a")
	if m := hs.next(); m.Method != "notifications/resources/updated" || string(m.Params) != `{"_meta":{"io.modelcontextprotocol/subscriptionId":"L"},"uri":"x://a"}` {
		t.Fatalf("want x://a updated on L, got %s", m.raw)
	}
	hs.send(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"L"}}`)
	deadline := time.Now().Add(5 * time.Second)
	for len(hs.h.saw()) < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := strings.Join(hs.h.saw(), ","); got != "resources/subscribe x://a,resources/unsubscribe x://a" {
		t.Errorf("handler saw %q", got)
	}
	hs.f.ListChanged(KindTools)
	hs.call("1", `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{`+modernMeta+`}}`).wantResult(t)
}

// TestListenEndsGracefully: when gw stops, an open stream gets its result
// and notifications/cancelled naming it.
func TestListenEndsGracefully(t *testing.T) {
	hs := newHarness(t, Options{})
	hs.send(`{"jsonrpc":"2.0","id":5,"method":"subscriptions/listen","params":{` + modernMeta + `,"notifications":{"promptsListChanged":true}}}`)
	if m := hs.next(); m.Method != "notifications/subscriptions/acknowledged" {
		t.Fatalf("ack %s", m.raw)
	}
	hs.cancel()
	m := hs.next()
	if string(m.ID) != "5" || string(m.Result) != `{"_meta":{"io.modelcontextprotocol/subscriptionId":5},"resultType":"complete"}` {
		t.Fatalf("want the listen's final result, got %s", m.raw)
	}
	if m := hs.next(); m.Method != "notifications/cancelled" || !strings.Contains(string(m.Params), `"requestId":5`) {
		t.Fatalf("want notifications/cancelled, got %s", m.raw)
	}
	if err := <-hs.served; !errors.Is(err, context.Canceled) {
		t.Errorf("Serve: %v", err)
	}
	hs.served <- nil // for the cleanup
}

// TestInputRoundTrip: a legacy client that declared sampling is asked with
// a JSON-RPC request of gw's own id, and its answer reaches the handler.
func TestInputRoundTrip(t *testing.T) {
	hs := newHarness(t, Options{})
	hs.initialize()
	if !hs.f.Client().Supports("sampling/createMessage") || hs.f.Client().Supports("roots/list") {
		t.Error("Supports does not follow the declared capabilities")
	}
	hs.send(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"sample"}}`)
	req := hs.next()
	if req.Method != "sampling/createMessage" || string(req.ID) != `"gw-1"` {
		t.Fatalf("want a sampling request, got %s", req.raw)
	}
	hs.send(`{"jsonrpc":"2.0","id":"gw-1","result":{"role":"assistant","content":{"type":"text","text":"Paris"},"model":"m"}}`)
	if m := hs.next(); string(m.ID) != "1" || !strings.Contains(string(m.Result), "Paris") {
		t.Fatalf("want the tool result with the answer, got %s", m.raw)
	}
	// The client's error keeps its code.
	hs.send(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"sample"}}`)
	req = hs.next()
	hs.send(`{"jsonrpc":"2.0","id":` + string(req.ID) + `,"error":{"code":-1,"message":"user rejected"}}`)
	if e := hs.next().wantError(t, -1); e.Message != "user rejected" {
		t.Errorf("error %v", e)
	}
}

// TestInputNotDeclared: without the capability the client is not asked.
func TestInputNotDeclared(t *testing.T) {
	hs := newHarness(t, Options{})
	hs.call("0", `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{}}}`).wantResult(t)
	hs.call("1", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"sample"}}`).wantError(t, jsonrpc.CodeMethodNotFound)
}

// TestServeEndsAtEOF: the end of input ends Serve with nil after the
// requests in flight were cancelled and answered.
func TestServeEndsAtEOF(t *testing.T) {
	hs := newHarness(t, Options{})
	hs.initialize()
	hs.send(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"slow"}}`)
	time.Sleep(20 * time.Millisecond)
	_ = hs.in.Close()
	if m := hs.next(); string(m.ID) != "1" || m.Error == nil {
		t.Fatalf("want the cancelled call answered, got %s", m.raw)
	}
	select {
	case err := <-hs.served:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
		hs.served <- nil
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return at EOF")
	}
}

// TestHammer: concurrent requests, cancellations, progress and list changes
// from several goroutines; every request not cancelled gets exactly one
// answer, and the race detector watches the locks.
func TestHammer(t *testing.T) {
	hs := newHarness(t, Options{MaxInFlight: 1000})
	hs.initialize()
	const n = 200
	answers := map[string]int{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for len(answers) < n {
			select {
			case line, ok := <-hs.lines:
				if !ok {
					return
				}
				var m msg
				if json.Unmarshal([]byte(line), &m) == nil && len(m.ID) > 0 && m.Method == "" {
					answers[string(m.ID)]++
				}
			case <-time.After(10 * time.Second):
				return
			}
		}
	}()
	var wg sync.WaitGroup
	var inMu sync.Mutex // one line at a time on the pipe
	send := func(line string) {
		inMu.Lock()
		defer inMu.Unlock()
		_, _ = io.WriteString(hs.in, line+"\n")
	}
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 4 {
				id := strconv.Itoa(i)
				switch i % 3 {
				case 0:
					send(`{"jsonrpc":"2.0","id":` + id + `,"method":"tools/call","params":{"name":"echo"}}`)
				case 1:
					send(`{"jsonrpc":"2.0","id":` + id + `,"method":"tools/call","params":{"name":"progress","_meta":{"progressToken":"p1"}}}`)
				case 2:
					send(`{"jsonrpc":"2.0","id":` + id + `,"method":"ping"}`)
				}
				hs.f.ListChanged(KindTools)
				send(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"nope"}}`)
			}
		}()
	}
	wg.Wait()
	<-done
	if len(answers) != n {
		t.Fatalf("%d answers for %d requests", len(answers), n)
	}
	for id, c := range answers {
		if c != 1 {
			t.Errorf("request %s answered %d times", id, c)
		}
	}
}

// TestLogLegacy: servers' log messages reach a legacy client at or above
// its logging/setLevel; a bad level is refused; initialize declares logging.
func TestLogLegacy(t *testing.T) {
	hs := newHarness(t, Options{})
	if res := hs.call("0", initLine).wantResult(t); !strings.Contains(string(res["capabilities"]), `"logging":{}`) {
		t.Errorf("capabilities %s lack logging", res["capabilities"])
	}
	hs.send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	hs.call("1", `{"jsonrpc":"2.0","id":1,"method":"logging/setLevel","params":{"level":"loud"}}`).wantError(t, jsonrpc.CodeInvalidParams)
	hs.call("2", `{"jsonrpc":"2.0","id":2,"method":"logging/setLevel","params":{"level":"warning"}}`).wantResult(t)
	hs.f.Log(json.RawMessage(`{"level":"info","logger":"a","data":"quiet"}`))
	hs.f.Log(json.RawMessage(`{"level":"error","logger":"a","data":"loud"}`))
	if m := hs.next(); m.Method != NotifMessage || !strings.Contains(string(m.Params), `"loud"`) {
		t.Fatalf("want the error message only, got %s", m.raw)
	}
}
