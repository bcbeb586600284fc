package httpface

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gwmcp/gw/transport/face"
	"github.com/gwmcp/gw/transport/jsonrpc"
)

// fuzzHandler is an honest router stub: the methods a router serves, with
// tools that answer, fail, send progress, ask their client, and mirror an
// argument into a header (sql, as in TestParamHeaders). Nothing in it waits
// except on its request's context.
type fuzzHandler struct{}

func (fuzzHandler) ParamHeaders(tool string) map[string][]string {
	if tool != "sql" {
		return nil
	}
	return map[string][]string{"Region": {"region"}, "Limit": {"opts", "limit"}}
}

func (fuzzHandler) Serve(ctx context.Context, req *face.Request) (json.RawMessage, error) {
	content := json.RawMessage(`{"content":[{"type":"text","text":"ok"}]}`)
	switch req.Method {
	case "tools/list":
		return json.RawMessage(`{"tools":[{"name":"echo","inputSchema":{"type":"object"}},{"name":"sql","inputSchema":{"type":"object"}}]}`), nil
	case "prompts/list":
		return json.RawMessage(`{"prompts":[]}`), nil
	case "resources/list":
		return json.RawMessage(`{"resources":[]}`), nil
	case "resources/templates/list":
		return json.RawMessage(`{"resourceTemplates":[]}`), nil
	case "resources/subscribe", "resources/unsubscribe":
		return json.RawMessage(`{}`), nil
	case "resources/read", "prompts/get":
		return nil, jsonrpc.NewError(jsonrpc.CodeInvalidParams, "gw: unknown")
	case "tools/call":
	default:
		return nil, jsonrpc.NewError(jsonrpc.CodeMethodNotFound, "gw: unknown method %q", req.Method)
	}
	name, _ := jsonrpc.StringMember(req.Params, "name")
	switch name {
	case "echo", "sql":
		return content, nil
	case "progress":
		if req.Progress != nil {
			req.Progress(json.RawMessage(`{"progressToken":"p","progress":1}`))
		}
		return content, nil
	case "sample":
		if req.Input == nil || !req.Input.Supports("sampling/createMessage") {
			return content, nil
		}
		if _, err := req.Input.Ask(ctx, "sampling/createMessage", json.RawMessage(`{"messages":[],"maxTokens":5}`)); err != nil {
			return nil, err
		}
		return content, nil
	case "fail":
		return nil, jsonrpc.NewError(jsonrpc.CodeInternalError, "gw: the tool failed")
	}
	return nil, jsonrpc.NewError(jsonrpc.CodeInvalidParams, "gw: unknown tool %q", name)
}

// fuzzMethods and fuzzPaths are what the fuzzer's first two bytes pick.
var (
	fuzzMethods = []string{http.MethodPost, http.MethodGet, http.MethodDelete, http.MethodPut, http.MethodOptions}
	fuzzPaths   = []string{Endpoint, Endpoint + "/v", Endpoint + "/nope", Endpoint + "/", "/other", Endpoint + "/v/x"}
)

// specCodes are the JSON-RPC and MCP error codes the face may answer bad
// input with (the stub's own are among them).
var specCodes = []int64{
	jsonrpc.CodeParseError, jsonrpc.CodeInvalidRequest, jsonrpc.CodeMethodNotFound, jsonrpc.CodeInvalidParams, jsonrpc.CodeInternalError,
	jsonrpc.CodeHeaderMismatch, jsonrpc.CodeMissingRequiredClientCapability, jsonrpc.CodeUnsupportedProtocolVersion,
}

