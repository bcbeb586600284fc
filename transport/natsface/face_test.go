package natsface

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gwmcp/gw/transport/jsonrpc"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
)

// TestCallsThroughMicro covers each request kind, error replies with codes and micro headers,
// name checks and the micro service's info and stats.
func TestCallsThroughMicro(t *testing.T) {
	s := startServer(t)
	nc := connect(t, s)
	g := newFakeGateway("gw1")
	startFace(t, nc, g, Options{Version: "1.2.3"}, toolNames...)
	cl := connect(t, s)

	// tools/list, with an empty body (works with `nats req` and no payload).
	msg := request(t, cl, "mcp.v1.req.alice.tools.list", "", nil)
	if e := replyError(t, msg); e != nil {
		t.Fatal(e)
	}
	var list struct{ Tools []struct{ Name string } }
	if err := json.Unmarshal(msg.Data, &list); err != nil || len(list.Tools) != len(toolNames) {
		t.Fatalf("tools/list: %s (%v)", msg.Data, err)
	}
	if got := msg.Header.Get(HeaderGateway); got != "gw1" {
		t.Errorf("Mcp-Gateway = %q", got)
	}

	// tools/call, including a name that needs encoding.
	for _, tool := range []string{"echo", "ns.dotted tool"} {
		msg = request(t, cl, callSubject("alice", tool), callBody(tool, map[string]any{"text": "hi"}), nil)
		if e := replyError(t, msg); e != nil {
			t.Fatalf("%s: %v", tool, e)
		}
		if got, want := resultText(t, msg.Data), "gw1 says hi to alice via tools/call"; got != want {
			t.Errorf("%s: %q, want %q", tool, got, want)
		}
	}
	if got := callSubject("alice", "ns.dotted tool"); got != "mcp.v1.req.alice.tools.call.ns~2Edotted~20tool" {
		t.Errorf("subject %q", got)
	}

	// prompts/get and servers/list, shared and at this gateway.
	msg = request(t, cl, "mcp.v1.req.bob.prompts.get.greet", `{"name":"greet"}`, nil)
	if got := resultText(t, msg.Data); got != "prompt greet for bob" {
		t.Errorf("prompts/get: %q", got)
	}
	msg = request(t, cl, "mcp.v1.req.bob.at.gw1.servers.list", "{}", nil)
	if e := replyError(t, msg); e != nil || !strings.Contains(string(msg.Data), "notes") {
		t.Errorf("servers/list: %s %v", msg.Data, e)
	}
	msg = request(t, cl, "mcp.v1.req.bob.at.gw1.tools.call.echo", callBody("echo", map[string]any{"text": "yo"}), nil)
	if got := resultText(t, msg.Data); got != "gw1 says yo to bob via tools/call" {
		t.Errorf("at-call: %q", got)
	}

	// Errors: the handler's own code and data, and the face's checks.
	cases := []struct {
		name, subject, body string
		code                int64
		msg                 string
	}{
		{"handler error", callSubject("alice", "fail"), callBody("fail", nil), -32001, "the tool failed"},
		{"name mismatch", callSubject("alice", "echo"), callBody("fail", nil), jsonrpc.CodeInvalidParams, "does not match"},
		{"no name", callSubject("alice", "echo"), `{"arguments":{}}`, jsonrpc.CodeInvalidParams, "params.name"},
		{"name case", callSubject("alice", "echo"), `{"Name":"echo"}`, jsonrpc.CodeInvalidParams, "params.name"},
		{"duplicate name", callSubject("alice", "echo"), `{"name":"echo","name":"fail"}`, jsonrpc.CodeInvalidParams, "duplicate"},
		{"not json", callSubject("alice", "echo"), `{"name":`, jsonrpc.CodeParseError, "request body"},
		{"too deep", callSubject("alice", "echo"), `{"name":"echo","arguments":{"a":` + strings.Repeat("[", 200) + strings.Repeat("]", 200) + `}}`, jsonrpc.CodeInvalidRequest, "deeper than 128"},
		{"past encoding/json's limit", callSubject("alice", "echo"), `{"name":"echo","arguments":` + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + `}`, jsonrpc.CodeInvalidRequest, "deeper than 128"},
		{"not an object", "mcp.v1.req.alice.tools.list", `[1]`, jsonrpc.CodeInvalidParams, "not a JSON object"},
		{"bad token", "mcp.v1.req.alice.at.gw1.tools.call.a~2e", `{"name":"a."}`, jsonrpc.CodeInvalidParams, "not a valid encoding"},
		{"prompt mismatch", "mcp.v1.req.alice.prompts.get.greet", `{"name":"other"}`, jsonrpc.CodeInvalidParams, "does not match"},
	}
	for _, c := range cases {
		msg := request(t, cl, c.subject, c.body, nil)
		e := replyError(t, msg)
		if e == nil || e.Code != c.code || !strings.Contains(e.Message, c.msg) {
			t.Errorf("%s: got %s, want code %d and %q", c.name, msg.Data, c.code, c.msg)
		}
	}
	msg = request(t, cl, callSubject("alice", "fail"), callBody("fail", nil), nil)
	if e := replyError(t, msg); string(e.Data) != `{"why":"test"}` || msg.Header.Get(micro.ErrorHeader) != "the tool failed" {
		t.Errorf("error data/header lost: %s %v", msg.Data, msg.Header)
	}

	// A tool this gateway does not host has no endpoint: no responders.
	if _, err := requestErr(cl, callSubject("alice", "nope"), callBody("nope", nil), nil, 2*time.Second); !errors.Is(err, nats.ErrNoResponders) {
		t.Errorf("unhosted tool: %v", err)
	}

	// micro: the service is visible with the gateway in metadata, endpoints and real stats.
	msg = request(t, cl, "$SRV.INFO.gw", "", nil)
	var info micro.Info
	if err := json.Unmarshal(msg.Data, &info); err != nil {
		t.Fatal(err)
	}
	if info.Name != "gw" || info.Version != "1.2.3" || info.Metadata["gateway"] != "gw1" {
		t.Errorf("info: %+v", info.ServiceIdentity)
	}
	// The method endpoints only: hosted tools are plain subscriptions, so that INFO stays small.
	for _, ep := range info.Endpoints {
		if strings.Contains(ep.Subject, ".tools.call.") && !strings.Contains(ep.Subject, ".at.") {
			t.Errorf("a hosted tool is a micro endpoint: %+v", ep)
		}
	}
	msg = request(t, cl, "$SRV.STATS.gw", "", nil)
	var stats micro.Stats
	if err := json.Unmarshal(msg.Data, &stats); err != nil {
		t.Fatal(err)
	}
	// The hosted tools' counters are summed in at-tools-call's data.
	found := false
	for _, ep := range stats.Endpoints {
		if ep.Name != "at-tools-call" {
			continue
		}
		found = true
		var d ToolCallStats
		if err := json.Unmarshal(ep.Data, &d); err != nil || d.Hosted.Errors < 2 || d.Hosted.Served < 1 || d.Tools != len(toolNames) {
			t.Errorf("stats of at-tools-call: %+v %s", ep, ep.Data)
		}
	}
	if !found {
		t.Errorf("no at-tools-call in stats: %s", msg.Data)
	}
}

