package httpface

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gwmcp/gw/transport/face"
	"github.com/gwmcp/gw/transport/jsonrpc"
	"github.com/gwmcp/gw/transport/mcpface"
)

const modernMeta = `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}`

// testHandler is a face.Handler with a few tools that exercise the face.
type testHandler struct {
	cancelled chan string // a slow call's context ended
	mu        sync.Mutex
	seen      []string // principals
}

func newTestHandler() *testHandler { return &testHandler{cancelled: make(chan string, 8)} }

func (h *testHandler) Serve(ctx context.Context, req *face.Request) (json.RawMessage, error) {
	h.mu.Lock()
	h.seen = append(h.seen, req.Principal)
	h.mu.Unlock()
	switch req.Method {
	case "tools/list":
		return json.RawMessage(`{"tools":[{"name":"echo","inputSchema":{"type":"object"}}]}`), nil
	case "resources/subscribe", "resources/unsubscribe":
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
	case "slow":
		<-ctx.Done()
		h.cancelled <- req.Principal
		return nil, ctx.Err()
	case "progress":
		for i := 1; i <= 2; i++ {
			if req.Progress == nil {
				break
			}
			req.Progress(json.RawMessage(`{"progressToken":"p","progress":` + string(rune('0'+i)) + `}`))
		}
		return json.RawMessage(`{"content":[{"type":"text","text":"done"}]}`), nil
	case "sample":
		if req.Input == nil || !req.Input.Supports("sampling/createMessage") {
			return json.RawMessage(`{"content":[{"type":"text","text":"cannot sample"}],"isError":true}`), nil
		}
		res, err := req.Input.Ask(ctx, "sampling/createMessage", json.RawMessage(`{"messages":[],"maxTokens":5}`))
		if err != nil {
			if ctx.Err() != nil {
				h.cancelled <- req.Principal
			}
			return nil, err
		}
		return json.Marshal(map[string]any{"content": []any{map[string]any{"type": "text", "text": string(res)}}})
	case "whoami":
		return json.Marshal(map[string]any{"content": []any{map[string]any{"type": "text", "text": req.Principal}}})
	case "needs_sampling": // a server refusing a client that did not declare sampling
		return nil, jsonrpc.NewError(jsonrpc.CodeMissingRequiredClientCapability, "Missing required client capability: sampling")
	}
	return json.RawMessage(`{"content":[]}`), nil
}

func startFace(t *testing.T, opts Options) (*Face, *httptest.Server, *testHandler) {
	t.Helper()
	h := newTestHandler()
	f := New(h, opts)
	srv := httptest.NewServer(f)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = f.Shutdown(ctx)
		srv.Close()
	})
	return f, srv, h
}

// post sends body with headers (name: value pairs).
func post(t *testing.T, ctx context.Context, url, body string, headers ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// modern sends a modern request with the headers a conforming client sets.
func modern(method, name string) []string {
	h := []string{hdrProtocolVersion, mcpface.ModernVersion, hdrMethod, method}
	if name != "" {
		h = append(h, hdrName, name)
	}
	return h
}

// events reads the SSE messages of resp.
func events(resp *http.Response) <-chan string {
	ch := make(chan string, 16)
	go func() {
		defer close(ch)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				ch <- data
			}
		}
	}()
	return ch
}

func next(t *testing.T, ch <-chan string) string {
	t.Helper()
	select {
	case m, ok := <-ch:
		if !ok {
			t.Fatal("stream ended")
		}
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no event")
	}
	return ""
}

