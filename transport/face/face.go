// Package face is the contract between gw's faces (NATS, and next stdio and
// Streamable HTTP) and the router that maps MCP methods onto the gateway. A
// face turns what it received into a Request and hands it to a Handler; it
// knows nothing of sessions, servers or policies, and the router knows
// nothing of wires.
package face

import (
	"context"
	"encoding/json"
)

// Request is one MCP request as a face received it.
type Request struct {
	// Method is the MCP method (tools/call, resources/read, …).
	Method string

	// Params is the MCP params object, nil when the request had none. A
	// face passes it on as received.
	Params json.RawMessage

	// Principal is the caller's identity as the face established it: the
	// NATS subject's principal token, an HTTP bearer token's principal, the
	// local user of a stdio face. It never comes from the payload. The
	// authorizer sees it.
	Principal string

	// Progress, when not nil, takes the notifications/progress params of
	// this request's progress, carrying the caller's own progressToken. It
	// must not block for long and must be safe for concurrent use.
	Progress func(params json.RawMessage)

	// Log, when not nil, takes the notifications/message params of the log
	// messages servers raise while serving this request. It must not block
	// for long.
	Log func(params json.RawMessage)

	// Input, when not nil, answers the requests that servers raise while
	// serving this request (sampling, elicitation, roots) through the
	// caller.
	Input Input

	// Trace is what the face's carrier says of the request for tracing:
	// the headers that may hold its trace context and where it came from.
	// The router reads it (and params._meta, the MCP carrier every face
	// shares) only when tracing is on; filling it costs a face a few
	// assignments, no allocation.
	Trace Trace
}

// Trace is a request's trace context and origin as its face received them.
// Faces hand their headers over as they are and leave it to the router to
// read them with the configured propagator (W3C trace context, B3, Jaeger
// …: which headers matter is the propagator's business), so transport/
// needs no tracing library and pays nothing when tracing is off.
type Trace struct {
	// Header is the transport's headers (NATS message headers, HTTP
	// request headers), nil when it has none. The face owns it: it is
	// valid, and never written by the face, for as long as the Handler
	// holds the Request; the Handler only reads it. A face that serves a
	// request past the life of what carried it (an HTTP request whose
	// client went away while a call goes on: mcpface.Rounds) hands over a
	// copy.
	Header map[string][]string

	// Transport is how the request came: TransportNATS, TransportHTTP or
	// TransportStdio; "" when the face does not say.
	Transport string

	// Destination is the NATS subject the request was sent to.
	Destination string

	// SessionID is the MCP session the request belongs to (a legacy
	// Streamable HTTP session), "" when none.
	SessionID string

	// RequestID is the JSON text of the caller's JSON-RPC id ("7",
	// "\"req-7\""), "" when the face has none (NATS requests carry no id).
	RequestID string

	// ProtocolVersion is the MCP protocol version of the request, when the
	// face knows it.
	ProtocolVersion string
}

// The transports a Trace names.
const (
	TransportNATS  = "nats"
	TransportHTTP  = "http"
	TransportStdio = "stdio"
)

// Input is a caller that can answer server-to-client requests.
type Input interface {
	// Supports reports whether the caller can answer method: it declared
	// the capability, or its face can always ask.
	Supports(method string) bool
	// Ask sends method with params to the caller and returns its result. A
	// caller's JSON-RPC error comes back as a *jsonrpc.Error.
	Ask(ctx context.Context, method string, params json.RawMessage) (json.RawMessage, error)
}

// KeyedInput is an Input that can keep the key a server gave its request
// (a 2026-07-28 inputRequests key), so the client sees the keys the server
// chose. It falls back to a key of its own when key is taken or empty.
type KeyedInput interface {
	Input
	AskAs(ctx context.Context, key, method string, params json.RawMessage) (json.RawMessage, error)
}

// InputFunc adapts a function that can answer every method to Input.
type InputFunc func(ctx context.Context, method string, params json.RawMessage) (json.RawMessage, error)

// Supports reports true: the function decides.
func (InputFunc) Supports(string) bool { return true }

// Ask calls fn.
func (fn InputFunc) Ask(ctx context.Context, method string, params json.RawMessage) (json.RawMessage, error) {
	return fn(ctx, method, params)
}

// Handler serves requests. It is safe for concurrent use. The result is the
// MCP result object, sent to the caller as is; an error is sent as a
// JSON-RPC error, keeping the code of a *jsonrpc.Error found with errors.As.
type Handler interface {
	Serve(ctx context.Context, req *Request) (json.RawMessage, error)
}

// ToolHeaders is a Handler that knows which arguments of a tool a client
// mirrors into Mcp-Param-{Name} headers (x-mcp-header in the tool's
// inputSchema; Streamable HTTP, 2026-07-28), so a face can check them.
type ToolHeaders interface {
	// ParamHeaders maps each header name of tool (the x-mcp-header value)
	// to the property path of its argument; nil when there are none or
	// the tool is unknown.
	ParamHeaders(tool string) map[string][]string
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, req *Request) (json.RawMessage, error)

// Serve calls fn.
func (fn HandlerFunc) Serve(ctx context.Context, req *Request) (json.RawMessage, error) {
	return fn(ctx, req)
}
