package tracing

import (
	"encoding/json"
	"errors"
	"testing"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/gwmcp/gw/transport/jsonrpc"
)

const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

func TestFromMetaAndRemote(t *testing.T) {
	for _, tt := range []struct {
		params, parent, state string
		valid                 bool
	}{
		{`{"_meta":{"traceparent":"` + tp + `","tracestate":"a=b"}}`, tp, "a=b", true},
		{`{"name":"x","_meta":{"Traceparent":"` + tp + `"}}`, "", "", false},  // exact keys only
		{`{"_meta":{"traceparent":"00-zz-yy-01"}}`, "00-zz-yy-01", "", false}, // malformed
		{`{"traceparent":"` + tp + `"}`, "", "", false},                       // not in _meta
		{`{"_meta":{"traceparent":7}}`, "", "", false},
		{``, "", "", false},
	} {
		parent, state := FromMeta(json.RawMessage(tt.params))
		if parent != tt.parent || state != tt.state {
			t.Errorf("FromMeta(%s) = %q, %q; want %q, %q", tt.params, parent, state, tt.parent, tt.state)
		}
		sc := Remote(parent, state)
		if sc.IsValid() != tt.valid || (tt.valid && (!sc.IsRemote() || sc.TraceState().Get("a") != "b")) {
			t.Errorf("Remote(%q, %q) = %v", parent, state, sc)
		}
	}
}

// TestHeaderRoundTrip: what Header writes, Remote reads back.
func TestHeaderRoundTrip(t *testing.T) {
	sc := Remote(tp, "rojo=00f067aa0ba902b7")
	parent, state := Header(sc)
	if parent != tp || state != "rojo=00f067aa0ba902b7" {
		t.Errorf("Header = %q, %q", parent, state)
	}
	if p, s := Header(Remote("", "")); p != "" || s != "" {
		t.Errorf("Header of no context = %q, %q", p, s)
	}
}

func TestIDText(t *testing.T) {
	for raw, want := range map[string]string{"7": "7", `"req-7"`: "req-7", `"a\"b"`: `a"b`, "": "", "null": ""} {
		if got := IDText(raw); got != want {
			t.Errorf("IDText(%s) = %q, want %q", raw, got, want)
		}
	}
}

func TestTargetAndAttrs(t *testing.T) {
	call := json.RawMessage(`{"name":"notes__search","arguments":{"uri":"not-this"}}`)
	if got := Target("tools/call", call); got != "notes__search" {
		t.Errorf("Target = %q", got)
	}
	if got := SpanName("tools/call", "notes__search"); got != "tools/call notes__search" {
		t.Errorf("SpanName = %q", got)
	}
	read := json.RawMessage(`{"uri":"file:///a"}`)
	if got := Target("resources/read", read); got != "" || SpanName("resources/read", got) != "resources/read" {
		t.Errorf("a resource is not a span name's target: %q", got)
	}
	attrs := map[string]string{}
	for _, kv := range RequestAttrs("resources/read", "", read) {
		attrs[string(kv.Key)] = kv.Value.Emit()
	}
	if attrs["mcp.resource.uri"] != "file:///a" || attrs["mcp.method.name"] != "resources/read" {
		t.Errorf("RequestAttrs = %v", attrs)
	}
}

// TestEnd: errors and tool errors are recorded as the conventions ask.
func TestEnd(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	tr := Tracer(tp)
	for _, tt := range []struct {
		res     string
		err     error
		errType string
		code    string
	}{
		{res: `{"content":[]}`},
		{res: `{"content":[],"isError":false}`},
		{res: `{"content":[],"isError":true}`, errType: "tool_error"},
		{res: `{"content":[],"\u0069sError":true}`, errType: "tool_error"},
		{res: `{"content":[{"type":"text","text":"x","isError":true}]}`},
		{err: &jsonrpc.Error{Code: -32602, Message: "unknown tool"}, errType: "-32602", code: "-32602"},
		{err: errors.New("plain"), errType: "-32603", code: "-32603"},
	} {
		exp.Reset()
		_, span := tr.Start(t.Context(), "x")
		End(span, json.RawMessage(tt.res), tt.err)
		got := exp.GetSpans()[0]
		attrs := map[string]string{}
		for _, kv := range got.Attributes {
			attrs[string(kv.Key)] = kv.Value.Emit()
		}
		if attrs["error.type"] != tt.errType || attrs["rpc.response.status_code"] != tt.code || (got.Status.Code == codes.Error) != (tt.errType != "") {
			t.Errorf("%s %v: attributes %v, status %v", tt.res, tt.err, attrs, got.Status)
		}
	}
	if Tracer(nil) != nil {
		t.Error("Tracer(nil) is not nil: tracing would be on")
	}
}
