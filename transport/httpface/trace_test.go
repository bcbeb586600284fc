package httpface

import (
	"net/http/httptest"
	"reflect"
	"testing"

	"github.com/gwmcp/gw/transport/face"
	"github.com/gwmcp/gw/transport/jsonrpc"
)

// TestTraceOf: the request's headers (whatever trace context they hold)
// and origin reach face.Request.Trace as they are, without an allocation.
func TestTraceOf(t *testing.T) {
	r := httptest.NewRequest("POST", "/mcp", nil)
	r.Header.Set("traceparent", "00-x")
	r.Header.Set("b3", "1-2-1")
	id := jsonrpc.StringID("req-7")
	got := traceOf(r, id, "s", "v")
	want := face.Trace{Transport: face.TransportHTTP, SessionID: "s", RequestID: `"req-7"`, ProtocolVersion: "v"}
	if got.Header["Traceparent"][0] != "00-x" || got.Header["B3"][0] != "1-2-1" {
		t.Errorf("traceOf's Header = %v, want the request's", got.Header)
	}
	if got.Header = nil; !reflect.DeepEqual(got, want) {
		t.Errorf("traceOf = %+v, want %+v", got, want)
	}
	if n := testing.AllocsPerRun(100, func() { _ = traceOf(r, id, "s", "v") }); n != 0 {
		t.Errorf("traceOf allocates %v times", n)
	}
}