func TestModernHeaders(t *testing.T) {
	_, srv, _ := startFace(t, Options{})
	url := srv.URL + Endpoint
	call := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{},` + modernMeta + `}}`
	for _, tt := range []struct {
		name    string
		body    string
		headers []string
		status  int
		want    string
	}{
		{"ok", call, modern("tools/call", "echo"), 200, `"result":{"resultType":"complete","content":[]}`},
		{"name in base64", call, modern("tools/call", "=?base64?ZWNobw==?="), 200, `"resultType":"complete"`},
		{"no version header", call, []string{hdrMethod, "tools/call", hdrName, "echo"}, 400, `"code":-32020`},
		{"version header differs", call, []string{hdrProtocolVersion, "2025-11-25", hdrMethod, "tools/call", hdrName, "echo"}, 400, `"code":-32020`},
		{"unsupported version", strings.ReplaceAll(call, "2026-07-28", "1900-01-01"), []string{hdrProtocolVersion, "1900-01-01", hdrMethod, "tools/call", hdrName, "echo"}, 400, `"code":-32022,"message":"Unsupported protocol version","data":{"requested":"1900-01-01","supported":["2026-07-28"]}`},
		{"ping is removed", `{"jsonrpc":"2.0","id":8,"method":"ping","params":{` + modernMeta + `}}`, modern("ping", ""), 404, `"code":-32601`},
		{"logging/setLevel is removed", `{"jsonrpc":"2.0","id":9,"method":"logging/setLevel","params":{"level":"info",` + modernMeta + `}}`, modern("logging/setLevel", ""), 404, `"code":-32601`},
		{"a missing client capability is the request's fault", strings.ReplaceAll(call, `"echo"`, `"needs_sampling"`), modern("tools/call", "needs_sampling"), 400, `"code":-32021`},
		{"no method header", call, []string{hdrProtocolVersion, mcpface.ModernVersion, hdrName, "echo"}, 400, `"code":-32020`},
		{"method header differs", call, modern("tools/list", "echo"), 400, `"code":-32020`},
		{"no name header", call, modern("tools/call", ""), 400, `"code":-32020`},
		{"name header differs", call, modern("tools/call", "other"), 400, `"code":-32020`},
		{"bad base64 name", call, modern("tools/call", "=?base64?!!?="), 400, `"code":-32020`},
		{"unknown method", `{"jsonrpc":"2.0","id":2,"method":"nope/x","params":{` + modernMeta + `}}`, modern("nope/x", ""), 404, `"code":-32601`},
		{"list", `{"jsonrpc":"2.0","id":3,"method":"tools/list","params":{` + modernMeta + `}}`, modern("tools/list", ""), 200, `{"resultType":"complete","ttlMs":0,"cacheScope":"private","tools":[`},
		{"discover", `{"jsonrpc":"2.0","id":4,"method":"server/discover","params":{` + modernMeta + `}}`, modern("server/discover", ""), 200, `"supportedVersions":["2026-07-28"]`},
		{"resources/subscribe is not modern", `{"jsonrpc":"2.0","id":5,"method":"resources/subscribe","params":{"uri":"x:y",` + modernMeta + `}}`, modern("resources/subscribe", ""), 404, `"code":-32601`},
		{"a session header is ignored", call, append(modern("tools/call", "echo"), hdrSessionID, "bogus"), 200, `"resultType":"complete"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp := post(t, context.Background(), url, tt.body, tt.headers...)
			body := readAll(t, resp)
			if resp.StatusCode != tt.status || !strings.Contains(body, tt.want) {
				t.Errorf("%d %s; want %d with %s", resp.StatusCode, body, tt.status, tt.want)
			}
			if resp.Header.Get(hdrSessionID) != "" {
				t.Errorf("a modern answer carries a session id")
			}
		})
	}
}

func TestMalformedAndLimits(t *testing.T) {
	_, srv, _ := startFace(t, Options{MaxBodySize: 1024})
	url := srv.URL + Endpoint
	for _, tt := range []struct {
		name, body string
		status     int
		want       string
	}{
		{"not JSON", `{"jsonrpc":`, 400, `"id":null,"error":{"code":-32700`},
		{"not JSON-RPC", `{"jsonrpc":"1.0","id":7,"method":"x"}`, 400, `"id":7,"error":{"code":-32600`},
		{"too deep", `{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"echo","arguments":{"a":` + strings.Repeat("[", 126) + strings.Repeat("]", 126) + `}}}`, 400, `"id":8,"error":{"code":-32600,"message":"gw: message nests objects and arrays deeper than 128`},
		{"too large", `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"pad":"` + strings.Repeat("x", 2000) + `"}}`, 413, `"code":-32600`},
		{"legacy request without a session", `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`, 400, `Mcp-Session-Id header is required`},
	} {
		resp := post(t, context.Background(), url, tt.body)
		if body := readAll(t, resp); resp.StatusCode != tt.status || !strings.Contains(body, tt.want) {
			t.Errorf("%s: %d %s; want %d with %s", tt.name, resp.StatusCode, body, tt.status, tt.want)
		}
	}
	for _, m := range []string{http.MethodGet, http.MethodDelete} {
		req, _ := http.NewRequest(m, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		readAll(t, resp)
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("%s without a session: %d; want 405", m, resp.StatusCode)
		}
	}
	resp := post(t, context.Background(), srv.URL+"/other", `{}`)
	if readAll(t, resp); resp.StatusCode != 404 {
		t.Errorf("another path: %d", resp.StatusCode)
	}
}