// TestQueueGroupBalancing runs two gateways on one server: calls spread over both, each runs
// exactly once, a tool only one gateway hosts goes there, and at.{gw} reaches the named one.
func TestQueueGroupBalancing(t *testing.T) {
	s := startServer(t)
	g1, g2 := newFakeGateway("gw1"), newFakeGateway("gw2")
	// Room for every call at once: shedding is tested elsewhere, and here a
	// 503 would read as a lost call.
	startFace(t, connect(t, s), g1, Options{Gateway: "gw1", MaxConcurrent: 512}, "echo")
	startFace(t, connect(t, s), g2, Options{Gateway: "gw2", MaxConcurrent: 512}, "echo", "sleep")
	cl := connect(t, s)

	const n = 200
	var wg sync.WaitGroup
	var answered atomic.Int64
	for i := range n {
		wg.Go(func() {
			msg, err := requestErr(cl, callSubject("alice", "echo"), callBody("echo", map[string]any{"text": i}), nil, 10*time.Second)
			if err != nil {
				t.Errorf("call %d: %v", i, err)
				return
			}
			if rerr := replyError(t, msg); rerr != nil {
				t.Errorf("call %d: error reply %v", i, rerr)
				return
			}
			answered.Add(1)
		})
	}
	wg.Wait()
	e1, e2 := g1.count("echo"), g2.count("echo")
	if e1+e2 != n || answered.Load() != n {
		t.Fatalf("executions %d + %d, answered %d; want %d each (no double execution)", e1, e2, answered.Load(), n)
	}
	if e1 == 0 || e2 == 0 {
		t.Errorf("no balancing: gw1 %d, gw2 %d", e1, e2)
	}
	for range 20 {
		msg := request(t, cl, callSubject("alice", "sleep"), callBody("sleep", map[string]any{"ms": 0}), nil)
		if msg.Header.Get(HeaderGateway) != "gw2" {
			t.Fatalf("sleep answered by %q", msg.Header.Get(HeaderGateway))
		}
	}
	if g1.count("sleep") != 0 || g2.count("sleep") != 20 {
		t.Errorf("sleep ran on gw1 %d, gw2 %d times", g1.count("sleep"), g2.count("sleep"))
	}
	for range 20 {
		msg := request(t, cl, "mcp.v1.req.alice.at.gw1.tools.call.echo", callBody("echo", nil), nil)
		if msg.Header.Get(HeaderGateway) != "gw1" {
			t.Fatalf("at.gw1 answered by %q", msg.Header.Get(HeaderGateway))
		}
	}
	if g1.count("echo") != e1+20 {
		t.Errorf("at.gw1 calls ran elsewhere")
	}
}

