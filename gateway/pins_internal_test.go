package gateway

import (
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
