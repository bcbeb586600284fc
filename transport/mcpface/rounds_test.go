package mcpface

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gwmcp/gw/transport/face"
	"github.com/gwmcp/gw/transport/jsonrpc"
)

// metaWith is a modern _meta member declaring caps.
func metaWith(caps string) string {
	return `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":` + caps + `,"io.modelcontextprotocol/clientInfo":{"name":"t","version":"1"}}`
}

var samplingMeta = metaWith(`{"sampling":{},"roots":{}}`)

// inputRequired is an InputRequiredResult as a client reads it.
type inputRequired struct {
	ResultType    string `json:"resultType"`
	InputRequests map[string]struct {
		Method string          `json:"method"`
		Params json.RawMessage `json:"params"`
	} `json:"inputRequests"`
	RequestState string `json:"requestState"`
}

func wantInputRequired(t *testing.T, m msg) inputRequired {
	t.Helper()
	var ir inputRequired
	if m.Error != nil || json.Unmarshal(m.Result, &ir) != nil || ir.ResultType != "input_required" || ir.RequestState == "" {
		t.Fatalf("want an InputRequiredResult, got %s", m.raw)
	}
	return ir
}

// retryLine is tools/call name retried with id, responses and state.
func retryLine(id, name, responses, state string) string {
	return `{"jsonrpc":"2.0","id":` + id + `,"method":"tools/call","params":{"name":"` + name + `",` + samplingMeta +
		`,"inputResponses":` + responses + `,"requestState":"` + state + `"}}`
}

const parisAnswer = `{"role":"assistant","content":{"type":"text","text":"Paris"},"model":"m"}`

// TestMRTRRoundTrip: a handler's Ask answers the client's request with an
// InputRequiredResult (the ask under a key, an unguessable requestState);
// the retry, a new id with inputResponses and the state, hands the answer
// to the waiting Ask and gets the final result. The state is then spent.
func TestMRTRRoundTrip(t *testing.T) {
	hs := newHarness(t, Options{})
	m := hs.call("1", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"sample",`+samplingMeta+`}}`)
	ir := wantInputRequired(t, m)
	q, ok := ir.InputRequests["gw-1"]
	if len(ir.InputRequests) != 1 || !ok || q.Method != "sampling/createMessage" || string(q.Params) != `{"messages":[],"maxTokens":5}` {
		t.Fatalf("inputRequests %s", m.Result)
	}
	if len(ir.RequestState) < 40 {
		t.Errorf("requestState %q is too short to be unguessable", ir.RequestState)
	}
	if hs.f.rounds.Parked() != 1 {
		t.Errorf("parked %d", hs.f.rounds.Parked())
	}
	m = hs.call("2", retryLine("2", "sample", `{"gw-1":`+parisAnswer+`}`, ir.RequestState))
	r := m.wantResult(t)
	if string(r["resultType"]) != `"complete"` || !strings.Contains(string(m.Result), "Paris") {
		t.Fatalf("final result %s", m.raw)
	}
	if hs.f.rounds.Parked() != 0 {
		t.Errorf("parked %d after the final answer", hs.f.rounds.Parked())
	}
	// Replayed: the call is gone.
	hs.call("3", retryLine("3", "sample", `{"gw-1":`+parisAnswer+`}`, ir.RequestState)).wantError(t, jsonrpc.CodeInvalidParams)
}

// TestMRTRTwoRounds: a call that asks twice gets two InputRequiredResults,
// each with its own state; an ask left unanswered in a retry is asked again.
func TestMRTRTwoRounds(t *testing.T) {
	hs := newHarness(t, Options{})
	ir := wantInputRequired(t, hs.call("1", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"twice",`+samplingMeta+`}}`))
	if ir.InputRequests["gw-1"].Method != "roots/list" {
		t.Fatalf("first round %+v", ir)
	}
	// A retry without the answer: asked again, under a new state.
	again := wantInputRequired(t, hs.call("2", retryLine("2", "twice", `{"other":{}}`, ir.RequestState)))
	if again.InputRequests["gw-1"].Method != "roots/list" || again.RequestState == ir.RequestState {
		t.Fatalf("re-asked %+v", again)
	}
	second := wantInputRequired(t, hs.call("3", retryLine("3", "twice", `{"gw-1":{"roots":[]}}`, again.RequestState)))
	if second.InputRequests["gw-2"].Method != "sampling/createMessage" || len(second.InputRequests) != 1 {
		t.Fatalf("second round %+v", second)
	}
	m := hs.call("4", retryLine("4", "twice", `{"gw-2":`+parisAnswer+`}`, second.RequestState))
	if !strings.Contains(string(m.Result), `{\"roots\":[]}`) || !strings.Contains(string(m.Result), "Paris") {
		t.Fatalf("final %s", m.raw)
	}
}

