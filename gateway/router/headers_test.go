package router

import (
	"encoding/json"
	"reflect"
	"testing"
)

// TestParamHeadersOf: the x-mcp-header annotations reachable through
// properties keys, however the key is written, and none where the schema
// has none.
func TestParamHeadersOf(t *testing.T) {
	for _, tt := range []struct {
		tool string
		want map[string][]string
	}{
		{`{"name":"t","inputSchema":{"type":"object","properties":{"a":{"type":"string"}}}}`, nil},
		{`{"name":"t","description":"x-mcp-header","inputSchema":{"type":"object"}}`, nil},
		{`{"name":"t","inputSchema":{"type":"object","properties":{"region":{"type":"string","x-mcp-header":"Region"},"level":{"type":"integer"}}}}`,
			map[string][]string{"Region": {"region"}}},
		{`{"name":"t","inputSchema":{"type":"object","properties":{"q":{"x-mcp-\u0068eader":"Q"}}}}`, map[string][]string{"Q": {"q"}}},
		{`{"name":"t","inputSchema":{"type":"object","properties":{"o":{"type":"object","properties":{"id":{"x-mcp-header":"Id"}}}}}}`,
			map[string][]string{"Id": {"o", "id"}}},
		{`{"name":"t","inputSchema":{"type":"object","x-mcp-header":"Root"}}`, nil},
		{`{"name":"t","inputSchema":{"type":"object","properties":{"a":{"X-Mcp-Header":"A"}}}}`, nil},
	} {
		if got := paramHeaders(json.RawMessage(tt.tool)); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("paramHeaders(%s) = %v, want %v", tt.tool, got, tt.want)
		}
	}
}
