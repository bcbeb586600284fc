package natsface

import (
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"testing"
)

func TestScanObject(t *testing.T) {
	many := func(n int, last string) string { // n distinct keys, then last
		var b strings.Builder
		b.WriteString("{")
		for i := range n {
			fmt.Fprintf(&b, `"k%d":%d,`, i, i)
		}
		b.WriteString(last + "}")
		return b.String()
	}
	for _, tc := range []struct {
		in, allowed, err string
	}{
		{in: `{}`},
		{in: ` {"name":"a","arguments":{"name":"b","name":"c"}} `}, // nested duplicates are the server's business
		{in: `[1]`, err: "not a JSON object"},
		{in: `"x"`, err: "not a JSON object"},
		{in: ``, err: "not a JSON object"},
		{in: `{"a":}`, err: "invalid JSON"},
		{in: `{"a":1} {}`, err: "invalid JSON"},
		{in: `{"a":1}x`, err: "invalid JSON"},
		{in: `{"name":1,"name":2}`, err: `duplicate key "name"`},
		{in: `{"name":1,"n\u0061me":2}`, err: `duplicate key "name"`}, // the same key, spelled twice
		{in: `{"name":1,"Name":2}`},                                   // exact keys: these differ
		{in: many(20, `"k3":0`), err: `duplicate key "k3"`},           // past the small set
		{in: many(20, `"k19x":0`)},
		{in: `{"result":{}}`, allowed: "result,error"},
		{in: `{"Result":{}}`, allowed: "result,error", err: `unknown key "Result"`},
	} {
		var allowed []string
		if tc.allowed != "" {
			allowed = strings.Split(tc.allowed, ",")
		}
		got, err := decodeObject([]byte(tc.in), allowed)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want one containing %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		var want map[string]json.RawMessage
		if err := json.Unmarshal([]byte(tc.in), &want); err != nil {
			t.Fatal(err)
		}
		if !maps.EqualFunc(got, want, func(a, b json.RawMessage) bool { return string(a) == string(b) }) {
			t.Errorf("%s: members %q, want %q", tc.in, got, want)
		}
	}
}

// The face checks every request's params with scanObject: an object of plain keys costs no
// allocation, whatever its size.
func TestScanObjectAllocs(t *testing.T) {
	body := []byte(`{"name":"s__echo","arguments":{"text":"` + strings.Repeat("x", 4096) + `"},"_meta":{"progressToken":7}}`)
	var name json.RawMessage
	allocs := testing.AllocsPerRun(100, func() {
		err := scanObject(body, nil, func(key []byte, value json.RawMessage) {
			if string(key) == "name" {
				name = value
			}
		})
		if err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 || string(name) != `"s__echo"` {
		t.Errorf("%v allocations, name %s; want 0 and \"s__echo\"", allocs, name)
	}
}
