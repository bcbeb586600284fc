package httpface

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gwmcp/gw/transport/face"
)

// fixedHandler answers every tools/call with the same small result and
// knows no tool's headers: what the face itself costs.
type fixedHandler struct{}

func (fixedHandler) Serve(context.Context, *face.Request) (json.RawMessage, error) {
	return json.RawMessage(`{"content":[{"type":"text","text":"benchmark"}]}`), nil
}

func (fixedHandler) ParamHeaders(string) map[string][]string { return nil }

// BenchmarkModernCall is the face's own work for one stateless tools/call
// (headers checked against the body, _meta read, the answer written), in
// process with no network, for arguments of 20 bytes and of 64 KiB: what
// is read by scanning costs the same whatever the size of the arguments.
func BenchmarkModernCall(b *testing.B) {
	for _, size := range []int{0, 64 << 10} {
		b.Run("args="+map[int]string{0: "small", 64 << 10: "64KiB"}[size], func(b *testing.B) {
			f := New(fixedHandler{}, Options{})
			b.Cleanup(func() { _ = f.Shutdown(context.Background()) })
			args := `{"text":"benchmark"}`
			if size > 0 {
				args = `{"text":"` + strings.Repeat("x", size) + `"}`
			}
			body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{` + modernMeta + `,"name":"echo","arguments":` + args + `}}`
			for b.Loop() {
				r := httptest.NewRequest(http.MethodPost, Endpoint, strings.NewReader(body))
				r.Header.Set("Content-Type", "application/json")
				r.Header.Set("Accept", "application/json, text/event-stream")
				r.Header.Set(hdrProtocolVersion, "2026-07-28")
				r.Header.Set("Mcp-Method", "tools/call")
				r.Header.Set("Mcp-Name", "echo")
				w := httptest.NewRecorder()
				f.ServeHTTP(w, r)
				if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"benchmark"`) {
					b.Fatalf("%d %s", w.Code, w.Body)
				}
			}
		})
	}
}