// TestSlowToolDoesNotDelayFast sends a slow call, then a fast one on the same endpoint: the fast
// one is answered while the slow one still runs.
func TestSlowToolDoesNotDelayFast(t *testing.T) {
	s := startServer(t)
	startFace(t, connect(t, s), newFakeGateway("gw1"), Options{}, "sleep")
	cl := connect(t, s)

	start := time.Now()
	slow := goRequest(cl, callSubject("alice", "sleep"), callBody("sleep", map[string]any{"ms": 1500}), nil)
	time.Sleep(50 * time.Millisecond) // let the slow call be taken first
	fastStart := time.Now()
	msg := request(t, cl, callSubject("alice", "sleep"), callBody("sleep", map[string]any{"ms": 1}), nil)
	fast := time.Since(fastStart)
	if got := resultText(t, msg.Data); got != "slept 1ms" {
		t.Fatalf("fast: %q", got)
	}
	if fast > 500*time.Millisecond {
		t.Errorf("fast call took %v behind a slow one", fast)
	}
	if len(slow) != 0 {
		t.Error("slow call finished before the fast one")
	}
	if got := resultText(t, wait(t, slow).Data); got != "slept 1500ms" {
		t.Errorf("slow: %q", got)
	}
	if d := time.Since(start); d < 1500*time.Millisecond {
		t.Errorf("slow call took only %v", d)
	}
}

// TestShedding fills MaxConcurrent with blocked calls: the next call is refused at once with 503.
func TestShedding(t *testing.T) {
	s := startServer(t)
	g := newFakeGateway("gw1")
	g.entered = make(chan string, 10)
	f := startFace(t, connect(t, s), g, Options{MaxConcurrent: 2}, "block", "echo")
	cl := connect(t, s)

	blocked := []<-chan reply{
		goRequest(cl, callSubject("alice", "block"), callBody("block", nil), nil),
		goRequest(cl, callSubject("alice", "block"), callBody("block", nil), nil),
	}
	<-g.entered
	<-g.entered
	start := time.Now()
	msg := request(t, cl, callSubject("alice", "echo"), callBody("echo", nil), nil)
	e := replyError(t, msg)
	if e == nil || e.Code != CodeUnavailable || e.Message != "gw: busy" || msg.Header.Get(micro.ErrorCodeHeader) != "503" {
		t.Fatalf("want busy, got %s %v", msg.Data, msg.Header)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("shedding took %v", d)
	}
	if g.count("echo") != 0 {
		t.Error("a shed call ran")
	}
	if n := f.Shed(); n != 1 {
		t.Errorf("Shed() = %d after one busy refusal; want 1", n)
	}
	close(g.release)
	for _, ch := range blocked {
		if got := resultText(t, wait(t, ch).Data); got != "released" {
			t.Errorf("blocked call: %q", got)
		}
	}
	msg = request(t, cl, callSubject("alice", "echo"), callBody("echo", nil), nil)
	if e := replyError(t, msg); e != nil {
		t.Errorf("after release: %v", e)
	}
	<-g.entered
}

