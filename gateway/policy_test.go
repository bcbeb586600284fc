package gateway

import (
	"bytes"
	"encoding/json"
	"testing"
)

func TestAuthorizeInputIsJSON(t *testing.T) {
	for _, req := range []AuthzRequest{
		{Caller: Caller{ID: "alice"}, Server: "notes", Tool: "search", Name: "notes__search"},
		{Caller: Caller{ID: "bö\"b\n<x>", Groups: []string{"dev", "ops"}}, Server: "s", Tool: "t", Name: "s__t",
			Annotations: json.RawMessage(`{"readOnlyHint":true}`), Arguments: json.RawMessage(`{"q":[1,2]}`)},
	} {
		var buf bytes.Buffer
		AuthorizeInput(&buf, req)
		var got struct {
			Caller      Caller          `json:"caller"`
			Server      string          `json:"server"`
			Tool        string          `json:"tool"`
			Name        string          `json:"name"`
			Annotations json.RawMessage `json:"annotations"`
			Arguments   json.RawMessage `json:"arguments"`
		}
		if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
			t.Fatalf("%s: %v", buf.String(), err)
		}
		if got.Caller.ID != req.Caller.ID || len(got.Caller.Groups) != len(req.Caller.Groups) || got.Server != req.Server ||
			got.Tool != req.Tool || got.Name != req.Name || string(got.Annotations) != string(req.Annotations) {
			t.Errorf("round trip of %+v gave %+v", req, got)
		}
	}
}

func TestParseDecision(t *testing.T) {
	tests := []struct {
		in    string
		allow bool
		fail  bool
	}{
		{`{"allow":true}`, true, false},
		{`{"allow":false,"reason":"no"}`, false, false},
		{`{ "allow" : true , "extra": 1 }`, true, false},
		{`{"Allow":true}`, false, true}, // case-sensitive: no "allow"
		{`{"reason":"x"}`, false, true},
		{`not json`, false, true},
		{``, false, true},
	}
	for _, tt := range tests {
		d, err := ParseDecision([]byte(tt.in))
		if (err != nil) != tt.fail || d.Allow != tt.allow {
			t.Errorf("ParseDecision(%s) = %+v, %v", tt.in, d, err)
		}
	}
}

func TestCollisionRoundTrip(t *testing.T) {
	servers := []ServerItems{{Server: "a", Items: items("x", "y")}, {Server: "b", Items: items("x")}}
	in, err := CollisionInput(KindTools, servers)
	if err != nil || !json.Valid(in) {
		t.Fatalf("input %s: %v", in, err)
	}
	res, err := ParseCollisionOutput([]byte(`{"names":[{"server":"a","name":"x","exposed":"x"},{"server":"a","name":"y","exposed":"y"}],"rejected":[{"server":"b","name":"x","reason":"taken"}]}`))
	if err != nil || len(res.Names) != 2 || len(res.Rejected) != 1 {
		t.Fatalf("%+v %v", res, err)
	}
	if err := ValidateResolution(KindTools, servers, res); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{`{}`, `{"names":[{"server":"a","name":"x","exposed":"1"},{"server":"a","name":"x","exposed":"2"}]}`, `[]`} {
		if _, err := ParseCollisionOutput([]byte(bad)); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}

func BenchmarkAuthorizeInput(b *testing.B) {
	req := AuthzRequest{Caller: Caller{ID: "alice"}, Server: "notes", Tool: "search", Name: "notes__search",
		Annotations: json.RawMessage(`{"readOnlyHint":true}`), Arguments: json.RawMessage(`{"query":"x"}`)}
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		AuthorizeInput(&buf, req)
	}
}
