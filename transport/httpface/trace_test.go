package httpface

import (
	"net/http/httptest"
	"testing"

	"github.com/gwmcp/gw/transport/face"
	"github.com/gwmcp/gw/transport/jsonrpc"
)

// TestTraceOf: the W3C headers, whatever their case on the wire, reach
// face.Request.Trace raw, without an allocation.
func TestTraceOf(t *testing.T) {
	r := httptest.NewRequest("POST", "/mcp", nil)
	r.Header.Set("traceparent", "00-x")
	r.Header.Set("TRACESTATE", "a=b")
	id := jsonrpc.StringID("req-7")
	want := face.Trace{Parent: "00-x", State: "a=b", Transport: face.TransportHTTP, SessionID: "s", RequestID: `"req-7"`, ProtocolVersion: "v"}
	if got := traceOf(r, id, "s", "v"); got != want {
		t.Errorf("traceOf = %+v, want %+v", got, want)
	}
	if n := testing.AllocsPerRun(100, func() { _ = traceOf(r, id, "s", "v") }); n != 0 {
		t.Errorf("traceOf allocates %v times", n)
	}
}