// TestDeadlineHeader checks that the deadline headers become the handler's ctx deadline, with the
// default, the cap, the earlier of two, bad values, and an expired deadline.
func TestDeadlineHeader(t *testing.T) {
	s := startServer(t)
	startFace(t, connect(t, s), newFakeGateway("gw1"), Options{DefaultTimeout: 20 * time.Second, MaxTimeout: time.Minute}, "deadline", "sleep")
	cl := connect(t, s)

	remaining := func(hdr nats.Header) (int64, *jsonrpc.Error) {
		msg := request(t, cl, callSubject("alice", "deadline"), callBody("deadline", nil), hdr)
		if e := replyError(t, msg); e != nil {
			return 0, e
		}
		ms, err := strconv.ParseInt(resultText(t, msg.Data), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		return ms, nil
	}
	near := func(name string, got, want int64) {
		if got > want || got < want-1000 {
			t.Errorf("%s: %dms left, want about %dms", name, got, want)
		}
	}
	ms, _ := remaining(nil)
	near("default", ms, 20_000)
	ms, _ = remaining(nats.Header{HeaderTimeout: {"1500"}})
	near("timeout", ms, 1500)
	ms, _ = remaining(nats.Header{HeaderTimeout: {"36000000"}})
	near("capped", ms, 60_000)
	ms, _ = remaining(nats.Header{HeaderDeadline: {time.Now().Add(3 * time.Second).Format(time.RFC3339Nano)}})
	near("deadline", ms, 3000)
	ms, _ = remaining(nats.Header{HeaderDeadline: {time.Now().Add(3 * time.Second).Format(time.RFC3339Nano)}, HeaderTimeout: {"2000"}})
	near("earlier of both", ms, 2000)
	for _, h := range []nats.Header{{HeaderTimeout: {"-5"}}, {HeaderTimeout: {"soon"}}, {HeaderDeadline: {"tomorrow"}}, {HeaderStream: {"yes"}}} {
		if _, e := remaining(h); e == nil || e.Code != jsonrpc.CodeInvalidRequest {
			t.Errorf("header %v: got %v, want -32600", h, e)
		}
	}

	// The deadline cancels a slow handler and the caller gets a deadline error.
	start := time.Now()
	msg := request(t, cl, callSubject("alice", "sleep"), callBody("sleep", map[string]any{"ms": 5000}), nats.Header{HeaderTimeout: {"200"}})
	e := replyError(t, msg)
	if e == nil || e.Code != jsonrpc.CodeInternalError || !strings.Contains(e.Message, "deadline exceeded") {
		t.Errorf("slow call: %s", msg.Data)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("deadline honoured after %v", d)
	}
}

// streamCall publishes a streaming request with its own inbox and returns the frame subscription.
func streamCall(t *testing.T, nc *nats.Conn, subject, body string) *nats.Subscription {
	t.Helper()
	inbox := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	err = nc.PublishMsg(&nats.Msg{Subject: subject, Reply: inbox, Data: []byte(body),
		Header: nats.Header{HeaderStream: {"1"}, HeaderTimeout: {"10000"}}})
	if err != nil {
		t.Fatal(err)
	}
	return sub
}

func nextFrame(t *testing.T, sub *nats.Subscription) (*nats.Msg, Frame) {
	t.Helper()
	msg, err := sub.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var f Frame
	if err := json.Unmarshal(msg.Data, &f); err != nil {
		t.Fatalf("frame %s: %v", msg.Data, err)
	}
	if msg.Header.Get(HeaderFrame) != f.Type {
		t.Fatalf("frame header %q, type %q", msg.Header.Get(HeaderFrame), f.Type)
	}
	return msg, f
}

// TestStreaming streams progress, an input request answered by the caller, and the result.
func TestStreaming(t *testing.T) {
	s := startServer(t)
	startFace(t, connect(t, s), newFakeGateway("gw1"), Options{}, "progress", "sample", "fail")
	cl := connect(t, s)

	sub := streamCall(t, cl, callSubject("alice", "progress"), callBody("progress", nil))
	for i := 1; i <= 3; i++ {
		_, f := nextFrame(t, sub)
		if f.Type != FrameProgress || !strings.Contains(string(f.Params), `"progress":`+strconv.Itoa(i)) {
			t.Fatalf("frame %d: %+v", i, f)
		}
	}
	if _, f := nextFrame(t, sub); f.Type != FrameResult || resultText(t, f.Result) != "done" {
		t.Fatalf("final: %+v", f)
	}

	sub = streamCall(t, cl, callSubject("alice", "sample"), callBody("sample", nil))
	if _, f := nextFrame(t, sub); f.Type != FrameProgress {
		t.Fatalf("want progress, got %+v", f)
	}
	_, in := nextFrame(t, sub)
	if in.Type != FrameInput || in.Method != "sampling/createMessage" || in.Gateway != "gw1" || in.ID == "" ||
		!strings.Contains(string(in.Params), "2+2?") {
		t.Fatalf("input frame: %+v", in)
	}
	ack := request(t, cl, "mcp.v1.req.alice.at.gw1.input."+in.ID,
		`{"result":{"role":"assistant","content":{"type":"text","text":"4"},"model":"test"}}`, nil)
	if e := replyError(t, ack); e != nil || string(ack.Data) != "{}" {
		t.Fatalf("ack: %s", ack.Data)
	}
	_, f := nextFrame(t, sub)
	if f.Type != FrameResult || !strings.Contains(resultText(t, f.Result), `"text":"4"`) {
		t.Fatalf("result: %+v", f)
	}
	// A second answer finds nothing waiting.
	ack = request(t, cl, "mcp.v1.req.alice.at.gw1.input."+in.ID, `{"result":{}}`, nil)
	if e := replyError(t, ack); e == nil || e.Code != jsonrpc.CodeInvalidParams {
		t.Errorf("second answer: %s", ack.Data)
	}

	// An error answer becomes the tool's error; an error result is an error frame.
	sub = streamCall(t, cl, callSubject("alice", "sample"), callBody("sample", nil))
	nextFrame(t, sub)
	_, in = nextFrame(t, sub)
	request(t, cl, "mcp.v1.req.alice.at.gw1.input."+in.ID, `{"error":{"code":-1,"message":"user declined"}}`, nil)
	msg, f := nextFrame(t, sub)
	if f.Type != FrameError || f.Error.Code != -1 || f.Error.Message != "user declined" || msg.Header.Get(micro.ErrorCodeHeader) != "-1" {
		t.Fatalf("error frame: %+v %v", f, msg.Header)
	}
}

// TestInputWrongPrincipal: another principal's answer, an unknown id and a malformed answer are
// refused; the call still takes its own caller's answer.
func TestInputWrongPrincipal(t *testing.T) {
	s := startServer(t)
	startFace(t, connect(t, s), newFakeGateway("gw1"), Options{}, "sample")
	cl := connect(t, s)

	sub := streamCall(t, cl, callSubject("alice", "sample"), callBody("sample", nil))
	nextFrame(t, sub)
	_, in := nextFrame(t, sub)

	refused := func(subject, body, want string) {
		t.Helper()
		msg := request(t, cl, subject, body, nil)
		e := replyError(t, msg)
		if e == nil || e.Code != jsonrpc.CodeInvalidParams || !strings.Contains(e.Message, want) {
			t.Errorf("%s %s: got %s", subject, body, msg.Data)
		}
	}
	refused("mcp.v1.req.bob.at.gw1.input."+in.ID, `{"result":{"text":"evil"}}`, "no input request")
	refused("mcp.v1.req.alice.at.gw1.input.00000000000000000000000000000000", `{"result":{}}`, "no input request")
	refused("mcp.v1.req.alice.at.gw1.input."+in.ID, `{"result":{},"error":{"code":1,"message":"x"}}`, "exactly one")
	refused("mcp.v1.req.alice.at.gw1.input."+in.ID, `{"Result":{}}`, "unknown key")

	request(t, cl, "mcp.v1.req.alice.at.gw1.input."+in.ID, `{"result":{"text":"good"}}`, nil)
	_, f := nextFrame(t, sub)
	if f.Type != FrameResult || !strings.Contains(string(f.Result), "good") || strings.Contains(string(f.Result), "evil") {
		t.Fatalf("result: %+v", f)
	}
}

// TestLLMFallback: without streaming, input requests go to the LLM subject; without a responder
// or a subject they fail with -32603 naming the cause.
func TestLLMFallback(t *testing.T) {
	s := startServer(t)
	startFace(t, connect(t, s), newFakeGateway("gw1"), Options{Gateway: "gw1", LLMSubject: "mcp.v1.llm"}, "sample")
	startFace(t, connect(t, s), newFakeGateway("gw2"), Options{Gateway: "gw2", QueueGroup: "other"}, "sample")
	cl := connect(t, s)
	host := connect(t, s)

	var got llmRequest
	var gotDeadline string
	hsub, err := host.QueueSubscribe("mcp.v1.llm", "llm-hosts", func(m *nats.Msg) {
		_ = json.Unmarshal(m.Data, &got)
		gotDeadline = m.Header.Get(HeaderDeadline)
		_ = m.Respond([]byte(`{"result":{"role":"assistant","content":{"type":"text","text":"four"},"model":"host"}}`))
	})
	if err != nil {
		t.Fatal(err)
	}
	host.Flush()
	msg := request(t, cl, "mcp.v1.req.carol.at.gw1.tools.call.sample", callBody("sample", nil), nil)
	if e := replyError(t, msg); e != nil {
		t.Fatal(e)
	}
	if text := resultText(t, msg.Data); !strings.Contains(text, "four") {
		t.Errorf("result %q", text)
	}
	if got.Principal != "carol" || got.Method != "sampling/createMessage" || !strings.Contains(string(got.Params), "2+2?") || gotDeadline == "" {
		t.Errorf("LLM host got %+v, deadline %q", got, gotDeadline)
	}

	// No responders.
	if err := hsub.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	host.Flush()
	msg = request(t, cl, "mcp.v1.req.carol.at.gw1.tools.call.sample", callBody("sample", nil), nil)
	if e := replyError(t, msg); e == nil || e.Code != jsonrpc.CodeInternalError || !strings.Contains(e.Message, "no responders") {
		t.Errorf("no responders: %s", msg.Data)
	}

	// A host that does not answer before the deadline.
	hsub, _ = host.QueueSubscribe("mcp.v1.llm", "llm-hosts", func(*nats.Msg) {})
	host.Flush()
	msg = request(t, cl, "mcp.v1.req.carol.at.gw1.tools.call.sample", callBody("sample", nil), nats.Header{HeaderTimeout: {"300"}})
	if e := replyError(t, msg); e == nil || e.Code != jsonrpc.CodeInternalError || !strings.Contains(e.Message, "did not answer") {
		t.Errorf("silent host: %s", msg.Data)
	}
	_ = hsub.Unsubscribe()

	// No LLM subject configured (gw2).
	msg = request(t, cl, "mcp.v1.req.carol.at.gw2.tools.call.sample", callBody("sample", nil), nil)
	if e := replyError(t, msg); e == nil || e.Code != jsonrpc.CodeInternalError || !strings.Contains(e.Message, "no LLM subject") {
		t.Errorf("no LLM subject: %s", msg.Data)
	}
}

// TestClaimCheck returns a 20 MiB result through the object store (max payload 1 MiB), plain and
// streaming.
func TestClaimCheck(t *testing.T) {
	s := startServer(t)
	g := newFakeGateway("gw1")
	startFace(t, connect(t, s), g, Options{}, "big", "echo")
	cl := connect(t, s)
	if cl.MaxPayload() != 1<<20 {
		t.Fatalf("max payload %d", cl.MaxPayload())
	}
	js, err := jetstream.New(cl)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := g.Serve(context.Background(), &Request{Method: "tools/call", Params: json.RawMessage(`{"name":"big"}`)})

	msg := request(t, cl, callSubject("alice", "big"), callBody("big", nil), nil)
	if msg.Header.Get(HeaderClaimCheck) != "1" || len(msg.Data) > 1024 {
		t.Fatalf("no claim check: %d bytes, %v", len(msg.Data), msg.Header)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	data, err := FetchClaimCheck(ctx, js, msg)
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != string(want) {
		t.Fatalf("fetched %d bytes, want %d", len(data), len(want))
	}

	// Streaming, with a smaller result: 2 MiB.
	sub := streamCall(t, cl, callSubject("alice", "big"), callBody("big", map[string]any{"size": 2 << 20}))
	fmsg, f := nextFrame(t, sub)
	if f.Type != FrameResult || f.ClaimCheck == nil || f.ClaimCheck.Size < 2<<20 || fmsg.Header.Get(HeaderClaimCheck) != "1" {
		t.Fatalf("streaming claim check: %+v", f)
	}
	if data, err = FetchClaimCheck(ctx, js, fmsg); err != nil || uint64(len(data)) != f.ClaimCheck.Size {
		t.Fatalf("streaming fetch: %d bytes, %v", len(data), err)
	}

	// A small reply passes through FetchClaimCheck untouched; a forged claim is refused.
	small := request(t, cl, callSubject("alice", "echo"), callBody("echo", nil), nil)
	if data, err := FetchClaimCheck(ctx, js, small); err != nil || string(data) != string(small.Data) {
		t.Errorf("small: %v", err)
	}
	var env struct{ ClaimCheck ClaimCheck }
	_ = json.Unmarshal(msg.Data, &env)
	env.ClaimCheck.Size--
	forged := &nats.Msg{Header: nats.Header{HeaderClaimCheck: {"1"}}}
	forged.Data, _ = json.Marshal(map[string]any{"claimCheck": env.ClaimCheck})
	if _, err := FetchClaimCheck(ctx, js, forged); !errors.Is(err, ErrClaimCheck) {
		t.Errorf("forged claim: %v", err)
	}

	// A request body over the max payload is refused by the client.
	if _, err := requestErr(cl, callSubject("alice", "echo"), strings.Repeat("x", 2<<20), nil, time.Second); !errors.Is(err, nats.ErrMaxPayload) {
		t.Errorf("big request: %v", err)
	}
}

// TestStop: Stop waits for in-flight calls, answers them 503 when its ctx ends first, refuses new
// work, and is idempotent.
func TestStop(t *testing.T) {
	s := startServer(t)
	cl := connect(t, s)

	t.Run("graceful", func(t *testing.T) {
		g := newFakeGateway("gw1")
		g.entered = make(chan string, 1)
		f := startFace(t, connect(t, s), g, Options{}, "sleep")
		inflight := goRequest(cl, callSubject("alice", "sleep"), callBody("sleep", map[string]any{"ms": 300}), nil)
		<-g.entered
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := f.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		if got := resultText(t, wait(t, inflight).Data); got != "slept 300ms" {
			t.Errorf("in-flight call: %q", got)
		}
		if _, err := requestErr(cl, callSubject("alice", "sleep"), callBody("sleep", nil), nil, 2*time.Second); !errors.Is(err, nats.ErrNoResponders) {
			t.Errorf("after stop: %v", err)
		}
		if err := f.Stop(ctx); err != nil {
			t.Errorf("second stop: %v", err)
		}
		if err := f.SetTools([]string{"x"}); !errors.Is(err, ErrStopped) {
			t.Errorf("set tools after stop: %v", err)
		}
		if err := f.PublishGatewayStatus(ctx, json.RawMessage(`{"state":"stopped"}`)); err != nil {
			t.Errorf("final status: %v", err)
		}
	})

	t.Run("forced", func(t *testing.T) {
		g := newFakeGateway("gw1")
		g.entered = make(chan string, 1)
		f := startFaceNoCleanup(t, connect(t, s), g, Options{}, "block")
		inflight := goRequest(cl, callSubject("alice", "block"), callBody("block", nil), nil)
		<-g.entered
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		err := f.Stop(ctx)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("stop: %v", err)
		}
		msg := wait(t, inflight)
		if e := replyError(t, msg); e == nil || e.Code != CodeUnavailable || e.Message != "gw: shutting down" {
			t.Errorf("in-flight call: %s", msg.Data)
		}
		if err2 := f.Stop(context.Background()); err2 == nil || err2.Error() != err.Error() {
			t.Errorf("second stop: %v", err2)
		}
	})
}

// TestSetTools adds and removes tool endpoints on a running face.
func TestSetTools(t *testing.T) {
	s := startServer(t)
	g := newFakeGateway("gw1")
	f := startFace(t, connect(t, s), g, Options{}, "echo")
	cl := connect(t, s)
	call := func(tool string) error {
		msg, err := requestErr(cl, callSubject("alice", tool), callBody(tool, map[string]any{"ms": 0}), nil, 2*time.Second)
		if err == nil {
			if e := replyError(t, msg); e != nil {
				return e
			}
		}
		return err
	}
	if err := call("sleep"); !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("before: %v", err)
	}
	if err := f.SetTools([]string{"echo", "sleep"}); err != nil {
		t.Fatal(err)
	}
	if err := call("sleep"); err != nil {
		t.Fatalf("added: %v", err)
	}
	if err := f.SetTools([]string{"sleep"}); err != nil {
		t.Fatal(err)
	}
	if err := call("echo"); !errors.Is(err, nats.ErrNoResponders) {
		t.Errorf("removed: %v", err)
	}
	if err := call("sleep"); err != nil {
		t.Errorf("kept: %v", err)
	}
	msg := request(t, cl, "$SRV.INFO.gw", "", nil)
	var info micro.Info
	_ = json.Unmarshal(msg.Data, &info)
	for _, ep := range info.Endpoints {
		if strings.HasSuffix(ep.Subject, ".echo") {
			t.Errorf("echo endpoint still listed: %+v", ep)
		}
	}
	if len(info.Endpoints) != len(f.static) {
		t.Errorf("%d endpoints, want %d", len(info.Endpoints), len(f.static))
	}

	// Tools that come and go leave no endpoint or counters behind, and their calls still count.
	for i := range 50 {
		name := fmt.Sprintf("t%d", i)
		if err := f.SetTools([]string{"sleep", name}); err != nil {
			t.Fatal(err)
		}
		if err := call(name); err == nil || !strings.Contains(err.Error(), "unknown tool") { // the fake's answer
			t.Fatalf("%s: %v", name, err)
		}
	}
	if err := f.SetTools([]string{"sleep"}); err != nil {
		t.Fatal(err)
	}
	eps := 0
	f.toolEps.Range(func(any, any) bool { eps++; return true })
	f.statsMu.Lock()
	counters := len(f.stats)
	f.statsMu.Unlock()
	if eps != 1 || counters != len(f.static) {
		t.Errorf("after 50 tools came and went: %d tool endpoints and %d counters; want 1 and %d", eps, counters, len(f.static))
	}
	if got := f.toolCallStats(EndpointStats{}).Hosted; got.Served != 2 || got.Errors != 50 { // sleep twice; t0…t49
		t.Errorf("hosted calls: %+v; want 2 served and 50 errors", got)
	}
}