func TestOriginAndHost(t *testing.T) {
	_, srv, _ := startFace(t, Options{AllowedOrigins: []string{"https://app.example.com"}})
	url := srv.URL + Endpoint
	list := `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{` + modernMeta + `}}`
	for _, tt := range []struct {
		origin, host string
		status       int
	}{
		{"", "", 200},
		{"http://localhost:3000", "", 200},
		{"http://127.0.0.1:9", "", 200},
		{"https://app.example.com", "", 200},
		{"https://evil.example.com", "", 403},
		{"null", "", 403},
		// DNS rebinding: the page's origin and Host are the attacker's name.
		{"http://rebind.example:8931", "rebind.example:8931", 403},
		{"", "rebind.example:8931", 403},
	} {
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(list))
		for k, v := range map[string]string{hdrProtocolVersion: mcpface.ModernVersion, hdrMethod: "tools/list", "Origin": tt.origin} {
			if v != "" {
				req.Header.Set(k, v)
			}
		}
		if tt.host != "" {
			req.Host = tt.host
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if body := readAll(t, resp); resp.StatusCode != tt.status {
			t.Errorf("origin %q host %q: %d %s; want %d", tt.origin, tt.host, resp.StatusCode, body, tt.status)
		}
	}
}

func TestBearerTokens(t *testing.T) {
	_, srv, h := startFace(t, Options{Authenticate: TokenAuthenticator(map[string]string{"alice": "s3cret-a", "bob": "s3cret-b"})})
	url := srv.URL + Endpoint
	call := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","arguments":{},` + modernMeta + `}}`
	for _, tt := range []struct {
		auth, challenge string
		status          int
	}{
		{"", `Bearer realm="gw"`, 401},
		{"Bearer wrong", `Bearer realm="gw", error="invalid_token"`, 401},
		{"Basic s3cret-a", `Bearer realm="gw", error="invalid_token"`, 401},
		{"Bearer s3cret-a", "", 200},
		{"bearer s3cret-b", "", 200},
	} {
		resp := post(t, context.Background(), url, call, append(modern("tools/call", "whoami"), "Authorization", tt.auth)...)
		body := readAll(t, resp)
		if resp.StatusCode != tt.status || resp.Header.Get("WWW-Authenticate") != tt.challenge {
			t.Errorf("%q: %d %q %s", tt.auth, resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if strings.Join(h.seen, ",") != "alice,bob" {
		t.Errorf("principals the handler saw: %v", h.seen)
	}
}

func TestAnonymousPrincipal(t *testing.T) {
	_, srv, h := startFace(t, Options{})
	call := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","arguments":{},` + modernMeta + `}}`
	if body := readAll(t, post(t, context.Background(), srv.URL+Endpoint, call, modern("tools/call", "whoami")...)); !strings.Contains(body, `"text":"anonymous"`) {
		t.Errorf("without tokens: %s (seen %v)", body, h.seen)
	}
}

// TestModernProgressSSE: a request with a progressToken whose progress
// comes before its result is answered with an SSE stream.
func TestModernProgressSSE(t *testing.T) {
	_, srv, _ := startFace(t, Options{})
	body := `{"jsonrpc":"2.0","id":"c1","method":"tools/call","params":{"name":"progress","arguments":{},"_meta":{"progressToken":"p","io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}`
	resp := post(t, context.Background(), srv.URL+Endpoint, body, modern("tools/call", "progress")...)
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" || resp.Header.Get("X-Accel-Buffering") != "no" {
		t.Fatalf("content type %q", ct)
	}
	ev := events(resp)
	for i := 1; i <= 2; i++ {
		if m := next(t, ev); !strings.Contains(m, `"method":"notifications/progress"`) || !strings.Contains(m, `"progress":`+string(rune('0'+i))) {
			t.Fatalf("progress %d: %s", i, m)
		}
	}
	if m := next(t, ev); !strings.Contains(m, `"id":"c1","result":{"resultType":"complete","content":[{"type":"text","text":"done"}]}`) {
		t.Fatalf("result: %s", m)
	}
	if m, ok := <-ev; ok {
		t.Fatalf("the stream goes on after the result: %s", m)
	}
	// Without a progressToken the same call answers JSON.
	plain := strings.Replace(body, `"progressToken":"p",`, "", 1)
	resp = post(t, context.Background(), srv.URL+Endpoint, plain, modern("tools/call", "progress")...)
	if b := readAll(t, resp); resp.Header.Get("Content-Type") != "application/json" || !strings.Contains(b, `"text":"done"`) {
		t.Fatalf("without a token: %s %s", resp.Header.Get("Content-Type"), b)
	}
}

// TestModernDisconnectCancels: the client closing its request cancels the
// handler's context.
func TestModernDisconnectCancels(t *testing.T) {
	_, srv, h := startFace(t, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+Endpoint,
			strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"slow","arguments":{},`+modernMeta+`}}`))
		for i, hs := 0, modern("tools/call", "slow"); i < len(hs); i += 2 {
			req.Header.Set(hs[i], hs[i+1])
		}
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	time.Sleep(100 * time.Millisecond) // the call is in the handler
	cancel()
	select {
	case <-h.cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the handler's context did not end when the client went away")
	}
	<-done
}

// TestListen: subscriptions/listen acknowledges, then carries only the
// kinds it asked for, with its subscriptionId, and ends with its result
// when the face shuts down.
func TestListen(t *testing.T) {
	f, srv, _ := startFace(t, Options{})
	body := `{"jsonrpc":"2.0","id":9,"method":"subscriptions/listen","params":{"notifications":{"toolsListChanged":true,"resourceSubscriptions":["file:///a"]},` + modernMeta + `}}`
	resp := post(t, context.Background(), srv.URL+Endpoint, body, modern("subscriptions/listen", "")...)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("listen: %d %s", resp.StatusCode, readAll(t, resp))
	}
	ev := events(resp)
	if m := next(t, ev); !strings.Contains(m, `"notifications/subscriptions/acknowledged"`) || !strings.Contains(m, `"io.modelcontextprotocol/subscriptionId":9`) || !strings.Contains(m, `"resourceSubscriptions":["file:///a"]`) {
		t.Fatalf("ack: %s", m)
	}
	f.ListChanged(mcpface.KindPrompts) // not asked for
	f.ListChanged(mcpface.KindTools)
	if m := next(t, ev); !strings.Contains(m, `"method":"notifications/tools/list_changed","params":{"_meta":{"io.modelcontextprotocol/subscriptionId":9}}`) {
		t.Fatalf("list_changed: %s", m)
	}
	f.ResourceUpdated("file:///b") // not subscribed
	f.ResourceUpdated("file:///a")
	if m := next(t, ev); !strings.Contains(m, `"notifications/resources/updated"`) || !strings.Contains(m, `"uri":"file:///a"`) {
		t.Fatalf("updated: %s", m)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	go func() { _ = f.Shutdown(ctx) }()
	if m := next(t, ev); !strings.Contains(m, `"id":9,"result":{"_meta":{"io.modelcontextprotocol/subscriptionId":9},"resultType":"complete"}`) {
		t.Fatalf("graceful end: %s", m)
	}
}

// legacyInit starts a legacy session and returns its id.
func legacyInit(t *testing.T, url, caps string, headers ...string) string {
	t.Helper()
	resp := post(t, context.Background(), url, `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":`+caps+`,"clientInfo":{"name":"t","version":"1"}}}`, headers...)
	body := readAll(t, resp)
	sid := resp.Header.Get(hdrSessionID)
	if resp.StatusCode != 200 || len(sid) < 32 || !strings.Contains(body, `"protocolVersion":"2025-11-25"`) {
		t.Fatalf("initialize: %d %q %s", resp.StatusCode, sid, body)
	}
	return sid
}

func TestLegacySessionLifecycle(t *testing.T) {
	f, srv, _ := startFace(t, Options{})
	url := srv.URL + Endpoint
	sid := legacyInit(t, url, `{}`)
	if other := legacyInit(t, url, `{}`); other == sid {
		t.Fatal("two sessions share an id")
	}
	list := `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`
	for _, tt := range []struct {
		name    string
		headers []string
		status  int
		want    string
	}{
		{"no session", nil, 400, "-32600"},
		{"unknown session", []string{hdrSessionID, "nope"}, 404, "no such session"},
		{"wrong version header", []string{hdrSessionID, sid, hdrProtocolVersion, "2025-06-18"}, 400, "is not the session's version"},
		{"ok", []string{hdrSessionID, sid, hdrProtocolVersion, "2025-11-25"}, 200, `"result":{"tools":[`},
	} {
		resp := post(t, context.Background(), url, list, tt.headers...)
		if body := readAll(t, resp); resp.StatusCode != tt.status || !strings.Contains(body, tt.want) {
			t.Errorf("%s: %d %s", tt.name, resp.StatusCode, body)
		}
	}
	resp := post(t, context.Background(), url, `{"jsonrpc":"2.0","method":"notifications/initialized"}`, hdrSessionID, sid)
	if readAll(t, resp); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("initialized: %d", resp.StatusCode)
	}
	resp = post(t, context.Background(), url, `{"jsonrpc":"2.0","id":2,"method":"resources/subscribe","params":{"uri":"file:///a"}}`, hdrSessionID, sid)
	if b := readAll(t, resp); !strings.Contains(b, `"result":{}`) {
		t.Fatalf("subscribe: %s", b)
	}

	// The GET stream carries list changes and the session's updates.
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set(hdrSessionID, sid)
	req.Header.Set("Accept", "text/event-stream")
	get, err := http.DefaultClient.Do(req)
	if err != nil || get.StatusCode != 200 {
		t.Fatalf("GET: %v %v", err, get.Status)
	}
	second, _ := http.DefaultClient.Do(req.Clone(context.Background()))
	if readAll(t, second); second.StatusCode != http.StatusConflict {
		t.Errorf("a second GET stream: %d; want 409", second.StatusCode)
	}
	ev := events(get)
	waitFor(t, func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return len(f.streams) == 1
	})
	f.ListChanged(mcpface.KindTools)
	if m := next(t, ev); m != `{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}` {
		t.Fatalf("list_changed: %s", m)
	}
	f.ResourceUpdated("file:///b")
	f.ResourceUpdated("file:///a")
	if m := next(t, ev); !strings.Contains(m, `"params":{"uri":"file:///a"}`) {
		t.Fatalf("updated: %s", m)
	}

	// DELETE ends the session and its stream.
	del, _ := http.NewRequest(http.MethodDelete, url, nil)
	del.Header.Set(hdrSessionID, sid)
	resp, err = http.DefaultClient.Do(del)
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE: %v %v", err, resp.Status)
	}
	if _, ok := <-ev; ok {
		t.Error("the GET stream outlived its session")
	}
	resp = post(t, context.Background(), url, list, hdrSessionID, sid)
	if readAll(t, resp); resp.StatusCode != 404 {
		t.Errorf("after DELETE: %d; want 404", resp.StatusCode)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.uriRefs) != 0 {
		t.Errorf("subscriptions left after the session ended: %v", f.uriRefs)
	}
}

