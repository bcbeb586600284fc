package mcpface

import (
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

// TestImports keeps the architecture rule: transport/ knows no gateway
// types; this package imports the standard library, transport/jsonrpc and
// transport/face only.
func TestImports(t *testing.T) {
	importcheck.Only(t, "github.com/gwmcp/gw/transport/jsonrpc", "github.com/gwmcp/gw/transport/face")
}
