package gateway

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gwmcp/gw/internal/jsonscan"
)

// exactTargets are the types gw decodes servers' and policies' JSON into,
// and one that has every shape decodeExact walks.
var exactTargets = []reflect.Type{
	reflect.TypeFor[serverCapabilities](),
	reflect.TypeFor[Implementation](),
	reflect.TypeFor[struct { // the shape of a collision policy's answer
		Names []struct {
			Server  string `json:"server"`
			Name    string `json:"name"`
			Exposed string `json:"exposed"`
		} `json:"names"`
		Rejected []struct {
			Server string `json:"server"`
			Name   string `json:"name"`
			Reason string `json:"reason"`
		} `json:"rejected"`
	}](),
	reflect.TypeFor[struct {
		InputRequests map[string]struct {
			Method string          `json:"method"`
			Params json.RawMessage `json:"params"`
		} `json:"inputRequests"`
	}](),
	reflect.TypeFor[struct {
		ProtocolVersion string          `json:"protocolVersion"`
		Capabilities    json.RawMessage `json:"capabilities"`
		ServerInfo      Implementation  `json:"serverInfo"`
		Instructions    string          `json:"instructions"`
	}](),
	reflect.TypeFor[struct {
		P  *Implementation           `json:"p"`
		PP **Implementation          `json:"pp"`
		S  []Implementation          `json:"s"`
		SP []*serverCapabilities     `json:"sp"`
		M  map[string]Implementation `json:"m"`
		MS map[string][]*struct {
			N  float64 `json:"n"`
			B  bool    `json:"b,omitempty"`
			X  any
			No string `json:"-"`
		} `json:"ms"`
		A [2]string `json:"a"`
	}](),
}

var exactSeeds = []string{
	`{"tools":{"listChanged":true},"Tools":null,"prompts":{"ListChanged":true,"listChanged":false},"resources":{"subscribe":true,"Subscribe":false},"logging":{}}`,
	`{"tools":{},"tools":{"listChanged":true},"prompts":5}`,
	`{"name":"n","Name":"N","version":"v","VERSION":"V","name":"last"}`,
	`{"names":[{"server":"a","Server":"b","name":"x","exposed":"x"},null],"names":[{"name":"y"}],"rejected":[]}`,
	`{"inputRequests":{"q":{"method":"roots/list","Method":"x","params":{"A":1}},"r":null,"Q":{"METHOD":"y"}}}`,
	`{"protocolVersion":"2025-11-25","capabilities":{"Tools":{}},"serverInfo":{"Name":"n","version":"1"},"serverinfo":{"name":"m"}}`,
	`{"p":{"name":"\u00e9"},"pp":{"version":"1"},"s":[{"name":"a"},{"Name":"b"}],"sp":[null,{"tools":{}}],"m":{"K":{"name":"k"},"k":{"NAME":"x"}},"ms":{"x":[{"n":1e3,"b":true,"X":{"Y":[null]},"x":2,"No":"no"}]},"a":["1","2","3"]}`,
	`{"s":{"name":"a"},"m":[],"p":"x","pp":null,"sp":[1],"ms":{"x":{}}}`,
	`{"na\u006de":"escaped","\u004eame":"no","name\ud800":"bad"}`,
	`null`, `[]`, `"x"`, `1`, ``, `{`, ` { } `,
}

