package httpface

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/gwmcp/gw/transport/face"
)

const samplingMeta = `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{"sampling":{}}}`

// rpcReply is a JSON answer to a POST.
type rpcReply struct {
	Result struct {
		ResultType    string `json:"resultType"`
		InputRequests map[string]struct {
			Method string `json:"method"`
		} `json:"inputRequests"`
		RequestState string `json:"requestState"`
	} `json:"result"`
	Error *struct {
		Code int64 `json:"code"`
	} `json:"error"`
}

func decodeReply(t *testing.T, body string) rpcReply {
	t.Helper()
	var r rpcReply
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("answer %q: %v", body, err)
	}
	return r
}

func sampleRetry(id, state string) string {
	return `{"jsonrpc":"2.0","id":` + id + `,"method":"tools/call","params":{"name":"sample","arguments":{},` + samplingMeta +
		`,"inputResponses":{"gw-1":{"role":"assistant","content":{"type":"text","text":"Paris"},"model":"m"}},"requestState":"` + state + `"}}`
}

// TestModernInputRoundTrip: over HTTP a modern POST whose client declared
// sampling is answered with an InputRequiredResult (JSON) when the handler
// asks; a retry POST with the answer gets the final result. The state is
// bound to the principal and the path: another caller, or the same one on a
// view, finds nothing (-32602), and the rightful retry still works.
func TestModernInputRoundTrip(t *testing.T) {
	view := face.HandlerFunc(func(context.Context, *face.Request) (json.RawMessage, error) { return json.RawMessage(`{}`), nil })
	_, srv, _ := startFace(t, Options{
		Authenticate: TokenAuthenticator(map[string]string{"alice": "a", "bob": "b"}),
		Views:        func(name string) (face.Handler, bool) { return view, name == "v" },
	})
	url := srv.URL + Endpoint
	as := func(who string) []string {
		return append(modern("tools/call", "sample"), "Authorization", "Bearer "+who, "Accept", "application/json")
	}

	call := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"sample","arguments":{},` + samplingMeta + `}}`
	resp := post(t, context.Background(), url, call, as("a")...)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("content type %q", ct)
	}
	first := decodeReply(t, readAll(t, resp))
	if first.Result.ResultType != "input_required" || first.Result.InputRequests["gw-1"].Method != "sampling/createMessage" || len(first.Result.RequestState) < 40 {
		t.Fatalf("first answer %+v", first)
	}
	state := first.Result.RequestState

	if r := decodeReply(t, readAll(t, post(t, context.Background(), url, sampleRetry("2", state), as("b")...))); r.Error == nil || r.Error.Code != -32602 {
		t.Errorf("bob retried alice's call: %+v", r)
	}
	if r := decodeReply(t, readAll(t, post(t, context.Background(), url+"/v", sampleRetry("3", state), as("a")...))); r.Error == nil || r.Error.Code != -32602 {
		t.Errorf("a retry on a view found the call: %+v", r)
	}
	body := readAll(t, post(t, context.Background(), url, sampleRetry("4", state), as("a")...))
	if r := decodeReply(t, body); r.Result.ResultType != "complete" || !strings.Contains(body, "Paris") {
		t.Fatalf("final answer %s", body)
	}
	if r := decodeReply(t, readAll(t, post(t, context.Background(), url, sampleRetry("5", state), as("a")...))); r.Error == nil || r.Error.Code != -32602 {
		t.Errorf("a spent state was taken: %+v", r)
	}
}

// TestModernInputNotDeclared: without sampling in the request's _meta the
// handler's Input does not support it and nothing is asked.
func TestModernInputNotDeclared(t *testing.T) {
	_, srv, _ := startFace(t, Options{})
	call := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"sample","arguments":{},` + modernMeta + `}}`
	if body := readAll(t, post(t, context.Background(), srv.URL+Endpoint, call, modern("tools/call", "sample")...)); !strings.Contains(body, "cannot sample") {
		t.Errorf("answer %s", body)
	}
}

// TestModernInputShutdown: Shutdown cancels a call parked for a retry and
// returns without waiting for the client; the retry then gets 503.
func TestModernInputShutdown(t *testing.T) {
	f, srv, h := startFace(t, Options{InputTTL: time.Hour})
	call := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"sample","arguments":{},` + samplingMeta + `}}`
	first := decodeReply(t, readAll(t, post(t, context.Background(), srv.URL+Endpoint, call, modern("tools/call", "sample")...)))
	if first.Result.ResultType != "input_required" {
		t.Fatalf("first %+v", first)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := f.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	select {
	case <-h.cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the parked call was not cancelled")
	}
	if resp := post(t, context.Background(), srv.URL+Endpoint, sampleRetry("2", first.Result.RequestState), modern("tools/call", "sample")...); readAll(t, resp) == "" || resp.StatusCode != 503 {
		t.Errorf("retry after shutdown: %d", resp.StatusCode)
	}
}
