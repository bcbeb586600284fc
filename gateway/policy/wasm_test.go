package policy

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/gwmcp/gw/gateway"
)

func TestAuthorizeInputIsJSON(t *testing.T) {
	for _, req := range []gateway.AuthzRequest{
		{Caller: gateway.Caller{ID: "alice"}, Server: "notes", Tool: "search", Name: "notes__search"},
		{Caller: gateway.Caller{ID: "bö\"b\n<x>", Groups: []string{"dev", "ops"}}, Server: "s", Tool: "t", Name: "s__t",
			Annotations: json.RawMessage(`{"readOnlyHint":true}`), Arguments: json.RawMessage(`{"q":[1,2]}`)},
	} {
		var buf bytes.Buffer
		AuthorizeInput(&buf, req)
		var got struct {
			Caller      gateway.Caller  `json:"caller"`
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
	servers := []gateway.ServerItems{{Server: "a", Items: items("x", "y")}, {Server: "b", Items: items("x")}}
	in, err := CollisionInput(gateway.KindTools, servers)
	if err != nil || !json.Valid(in) {
		t.Fatalf("input %s: %v", in, err)
	}
	res, err := ParseCollisionOutput([]byte(`{"names":[{"server":"a","name":"x","exposed":"x"},{"server":"a","name":"y","exposed":"y"}],"rejected":[{"server":"b","name":"x","reason":"taken"}]}`))
	if err != nil || len(res.Names) != 2 || len(res.Rejected) != 1 {
		t.Fatalf("%+v %v", res, err)
	}
	if err := gateway.ValidateResolution(gateway.KindTools, servers, res); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{`{}`, `{"names":[{"server":"a","name":"x","exposed":"1"},{"server":"a","name":"x","exposed":"2"}]}`, `[]`} {
		if _, err := ParseCollisionOutput([]byte(bad)); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}

func BenchmarkAuthorizeInput(b *testing.B) {
	req := gateway.AuthzRequest{Caller: gateway.Caller{ID: "alice"}, Server: "notes", Tool: "search", Name: "notes__search",
		Annotations: json.RawMessage(`{"readOnlyHint":true}`), Arguments: json.RawMessage(`{"query":"x"}`)}
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		AuthorizeInput(&buf, req)
	}
}

// FuzzParseDecision holds the authorize answer parser to failing closed: a
// decision allows only when the answer is a JSON object whose member spelled
// exactly "allow" is true; anything else allows nothing.
func FuzzParseDecision(f *testing.F) {
	for _, s := range []string{`{"allow":true}`, `{"allow":false,"reason":"no"}`, `{"Allow":true}`, `{"allow":"true"}`,
		`{"allow":true,"allow":false}`, `[]`, `null`, `{"allow":true`, `{"allow":null}`, `{"reason":"x"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, out []byte) {
		d, err := ParseDecision(out)
		if err != nil {
			if d.Allow {
				t.Fatalf("%q: an error that allows", out)
			}
			return
		}
		var ref map[string]json.RawMessage
		var allow bool
		if json.Unmarshal(out, &ref) != nil || json.Unmarshal(ref["allow"], &allow) != nil {
			t.Fatalf("%q: decided %+v, but it is not an object with a boolean allow", out, d)
		}
		if d.Allow != allow {
			t.Fatalf("%q: allow %v; the exact member says %v", out, d.Allow, allow)
		}
	})
}

// FuzzParseCollisionOutput: the collision answer parser never panics, and a
// resolution it accepts names only items the answer named.
func FuzzParseCollisionOutput(f *testing.F) {
	for _, s := range []string{`{"names":[{"server":"a","name":"x","exposed":"a__x"}]}`, `{"names":[],"rejected":[{"server":"b","name":"x","reason":"taken"}]}`,
		`{"Names":[]}`, `{"names":[{"server":"a","name":"x","exposed":"1"},{"server":"a","name":"x","exposed":"2"}]}`, `{"names":null}`, `7`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, out []byte) {
		res, err := ParseCollisionOutput(out)
		if err != nil {
			return
		}
		// The items the answer names, by exact keys.
		named := map[gateway.ItemKey]bool{}
		var top map[string]json.RawMessage
		var entries []map[string]json.RawMessage
		_ = json.Unmarshal(out, &top)
		_ = json.Unmarshal(top["names"], &entries)
		for _, e := range entries {
			var k gateway.ItemKey
			_ = json.Unmarshal(e["server"], &k.Server)
			_ = json.Unmarshal(e["name"], &k.Name)
			named[k] = true
		}
		for key := range res.Names {
			if !named[key] {
				t.Fatalf("%q: resolution names %+v, which the answer does not", out, key)
			}
		}
		servers := []gateway.ServerItems{{Server: "a", Items: []gateway.Item{{Key: "x"}}}}
		_ = gateway.ValidateResolution(gateway.KindTools, servers, res) // must not panic
	})
}

func TestPolicyOutputExactKeys(t *testing.T) {
	res, err := ParseCollisionOutput([]byte(`{"names":[{"Server":"a","name":"x","exposed":"x"},{"server":"b","Name":"y","exposed":"y"},{"server":"c","name":"z","Exposed":"z"}],"rejected":[{"server":"d","name":"w","Reason":"r"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[gateway.ItemKey]string{{Name: "x"}: "x", {Server: "b"}: "y", {Server: "c", Name: "z"}: ""}
	if !reflect.DeepEqual(res.Names, want) || len(res.Rejected) != 1 || res.Rejected[0] != (gateway.Rejection{Server: "d", Name: "w"}) {
		t.Errorf("parsed %+v", res)
	}
	if _, err := ParseCollisionOutput([]byte(`{"Names":[]}`)); err == nil {
		t.Error(`"Names" accepted`)
	}
	if d, err := ParseDecision([]byte(`{"allow":false,"Reason":"r"}`)); err != nil || d.Reason != "" {
		t.Errorf(`"Reason" read: %+v, %v`, d, err)
	}
}

func items(keys ...string) []gateway.Item {
	out := make([]gateway.Item, 0, len(keys))
	for _, k := range keys {
		out = append(out, gateway.Item{Key: k})
	}
	return out
}

// TestPinStateInPolicyInputs: the collision input gives each tool its pin
// state; the authorize input says "new" and "changed" and leaves a pinned
// tool's input in the layout the kit reads fastest; the collision answer's
// allowChanged lets a changed tool through, read by exact key.
func TestPinStateInPolicyInputs(t *testing.T) {
	servers := []gateway.ServerItems{{Server: "a", Items: []gateway.Item{{Key: "x", Pin: gateway.PinChanged}, {Key: "y", Pin: gateway.PinPinned}}}}
	in, err := CollisionInput(gateway.KindTools, servers)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"kind":"tools","servers":[{"server":"a","items":[{"name":"x","pin":"changed"},{"name":"y","pin":"pinned"}]}]}`; string(in) != want {
		t.Fatalf("collision input %s", in)
	}
	base := gateway.AuthzRequest{Caller: gateway.Caller{ID: "alice"}, Server: "a", Tool: "x", Name: "a__x", Arguments: json.RawMessage(`{}`)}
	for pin, want := range map[gateway.PinState]string{
		gateway.PinPinned:  `{"caller":{"id":"alice"},"server":"a","tool":"x","name":"a__x","arguments":{}}`,
		"":                 `{"caller":{"id":"alice"},"server":"a","tool":"x","name":"a__x","arguments":{}}`,
		gateway.PinChanged: `{"caller":{"id":"alice"},"server":"a","tool":"x","name":"a__x","arguments":{},"pin":"changed"}`,
		gateway.PinNew:     `{"caller":{"id":"alice"},"server":"a","tool":"x","name":"a__x","arguments":{},"pin":"new"}`,
	} {
		req := base
		req.Pin = pin
		var buf bytes.Buffer
		AuthorizeInput(&buf, req)
		if buf.String() != want {
			t.Errorf("pin %q: authorize input %s", pin, buf.String())
		}
	}
	res, err := ParseCollisionOutput([]byte(`{"names":[{"server":"a","name":"x","exposed":"x","allowChanged":true},{"server":"a","name":"y","exposed":"y","AllowChanged":true}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if !res.AllowChanged[gateway.ItemKey{Server: "a", Name: "x"}] || res.AllowChanged[gateway.ItemKey{Server: "a", Name: "y"}] {
		t.Fatalf("allowChanged %+v", res.AllowChanged)
	}
	if _, err := ParseCollisionOutput([]byte(`{"names":[{"server":"a","name":"x","exposed":"x","allowChanged":"yes"}]}`)); err == nil {
		t.Fatal("a non-boolean allowChanged was accepted")
	}
}
