package httpface

import (
	"net/http"

	"github.com/gwmcp/gw/transport/face"
	"github.com/gwmcp/gw/transport/jsonrpc"
)

// traceOf is what an HTTP request says of a face.Request for tracing: the
// W3C trace context of its headers (canonical keys: Get then allocates
// nothing) and where it came from.
func traceOf(r *http.Request, id jsonrpc.ID, session, version string) face.Trace {
	return face.Trace{
		Parent:          r.Header.Get("Traceparent"),
		State:           r.Header.Get("Tracestate"),
		Transport:       face.TransportHTTP,
		SessionID:       session,
		RequestID:       id.String(),
		ProtocolVersion: version,
	}
}
