// Package tracing holds what gw's spans share: the instrumentation scope,
// the attribute keys of the OpenTelemetry semantic conventions for MCP (and
// for messaging, on NATS), the carriers trace context is read from and
// written to (params._meta, a transport's headers) with the configured
// propagator, and how a span records an MCP outcome. The gateway and the
// router start spans with it; faces never import it (they hand their
// headers over as they are, in face.Request.Trace).
//
// Everything here runs only when tracing is on: callers check for a nil
// tracer first, so the call path pays nothing when it is off.
package tracing

import (
	"encoding/json"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/gwmcp/gw/transport/jsonrpc"
)

// Scope is the instrumentation scope of gw's tracer.
const Scope = "github.com/gwmcp/gw"

// Tracer returns gw's tracer of tp, nil when tp is nil (tracing off).
func Tracer(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		return nil
	}
	return tp.Tracer(Scope)
}

// Attribute keys: the OpenTelemetry semantic conventions for MCP
// (gen-ai/mcp.md), for messaging, and gw's own (gw.*) where the
// conventions have none.
const (
	MethodName      = attribute.Key("mcp.method.name")
	ProtocolVersion = attribute.Key("mcp.protocol.version")
	SessionID       = attribute.Key("mcp.session.id")
	ResourceURI     = attribute.Key("mcp.resource.uri")
	ToolName        = attribute.Key("gen_ai.tool.name")
	PromptName      = attribute.Key("gen_ai.prompt.name")
	OperationName   = attribute.Key("gen_ai.operation.name")
	RequestID       = attribute.Key("jsonrpc.request.id")
	StatusCode      = attribute.Key("rpc.response.status_code")
	ErrorType       = attribute.Key("error.type")
	NetTransport    = attribute.Key("network.transport")
	NetProtocol     = attribute.Key("network.protocol.name")
	MessagingSystem = attribute.Key("messaging.system")
	MessagingDest   = attribute.Key("messaging.destination.name")
	EndUser         = attribute.Key("enduser.id")

	// Server is the configured name of the server a request went to.
	Server = attribute.Key("gw.server")
	// Decision is an authorization's outcome: allow or deny.
	Decision = attribute.Key("gw.authz.decision")

	// The attributes of the events a call's notifications become on its
	// span (NoteAttrs).
	ProgressValue   = attribute.Key("gw.progress.value")
	ProgressTotal   = attribute.Key("gw.progress.total")
	ProgressMessage = attribute.Key("gw.progress.message")
	LogLevel        = attribute.Key("gw.log.level")
	LogLogger       = attribute.Key("gw.log.logger")
)

// The methods whose params name a tool, a prompt or a resource.
const (
	methodToolsCall  = "tools/call"
	methodPromptsGet = "prompts/get"
)

// Target returns the low-cardinality target of an MCP request for its span
// name, "{mcp.method.name} {target}": the tool or prompt in params.name,
// "" for other methods.
func Target(method string, params json.RawMessage) string {
	if method == methodToolsCall || method == methodPromptsGet {
		name, _ := jsonrpc.StringMember(params, "name")
		return name
	}
	return ""
}

// RequestAttrs are the attributes that name what a request is about: its
// method, the tool or prompt (target), the resource in params.uri. Callers
// set them only on a span that records: an unsampled request pays for none.
func RequestAttrs(method, target string, params json.RawMessage) []attribute.KeyValue {
	attrs := make([]attribute.KeyValue, 1, 8)
	attrs[0] = MethodName.String(method)
	switch method {
	case methodToolsCall:
		return append(attrs, ToolName.String(target), OperationName.String("execute_tool"))
	case methodPromptsGet:
		return append(attrs, PromptName.String(target))
	}
	if uri, _ := jsonrpc.StringMember(params, "uri"); uri != "" {
		attrs = append(attrs, ResourceURI.String(uri))
	}
	return attrs
}

// NoteAttrs returns the attributes of the event a notification that
// belongs to a call becomes on the call's span: progress, total and message
// of notifications/progress; level and logger of notifications/message
// (not its data, which may be large, or hold what should stay in the
// server's log). Members that are absent or of another type are left out.
func NoteAttrs(method string, params json.RawMessage) []attribute.KeyValue {
	var attrs []attribute.KeyValue
	number := func(key string, attr attribute.Key) {
		if v := jsonrpc.Member(params, key); v != nil {
			if f, err := strconv.ParseFloat(string(v), 64); err == nil {
				attrs = append(attrs, attr.Float64(f))
			}
		}
	}
	text := func(key string, attr attribute.Key) {
		if v, ok := jsonrpc.StringMember(params, key); ok {
			attrs = append(attrs, attr.String(v))
		}
	}
	switch method {
	case "notifications/progress":
		number("progress", ProgressValue)
		number("total", ProgressTotal)
		text("message", ProgressMessage)
	case "notifications/message":
		text("level", LogLevel)
		text("logger", LogLogger)
	}
	return attrs
}

// SpanName is "{method} {target}", or method alone without a target.
func SpanName(method, target string) string {
	if target == "" {
		return method
	}
	return method + " " + target
}

// End records the outcome of an MCP request on span and ends it: a JSON-RPC
// error's code as error.type and rpc.response.status_code (any other error
// is the internal error a face answers with), a tools/call result with
// isError true as error.type tool_error; both set the span's status to
// Error, as the conventions ask.
func End(span trace.Span, res json.RawMessage, err error) {
	switch {
	case !span.IsRecording(): // unsampled: nothing to record, no result to scan
	case err != nil:
		e := jsonrpc.AsError(err)
		code := strconv.FormatInt(e.Code, 10)
		span.SetAttributes(ErrorType.String(code), StatusCode.String(code))
		span.SetStatus(codes.Error, e.Message)
	case jsonrpc.IsToolError(res):
		span.SetAttributes(ErrorType.String("tool_error"))
		span.SetStatus(codes.Error, "tool_error")
	}
	span.End()
}

// IDText returns the string form of a JSON-RPC id's JSON text ("7" for 7,
// "req-7" for "req-7"), "" when absent or null: jsonrpc.request.id.
func IDText(raw string) string {
	if raw == "" || raw == "null" {
		return ""
	}
	if raw[0] == '"' {
		var s string
		if json.Unmarshal([]byte(raw), &s) == nil {
			return s
		}
	}
	return raw
}