// TestLegacySessionOwner: a session is its principal's: another token gets
// 404 with its id.
func TestLegacySessionOwner(t *testing.T) {
	_, srv, _ := startFace(t, Options{Authenticate: TokenAuthenticator(map[string]string{"alice": "ta", "bob": "tb"})})
	url := srv.URL + Endpoint
	sid := legacyInit(t, url, `{}`, "Authorization", "Bearer ta")
	resp := post(t, context.Background(), url, `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`, hdrSessionID, sid, "Authorization", "Bearer tb")
	if readAll(t, resp); resp.StatusCode != 404 {
		t.Errorf("bob using alice's session: %d; want 404", resp.StatusCode)
	}
}

// TestLegacySampling: a server's sampling request while serving a call
// goes to the client that declared sampling, on the call's own stream; the
// client POSTs its response.
func TestLegacySampling(t *testing.T) {
	_, srv, _ := startFace(t, Options{})
	url := srv.URL + Endpoint
	sid := legacyInit(t, url, `{"sampling":{}}`)
	resp := post(t, context.Background(), url, `{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"sample","arguments":{}}}`, hdrSessionID, sid)
	ev := events(resp)
	m := next(t, ev)
	if !strings.Contains(m, `"id":"gw-1","method":"sampling/createMessage"`) {
		t.Fatalf("want gw's sampling request, got %s", m)
	}
	ack := post(t, context.Background(), url, `{"jsonrpc":"2.0","id":"gw-1","result":{"role":"assistant","model":"m","content":{"type":"text","text":"Paris"}}}`, hdrSessionID, sid)
	if readAll(t, ack); ack.StatusCode != http.StatusAccepted {
		t.Fatalf("response POST: %d", ack.StatusCode)
	}
	if m := next(t, ev); !strings.Contains(m, `"id":5,"result"`) || !strings.Contains(m, "Paris") {
		t.Fatalf("result: %s", m)
	}
	// A client that declared nothing is not asked.
	sid2 := legacyInit(t, url, `{}`)
	b := readAll(t, post(t, context.Background(), url, `{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"sample","arguments":{}}}`, hdrSessionID, sid2))
	if !strings.Contains(b, "cannot sample") {
		t.Fatalf("no capability: %s", b)
	}
}