// TestMRTRBadRetries: an unknown requestState, a state retried on another
// tool, and malformed retry members are invalid params; a valid retry
// still works after them.
func TestMRTRBadRetries(t *testing.T) {
	hs := newHarness(t, Options{})
	hs.call("1", retryLine("1", "sample", `{}`, "forged")).wantError(t, jsonrpc.CodeInvalidParams)
	ir := wantInputRequired(t, hs.call("2", `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"sample",`+samplingMeta+`}}`))
	hs.call("3", retryLine("3", "echo", `{}`, ir.RequestState)).wantError(t, jsonrpc.CodeInvalidParams)
	hs.call("4", `{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"sample",`+samplingMeta+`,"requestState":7}}`).wantError(t, jsonrpc.CodeInvalidParams)
	hs.call("5", `{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"sample",`+samplingMeta+`,"inputResponses":[],"requestState":"`+ir.RequestState+`"}}`).wantError(t, jsonrpc.CodeInvalidParams)
	m := hs.call("6", retryLine("6", "sample", `{"gw-1":`+parisAnswer+`}`, ir.RequestState))
	if !strings.Contains(string(m.Result), "Paris") {
		t.Fatalf("final %s", m.raw)
	}
}

// TestMRTRExpiry: a parked call whose client does not retry in time is
// cancelled (its handler's ctx ends with ErrInputExpired) and its state is
// unknown.
func TestMRTRExpiry(t *testing.T) {
	hs := newHarness(t, Options{InputTTL: 50 * time.Millisecond})
	ir := wantInputRequired(t, hs.call("1", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"sample",`+samplingMeta+`}}`))
	deadline := time.Now().Add(5 * time.Second)
	for !contains(hs.h.saw(), "cancelled: "+ErrInputExpired.Error()) {
		if time.Now().After(deadline) {
			t.Fatalf("handler not cancelled: saw %v", hs.h.saw())
		}
		time.Sleep(5 * time.Millisecond)
	}
	hs.call("2", retryLine("2", "sample", `{"gw-1":`+parisAnswer+`}`, ir.RequestState)).wantError(t, jsonrpc.CodeInvalidParams)
}

// TestMRTRMaxParked: beyond MaxParked a call that asks is cancelled and its
// request gets an error.
func TestMRTRMaxParked(t *testing.T) {
	hs := newHarness(t, Options{MaxParked: 1})
	wantInputRequired(t, hs.call("1", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"sample",`+samplingMeta+`}}`))
	hs.call("2", `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"sample",`+samplingMeta+`}}`).wantError(t, jsonrpc.CodeInternalError)
}