// TestOptions checks validation and defaults.
func TestOptions(t *testing.T) {
	nc := &nats.Conn{}
	h := HandlerFunc(func(context.Context, *Request) (json.RawMessage, error) { return nil, nil })
	for _, o := range []Options{
		{},
		{Gateway: "a.b"},
		{Gateway: "g", Prefix: "mcp.*"},
		{Gateway: "g", Prefix: "mcp..v1"},
		{Gateway: "g", Version: "v1"},
		{Gateway: "g", MaxConcurrent: -1},
		{Gateway: "g", LLMSubject: "llm.>"},
		{Gateway: "g", DefaultTimeout: time.Hour},
		{Gateway: "g", CatalogBucket: "a.b"},
	} {
		if _, err := New(nc, h, o); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("%+v: %v", o, err)
		}
	}
	f, err := New(nc, h, Options{Gateway: "g"})
	if err != nil {
		t.Fatal(err)
	}
	if f.opts.Prefix != "mcp.v1" || f.opts.QueueGroup != "gw" || f.opts.MaxConcurrent != 64 || f.opts.MaxTimeout != 5*time.Minute {
		t.Errorf("defaults: %+v", f.opts)
	}
	if err := f.PublishGatewayStatus(context.Background(), nil); !errors.Is(err, ErrNotStarted) {
		t.Errorf("publish before start: %v", err)
	}
	if err := f.Stop(context.Background()); err != nil {
		t.Errorf("stop before start: %v", err)
	}
	if err := f.Start(context.Background()); !errors.Is(err, ErrStopped) {
		t.Errorf("start after stop: %v", err)
	}
}

