package mcpface

import (
	"encoding/json"
	"testing"

	"github.com/gwmcp/gw/internal/importcheck"
)

func TestWithResultType(t *testing.T) {
	for in, want := range map[string]string{
		`{}`:                                    `{"resultType":"complete"}`,
		` { } `:                                 `{"resultType":"complete"}`,
		`{"a":1}`:                               `{"resultType":"complete","a":1}`,
		`{"resultType":"input_required","a":1}`: `{"resultType":"input_required","a":1}`,
		`{"a":{"resultType":"x"}}`:              `{"resultType":"complete","a":{"resultType":"x"}}`,
		`{"a":"resultType","b":["resultType"]}`: `{"resultType":"complete","a":"resultType","b":["resultType"]}`,
		`{"a":"\"","resultType":"complete"}`:    `{"a":"\"","resultType":"complete"}`,
		`{"result\u0054ype":"complete"}`:        `{"result\u0054ype":"complete"}`,
		`[1]`:                                   `[1]`,
		`{"a":`:                                 `{"a":`,
	} {
		if got := string(WithResultType([]byte(in))); got != want {
			t.Errorf("WithResultType(%s) = %s; want %s", in, got, want)
		}
	}
}

func FuzzWithResultType(f *testing.F) {
	f.Add([]byte(`{"a":{"resultType":1}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		out := WithResultType(b)
		if _, ok := hasTopLevelKey(b, "resultType"); ok && firstByte(b) == '{' {
			if has, ok := hasTopLevelKey(out, "resultType"); !ok || !has {
				t.Fatalf("%s -> %s: not valid with resultType", b, out)
			}
		}
	})
}

// FuzzTopLevelKey: the scan finds a key exactly when decoding the object
// into a map does, however the key is written.
func FuzzTopLevelKey(f *testing.F) {
	for _, s := range []string{`{"resultType":1}`, `{"a":{"resultType":1}}`, `{"result\u0054ype":1}`, `{"x":"\"resultType\":"}`, `[{"resultType":1}]`} {
		f.Add([]byte(s), "resultType")
	}
	f.Add([]byte("{\"\xff\":1}"), "\ufffd")
	f.Fuzz(func(t *testing.T, b []byte, key string) {
		var m map[string]json.RawMessage
		if firstByte(b) != '{' || json.Unmarshal(b, &m) != nil {
			return
		}
		if _, want := m[key]; topLevelKey(b, key) != want {
			t.Fatalf("topLevelKey(%s, %q) = %v; the map decoder: %v", b, key, !want, want)
		}
	})
}

// TestImports keeps the architecture rule: transport/ knows no gateway
// types; this package imports the standard library, transport/jsonrpc and
// transport/face only.
func TestImports(t *testing.T) {
	importcheck.Only(t, "github.com/gwmcp/gw/transport/jsonrpc", "github.com/gwmcp/gw/transport/face")
}

func TestModernResult(t *testing.T) {
	for _, tt := range []struct{ method, in, want string }{
		{"tools/list", `{"tools":[]}`, `{"resultType":"complete","ttlMs":0,"cacheScope":"private","tools":[]}`},
		{"resources/read", `{"resultType":"complete","contents":[],"ttlMs":5000,"cacheScope":"public"}`, `{"resultType":"complete","contents":[],"ttlMs":5000,"cacheScope":"public"}`},
		{"prompts/list", `{"prompts":[],"ttlMs":7}`, `{"resultType":"complete","cacheScope":"private","prompts":[],"ttlMs":7}`},
		{"tools/call", `{"content":[]}`, `{"resultType":"complete","content":[]}`},
		{"tools/list", `{}`, `{"resultType":"complete","ttlMs":0,"cacheScope":"private"}`},
	} {
		if got := string(ModernResult(tt.method, json.RawMessage(tt.in))); got != tt.want {
			t.Errorf("%s %s: %s; want %s", tt.method, tt.in, got, tt.want)
		}
	}
}