// TestMRTRNotDeclared: a client that declared no sampling gets an Input
// that does not support it, and is never sent an InputRequiredResult.
func TestMRTRNotDeclared(t *testing.T) {
	hs := newHarness(t, Options{})
	hs.call("1", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"sample",`+metaWith(`{"elicitation":{}}`)+`}}`).wantError(t, jsonrpc.CodeMethodNotFound)
	hs.call("2", `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"sample",`+modernMeta+`}}`).wantError(t, jsonrpc.CodeMethodNotFound)
	if hs.f.Client().Supports("sampling/createMessage") {
		t.Error("Client supports sampling the client never declared")
	}
}

// TestMRTRCancelWhileWaiting: cancelling the request that waits for a
// call cancels the call: it runs on the face's context, not the request's.
func TestMRTRCancelWhileWaiting(t *testing.T) {
	hs := newHarness(t, Options{})
	hs.send(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"wait",` + samplingMeta + `}}`)
	if !waitFor(func() bool { return hs.f.rounds.Supports("sampling/createMessage") }) {
		t.Fatal("the call never became live")
	}
	hs.send(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}`)
	if !waitFor(func() bool { return contains(hs.h.saw(), "wait cancelled") }) {
		t.Fatalf("the call was not cancelled: %v", hs.h.saw())
	}
	if hs.f.rounds.Supports("sampling/createMessage") {
		t.Error("the cancelled call is still live")
	}
	// No answer to 1: the next line answers 2.
	hs.call("2", `{"jsonrpc":"2.0","id":2,"method":"ping","params":{`+modernMeta+`}}`).wantResult(t)
}

// TestMRTRClientAskAny: a question raised outside any request (a legacy
// server behind a modern client) rides on a request the client has in
// flight, and the answer comes back to the asker.
func TestMRTRClientAskAny(t *testing.T) {
	hs := newHarness(t, Options{})
	hs.send(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"wait",` + samplingMeta + `}}`)
	if !waitFor(func() bool {
		return hs.f.Client().Supports("sampling/createMessage") && hs.f.rounds.Supports("sampling/createMessage")
	}) {
		t.Fatal("the call never became live")
	}
	asked := make(chan string, 1)
	go func() {
		res, err := hs.f.Client().Ask(context.Background(), "sampling/createMessage", json.RawMessage(`{"maxTokens":1}`))
		if err != nil {
			asked <- err.Error()
			return
		}
		asked <- string(res)
	}()
	m := hs.next()
	if string(m.ID) != "1" {
		t.Fatalf("want the answer to 1, got %s", m.raw)
	}
	ir := wantInputRequired(t, m)
	hs.send(retryLine("2", "wait", `{"gw-1":`+parisAnswer+`}`, ir.RequestState))
	if got := <-asked; got != parisAnswer {
		t.Fatalf("the asker got %s", got)
	}
	close(hs.h.release)
	if m := hs.next(); string(m.ID) != "2" || string(m.Result) != `{"resultType":"complete","content":[]}` {
		t.Fatalf("final %s", m.raw)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func waitFor(cond func() bool) bool {
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// TestMRTRClosedWhileParked: when the connection ends, a parked call is
// cancelled (no retry can come) and Serve returns.
func TestMRTRClosedWhileParked(t *testing.T) {
	hs := newHarness(t, Options{})
	wantInputRequired(t, hs.call("1", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"sample",`+samplingMeta+`}}`))
	_ = hs.in.Close()
	select {
	case err := <-hs.served:
		hs.served <- err // for the cleanup
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
	if !contains(hs.h.saw(), "cancelled: "+ErrNoRetry.Error()) {
		t.Fatalf("parked call not cancelled: %v", hs.h.saw())
	}
}

// TestRoundsHammer: many clients at once, each through several rounds,
// some giving up midway; every call ends, nothing stays parked or live.
func TestRoundsHammer(t *testing.T) {
	r := NewRounds(RoundsOptions{TTL: time.Second, MaxParked: 1000})
	h := face.HandlerFunc(func(ctx context.Context, req *face.Request) (json.RawMessage, error) {
		var sum strings.Builder
		for i := 0; i < 3; i++ {
			res, err := req.Input.Ask(ctx, "elicitation/create", json.RawMessage(`{}`))
			if err != nil {
				return nil, err
			}
			sum.Write(res)
		}
		return json.Marshal(map[string]string{"sum": sum.String()})
	})
	var wg sync.WaitGroup
	for n := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			params := `{"name":"x",` + metaWith(`{"elicitation":{}}`)
			res, err := r.Serve(context.Background(), h, &face.Request{Method: "tools/call", Params: json.RawMessage(params + `}`)}, "o")
			for round := 0; ; round++ {
				if err != nil {
					t.Errorf("client %d: %v", n, err)
					return
				}
				var ir inputRequired
				_ = json.Unmarshal(res, &ir)
				if ir.ResultType != "input_required" {
					if string(res) != `{"sum":"111"}` {
						t.Errorf("client %d: %s", n, res)
					}
					return
				}
				if n%5 == 0 && round == 1 {
					// Gives up: cancels its retry while it waits.
					ctx, cancel := context.WithCancel(context.Background())
					cancel()
					_, _ = r.Serve(ctx, h, &face.Request{Method: "tools/call", Params: json.RawMessage(params + `,"requestState":"` + ir.RequestState + `"}`)}, "o")
					return
				}
				key := ""
				for k := range ir.InputRequests {
					key = k
				}
				retry := params + `,"inputResponses":{"` + key + `":1},"requestState":"` + ir.RequestState + `"}`
				res, err = r.Serve(context.Background(), h, &face.Request{Method: "tools/call", Params: json.RawMessage(retry)}, "o")
			}
		}()
	}
	wg.Wait()
	r.Close()
	r.Wait()
	if r.Parked() != 0 || len(r.live) != 0 {
		t.Errorf("parked %d, live %d", r.Parked(), len(r.live))
	}
}

// TestTraceHeaderOfRounds: a call that may outlive its request (one that
// can ask its client, served on a goroutine of Rounds) gets a copy of the
// request's headers, so what the face does with its own map once the
// request is over cannot reach the handler; one served inline gets the
// face's map itself (no copy on that path).
func TestTraceHeaderOfRounds(t *testing.T) {
	r := NewRounds(RoundsOptions{})
	t.Cleanup(func() { r.Close(); r.Wait() })
	seen := make(chan map[string][]string, 1)
	h := face.HandlerFunc(func(_ context.Context, req *face.Request) (json.RawMessage, error) {
		seen <- req.Trace.Header
		return json.RawMessage(`{}`), nil
	})
	for _, tt := range []struct {
		name   string
		meta   string
		copied bool
	}{
		{"rounds", samplingMeta, true},
		{"inline", metaWith(`{}`), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			header := map[string][]string{"Traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}
			req := &face.Request{Method: "tools/call", Params: json.RawMessage(`{"name":"x",` + tt.meta + `}`), Trace: face.Trace{Header: header}}
			if _, err := r.Serve(context.Background(), h, req, "o"); err != nil {
				t.Fatal(err)
			}
			got := <-seen
			header["Baggage"] = []string{"k=v"} // the face's map, changed
			if _, changed := got["Baggage"]; changed == tt.copied || len(got["Traceparent"]) != 1 {
				t.Errorf("the handler's headers %v; want a copy: %v", got, tt.copied)
			}
		})
	}
}