// TestLegacyCancel: notifications/cancelled cancels the request's context.
func TestLegacyCancel(t *testing.T) {
	_, srv, h := startFace(t, Options{})
	url := srv.URL + Endpoint
	sid := legacyInit(t, url, `{}`)
	done := make(chan string, 1)
	go func() {
		done <- readAll(t, post(t, context.Background(), url, `{"jsonrpc":"2.0","id":"s","method":"tools/call","params":{"name":"slow","arguments":{}}}`, hdrSessionID, sid))
	}()
	time.Sleep(100 * time.Millisecond)
	resp := post(t, context.Background(), url, `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"s"}}`, hdrSessionID, sid)
	if readAll(t, resp); resp.StatusCode != 202 {
		t.Fatalf("cancelled: %d", resp.StatusCode)
	}
	select {
	case <-h.cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the call was not cancelled")
	}
	<-done
}

// TestSessionFlood: sessions are bounded; an idle one is evicted for a new
// one, busy ones are not, and idle ones expire.
func TestSessionFlood(t *testing.T) {
	f, srv, _ := startFace(t, Options{MaxSessions: 3, SessionIdle: time.Hour})
	url := srv.URL + Endpoint
	var ids []string
	for range 3 {
		ids = append(ids, legacyInit(t, url, `{}`))
	}
	// The first becomes the least recently used.
	for _, id := range ids[1:] {
		readAll(t, post(t, context.Background(), url, `{"jsonrpc":"2.0","id":1,"method":"ping"}`, hdrSessionID, id))
	}
	legacyInit(t, url, `{}`)
	if resp := post(t, context.Background(), url, `{"jsonrpc":"2.0","id":1,"method":"ping"}`, hdrSessionID, ids[0]); readAll(t, resp) == "" || resp.StatusCode != 404 {
		t.Errorf("the LRU session survived: %d", resp.StatusCode)
	}
	// Every session busy (a GET stream each): the next gets 503.
	f.mu.Lock()
	for _, s := range f.sessions {
		s.busy++
	}
	f.mu.Unlock()
	resp := post(t, context.Background(), url, `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{}}}`)
	if readAll(t, resp); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("full of busy sessions: %d; want 503", resp.StatusCode)
	}
	if n := f.Shed(); n != 1 {
		t.Errorf("Shed() = %d after one busy refusal; want 1", n)
	}
	// Idle ones expire.
	f.mu.Lock()
	for _, s := range f.sessions {
		s.busy--
	}
	f.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	f.mu.Unlock()
	legacyInit(t, url, `{}`)
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.sessions) != 1 {
		t.Errorf("%d sessions after expiry; want 1", len(f.sessions))
	}
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestViews: a view is served at /mcp/{name}; an unknown one is 404; a
// session belongs to the path it began on.
func TestViews(t *testing.T) {
	view := face.HandlerFunc(func(context.Context, *face.Request) (json.RawMessage, error) {
		return json.RawMessage(`{"tools":[{"name":"only_in_view"}]}`), nil
	})
	_, srv, _ := startFace(t, Options{Views: func(name string) (face.Handler, bool) { return view, name == "short" }})
	list := `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{` + modernMeta + `}}`
	if b := readAll(t, post(t, context.Background(), srv.URL+Endpoint+"/short", list, modern("tools/list", "")...)); !strings.Contains(b, "only_in_view") {
		t.Errorf("view: %s", b)
	}
	if resp := post(t, context.Background(), srv.URL+Endpoint+"/nope", list, modern("tools/list", "")...); readAll(t, resp) == "" || resp.StatusCode != 404 {
		t.Errorf("unknown view: %d", resp.StatusCode)
	}
	sid := legacyInit(t, srv.URL+Endpoint, `{}`)
	if resp := post(t, context.Background(), srv.URL+Endpoint+"/short", `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`, hdrSessionID, sid); readAll(t, resp) == "" || resp.StatusCode != 404 {
		t.Errorf("a /mcp session on /mcp/short: %d; want 404", resp.StatusCode)
	}
}