// exactFilter is the reference for decodeExact, written another way: it
// rewrites the JSON text raw, meant for type t, token by token, dropping every
// object member whose key is not the exact name of a field of the struct it
// fills. json.Unmarshal of the result must then give what decodeExact gives.
func exactFilter(raw json.RawMessage, t reflect.Type) json.RawMessage {
	raw = bytes.TrimSpace(raw)
	for {
		if decodesItself(t) {
			return raw
		}
		if t.Kind() != reflect.Pointer {
			break
		}
		t = t.Elem()
	}
	if len(raw) == 0 || raw[0] != '{' && raw[0] != '[' {
		return raw
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	open, _ := dec.Token()
	var out bytes.Buffer
	if open == json.Delim('[') {
		if t.Kind() != reflect.Slice && t.Kind() != reflect.Array {
			return raw
		}
		out.WriteByte('[')
		for i := 0; dec.More(); i++ {
			var v json.RawMessage
			_ = dec.Decode(&v)
			if i > 0 {
				out.WriteByte(',')
			}
			out.Write(exactFilter(v, t.Elem()))
		}
		out.WriteByte(']')
		return out.Bytes()
	}
	if t.Kind() != reflect.Struct && t.Kind() != reflect.Map {
		return raw
	}
	out.WriteByte('{')
	n := 0
	for dec.More() {
		tok, _ := dec.Token()
		key := tok.(string)
		var v json.RawMessage
		_ = dec.Decode(&v)
		elem := t
		if t.Kind() == reflect.Map {
			elem = t.Elem()
		} else if f, ok := fieldNamed(t, key); ok {
			elem = f.Type
		} else {
			continue
		}
		if n++; n > 1 {
			out.WriteByte(',')
		}
		k, _ := json.Marshal(key)
		out.Write(k)
		out.WriteByte(':')
		out.Write(exactFilter(v, elem))
	}
	out.WriteByte('}')
	return out.Bytes()
}

func decodesItself(t reflect.Type) bool {
	for _, i := range []reflect.Type{reflect.TypeFor[json.Unmarshaler](), reflect.TypeFor[encoding.TextUnmarshaler]()} {
		if t.Implements(i) || reflect.PointerTo(t).Implements(i) {
			return true
		}
	}
	return false
}

// fieldNamed finds the field whose JSON name is exactly name.
func fieldNamed(t reflect.Type, name string) (reflect.StructField, bool) {
	for f := range t.Fields() {
		tag := f.Tag.Get("json")
		if !f.IsExported() || tag == "-" {
			continue
		}
		n, _, _ := strings.Cut(tag, ",")
		if n == "" {
			n = f.Name
		}
		if n == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func FuzzDecodeExact(f *testing.F) {
	for _, s := range exactSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, typ := range exactTargets {
			got := reflect.New(typ)
			err := decodeExact(data, got.Interface())
			if !json.Valid(data) {
				var syntax *json.SyntaxError
				if !errors.As(err, &syntax) {
					t.Fatalf("%v: invalid %q gave %v", typ, data, err)
				}
				if !got.Elem().IsZero() {
					t.Fatalf("%v: invalid %q changed the value", typ, data)
				}
				continue
			}
			filtered := exactFilter(data, typ)
			want := reflect.New(typ)
			wantErr := json.Unmarshal(filtered, want.Interface())
			if (err == nil) != (wantErr == nil) {
				t.Fatalf("%v: %s: error %v, reference (%s) %v", typ, data, err, filtered, wantErr)
			}
			if wantErr == nil && !reflect.DeepEqual(got.Interface(), want.Interface()) {
				t.Fatalf("%v: %s:\n got  %+v\n want %+v (from %s)", typ, data, got.Elem(), want.Elem(), filtered)
			}
		}
	})
}

// FuzzFindMember checks the scanner against a map decode, which matches keys
// exactly: the same member found (the last of a repeated key), and the same
// resultType, progress token and spliced object. It must never panic, even on
// invalid text.
func FuzzFindMember(f *testing.F) {
	for _, s := range exactSeeds {
		f.Add([]byte(s), "name")
	}
	f.Add([]byte(`{"resultType":"input_required","ResultType":"complete"}`), "resultType")
	f.Add([]byte(`{"progressToken":"gw-1","progress\u0054oken":"gw-\u0032","progress":0.5,"total":1,"message":"m"}`), "progressToken")
	f.Add([]byte(`{"a":[{"}":"]"},"\"",-0.1E+2,true,false,null],"b" : { } }`), "b")
	f.Fuzz(func(t *testing.T, data []byte, key string) {
		start, end, n := jsonscan.Member(data, key)
		_ = resultType(data)
		if n > 0 {
			_, _ = jsonscan.String(data[start:end])
		}
		if !json.Valid(data) {
			return
		}
		var m map[string]json.RawMessage
		if json.Unmarshal(data, &m) != nil {
			m = nil // not an object
		}
		v, ok := m[key]
		if (n > 0) != ok || ok && !bytes.Equal(data[start:end], v) {
			t.Fatalf("jsonscan.Member(%s, %q) = %s ×%d; a map decode gives %s, %v", data, key, data[start:end], n, v, ok)
		}

		want := "complete"
		if rt, ok := m["resultType"]; ok {
			var s *string
			if json.Unmarshal(rt, &s) == nil && s != nil {
				want = *s
			}
		}
		if got := resultType(data); got != want {
			t.Fatalf("resultType(%s) = %q, want %q", data, got, want)
		}

		if !ok {
			return
		}
		var s string
		text, isString := jsonscan.String(v)
		if (json.Unmarshal(v, &s) == nil) != isString || isString && string(text) != s {
			t.Fatalf("jsonscan.String(%s) = %q, %v; want %q", v, text, isString, s)
		}
		if n == 1 {
			out := splice(data, start, end, json.RawMessage(`"swapped"`))
			var after map[string]json.RawMessage
			if err := json.Unmarshal(out, &after); err != nil {
				t.Fatalf("splice of %s gave %s: %v", data, out, err)
			}
			m[key] = json.RawMessage(`"swapped"`)
			if !reflect.DeepEqual(after, m) {
				t.Fatalf("splice of %s gave %s", data, out)
			}
		}
	})
}

// FuzzRewriteObject holds rewriteObject to the map it replaced: decode the
// object, set or delete the key, encode. Member order may differ; the JSON
// values must be the same.
func FuzzRewriteObject(f *testing.F) {
	for _, seed := range []struct{ obj, key, value string }{
		{`{"name":"a__echo","arguments":{"text":"hi"}}`, "name", `"echo"`},
		{`{"arguments":{"name":"inner"},"name":"x","name":"y"}`, "name", `"z"`},
		{`{}`, "_meta", `{"progressToken":"gw-1"}`},
		{``, "_meta", `{}`},
		{`null`, "name", `"n"`},
		{`{"_meta":{"k":[1,{"a":"}"}]},"x":"\"{"}`, "_meta", ``},
		{` { "a" : 1 , "b" : [ ] } `, "b", `true`},
	} {
		f.Add(seed.obj, seed.key, seed.value)
	}
	f.Fuzz(func(t *testing.T, obj, key, value string) {
		if !json.Valid([]byte(value)) && value != "" {
			return
		}
		if strings.ContainsFunc(key, func(r rune) bool { return r < 0x20 || r == '"' || r == '\\' }) || !utf8.ValidString(key) {
			return // rewriteObject's keys are gw's own: nothing to escape
		}
		var m map[string]json.RawMessage
		if trimmed := strings.TrimSpace(obj); trimmed != "" && trimmed != "null" {
			if json.Unmarshal([]byte(obj), &m) != nil || m == nil {
				if _, err := rewriteObject([]byte(obj), member{key, []byte(value)}); err == nil && !json.Valid([]byte(obj)) && !looksLikeObject(obj) {
					t.Fatalf("rewriteObject accepted %q", obj)
				}
				return
			}
		}
		if m == nil {
			m = map[string]json.RawMessage{}
		}
		var v []byte
		if value != "" {
			v = []byte(value)
			m[key] = v
		} else {
			delete(m, key)
		}
		want, _ := json.Marshal(m)
		got, err := rewriteObject([]byte(obj), member{key, v})
		if err != nil {
			t.Fatalf("rewriteObject(%q, %q=%q): %v", obj, key, value, err)
		}
		decode := func(b []byte) (any, error) {
			d := json.NewDecoder(bytes.NewReader(b))
			d.UseNumber() // 1E700 is JSON, not a float64
			var v any
			return v, d.Decode(&v)
		}
		a, err := decode(got)
		if err != nil {
			t.Fatalf("rewriteObject(%q, %q=%q) = %q, not JSON: %v", obj, key, value, got, err)
		}
		b, _ := decode(want)
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("rewriteObject(%q, %q=%q) = %s, want %s", obj, key, value, got, want)
		}
	})
}

// looksLikeObject: rewriteObject checks an object's members, not the values
// inside them, so text that is an object with a malformed value may pass.
func looksLikeObject(s string) bool {
	s = strings.TrimSpace(s)
	return strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}")
}

func TestRewriteObjectRefusesMalformed(t *testing.T) {
	for _, obj := range []string{`{"a":1`, `[1]`, `{"a" 1}`, `{"a":1}x`, `"s"`, `{"a":1,}x`, `{,}x`} {
		if got, err := rewriteObject([]byte(obj), member{"name", []byte(`"n"`)}); err == nil {
			t.Errorf("rewriteObject(%q) = %s, want an error", obj, got)
		}
	}
}
