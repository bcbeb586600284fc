package rpcclient

import (
	"encoding/json"
	"testing"
)

func TestRequest(t *testing.T) {
	meta := []byte(`"_meta":{"v":1}`)
	for _, tt := range []struct {
		method string
		params string
		meta   []byte
		want   string
	}{
		{"ping", "", nil, `{"jsonrpc":"2.0","id":7,"method":"ping"}`},
		{"tools/list", "{}", nil, `{"jsonrpc":"2.0","id":7,"method":"tools/list","params":{}}`},
		{"tools/list", "", meta, `{"jsonrpc":"2.0","id":7,"method":"tools/list","params":{"_meta":{"v":1}}}`},
		{"tools/list", " { } ", meta, `{"jsonrpc":"2.0","id":7,"method":"tools/list","params":{"_meta":{"v":1}}}`},
		{"tools/call", `{"name":"x"}`, meta, `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"_meta":{"v":1},"name":"x"}}`},
		{`odd"name`, "", nil, `{"jsonrpc":"2.0","id":7,"method":"odd\"name"}`},
	} {
		got := string(request("7", tt.method, json.RawMessage(tt.params), tt.meta))
		if got != tt.want || !json.Valid([]byte(got)) {
			t.Errorf("request(%q, %q) = %s, want %s", tt.method, tt.params, got, tt.want)
		}
	}
}
