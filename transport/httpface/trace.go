package httpface

import (
	"net/http"

	"github.com/gwmcp/gw/transport/face"
	"github.com/gwmcp/gw/transport/jsonrpc"
)

// traceOf is what an HTTP request says of a face.Request for tracing: its
// headers, whose trace context the router reads when tracing is on, and
// where it came from.
func traceOf(r *http.Request, id jsonrpc.ID, session, version string) face.Trace {
	return face.Trace{
		Header:          r.Header,
		Transport:       face.TransportHTTP,
		SessionID:       session,
		RequestID:       id.String(),
		ProtocolVersion: version,
	}
}
