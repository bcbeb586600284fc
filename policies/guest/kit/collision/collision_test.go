package collision

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

const sample = `{"kind":"tools",
 "servers":[{"server":"notes","items":[{"name":"search","description":"Find notes","annotations":{"readOnlyHint":true}}]},
            {"server":"web","items":[{"name":"search","description":"Search the web","inputSchema":{"type":"object"}}]}]}`

func TestParseSample(t *testing.T) {
	var in Input
	if err := Parse([]byte(sample), &in); err != nil {
		t.Fatal(err)
	}
	if in.Kind != "tools" || len(in.Servers) != 2 || in.Servers[1].Server != "web" ||
		in.Servers[0].Items[0].Description != "Find notes" ||
		string(in.Servers[0].Items[0].Annotations) != `{"readOnlyHint":true}` ||
		string(in.Servers[1].Items[0].Raw) != `{"name":"search","description":"Search the web","inputSchema":{"type":"object"}}` {
		t.Fatalf("%+v", in)
	}
}

func TestParseErrors(t *testing.T) {
	for doc, want := range map[string]string{
		`{"kind":"tools","kind":"prompts"}`:                  "duplicate member kind",
		`{"servers":{}}`:                                     "servers: expected an array",
		`{"servers":[1]}`:                                    "servers: expected objects",
		`{"servers":[{"server":"a","items":[{}]}]}`:          "item without a name",
		`{"servers":[{"server":"a","items":[{"name":1}]}]}`:  "name: expected a string",
		`{"servers":[{"server":"a","items":"x"}]}`:           "items: expected an array",
		`{"servers":[{"server":"a","items":[{"name":"x"}]}]`: "unexpected end of input",
	} {
		var in Input
		if err := Parse([]byte(doc), &in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%s): err = %v, want %q", doc, err, want)
		}
	}
}

func TestAppendResolution(t *testing.T) {
	var r Resolution
	if got := string(AppendResolution(nil, &r)); got != `{"names":[],"rejected":[]}` {
		t.Errorf("empty: %s", got)
	}
	r.Expose("notes", "search", "notes__search")
	r.Expose("we\"b", "search", "web__search")
	r.Reject("x", "y\n", "collides with notes/search")
	out := AppendResolution(nil, &r)
	var back struct {
		Names    []map[string]string
		Rejected []map[string]string
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&back); err != nil {
		t.Fatalf("%s: %v", out, err)
	}
	if back.Names[1]["server"] != "we\"b" || back.Rejected[0]["name"] != "y\n" || back.Rejected[0]["reason"] != "collides with notes/search" {
		t.Fatalf("%s", out)
	}
}

func TestEval(t *testing.T) {
	handler = nil
	if _, err := Eval([]byte(sample)); err != ErrNoHandler {
		t.Fatalf("no handler: %v", err)
	}
	handler = func(in *Input) Resolution { panic("boom") }
	if _, err := Eval([]byte(sample)); err == nil || err.Error() != "collision: policy panicked: boom" {
		t.Fatalf("panic: %v", err)
	}
	handler = func(in *Input) Resolution {
		var r Resolution
		for _, s := range in.Servers {
			for _, it := range s.Items {
				r.Expose(s.Server, it.Name, s.Server+"."+it.Name)
			}
		}
		return r
	}
	defer func() { handler = nil }()
	if _, err := Eval([]byte(`{"servers":3}`)); err == nil || !strings.Contains(err.Error(), "policy input") {
		t.Fatalf("bad input: %v", err)
	}
	out, err := Eval([]byte(sample))
	if err != nil || string(out) != `{"names":[{"server":"notes","name":"search","exposed":"notes.search"},{"server":"web","name":"search","exposed":"web.search"}],"rejected":[]}` {
		t.Fatalf("%s %v", out, err)
	}
}

// FuzzParse: whatever Parse accepts, encoding/json reads the same way
// (decoded into maps: case-sensitive, like Parse).
func FuzzParse(f *testing.F) {
	f.Add([]byte(sample))
	f.Add([]byte(`{"kind":"prompts","servers":[{"server":"a\u0041","items":[{"name":"x","description":null,"annotations":null}]},{"items":null}]}`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		var got Input
		if Parse(doc, &got) != nil {
			return
		}
		var top map[string]json.RawMessage
		if err := json.Unmarshal(doc, &top); err != nil {
			t.Fatalf("Parse accepted %q, encoding/json: %v", doc, err)
		}
		var kind string
		var servers []map[string]json.RawMessage
		if json.Unmarshal(top["kind"], &kind) != nil && top["kind"] != nil ||
			json.Unmarshal(top["servers"], &servers) != nil && top["servers"] != nil {
			t.Fatalf("Parse accepted %q, encoding/json refuses its members", doc)
		}
		if got.Kind != kind || len(got.Servers) != len(servers) {
			t.Fatalf("Parse(%q) = %+v", doc, got)
		}
		for i, s := range got.Servers {
			var name string
			var items []json.RawMessage
			json.Unmarshal(servers[i]["server"], &name)
			json.Unmarshal(servers[i]["items"], &items)
			if s.Server != name || len(s.Items) != len(items) {
				t.Fatalf("server %d: got %+v, doc %q", i, s, doc)
			}
			for j, it := range s.Items {
				var m map[string]json.RawMessage
				if err := json.Unmarshal(items[j], &m); err != nil {
					t.Fatal(err)
				}
				var name, desc string
				if json.Unmarshal(m["name"], &name) != nil || m["description"] != nil && json.Unmarshal(m["description"], &desc) != nil {
					t.Fatalf("item %d/%d: encoding/json refuses %q", i, j, items[j])
				}
				ann := m["annotations"]
				if string(ann) == "null" {
					ann = nil
				}
				if it.Name != name || it.Description != desc || !bytes.Equal(it.Annotations, ann) || !bytes.Equal(it.Raw, items[j]) {
					t.Fatalf("item %d/%d: got %+v, want %q, doc %q", i, j, it, m, doc)
				}
			}
		}
	})
}
