package jsonrpc

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestIsToolError: isError is read as encoding/json reads the result
// object: by its key's decoded text (escapes too, case-sensitive), at the
// top level only, the last one when it repeats, true only for the literal
// true. Every valid case is checked against encoding/json as well.
func TestIsToolError(t *testing.T) {
	for _, tt := range []struct {
		res  string
		want bool
	}{
		// Plain.
		{`{"content":[],"isError":true}`, true},
		{`{"isError":true}`, true},
		{`{"isError":false}`, false},
		{`{"content":[]}`, false},
		{`{}`, false},
		{" {\r\n \"content\" : [ ] ,\t\"isError\" :  true \n} \n", true},
		// Escaped keys.
		{`{"\u0069sError":true}`, true},
		{`{"is\u0045rror":true}`, true},
		{`{"\u0069\u0073\u0045\u0072\u0072\u006F\u0072":true}`, true},
		{`{"\u0069sError":false}`, false},
		{`{"\u0049sError":true}`, false},
		{`{"content":[{"type":"text","text":"\u00e9"}],"\u0069sError":true}`, true},
		// Other keys.
		{`{"IsError":true}`, false},
		{`{"iserror":true}`, false},
		{`{"isError ":true}`, false},
		{`{"isErrorX":true}`, false},
		{`{"is\"Error":true}`, false},
		{`{"is_error":true}`, false},
		// Not at the top level.
		{`{"content":[{"type":"text","text":"x","isError":true}]}`, false},
		{`{"content":[],"structuredContent":{"isError":true}}`, false},
		{`{"_meta":{"\u0069sError":true},"isError":false}`, false},
		{`{"content":[{"type":"text","text":"\"isError\":true"}]}`, false},
		{`{"content":[{"type":"text","text":"\"isError\":true"}],"isError":false}`, false},
		{`{"content":[{"type":"text","text":"caf\u00e9"}]}`, false},
		{`{"a":"\\u0069sError","isError":true}`, true},
		{`{"a":"\\","isError":true}`, true},
		{`{"a":"\\\"isError\":true"}`, false},
		// Values other than true.
		{`{"isError":"true"}`, false},
		{`{"isError":1}`, false},
		{`{"isError":null}`, false},
		{`{"isError":[true]}`, false},
		{`{"isError":{"value":true}}`, false},
		// Repeated keys: the last one.
		{`{"isError":true,"isError":false}`, false},
		{`{"isError":false,"isError":true}`, true},
		{`{"isError":false,"\u0069sError":true}`, true},
		{`{"\u0069sError":true,"isError":false}`, false},
		// Not an object.
		{`[{"isError":true}]`, false},
		{`"isError"`, false},
		{`"\u0069sError"`, false},
		{`true`, false},
		{`null`, false},
		{`42`, false},
		{``, false},
	} {
		if got := IsToolError(json.RawMessage(tt.res)); got != tt.want {
			t.Errorf("IsToolError(%s) = %v, want %v", tt.res, got, tt.want)
		}
		if !json.Valid([]byte(tt.res)) {
			continue
		}
		var obj map[string]json.RawMessage
		if ref := json.Unmarshal([]byte(tt.res), &obj) == nil && string(obj["isError"]) == "true"; ref != tt.want {
			t.Errorf("the table says %v for %s, encoding/json %v", tt.want, tt.res, ref)
		}
	}
}

// TestIsToolErrorNoAllocs: the check allocates nothing for results with
// plain keys, whether they name isError or not, and whatever escapes their
// values hold.
func TestIsToolErrorNoAllocs(t *testing.T) {
	for _, res := range []string{
		`{"content":[{"type":"text","text":"hello"}]}`,
		`{"content":[{"type":"text","text":"caf\u00e9 \"isError\":true"}],"structuredContent":{"isError":true}}`,
		`{"content":[],"isError":true}`,
		`{"content":[{"type":"text","text":"` + strings.Repeat(`\u00e9`, 10000) + `"}],"isError":false}`,
	} {
		raw := json.RawMessage(res)
		if n := testing.AllocsPerRun(100, func() { _ = IsToolError(raw) }); n != 0 {
			t.Errorf("%.40s…: %v allocations, want 0", res, n)
		}
	}
}

// BenchmarkIsToolError is the check's cost on a 64 KiB result that does
// not name isError, the common case.
func BenchmarkIsToolError(b *testing.B) {
	res := json.RawMessage(`{"content":[{"type":"text","text":"` + strings.Repeat("lorem ipsum ", 64<<10/12) + `"}]}`)
	b.SetBytes(int64(len(res)))
	for b.Loop() {
		if IsToolError(res) {
			b.Fatal("isError")
		}
	}
}