// TestLegacyLogs: servers' log messages go out on a legacy session's GET
// stream at or above the level it set; a bad level is refused.
func TestLegacyLogs(t *testing.T) {
	f, srv, _ := startFace(t, Options{})
	url := srv.URL + Endpoint
	sid := legacyInit(t, url, `{}`)
	bad := post(t, context.Background(), url, `{"jsonrpc":"2.0","id":1,"method":"logging/setLevel","params":{"level":"loud"}}`, hdrSessionID, sid)
	if b := readAll(t, bad); !strings.Contains(b, "-32602") {
		t.Fatalf("a bad level: %s", b)
	}
	ok := post(t, context.Background(), url, `{"jsonrpc":"2.0","id":2,"method":"logging/setLevel","params":{"level":"warning"}}`, hdrSessionID, sid)
	if b := readAll(t, ok); !strings.Contains(b, `"result":{}`) {
		t.Fatalf("setLevel: %s", b)
	}
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set(hdrSessionID, sid)
	req.Header.Set("Accept", "text/event-stream")
	get, err := http.DefaultClient.Do(req)
	if err != nil || get.StatusCode != 200 {
		t.Fatalf("GET: %v %v", err, get.Status)
	}
	defer get.Body.Close()
	ev := events(get)
	waitFor(t, func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return len(f.streams) == 1
	})
	f.Log(json.RawMessage(`{"level":"info","logger":"a","data":"quiet"}`))
	f.Log(json.RawMessage(`{"level":"error","logger":"a","data":"loud"}`))
	if m := next(t, ev); !strings.Contains(m, `"method":"notifications/message"`) || !strings.Contains(m, `"loud"`) {
		t.Fatalf("want the error message only, got %s", m)
	}
}