// FuzzServeHTTP sends the Streamable HTTP handler random requests: method,
// path, body and the headers it reads (Content-Type, Accept,
// Mcp-Session-Id, Mcp-Protocol-Version, Mcp-Method, Mcp-Name, an
// Mcp-Param-*, Origin, Host on a loopback address). The face, one for all
// inputs, keeps its legacy sessions between them; a session id of "@"
// stands for the one the latest initialize opened, so that the fuzzer
// reaches a live session's requests, responses, GET stream and DELETE. It must not panic; it must answer with a status
// from the transport's set; a JSON answer must be one JSON-RPC message, an
// error with a JSON-RPC or MCP code for every refusal; an SSE answer must
// carry JSON events; and no goroutine may outlive its request (parked
// round trips end after InputTTL).
func FuzzServeHTTP(f *testing.F) {
	const meta = `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{"sampling":{}}}`
	call := func(name, args string) string {
		return `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"` + name + `","arguments":` + args + `,` + meta + `}}`
	}
	for _, s := range []struct {
		method, path                         uint8
		body                                 string
		ctype, accept, sid, version, m, name string
		param, origin, host                  string
	}{
		{0, 0, call("echo", `{}`), "application/json", "application/json, text/event-stream", "", "2026-07-28", "tools/call", "echo", "", "", ""},
		{0, 0, call("sql", `{"region":"us-west1"}`), "application/json", "application/json", "", "2026-07-28", "tools/call", "sql", "us-west1", "", "localhost:8931"},
		{0, 0, call("sample", `{}`), "application/json", "", "", "2026-07-28", "tools/call", "sample", "", "http://localhost:3000", ""},
		{0, 0, `{"jsonrpc":"2.0","id":"i","method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"f","version":"1"}}}`, "application/json", "application/json, text/event-stream", "", "", "", "", "", "", ""},
		{0, 0, `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`, "application/json", "", "bogus-session", "2025-11-25", "", "", "", "https://evil.example", "evil.example"},
		{1, 0, ``, "", "text/event-stream", "bogus-session", "2025-11-25", "", "", "", "", ""},
		{2, 0, ``, "", "", "bogus-session", "", "", "", "", "", ""},
		{0, 0, `{"jsonrpc":"2.0","id":3,"method":"subscriptions/listen","params":{"notifications":{"toolsListChanged":true},` + meta + `}}`, "application/json", "text/event-stream", "", "2026-07-28", "subscriptions/listen", "", "", "", ""},
		{0, 0, `{"jsonrpc":`, "text/plain", "*/*", "", "", "", "", "", "null", "[::1]:1"},
		{0, 0, `{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"sample","arguments":{}}}`, "application/json", "application/json, text/event-stream", "@", "2025-11-25", "", "", "", "", ""},
		{0, 0, `{"jsonrpc":"2.0","id":"gw-1","result":{"role":"assistant","content":{"type":"text","text":"hi"}}}`, "application/json", "", "@", "2025-11-25", "", "", "", "", ""},
		{1, 0, ``, "", "text/event-stream", "@", "2025-11-25", "", "", "", "", ""},
		{2, 0, ``, "", "", "@", "2025-11-25", "", "", "", "", ""},
	} {
		f.Add(s.method, s.path, []byte(s.body), s.ctype, s.accept, s.sid, s.version, s.m, s.name, s.param, s.origin, s.host)
	}
	fc := New(fuzzHandler{}, Options{
		AllowedOrigins: []string{"https://app.example"},
		Views: func(name string) (face.Handler, bool) {
			return fuzzHandler{}, name == "v"
		},
		MaxBodySize: 64 << 10,
		MaxSessions: 8,
		KeepAlive:   10 * time.Millisecond,
		InputTTL:    50 * time.Millisecond,
	})
	f.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = fc.Shutdown(ctx)
	})
	base := -1 // the goroutines before the first input, the fuzzer's own among them
	loopback := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8931}
	lastSession := "" // opened by the latest initialize
	f.Fuzz(func(t *testing.T, method, path uint8, body []byte, ctype, accept, sid, version, mcpMethod, mcpName, param, origin, host string) {
		// A stream stays open until its client goes: the client goes
		// soon, so every request ends.
		if base < 0 {
			base = runtime.NumGoroutine()
		}
		ctx, cancel := context.WithTimeout(context.WithValue(context.Background(), http.LocalAddrContextKey, loopback), 30*time.Millisecond)
		defer cancel()
		req := httptest.NewRequestWithContext(ctx, fuzzMethods[int(method)%len(fuzzMethods)], fuzzPaths[int(path)%len(fuzzPaths)], bytes.NewReader(body))
		if sid == "@" {
			sid = lastSession
		}
		for k, v := range map[string]string{
			"Content-Type": ctype, "Accept": accept, hdrSessionID: sid, hdrProtocolVersion: version,
			hdrMethod: mcpMethod, hdrName: mcpName, "Mcp-Param-Region": param, "Origin": origin,
		} {
			if v != "" {
				req.Header.Set(k, v)
			}
		}
		req.Host = "127.0.0.1:8931" // what a local client names
		if host != "" {
			req.Host = host
		}
		rec := httptest.NewRecorder()
		fc.ServeHTTP(rec, req)
		checkFuzzAnswer(t, req, rec)
		if opened := rec.Header().Get(hdrSessionID); opened != "" {
			lastSession = opened
		}

		// No goroutine outlives its request for long: a parked round
		// trip ends after InputTTL.
		deadline := time.Now().Add(2 * time.Second)
		for runtime.NumGoroutine() > base+2 {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				t.Fatalf("%d goroutines, %d before the first request\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
}

// checkFuzzAnswer checks one answer of FuzzServeHTTP.
func checkFuzzAnswer(t *testing.T, req *http.Request, rec *httptest.ResponseRecorder) {
	t.Helper()
	code, ctype, body := rec.Code, rec.Header().Get("Content-Type"), rec.Body.Bytes()
	if !slices.Contains([]int{200, 202, 204, 400, 401, 403, 404, 405, 406, 413, 503}, code) {
		t.Fatalf("%s %s: status %d\n%s", req.Method, req.URL.Path, code, body)
	}
	switch {
	case code == http.StatusMethodNotAllowed:
		if rec.Header().Get("Allow") == "" {
			t.Fatalf("405 without an Allow header")
		}
	case code == http.StatusAccepted || code == http.StatusNoContent:
		if len(body) != 0 {
			t.Fatalf("%d with a body: %s", code, body)
		}
	case ctype == "application/json":
		msg, err := jsonrpc.Decode(bytes.TrimSpace(body))
		if err != nil || msg.Kind() != jsonrpc.KindResponse {
			t.Fatalf("status %d: the JSON answer is no JSON-RPC response (%v): %s", code, err, body)
		}
		if code >= 400 && msg.Error == nil {
			t.Fatalf("status %d with a result: %s", code, body)
		}
		if msg.Error != nil && !slices.Contains(specCodes, msg.Error.Code) {
			t.Fatalf("status %d: error code %d is not a JSON-RPC or MCP code: %s", code, msg.Error.Code, body)
		}
	case strings.HasPrefix(ctype, "text/event-stream"):
		if code != http.StatusOK {
			t.Fatalf("an event stream with status %d", code)
		}
		sc := bufio.NewScanner(bytes.NewReader(body))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok && !json.Valid([]byte(data)) {
				t.Fatalf("an event that is not JSON: %q", data)
			}
		}
	case code == http.StatusOK:
		t.Fatalf("200 with Content-Type %q: %s", ctype, body)
	}
}