// TestMethodsOption: every method the router lists is served, on the
// subject of its name, shared and at this gateway; one it does not list is
// not.
func TestMethodsOption(t *testing.T) {
	s := startServer(t)
	nc := connect(t, s)
	var got []string
	var mu sync.Mutex
	h := HandlerFunc(func(_ context.Context, req *Request) (json.RawMessage, error) {
		mu.Lock()
		got = append(got, req.Method)
		mu.Unlock()
		return json.RawMessage(`{}`), nil
	})
	startFace(t, nc, h, Options{Gateway: "gw1", Methods: []string{"tools/call", "completion/complete", "resources/templates/list"}})
	cl := connect(t, s)
	request(t, cl, "mcp.v1.req.alice.completion.complete", `{"ref":{"type":"ref/prompt","name":"p"}}`, nil)
	request(t, cl, "mcp.v1.req.alice.at.gw1.resources.templates.list", `{}`, nil)
	if _, err := requestErr(cl, "mcp.v1.req.alice.tools.list", `{}`, nil, 300*time.Millisecond); err == nil {
		t.Error("tools/list is served though Methods leaves it out")
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"completion/complete", "resources/templates/list"}; !slices.Equal(got, want) {
		t.Fatalf("served %v; want %v", got, want)
	}
	if _, err := New(nc, h, Options{Gateway: "gw1", Methods: []string{"tools.list"}}); !errors.Is(err, ErrInvalidOptions) {
		t.Fatalf("a method with a dot: %v; want ErrInvalidOptions", err)
	}
}