// headersHandler is a testHandler whose tool "sql" mirrors its region
// argument into Mcp-Param-Region and its nested opts.limit into
// Mcp-Param-Limit.
type headersHandler struct{ *testHandler }

func (headersHandler) ParamHeaders(tool string) map[string][]string {
	if tool != "sql" {
		return nil
	}
	return map[string][]string{"Region": {"region"}, "Limit": {"opts", "limit"}}
}

func TestParamHeaders(t *testing.T) {
	f := New(headersHandler{newTestHandler()}, Options{})
	srv := httptest.NewServer(f)
	t.Cleanup(func() { srv.Close(); _ = f.Shutdown(context.Background()) })
	url := srv.URL + Endpoint
	body := func(args string) string {
		return `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"sql","arguments":` + args + `,` + modernMeta + `}}`
	}
	for _, tt := range []struct {
		name    string
		args    string
		headers []string
		status  int
	}{
		{"both match", `{"region":"us-west1","opts":{"limit":5}}`, []string{"Mcp-Param-Region", "us-west1", "Mcp-Param-Limit", "5"}, 200},
		{"base64 matches", `{"region":"Hello, 世界"}`, []string{"Mcp-Param-Region", "=?base64?SGVsbG8sIOS4lueVjA==?="}, 200},
		{"absent argument, absent header", `{}`, nil, 200},
		{"value differs", `{"region":"us-west1"}`, []string{"Mcp-Param-Region", "eu-west1"}, 400},
		{"header missing", `{"region":"us-west1"}`, nil, 400},
		{"header without its argument", `{}`, []string{"Mcp-Param-Region", "us-west1"}, 400},
		{"bad base64", `{"region":"x"}`, []string{"Mcp-Param-Region", "=?base64?!!?="}, 400},
		{"an unknown header is ignored", `{"region":"x"}`, []string{"Mcp-Param-Region", "x", "Mcp-Param-Other", "y"}, 200},
	} {
		resp := post(t, context.Background(), url, body(tt.args), append(modern("tools/call", "sql"), tt.headers...)...)
		b := readAll(t, resp)
		if resp.StatusCode != tt.status || tt.status == 400 && !strings.Contains(b, "-32020") {
			t.Errorf("%s: %d %s; want %d", tt.name, resp.StatusCode, b, tt.status)
		}
	}
}

