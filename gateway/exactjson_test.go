package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gwmcp/gw/transport/jsonrpc"
)

// Servers' JSON is read by exact key: a mis-cased key is absent. Each test
// below feeds a decode site a key that encoding/json would fold.

func TestResultTypeExactKey(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{`{"resultType":"input_required"}`, "input_required"},
		{`{"ResultType":"input_required"}`, "complete"}, // folded by encoding/json
		{`{"RESULTTYPE":"input_required","x":1}`, "complete"},
		{`{"resultType":"complete","ResultType":"input_required"}`, "complete"},
		{`{"ResultType":"input_required","resultType":"complete"}`, "complete"},
		{`{"result\u0054ype":"input_required"}`, "input_required"}, // an escape spells the key exactly
		{`{"resultType":"input\u005frequired"}`, "input_required"},
		{`{"resultType":"complete","resultType":"input_required"}`, "input_required"}, // the last counts
		{`{"content":[{"resultType":"input_required"}],"x":{"resultType":"y"}}`, "complete"},
		{`{"resultType":null}`, "complete"},
		{`{"resultType":7}`, "complete"},
		{`{"resultType":"other"}`, "other"},
		{` { "resultType" : "input_required" } `, "input_required"},
		{`{}`, "complete"},
		{`null`, "complete"},
		{``, "complete"},
	} {
		if got := resultType(json.RawMessage(tt.in)); got != tt.want {
			t.Errorf("resultType(%s) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestRouteProgressExactKey(t *testing.T) {
	var got []json.RawMessage
	c := &pendingCall{method: methodToolsCall, token: "gw-1", callerTok: json.RawMessage(`"caller"`),
		onProgress: func(p json.RawMessage) { got = append(got, p) }}
	s := &session{cfg: &sessionConfig{}, tokens: map[string]*pendingCall{"gw-1": c}}
	for _, tt := range []struct {
		in     string
		routed bool
	}{
		{`{"progressToken":"gw-1","progress":1,"total":2,"message":"m"}`, true},
		{`{"ProgressToken":"gw-1","progress":1}`, false}, // folded by encoding/json
		{`{"progresstoken":"gw-1","progress":1}`, false},
		{`{"progress":1,"PROGRESSTOKEN":"gw-1"}`, false},
		{`{"_meta":{"progressToken":"gw-1"},"progress":1}`, false},
		{`{"progressToken":"gw-2","progress":1}`, false},
		{`{"progressToken":1,"progress":1}`, false},
		{`{"progress\u0054oken":"gw-\u0031","progress":3}`, true},
		{`{"progressToken":"other","progressToken":"gw-1","progress":4}`, true}, // the last counts
		{`{"progressToken":"gw-1","ProgressToken":"gw-9","progress":5}`, true},
	} {
		got = nil
		s.routeProgress(json.RawMessage(tt.in))
		if (len(got) == 1) != tt.routed || len(got) > 1 {
			t.Errorf("%s: routed %d times, want routed=%v", tt.in, len(got), tt.routed)
			continue
		}
		if !tt.routed {
			continue
		}
		out := got[0]
		m, err := objectFields(out)
		if err != nil || string(m["progressToken"]) != `"caller"` || strings.Contains(string(out), "gw-1") {
			t.Errorf("%s: routed as %s", tt.in, out)
		}
		in, _ := objectFields(json.RawMessage(tt.in))
		for k, v := range in {
			if k != "progressToken" && string(m[k]) != string(v) {
				t.Errorf("%s: member %q became %s", tt.in, k, m[k])
			}
		}
	}
}

// TestHandshakeExactKeys covers the capabilities (nested members too) and
// serverInfo of both eras.
func TestHandshakeExactKeys(t *testing.T) {
	const caps = `{"Tools":{},"prompts":{"ListChanged":true},"resources":{"Subscribe":true,"listChanged":true},"Logging":{}}`
	check := func(t *testing.T, s *session, version string) {
		t.Helper()
		if s.offers(KindTools) {
			t.Error(`"Tools" offers tools`)
		}
		if !s.offers(KindPrompts) || s.caps.Prompts.ListChanged {
			t.Errorf(`prompts: %+v, want offered without listChanged ("ListChanged")`, s.caps.Prompts)
		}
		if !s.offers(KindResources) || !s.caps.Resources.ListChanged || s.offersSubscribe() {
			t.Errorf(`resources: %+v, want listChanged and no subscribe ("Subscribe")`, s.caps.Resources)
		}
		if s.caps.Logging != nil {
			t.Error(`"Logging" offers logging`)
		}
		if s.serverInfo != (Implementation{Version: version}) {
			t.Errorf(`serverInfo %+v, want no name ("Name") and version %q`, s.serverInfo, version)
		}
		if string(s.rawCaps) != caps {
			t.Errorf("raw capabilities %s", s.rawCaps)
		}
	}
	t.Run("modern", func(t *testing.T) {
		s := testSession()
		res := `{"supportedVersions":["2026-07-28"],"capabilities":` + caps +
			`,"_meta":{"io.modelcontextprotocol/serverInfo":{"Name":"evil","version":"1"}},"resultType":"complete"}`
		if out := s.probeOutcome(callReply{result: json.RawMessage(res)}, 0); !out.modern {
			t.Fatalf("outcome %+v", out)
		}
		check(t, s, "1")
	})
	t.Run("modern/SupportedVersions", func(t *testing.T) {
		s := testSession()
		res := `{"SupportedVersions":["2026-07-28"],"capabilities":{"tools":{}}}`
		if out := s.probeOutcome(callReply{result: json.RawMessage(res)}, 0); out.modern || out.err != nil {
			t.Fatalf("outcome %+v, want legacy fallback", out)
		}
	})
	t.Run("legacy", func(t *testing.T) {
		s := testSession()
		res := `{"protocolVersion":"2025-11-25","capabilities":` + caps + `,"serverInfo":{"Name":"evil","version":"2"}}`
		if err := s.finishInitialize(context.Background(), callReply{result: json.RawMessage(res)}); err != nil {
			t.Fatal(err)
		}
		check(t, s, "2")
	})
	t.Run("legacy/ProtocolVersion", func(t *testing.T) {
		s := testSession()
		res := `{"ProtocolVersion":"2025-11-25","capabilities":{}}`
		if err := s.finishInitialize(context.Background(), callReply{result: json.RawMessage(res)}); err == nil {
			t.Fatal(`"ProtocolVersion" accepted`)
		}
	})
}

func TestUnsupportedVersionsExactKey(t *testing.T) {
	if v := unsupportedVersions(&jsonrpc.Error{Data: json.RawMessage(`{"Supported":["2025-11-25"]}`)}); v != nil {
		t.Errorf(`"Supported" read as %v`, v)
	}
	if v := unsupportedVersions(&jsonrpc.Error{Data: json.RawMessage(`{"supported":["2025-11-25"]}`)}); !reflect.DeepEqual(v, []string{"2025-11-25"}) {
		t.Errorf(`"supported" read as %v`, v)
	}
}

func TestAnswerInputExactKey(t *testing.T) {
	h := &rootsHandler{}
	s := testSession()
	s.cfg.handler = h
	res := `{"resultType":"input_required","inputRequests":{"q":{"Method":"roots/list","params":{}}},"requestState":"st"}`
	if _, _, err := s.answerInput(context.Background(), methodToolsCall, nil, json.RawMessage(res)); err == nil || h.calls != 0 {
		t.Errorf(`"Method" served: %d calls, error %v`, h.calls, err)
	}
	res = `{"resultType":"input_required","inputRequests":{"q":{"method":"roots/list","Params":{"x":1}}},"requestState":"st"}`
	out, asked, err := s.answerInput(context.Background(), methodToolsCall, nil, json.RawMessage(res))
	if err != nil || !asked || h.calls != 1 || h.params != nil {
		t.Fatalf("asked %v, %d calls with params %s (want none: \"Params\"), error %v", asked, h.calls, h.params, err)
	}
	if !sameJSON(out, `{"inputResponses":{"q":{"roots":[]}},"requestState":"st"}`) {
		t.Errorf("retry params %s", out)
	}
	res = `{"resultType":"input_required","InputRequests":{"q":{"method":"roots/list"}},"RequestState":"st"}`
	out, asked, err = s.answerInput(context.Background(), methodToolsCall, nil, json.RawMessage(res))
	if err != nil || asked || string(out) != `{}` {
		t.Errorf(`"InputRequests": asked %v, params %s, error %v`, asked, out, err)
	}
}

// TestDecodeStrictFields keeps what decodeStrictFields accepts and refuses.
func TestDecodeStrictFields(t *testing.T) {
	for _, tt := range []struct {
		in   string
		fail bool
	}{
		{``, false}, {` null `, false}, {`{}`, false}, {`{"tools":{}}`, false},
		{`[]`, true}, {`"x"`, true}, {`1`, true}, {`{`, true}, {`{"tools":5}`, true}, {`{} x`, true},
	} {
		var caps serverCapabilities
		if err := decodeStrictFields(json.RawMessage(tt.in), &caps); (err != nil) != tt.fail {
			t.Errorf("decodeStrictFields(%s): %v", tt.in, err)
		}
	}
}

func TestDecodeExact(t *testing.T) {
	type inner struct {
		A string `json:"a"`
		B int    `json:"b,omitempty"`
		C string
		d string
		E string `json:"-"`
	}
	type outer struct {
		P  *inner           `json:"p"`
		S  []inner          `json:"s"`
		M  map[string]inner `json:"m"`
		PS []*inner         `json:"ps"`
		R  json.RawMessage  `json:"r"`
		X  any              `json:"x"`
		V  []string         `json:"v"`
	}
	in := `{"p":{"a":"1","A":"no","b":2,"B":3,"C":"c","c":"no","d":"no","E":"no","-":"no"},
		"P":{"a":"no"},
		"s":[{"a":"2"},{"A":"no"},null],
		"m":{"K":{"a":"3","A":"no"},"k":{"B":4}},
		"ps":[null,{"b":5}],
		"r":{"Any":"Thing"}, "x":{"Y":[1]}, "v":["a"], "V":["no"]}`
	var got outer
	if err := decodeExact([]byte(in), &got); err != nil {
		t.Fatal(err)
	}
	want := outer{
		P:  &inner{A: "1", B: 2, C: "c"},
		S:  []inner{{A: "2"}, {}, {}},
		M:  map[string]inner{"K": {A: "3"}, "k": {}},
		PS: []*inner{nil, {B: 5}},
		R:  json.RawMessage(`{"Any":"Thing"}`),
		X:  map[string]any{"Y": []any{1.0}},
		V:  []string{"a"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}

	// Errors as json.Unmarshal reports them; the rest is still decoded.
	var caps serverCapabilities
	err := decodeExact([]byte(`{"tools":[],"prompts":{"listChanged":true}}`), &caps)
	var typeErr *json.UnmarshalTypeError
	if !errors.As(err, &typeErr) || caps.Prompts == nil || !caps.Prompts.ListChanged {
		t.Errorf("type error: %v, %+v", err, caps)
	}
	var syntaxErr *json.SyntaxError
	if err := decodeExact([]byte(`{"tools":{}`), &caps); !errors.As(err, &syntaxErr) {
		t.Errorf("syntax error: %v", err)
	}
	if err := decodeExact([]byte(`{}`), caps); err == nil {
		t.Error("decoded into a non-pointer")
	}
	type embedded struct{ inner }
	if err := decodeExact([]byte(`{}`), &embedded{}); err == nil {
		t.Error("decoded into an embedded struct")
	}
	type quoted struct {
		N int `json:"n,string"`
	}
	if err := decodeExact([]byte(`{"n":"1"}`), &quoted{}); err == nil {
		t.Error(`decoded ",string"`)
	}
}

func testSession() *session {
	return &session{
		name:    "t",
		conn:    discardConn{},
		log:     slog.New(slog.DiscardHandler),
		cfg:     &sessionConfig{},
		pending: map[string]*pendingCall{},
		tokens:  map[string]*pendingCall{},
	}
}

type discardConn struct{}

func (discardConn) ReadMessage() ([]byte, error)               { return nil, io.EOF }
func (discardConn) WriteMessage(context.Context, []byte) error { return nil }
func (discardConn) Close() error                               { return nil }

// rootsHandler serves roots/list with no roots.
type rootsHandler struct {
	calls  int
	params json.RawMessage
}

func (h *rootsHandler) Supports(_ context.Context, method string) bool { return method == MethodRoots }

func (h *rootsHandler) HandleClientRequest(_ context.Context, req ClientRequest) (json.RawMessage, error) {
	h.calls++
	h.params = req.Params
	return json.RawMessage(`{"roots":[]}`), nil
}

// TestMisCasedServer runs a session against an in-process modern server that
// spells gw's keys in other cases: in its capabilities, serverInfo, progress
// and resultType. None of them may count.
func TestMisCasedServer(t *testing.T) {
	conn := &pipeConn{toServer: make(chan []byte), toClient: make(chan []byte), done: make(chan struct{})}
	var wg sync.WaitGroup
	wg.Go(func() { misCasedServer(t, conn) })
	s := newSession("mc", conn, &sessionConfig{discoverTimeout: 5 * time.Second, clientInfo: Implementation{Name: "gw-test", Version: "0"}},
		slog.New(slog.DiscardHandler))
	defer wg.Wait()
	defer s.close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	if err := s.open(ctx); err != nil || s.era != EraModern {
		t.Fatalf("open: era %v, %v", s.era, err)
	}
	if s.serverInfo != (Implementation{Version: "1"}) {
		t.Errorf(`serverInfo %+v: "Name" read`, s.serverInfo)
	}
	inv, err := s.fetchInventory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := inv.lists[KindTools]; ok {
		t.Error(`"Tools" capability: tools were listed`)
	}
	if l := inv.lists[KindPrompts]; len(l.items) != 1 {
		t.Errorf("prompts %+v", l)
	}
	if f := (&managed{}).listenFilter(s); len(f) != 0 {
		t.Errorf(`"ListChanged": listen filter %v`, f)
	}

	var progress []json.RawMessage
	res, err := s.request(ctx, methodToolsCall, json.RawMessage(`{"name":"t","_meta":{"progressToken":"caller"}}`),
		callOptions{onProgress: func(p json.RawMessage) { progress = append(progress, p) }})
	if err != nil || !strings.Contains(string(res), `"done"`) {
		t.Fatalf(`"ResultType":"input_required" was not taken for complete: %s, %v`, res, err)
	}
	if len(progress) != 1 || string(progress[0]) != `{"progressToken":"caller","progress":2}` {
		t.Errorf(`progress %s: want only the one with "progressToken"`, progress)
	}
}

// misCasedServer answers the session on conn until it closes.
func misCasedServer(t *testing.T, conn *pipeConn) {
	send := func(line []byte, err error) bool {
		if err != nil {
			t.Error(err)
		}
		select {
		case conn.toClient <- line:
			return true
		case <-conn.done:
			return false
		}
	}
	for {
		var line []byte
		select {
		case line = <-conn.toServer:
		case <-conn.done:
			return
		}
		msg, err := jsonrpc.Decode(line)
		if err != nil || msg.Kind() != jsonrpc.KindRequest {
			continue
		}
		var result string
		switch msg.Method {
		case methodDiscover:
			result = `{"supportedVersions":["2026-07-28"],"capabilities":{"Tools":{"listChanged":true},"prompts":{"ListChanged":true}},` +
				`"_meta":{"io.modelcontextprotocol/serverInfo":{"Name":"mc","version":"1"}},"resultType":"complete"}`
		case methodPromptsList:
			result = `{"prompts":[{"name":"p"}],"resultType":"complete"}`
		case methodToolsList:
			result = `{"tools":[{"name":"t"}],"resultType":"complete"}`
		case methodToolsCall:
			meta, _ := field(msg.Params, "_meta")
			tok, _ := field(meta, metaProgressToken)
			for _, p := range []string{`{"ProgressToken":` + string(tok) + `,"progress":1}`, `{"progressToken":` + string(tok) + `,"progress":2}`} {
				if !send(jsonrpc.EncodeNotification(methodProgress, json.RawMessage(p))) {
					return
				}
			}
			result = `{"content":[{"type":"text","text":"done"}],"ResultType":"input_required","InputRequests":{"q":{"method":"roots/list"}}}`
		default:
			if !send(jsonrpc.EncodeError(msg.ID, jsonrpc.NewError(jsonrpc.CodeMethodNotFound, "no %s", msg.Method))) {
				return
			}
			continue
		}
		if !send(jsonrpc.EncodeResult(msg.ID, json.RawMessage(result))) {
			return
		}
	}
}

// pipeConn connects a session to a server in the test.
type pipeConn struct {
	toServer, toClient chan []byte
	done               chan struct{}
	once               sync.Once
}

func (c *pipeConn) ReadMessage() ([]byte, error) {
	select {
	case line := <-c.toClient:
		return line, nil
	case <-c.done:
		return nil, io.EOF
	}
}

func (c *pipeConn) WriteMessage(ctx context.Context, msg []byte) error {
	select {
	case c.toServer <- bytes.Clone(msg):
		return nil
	case <-c.done:
		return io.ErrClosedPipe
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *pipeConn) Close() error {
	c.once.Do(func() { close(c.done) })
	return nil
}

func BenchmarkResultType(b *testing.B) {
	res := json.RawMessage(`{"content":[{"type":"text","text":"` + strings.Repeat("x", 1000) + `"}],"isError":false,"resultType":"complete"}`)
	b.ReportAllocs()
	for b.Loop() {
		if resultType(res) != "complete" {
			b.Fatal("wrong")
		}
	}
}

func BenchmarkRouteProgress(b *testing.B) {
	n := 0
	c := &pendingCall{token: "gw-1", callerTok: json.RawMessage(`"caller-token"`), onProgress: func(json.RawMessage) { n++ }}
	s := &session{cfg: &sessionConfig{}, tokens: map[string]*pendingCall{"gw-1": c}}
	params := json.RawMessage(`{"progressToken":"gw-1","progress":50,"total":100,"message":"half way there"}`)
	b.ReportAllocs()
	for b.Loop() {
		s.routeProgress(params)
	}
	if n == 0 {
		b.Fatal("not routed")
	}
}

// sameJSON reports whether got is the JSON value want, member order aside.
func sameJSON(got []byte, want string) bool {
	var a, b any
	return json.Unmarshal(got, &a) == nil && json.Unmarshal([]byte(want), &b) == nil && reflect.DeepEqual(a, b)
}

// BenchmarkLargePayloadWork is the work gw does on the bytes of a call with
// a 1 MiB argument and a 1 MiB result, without the processes and pipes
// around it: beside one validating scan of 1 MiB (issue 12: gw may add at
// most two). params is every edit of the modern era with a progress token,
// the request line included; reply is reading the server's reply line.
func BenchmarkLargePayloadWork(b *testing.B) {
	big := strings.Repeat("abcdefgh", 1<<17)
	params := json.RawMessage(`{"name":"s__echo","_meta":{"progressToken":"caller-1"},"arguments":{"text":"` + big + `"}}`)
	reply := []byte(`{"jsonrpc":"2.0","id":12,"result":{"content":[{"type":"text","text":"` + big + `"}],"resultType":"complete"}}`)
	s := testSession()
	ctx := context.Background()
	version := mustJSON("2026-07-28")
	b.Run("scan-1MiB", func(b *testing.B) {
		b.SetBytes(int64(len(params)))
		for b.Loop() {
			if !json.Valid(params) {
				b.Fatal("invalid")
			}
		}
	})
	b.Run("params", func(b *testing.B) {
		b.SetBytes(int64(len(params)))
		b.ReportAllocs()
		for b.Loop() {
			_ = stringField(params, "name")
			_, _ = field(params, "arguments")
			p, err := setField(params, "name", json.RawMessage(`"echo"`))
			if err == nil {
				p, err = s.metaParams(ctx, p, version)
			}
			if err == nil {
				p, _, err = swapProgressToken(p, "gw-12")
			}
			if err != nil {
				b.Fatal(err)
			}
			_ = jsonrpc.AppendRequest(nil, jsonrpc.Int64ID(12), "tools/call", p)
		}
	})
	b.Run("reply", func(b *testing.B) {
		b.SetBytes(int64(len(reply)))
		b.ReportAllocs()
		for b.Loop() {
			m, err := jsonrpc.Decode(reply)
			if err != nil {
				b.Fatal(err)
			}
			if resultType(m.Result) != "complete" {
				b.Fatal("resultType")
			}
		}
	})
}
