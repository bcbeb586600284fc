package gateway

import (
	"encoding/json"
	"slices"
	"testing"
)

// TestToolDigest: the digest covers what the model reads, whatever the
// layout: key order and whitespace do not change it, a word of the
// description or schema does, and members outside PinFields do not.
func TestToolDigest(t *testing.T) {
	digest := func(raw string) *toolDef {
		t.Helper()
		fields, err := objectFields([]byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		return newToolDef(fields)
	}
	base := digest(`{"name":"search","description":"Find notes","inputSchema":{"type":"object","properties":{"q":{"type":"string"}}}}`)
	same := []string{
		`{"inputSchema":{"properties":{"q":{"type":"string"}},"type":"object"},"description":"Find notes","name":"search"}`,
		"{ \"name\" : \"search\",\n \"description\": \"Find notes\", \"inputSchema\": {\"type\": \"object\", \"properties\": {\"q\": {\"type\": \"string\"}}}}",
		`{"name":"search","description":"Find notes","inputSchema":{"type":"object","properties":{"q":{"type":"string"}}},"icons":[{"src":"x.png"}],"_meta":{"a":1}}`,
	}
	for _, raw := range same {
		if d := digest(raw); d.digest != base.digest {
			t.Errorf("%s: digest changed", raw)
		}
	}
	for raw, fields := range map[string][]string{
		`{"name":"search","description":"Find notes.","inputSchema":{"type":"object","properties":{"q":{"type":"string"}}}}`:                                 {"description"},
		`{"name":"search","description":"Find notes","inputSchema":{"type":"object","properties":{"q":{"type":"integer"}}}}`:                                 {"inputSchema"},
		`{"name":"search","description":"Find notes","inputSchema":{"type":"object","properties":{"q":{"type":"string"}}},"annotations":{}}`:                 {"annotations"},
		`{"name":"search","title":"Search","inputSchema":{"type":"object","properties":{"q":{"type":"string"}}}}`:                                            {"title", "description"},
		`{"name":"search","description":"Find notes","inputSchema":{"type":"object","properties":{"q":{"type":"string"}}},"outputSchema":{"type":"object"}}`: {"outputSchema"},
	} {
		d := digest(raw)
		if d.digest == base.digest {
			t.Errorf("%s: digest unchanged", raw)
		}
		if got := changedFields(base.fields, d.fields); !slices.Equal(got, fields) {
			t.Errorf("%s: changed fields %v, want %v", raw, got, fields)
		}
	}
	if string(base.canonical) != `{"description":"Find notes","inputSchema":{"properties":{"q":{"type":"string"}},"type":"object"},"name":"search"}` {
		t.Errorf("canonical %s", base.canonical)
	}
	if d := digest(`{"name":"a","description":"<b>&"}`); string(d.canonical) != `{"description":"<b>&","name":"a"}` {
		t.Errorf("canonical escapes HTML: %s", d.canonical)
	}
}

// TestToolDefCanonicalUnchanged: the canonical definition (and so every
// digest in a pin store) is what it was when it was made by encoding the
// canonical fields and canonicalizing the object again.
func TestToolDefCanonicalUnchanged(t *testing.T) {
	for _, raw := range []string{
		`{"name":"search"}`,
		`{"name":"x","title":"T","description":"a <b> & \u2028 \"q\" é \ud83d\ude00","inputSchema":{"type":"object","properties":{"n":{"type":"number","maximum":1e3,"minimum":-0.50}},"required":["n"]},"outputSchema":{"type":"object"},"annotations":{"readOnlyHint":true,"destructiveHint":false},"_meta":{"z":1},"icons":[]}`,
		"{ \"description\" : \"tabs\\tand\\nlines\",\n \"name\": \"y\", \"annotations\": null }",
		`{"inputSchema":{"b":[1,2,{"d":null,"c":"\u00e9"}],"a":{}},"name":"z"}`,
	} {
		fields, err := objectFields([]byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		def := map[string]json.RawMessage{}
		for _, k := range PinFields {
			if v, ok := fields[k]; ok {
				def[k] = canonicalJSON(v)
			}
		}
		want := canonicalJSON(mustJSON(def))
		if got := newToolDef(fields).canonical; string(got) != string(want) {
			t.Errorf("%s:\ngot  %s\nwant %s", raw, got, want)
		}
	}
}

func BenchmarkToolDef(b *testing.B) {
	fields, err := objectFields([]byte(`{"name":"tool01","description":"Tool 1 of t0001: answers with its name.","inputSchema":{"type":"object","properties":{"n":{"type":"integer"}}}}`))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		newToolDef(fields)
	}
}