// TestManyTools: a gateway hosting 20,000 tools answers $SRV.INFO in one
// message (one micro endpoint per tool once made it exceed the maximum
// payload at about 6,000, so `nats micro ls` lost the gateway), serves the
// last tool, and does not run a goroutine per tool.
func TestManyTools(t *testing.T) {
	s := startServer(t)
	nc := connect(t, s)
	names := make([]string, 20_000)
	for i := range names {
		names[i] = fmt.Sprintf("bulk-tool-with-a-longish-name-%05d", i)
	}
	base := runtime.NumGoroutine()
	f := startFace(t, nc, newFakeGateway("gw1"), Options{}, names[:1]...)
	if err := f.SetTools(names); err != nil {
		t.Fatal(err)
	}
	if n := runtime.NumGoroutine() - base; n > 200 {
		t.Errorf("%d more goroutines for 20,000 tools", n)
	}
	cl := connect(t, s)
	msg := request(t, cl, "$SRV.INFO.gw", "", nil)
	var info micro.Info
	if err := json.Unmarshal(msg.Data, &info); err != nil || len(info.Endpoints) != len(f.static) {
		t.Fatalf("$SRV.INFO: %v, %d bytes", err, len(msg.Data))
	}
	infoSize := len(msg.Data)
	// The call reaches the handler (the fake gateway knows no such tool, and says so).
	last := names[len(names)-1]
	msg = request(t, cl, callSubject("alice", last), callBody(last, map[string]any{"text": "hi"}), nil)
	if e := replyError(t, msg); e == nil || !strings.Contains(e.Message, last) {
		t.Fatalf("%s: %s", last, msg.Data)
	}
	// Removing all but one unsubscribes the rest.
	if err := f.SetTools(names[:1]); err != nil {
		t.Fatal(err)
	}
	if _, err := requestErr(cl, callSubject("alice", last), callBody(last, nil), nil, 2*time.Second); !errors.Is(err, nats.ErrNoResponders) {
		t.Errorf("a removed tool: %v", err)
	}
	t.Logf("$SRV.INFO is %d bytes with 20,000 tools hosted", infoSize)
}