// TestParamHeaderValues: the headers ParamHeaderValues makes for a call's
// arguments are the ones the face accepts, sent over HTTP (which trims
// spaces at a value's ends), whatever the string: non-ASCII, spaces at the
// ends, a control character, text that looks encoded.
func TestParamHeaderValues(t *testing.T) {
	f := New(headersHandler{newTestHandler()}, Options{})
	srv := httptest.NewServer(f)
	t.Cleanup(func() { srv.Close(); _ = f.Shutdown(context.Background()) })
	annotated := headersHandler{}.ParamHeaders("sql")
	for _, tt := range []struct {
		args string
		want map[string]string
	}{
		{`{"region":"us-west1","opts":{"limit":5}}`, map[string]string{"Region": "us-west1", "Limit": "5"}},
		{`{"region":"Hello, 世界"}`, map[string]string{"Region": "=?base64?SGVsbG8sIOS4lueVjA==?="}},
		{`{"region":" padded "}`, map[string]string{"Region": "=?base64?IHBhZGRlZCA=?="}},
		{`{"region":"tab\there"}`, map[string]string{"Region": "=?base64?dGFiCWhlcmU=?="}},
		{`{"region":"=?base64?eA==?="}`, map[string]string{"Region": "=?base64?PT9iYXNlNjQ/ZUE9PT89?="}},
		{`{"region":"a\u0041"}`, map[string]string{"Region": "aA"}},
		{`{"region":true,"opts":{"limit":-7}}`, map[string]string{"Region": "true", "Limit": "-7"}},
		{`{"region":null,"opts":{}}`, map[string]string{}},
		{`{"opts":null}`, map[string]string{}},
		{`{}`, map[string]string{}},
	} {
		got := ParamHeaderValues(json.RawMessage(tt.args), annotated)
		if !maps.Equal(got, tt.want) {
			t.Errorf("%s: %v; want %v", tt.args, got, tt.want)
		}
		headers := modern("tools/call", "sql")
		for name, v := range got {
			headers = append(headers, "Mcp-Param-"+name, v)
		}
		body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"sql","arguments":` + tt.args + `,` + modernMeta + `}}`
		resp := post(t, context.Background(), srv.URL+Endpoint, body, headers...)
		if b := readAll(t, resp); resp.StatusCode != 200 {
			t.Errorf("%s: the face answers %d %s", tt.args, resp.StatusCode, b)
		}
	}
	// An argument with no header form gets no header (the face refuses
	// the call whatever the client sends).
	if got := ParamHeaderValues(json.RawMessage(`{"region":{"a":1},"opts":{"limit":1.5}}`), annotated); len(got) != 0 {
		t.Errorf("headers for arguments with no header form: %v", got)
	}
}

// TestGuard: another endpoint behind the face's checks is refused as /mcp
// is (bad Origin, missing or wrong token) and served with a good token.
func TestGuard(t *testing.T) {
	f := New(newTestHandler(), Options{Authenticate: TokenAuthenticator(map[string]string{"prometheus": "scrape-me"})})
	srv := httptest.NewServer(f.Guard(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("series"))
	})))
	defer srv.Close()
	defer func() { _ = f.Shutdown(context.Background()) }()
	for _, tt := range []struct {
		headers []string
		want    int
	}{
		{nil, http.StatusUnauthorized},
		{[]string{"Authorization", "Bearer wrong"}, http.StatusUnauthorized},
		{[]string{"Authorization", "Bearer scrape-me", "Origin", "https://evil.example"}, http.StatusForbidden},
		{[]string{"Authorization", "Bearer scrape-me"}, http.StatusOK},
	} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/metrics", nil)
		for i := 0; i+1 < len(tt.headers); i += 2 {
			req.Header.Set(tt.headers[i], tt.headers[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body := readAll(t, resp)
		if resp.StatusCode != tt.want || tt.want == http.StatusOK && body != "series" {
			t.Errorf("%v: %d %q; want %d", tt.headers, resp.StatusCode, body, tt.want)
		}
	}
}
