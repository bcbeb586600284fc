package gateway

import (
	"encoding/json"
	"strings"
	"testing"
)

// Servers' JSON is read by exact key: a mis-cased key is absent. Each test
// below feeds a decode site a key that encoding/json would fold.

func TestResultTypeExactKey(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{`{"resultType":"input_required"}`, "input_required"},
		{`{"ResultType":"input_required"}`, "complete"}, // folded by encoding/json
		{`{"RESULTTYPE":"input_required","x":1}`, "complete"},
		{`{"resultType":"complete","ResultType":"input_required"}`, "complete"},
		{`{"ResultType":"input_required","resultType":"complete"}`, "complete"},
		{`{"result\u0054ype":"input_required"}`, "input_required"}, // an escape spells the key exactly
		{`{"resultType":"input\u005frequired"}`, "input_required"},
		{`{"resultType":"complete","resultType":"input_required"}`, "input_required"}, // the last counts
		{`{"content":[{"resultType":"input_required"}],"x":{"resultType":"y"}}`, "complete"},
		{`{"resultType":null}`, "complete"},
		{`{"resultType":7}`, "complete"},
		{`{"resultType":"other"}`, "other"},
		{` { "resultType" : "input_required" } `, "input_required"},
		{`{}`, "complete"},
		{`null`, "complete"},
		{``, "complete"},
	} {
		if got := resultType(json.RawMessage(tt.in)); got != tt.want {
			t.Errorf("resultType(%s) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestRouteProgressExactKey(t *testing.T) {
	var got []json.RawMessage
	c := &pendingCall{method: methodToolsCall, token: "gw-1", callerTok: json.RawMessage(`"caller"`),
		onProgress: func(p json.RawMessage) { got = append(got, p) }}
	s := &session{tokens: map[string]*pendingCall{"gw-1": c}}
	for _, tt := range []struct {
		in     string
		routed bool
	}{
		{`{"progressToken":"gw-1","progress":1,"total":2,"message":"m"}`, true},
		{`{"ProgressToken":"gw-1","progress":1}`, false}, // folded by encoding/json
		{`{"progresstoken":"gw-1","progress":1}`, false},
		{`{"progress":1,"PROGRESSTOKEN":"gw-1"}`, false},
		{`{"_meta":{"progressToken":"gw-1"},"progress":1}`, false},
		{`{"progressToken":"gw-2","progress":1}`, false},
		{`{"progressToken":1,"progress":1}`, false},
		{`{"progress\u0054oken":"gw-\u0031","progress":3}`, true},
		{`{"progressToken":"other","progressToken":"gw-1","progress":4}`, true}, // the last counts
		{`{"progressToken":"gw-1","ProgressToken":"gw-9","progress":5}`, true},
	} {
		got = nil
		s.routeProgress(json.RawMessage(tt.in))
		if (len(got) == 1) != tt.routed || len(got) > 1 {
			t.Errorf("%s: routed %d times, want routed=%v", tt.in, len(got), tt.routed)
			continue
		}
		if !tt.routed {
			continue
		}
		out := got[0]
		m, err := objectFields(out)
		if err != nil || string(m["progressToken"]) != `"caller"` || strings.Contains(string(out), "gw-1") {
			t.Errorf("%s: routed as %s", tt.in, out)
		}
		in, _ := objectFields(json.RawMessage(tt.in))
		for k, v := range in {
			if k != "progressToken" && string(m[k]) != string(v) {
				t.Errorf("%s: member %q became %s", tt.in, k, m[k])
			}
		}
	}
}

// The scanner finds members as a map decode of the object would, exactly.
func TestFindMember(t *testing.T) {
	for _, tt := range []struct {
		in, key, want string
		n             int
	}{
		{`{"a":1}`, "a", `1`, 1},
		{`{"A":1}`, "a", ``, 0},
		{` {"a" : [1,{"a":"}"}] , "b":"\"" } `, "a", `[1,{"a":"}"}]`, 1},
		{` {"a" : [1,{"a":"}"}] , "b":"\"" } `, "b", `"\""`, 1},
		{`{"a":1,"b":{"a":2},"a":true}`, "a", `true`, 2},
		{`{"\u0061":null}`, "a", `null`, 1},
		{`{"é":-1.5e3}`, "é", `-1.5e3`, 1},
		{`[{"a":1}]`, "a", ``, 0},
		{`"a"`, "a", ``, 0},
		{`{"a":1`, "a", `1`, 1},
	} {
		start, end, n := findMember([]byte(tt.in), tt.key)
		if n != tt.n || n > 0 && tt.in[start:end] != tt.want {
			t.Errorf("findMember(%s, %q) = %q ×%d", tt.in, tt.key, tt.in[start:end], n)
		}
	}
}
