package authz

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// sample is the ABI's example input (about 160 bytes); small is 90 bytes.
const (
	sample = `{"caller":{"id":"alice","groups":["dev"]},"server":"notes","tool":"search","name":"notes__search","annotations":{"readOnlyHint":true},"arguments":{"query":"x"}}`
	small  = `{"caller":{"id":"bob"},"server":"notes","tool":"read","name":"notes__read","arguments":{}}`
)

func TestParseSample(t *testing.T) {
	var in Input
	if err := Parse([]byte(sample), &in); err != nil {
		t.Fatal(err)
	}
	want := Input{
		Caller: Caller{ID: "alice", Groups: []string{"dev"}},
		Server: "notes", Tool: "search", Name: "notes__search",
		Annotations: Annotations{ReadOnlyHint: True, Raw: []byte(`{"readOnlyHint":true}`)},
		Arguments:   []byte(`{"query":"x"}`),
	}
	if !equalInput(in, want) {
		t.Fatalf("got  %+v\nwant %+v", in, want)
	}
	if len(small) != 90 {
		t.Fatalf("small input is %d bytes, want 90", len(small))
	}
}

func TestParseEdges(t *testing.T) {
	cases := []struct {
		doc  string
		want Input
		err  string
	}{
		{doc: `{}`},
		{doc: `{"caller":null,"annotations":null,"server":null}`},
		{doc: `{"caller":{"id":"","groups":null}}`},
		{doc: `{"Tool":"x","tool":"y","extra":{"tool":"z"},"arguments":{"tool":"w","name":"}"}}`,
			want: Input{Tool: "y", Arguments: []byte(`{"tool":"w","name":"}"}`)}},
		{doc: `{"t\u006fol":"esc\u00e9\n"}`, want: Input{Tool: "escé\n"}},
		{doc: `{"caller":{"groups":["a","","b\"","c","d","e\u00e9"],"id":"x"},"name":"n"}`,
			want: Input{Caller: Caller{ID: "x", Groups: []string{"a", "", "b\"", "c", "d", "eé"}}, Name: "n"}},
		{doc: `{"caller":{"groups":["","",""]}}`, want: Input{Caller: Caller{Groups: []string{"", "", ""}}}},
		{doc: `{"caller":{"groups":[]}}`},
		{doc: `{"annotations":{"readOnlyHint":false,"destructiveHint":true,"openWorldHint":null,"title":"T"}}`,
			want: Input{Annotations: Annotations{ReadOnlyHint: False, DestructiveHint: True,
				Raw: []byte(`{"readOnlyHint":false,"destructiveHint":true,"openWorldHint":null,"title":"T"}`)}}},
		{doc: `{"caller":{"id":"a","groups":["g"]},"name":"n","pin":"changed"}`,
			want: Input{Caller: Caller{ID: "a", Groups: []string{"g"}}, Name: "n", Pin: "changed"}},
		{doc: `{"pin":"new","pin":"changed"}`, err: "duplicate member pin"},
		{doc: `{"pin":true}`, err: "pin: expected a string"},
		{doc: `{"tool":"a","tool":"b"}`, err: "duplicate member tool"},
		{doc: `{"caller":{"id":"a","id":"b"}}`, err: "duplicate member caller.id"},
		{doc: `{"caller":"alice"}`, err: "caller: expected an object"},
		{doc: `{"caller":{"groups":"dev"}}`, err: "caller.groups: expected an array"},
		{doc: `{"caller":{"groups":["dev",1]}}`, err: "caller.groups: expected strings"},
		{doc: `{"server":1}`, err: "server: expected a string"},
		{doc: `{"annotations":{"readOnlyHint":"true"}}`, err: "annotations.readOnlyHint: expected a boolean"},
		{doc: `{"annotations":[]}`, err: "annotations: expected an object"},
		{doc: `[]`, err: "expected object"},
		{doc: `{"arguments":{"a":}}`, err: "looking for a value"},
		{doc: `{} {}`, err: "after top-level value"},
		{doc: ``, err: "unexpected end of input"},
	}
	for _, c := range cases {
		var in Input
		err := Parse([]byte(c.doc), &in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("Parse(%s): err = %v, want %q", c.doc, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Parse(%s): %v", c.doc, err)
			continue
		}
		if !equalInput(in, c.want) {
			t.Errorf("Parse(%s)\n got  %+v\n want %+v", c.doc, in, c.want)
		}
	}
}

func TestHintOr(t *testing.T) {
	if Absent.Or(false) || !Absent.Or(true) || !True.Or(false) || False.Or(true) {
		t.Fatal("Hint.Or")
	}
}

func TestAppendDecision(t *testing.T) {
	for _, c := range []struct {
		d    Decision
		want string
	}{
		{Allow(), `{"allow":true}`},
		{Deny(`no "x"` + "\n"), `{"allow":false,"reason":"no \"x\"\n"}`},
		{Deny(""), `{"allow":false,"reason":""}`},
	} {
		if got := string(appendDecision(nil, c.d)); got != c.want {
			t.Errorf("got %s, want %s", got, c.want)
		}
	}
}

func TestParseAllocs(t *testing.T) {
	var in Input
	doc := []byte(sample)
	allocs := testing.AllocsPerRun(200, func() {
		if err := Parse(doc, &in); err != nil {
			t.Fatal(err)
		}
	})
	// A reused Input carves its strings from a chunk: one allocation per
	// chunk, about every hundred calls here.
	if allocs != 0 {
		t.Errorf("Parse allocates %v times per call, want 0", allocs)
	}
}

func TestKeptStringsSurvive(t *testing.T) {
	var in Input
	if err := Parse([]byte(sample), &in); err != nil {
		t.Fatal(err)
	}
	id, name := in.Caller.ID, in.Name
	if err := Parse([]byte(`{"caller":{"id":"mallory"},"name":"other__tool"}`), &in); err != nil {
		t.Fatal(err)
	}
	if id != "alice" || name != "notes__search" {
		t.Fatalf("kept strings changed: %q %q", id, name)
	}
	// Across many chunks, and strings too long for one.
	long := strings.Repeat("g", 2*maxChunk)
	var kept []string
	for i := range 3000 {
		name := strconv.Itoa(i) + strings.Repeat("x", i%50)
		if i%500 == 0 {
			name += long
		}
		doc := `{"caller":{"id":"c` + strconv.Itoa(i) + `"},"name":"` + name + `"}`
		if err := Parse([]byte(doc), &in); err != nil {
			t.Fatal(err)
		}
		kept = append(kept, in.Caller.ID, in.Name)
	}
	for i := range 3000 {
		name := strconv.Itoa(i) + strings.Repeat("x", i%50)
		if i%500 == 0 {
			name += long
		}
		if kept[2*i] != "c"+strconv.Itoa(i) || kept[2*i+1] != name {
			t.Fatalf("input %d: kept %q %q", i, kept[2*i], kept[2*i+1])
		}
	}
}

// The fast path must be taken for what gw writes (else it is dead weight),
// and not for other layouts.
func TestCanonicalTaken(t *testing.T) {
	for doc, want := range map[string]bool{
		sample: true,
		small:  true,
		`{"caller":{"id":"a"},"server":"s","tool":"t","name":"n"}`:                                      true,
		`{"caller":{"id":"a"},"server":"s","tool":"t","name":"n","arguments":{},"pin":"changed"}`:       true,
		`{"caller":{"id":null,"groups":null},"server":null,"tool":"t","name":"n","annotations":null}`:   true,
		`{"caller":{"id":"a"},"server":"s","tool":"t","name":"n","arguments":{},"annotations":{}}`:      false,
		`{"server":"s","caller":{"id":"a"},"tool":"t","name":"n"}`:                                      false,
		`{"caller": {"id":"a"},"server":"s","tool":"t","name":"n"}`:                                     false,
		`{"caller":{"id":"a"},"server":"s","tool":"t","name":"n","name":"m"}`:                           false,
		`{"caller":{"id":"a"},"server":"s","tool":"t","name":"n","extra":1}`:                            false,
		`{"caller":{"id":"a","id":"b"},"server":"s","tool":"t","name":"n"}`:                             false,
		`{"caller":{"id":"a"},"server":"s","tool":"t","name":"n","annotations":{"readOnlyHint":"yes"}}`: false,
	} {
		var p parser
		p.s.Reset([]byte(doc))
		if got := p.canonical([]byte(doc), new(Input)); got != want {
			t.Errorf("canonical(%s) = %v, want %v", doc, got, want)
		}
	}
}

// FuzzCanonical: with or without the fast path, Parse gives the same input
// or the same error.
func FuzzCanonical(f *testing.F) {
	f.Add([]byte(sample))
	f.Add([]byte(small))
	f.Add([]byte(`{"caller":{"id":"a","groups":["x","y","z","w","v"]},"server":"s","tool":"t","name":"n\u00e9","annotations":{"readOnlyHint":true,"readOnlyHint":false},"arguments":[]}`))
	f.Add([]byte(`{"caller":{"id":"a"},"server":"s","tool":"t","name":"n","arguments":{}} x`))
	f.Add([]byte(`{"caller":{"id":"a"},"server":"s","tool":"t","name":"n","arguments":{},"caller":null}`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		var fast, general Input
		errFast, errGeneral := Parse(doc, &fast), parse(doc, &general, false)
		if (errFast == nil) != (errGeneral == nil) || errFast != nil && errFast.Error() != errGeneral.Error() {
			t.Fatalf("Parse(%q): error %v, general walk: %v", doc, errFast, errGeneral)
		}
		if errFast == nil && !equalInput(fast, general) {
			t.Fatalf("Parse(%q)\n got  %+v\n general walk %+v", doc, fast, general)
		}
	})
}

// reference decodes with encoding/json, case-sensitively, last member
// winning: the meaning Parse must agree with whenever it succeeds.
func reference(doc []byte) (Input, bool) {
	var in Input
	var top map[string]json.RawMessage
	if json.Unmarshal(doc, &top) != nil || top == nil {
		return in, false
	}
	str := func(raw json.RawMessage, dst *string) bool {
		return raw == nil || json.Unmarshal(raw, dst) == nil
	}
	ok := str(top["server"], &in.Server) && str(top["tool"], &in.Tool) && str(top["name"], &in.Name) &&
		str(top["pin"], &in.Pin)
	if raw, has := top["caller"]; has && string(raw) != "null" {
		var c map[string]json.RawMessage
		if json.Unmarshal(raw, &c) != nil {
			return in, false
		}
		ok = ok && str(c["id"], &in.Caller.ID)
		if g, has := c["groups"]; has && string(g) != "null" {
			var raws []json.RawMessage
			if json.Unmarshal(g, &raws) != nil {
				return in, false
			}
			for _, r := range raws {
				var s string
				if r[0] != '"' || json.Unmarshal(r, &s) != nil {
					return in, false
				}
				in.Caller.Groups = append(in.Caller.Groups, s)
			}
		}
	}
	if raw, has := top["annotations"]; has && string(raw) != "null" {
		var a map[string]json.RawMessage
		if json.Unmarshal(raw, &a) != nil {
			return in, false
		}
		in.Annotations.Raw = raw
		for name, h := range map[string]*Hint{"readOnlyHint": &in.Annotations.ReadOnlyHint,
			"destructiveHint": &in.Annotations.DestructiveHint, "idempotentHint": &in.Annotations.IdempotentHint,
			"openWorldHint": &in.Annotations.OpenWorldHint} {
			switch string(a[name]) {
			case "", "null":
			case "true":
				*h = True
			case "false":
				*h = False
			default:
				return in, false
			}
		}
	}
	if raw, has := top["arguments"]; has {
		in.Arguments = raw
	}
	return in, ok
}

func equalInput(a, b Input) bool {
	return a.Caller.ID == b.Caller.ID && reflect.DeepEqual(a.Caller.Groups, b.Caller.Groups) &&
		a.Server == b.Server && a.Tool == b.Tool && a.Name == b.Name &&
		a.Annotations.ReadOnlyHint == b.Annotations.ReadOnlyHint &&
		a.Annotations.DestructiveHint == b.Annotations.DestructiveHint &&
		a.Annotations.IdempotentHint == b.Annotations.IdempotentHint &&
		a.Annotations.OpenWorldHint == b.Annotations.OpenWorldHint &&
		bytes.Equal(a.Annotations.Raw, b.Annotations.Raw) && bytes.Equal(a.Arguments, b.Arguments) &&
		a.Pin == b.Pin
}

// FuzzParse: whatever Parse accepts, encoding/json reads the same way (so
// nothing hidden in arguments or escapes can change what a policy sees).
func FuzzParse(f *testing.F) {
	f.Add([]byte(sample))
	f.Add([]byte(small))
	f.Add([]byte(`{"caller":{"id":"a\"b","groups":[]},"name":"x\u0000","annotations":{"destructiveHint":false},"arguments":[1,"}",{"caller":{"id":"root"}}]}`))
	f.Add([]byte(`{"tool":"a","tool":"b"}`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		var got Input
		if err := Parse(doc, &got); err != nil {
			return
		}
		want, ok := reference(doc)
		if !ok {
			t.Fatalf("Parse accepted %q, encoding/json refuses it", doc)
		}
		// Raw slices are compacted by encoding/json's RawMessage only in
		// position, not content, so they compare equal byte for byte.
		if !equalInput(got, want) {
			t.Fatalf("Parse(%q)\n got  %+v\n want %+v", doc, got, want)
		}
	})
}

// FuzzParseBuilt: every input gw can build (encoding/json output) parses,
// to the values it was built from.
func FuzzParseBuilt(f *testing.F) {
	f.Add("alice", "dev", "notes", "search", "notes__search", uint8(1), []byte(`{"q":"x"}`))
	f.Add("", "", "", "", "", uint8(0), []byte(nil))
	f.Fuzz(func(t *testing.T, id, group, server, tool, name string, hints uint8, args []byte) {
		type caller struct {
			ID     string   `json:"id"`
			Groups []string `json:"groups,omitempty"`
		}
		type input struct {
			Caller      caller          `json:"caller"`
			Server      string          `json:"server"`
			Tool        string          `json:"tool"`
			Name        string          `json:"name"`
			Annotations map[string]bool `json:"annotations,omitempty"`
			Arguments   json.RawMessage `json:"arguments,omitempty"`
		}
		v := input{Caller: caller{ID: id}, Server: server, Tool: tool, Name: name}
		if group != "" {
			v.Caller.Groups = []string{group}
		}
		if hints&1 != 0 {
			v.Annotations = map[string]bool{"readOnlyHint": hints&2 != 0, "destructiveHint": hints&4 != 0}
		}
		if json.Valid(args) {
			v.Arguments = args
		}
		doc, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var got Input
		if err := Parse(doc, &got); err != nil {
			t.Fatalf("Parse(%s): %v", doc, err)
		}
		want, ok := reference(doc)
		if !ok || !equalInput(got, want) {
			t.Fatalf("Parse(%s)\n got  %+v\n want %+v", doc, got, want)
		}
		if valid(id, server, tool, name, group) && (got.Caller.ID != id || got.Server != server || got.Tool != tool || got.Name != name) {
			t.Fatalf("Parse(%s) lost a value: %+v", doc, got)
		}
	})
}

func valid(ss ...string) bool {
	for _, s := range ss {
		if !utf8.ValidString(s) {
			return false
		}
	}
	return true
}

func TestEvalFailsClosed(t *testing.T) {
	handler = nil
	if got := string(Eval([]byte(sample))); got != `{"allow":false,"reason":"policy registered no authorize handler"}` {
		t.Errorf("no handler: %s", got)
	}
	handler = func(in *Input) Decision { panic("boom") }
	if got := string(Eval([]byte(sample))); got != `{"allow":false,"reason":"policy panicked: boom"}` {
		t.Errorf("panic: %s", got)
	}
	handler = func(in *Input) Decision { return Allow() }
	if got := string(Eval([]byte(`{"tool":1}`))); !strings.HasPrefix(got, `{"allow":false,"reason":"policy input: json: tool: expected a string at offset 8"`) {
		t.Errorf("bad input: %s", got)
	}
	if got := string(Eval([]byte(sample))); got != `{"allow":true}` {
		t.Errorf("allow: %s", got)
	}
	handler = nil
}

// The benchmarks run natively and, for the guest's numbers, inside wazero:
//
//	PATH=$PATH:$(go env GOROOT)/lib/wasm GOWASIRUNTIME=wazero \
//	GOOS=wasip1 GOARCH=wasm go test -run=^$ -bench=. ./kit/authz/
//
// (with the wazero CLI on PATH: go install github.com/tetratelabs/wazero/cmd/wazero@v1.12.0).

// BenchmarkParse decodes the 90-byte input with the kit's scanner.
func BenchmarkParse(b *testing.B) {
	doc := []byte(small)
	var in Input
	b.ReportAllocs()
	for b.Loop() {
		if err := Parse(doc, &in); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncodingJSON decodes the same input with encoding/json, the
// baseline the kit's scanner replaces on the hot path.
func BenchmarkEncodingJSON(b *testing.B) {
	type input struct {
		Caller struct {
			ID     string   `json:"id"`
			Groups []string `json:"groups"`
		} `json:"caller"`
		Server      string          `json:"server"`
		Tool        string          `json:"tool"`
		Name        string          `json:"name"`
		Annotations map[string]any  `json:"annotations"`
		Arguments   json.RawMessage `json:"arguments"`
	}
	doc := []byte(small)
	b.ReportAllocs()
	for b.Loop() {
		var v input
		if err := json.Unmarshal(doc, &v); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEval90 is the whole authorize path for a 90-byte input that a
// read-only policy denies: parse, decide, write the output.
func BenchmarkEval90(b *testing.B) {
	handler = func(in *Input) Decision {
		if in.Annotations.ReadOnlyHint.Or(false) {
			return Allow()
		}
		return Deny("read-only policy: tool " + in.Name + " is not read-only")
	}
	defer func() { handler = nil }()
	doc := []byte(small)
	in := new(Input)
	out := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		out = appendDecision(out[:0], decide(doc, in))
	}
}
