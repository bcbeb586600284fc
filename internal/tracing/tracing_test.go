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
