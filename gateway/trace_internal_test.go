package gateway

import (
	"encoding/json"
	"testing"
)

// TestTraceMetaWithProgress: the trace context's _meta entries go in the
// same pass as gw's progress token, replacing the caller's traceparent and
// keeping the rest of its _meta; the caller's token comes back.
func TestTraceMetaWithProgress(t *testing.T) {
	params := json.RawMessage(`{"name":"echo","_meta":{"progressToken":7,"traceparent":"00-caller","tracestate":"a=b","x":1}}`)
	trace := []member{{"traceparent", mustJSON("00-gw")}, {"tracestate", nil}}
	out, callerTok, err := swapProgressToken(params, "gw-1", trace...)
	if err != nil {
		t.Fatal(err)
	}
	if string(callerTok) != "7" {
		t.Errorf("caller's token %s, want 7", callerTok)
	}
	meta, _ := field(out, "_meta")
	var got map[string]any
	if err := json.Unmarshal(meta, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"progressToken": "gw-1", "traceparent": "00-gw", "x": 1.0}
	if len(got) != len(want) {
		t.Fatalf("_meta %s, want %v", meta, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("_meta.%s = %v, want %v (%s)", k, got[k], v, meta)
		}
	}
	if len(trace) != 2 || trace[0].key != "traceparent" {
		t.Errorf("the entries given were changed: %v", trace)
	}
}
