package gateway

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"

	"github.com/gwmcp/gw/internal/jsonscan"
	"github.com/gwmcp/gw/transport/jsonrpc"
)

// Servers' messages are untrusted, and encoding/json matches struct fields
// case-insensitively; these helpers read and edit JSON objects by exact key.

var errNotObject = errors.New("not a JSON object")

// objectFields splits a JSON object into its members; empty input is an
// empty object.
func objectFields(raw json.RawMessage) (map[string]json.RawMessage, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return map[string]json.RawMessage{}, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, errNotObject
	}
	if m == nil { // "null"
		return map[string]json.RawMessage{}, nil
	}
	return m, nil
}

// field returns one member of a JSON object (the last, when a key repeats, as
// with encoding/json). Nothing is copied.
func field(raw json.RawMessage, key string) (json.RawMessage, bool) {
	v := jsonrpc.Member(raw, key)
	return v, v != nil
}

// stringField returns a string member, "" when absent or not a string.
func stringField(raw json.RawMessage, key string) string {
	s, _ := jsonrpc.StringMember(raw, key)
	return s
}

// setField returns obj with key set to value (removed when value is nil).
func setField(obj json.RawMessage, key string, value json.RawMessage) (json.RawMessage, error) {
	return rewriteObject(obj, member{key, value})
}

// member is one member rewriteObject sets: key is its text, which needs no
// escaping (gw's own keys); a nil value removes the key.
type member struct {
	key   string
	value []byte
}

// rewriteObject returns the JSON object obj with each member of set in
// place of any of the same key (first, in the order given), and every other
// member kept as written, in one pass and one copy, without decoding any
// value: the call path edits the params of a call (the tool's name, _meta)
// this way, whatever the size of its arguments. obj may be empty or null (an
// empty object). Its values are not validated here (every face checks the
// JSON it reads); its members must be well formed, else errNotObject.
func rewriteObject(obj []byte, set ...member) (json.RawMessage, error) {
	trimmed := bytes.TrimSpace(obj)
	if len(trimmed) == 0 || string(trimmed) == "null" {
		trimmed = []byte("{}")
	}
	sc, ok := jsonscan.Object(trimmed)
	if !ok {
		return nil, errNotObject
	}
	size := len(trimmed) + 2
	for _, m := range set {
		size += len(m.key) + len(m.value) + 4
	}
	out := make([]byte, 0, size)
	out = append(out, '{')
	for _, m := range set {
		if m.value == nil {
			continue
		}
		if len(out) > 1 {
			out = append(out, ',')
		}
		out = append(out, '"')
		out = append(out, m.key...)
		out = append(out, '"', ':')
		out = append(out, m.value...)
	}
	last := sc.Pos()
	for {
		k, plain, start, end, ok := sc.Next()
		if !ok {
			break
		}
		last = end
		if slices.ContainsFunc(set, func(m member) bool { return jsonscan.KeyIs(k, plain, m.key) }) {
			continue
		}
		if len(out) > 1 {
			out = append(out, ',')
		}
		out = append(out, k...)
		out = append(out, ':')
		out = append(out, trimmed[start:end]...)
	}
	// The scanner stops at the object's end or at malformed text: only the
	// first ends in '}' as the last byte.
	if i := jsonscan.SkipSpace(trimmed, last); i != len(trimmed)-1 || trimmed[i] != '}' {
		return nil, errNotObject
	}
	return append(out, '}'), nil
}

// withMeta sets entries of params._meta, keeping what the caller put there
// (but not a key gw sets): one pass over params, one copy.
func withMeta(params json.RawMessage, entries ...member) (json.RawMessage, error) {
	old, err := callerMeta(params)
	if err != nil {
		return nil, err
	}
	return mergeMeta(params, old, entries...)
}

// callerMeta returns params._meta as the caller wrote it, nil when absent.
func callerMeta(params json.RawMessage) (json.RawMessage, error) {
	start, end, n := jsonscan.Member(params, "_meta")
	switch {
	case n > 1:
		return nil, errors.New("params: _meta is given twice")
	case n == 1:
		return params[start:end], nil
	}
	return nil, nil
}

// mergeMeta is withMeta once the caller's _meta, old, was found.
func mergeMeta(params, old json.RawMessage, entries ...member) (json.RawMessage, error) {
	meta, err := rewriteObject(old, entries...)
	if err != nil {
		return nil, fmt.Errorf("params._meta: %w", err)
	}
	out, err := rewriteObject(params, member{"_meta", meta})
	if err != nil {
		return nil, fmt.Errorf("params: %w", err)
	}
	return out, nil
}

// swapProgressToken puts token in params._meta.progressToken, and the
// extra entries in _meta too, and returns the caller's token (or token
// itself when the caller set none).
func swapProgressToken(params json.RawMessage, token string, extra ...member) (json.RawMessage, json.RawMessage, error) {
	tok, _ := json.Marshal(token)
	old, err := callerMeta(params)
	if err != nil {
		return nil, nil, err
	}
	callerTok := tok
	if t, ok := field(old, metaProgressToken); ok {
		callerTok = t
	}
	var out json.RawMessage
	if extra == nil {
		out, err = mergeMeta(params, old, member{metaProgressToken, tok})
	} else {
		out, err = mergeMeta(params, old, append(extra[:len(extra):len(extra)], member{metaProgressToken, tok})...)
	}
	if err != nil {
		return nil, nil, err
	}
	return out, callerTok, nil
}

// mustJSON marshals values that cannot fail to marshal.
func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("gw: marshal %T: %v", v, err))
	}
	return b
}

// splice returns a copy of b with b[start:end] replaced by v.
func splice(b []byte, start, end int, v []byte) json.RawMessage {
	out := make([]byte, 0, len(b)-(end-start)+len(v))
	out = append(out, b[:start]...)
	out = append(out, v...)
	return append(out, b[end:]...)
}

// decodeExact decodes the JSON text raw into v, a non-nil pointer, like
// json.Unmarshal except that an object member fills a struct field only when
// its key is the field's JSON name spelled exactly, at every depth (inside
// pointers, slices and maps too); other members are ignored, as if absent.
// Like json.Unmarshal, it reports invalid JSON before it changes anything, and
// on a value of the wrong type it goes on with the rest and reports the first
// such error.
//
// Values with no struct inside them (strings, numbers, []string,
// json.RawMessage, map[string]any…) and types with their own UnmarshalJSON
// are handed to json.Unmarshal whole: no key of theirs is matched to a field.
// Embedded structs and the ",string" option are not supported (an error, so a
// type that uses them is caught by its first test).
func decodeExact(raw []byte, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return &json.InvalidUnmarshalError{Type: reflect.TypeOf(v)}
	}
	if !json.Valid(raw) {
		var syntax json.RawMessage
		return json.Unmarshal(raw, &syntax) // the error json.Unmarshal gives
	}
	return decodeExactValue(bytes.TrimSpace(raw), rv.Elem())
}

// exactType is what decodeExact needs to know about a type.
type exactType struct {
	keyed  bool           // a struct is inside: keys must be matched here
	fields map[string]int // a struct's fields by exact JSON name
	err    error          // the type is not supported
}

var (
	exactTypes          sync.Map // reflect.Type -> *exactType
	unmarshalerType     = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

func exactTypeOf(t reflect.Type) *exactType {
	if e, ok := exactTypes.Load(t); ok {
		return e.(*exactType)
	}
	e, _ := exactTypes.LoadOrStore(t, newExactType(t))
	return e.(*exactType)
}

func newExactType(t reflect.Type) *exactType {
	pt := reflect.PointerTo(t)
	if t.Implements(unmarshalerType) || pt.Implements(unmarshalerType) ||
		t.Implements(textUnmarshalerType) || pt.Implements(textUnmarshalerType) {
		return &exactType{} // decodes itself
	}
	switch t.Kind() {
	case reflect.Struct:
		e := &exactType{keyed: true, fields: make(map[string]int, t.NumField())}
		for i := range t.NumField() {
			f := t.Field(i)
			tag := f.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			switch {
			case f.Anonymous:
				e.err = fmt.Errorf("gw: decodeExact: embedded field %s in %v is not supported", f.Name, t)
			case !f.IsExported():
				continue
			case slices.Contains(strings.Split(opts, ","), "string"):
				e.err = fmt.Errorf("gw: decodeExact: option \",string\" of %v.%s is not supported", t, f.Name)
			}
			if name == "" {
				name = f.Name
			}
			if _, dup := e.fields[name]; dup && e.err == nil {
				e.err = fmt.Errorf("gw: decodeExact: %v has two fields named %q", t, name)
			}
			e.fields[name] = i
		}
		return e
	case reflect.Pointer, reflect.Slice, reflect.Map, reflect.Array:
		inner := exactTypeOf(t.Elem())
		e := &exactType{keyed: inner.keyed, err: inner.err}
		if e.keyed && (t.Kind() == reflect.Array || t.Kind() == reflect.Map && t.Key().Kind() != reflect.String) {
			e.err = fmt.Errorf("gw: decodeExact: %v is not supported", t)
		}
		return e
	}
	return &exactType{}
}

// decodeExactValue decodes valid JSON text, with no surrounding space, into the
// addressable v.
func decodeExactValue(raw []byte, v reflect.Value) error {
	t := v.Type()
	e := exactTypeOf(t)
	if e.err != nil {
		return e.err
	}
	if !e.keyed {
		return json.Unmarshal(raw, v.Addr().Interface())
	}
	null := string(raw) == "null"
	switch t.Kind() {
	case reflect.Pointer:
		if null {
			v.SetZero()
			return nil
		}
		if v.IsNil() {
			v.Set(reflect.New(t.Elem()))
		}
		return decodeExactValue(raw, v.Elem())
	case reflect.Struct:
		if null {
			return nil
		}
		sc, ok := jsonscan.Object(raw)
		if !ok {
			return exactTypeError(raw, t)
		}
		var first error
		for {
			key, plain, start, end, ok := sc.Next()
			if !ok {
				return first
			}
			var i int
			var found bool
			if plain {
				i, found = e.fields[string(key[1:len(key)-1])]
			} else if k, ok := jsonscan.KeyText(key, false); ok {
				i, found = e.fields[k]
			}
			if !found {
				continue
			}
			if err := decodeExactValue(raw[start:end], v.Field(i)); err != nil && first == nil {
				first = err
			}
		}
	case reflect.Map:
		if null {
			v.SetZero()
			return nil
		}
		sc, ok := jsonscan.Object(raw)
		if !ok {
			return exactTypeError(raw, t)
		}
		if v.IsNil() {
			v.Set(reflect.MakeMap(t))
		}
		var first error
		for {
			key, plain, start, end, ok := sc.Next()
			if !ok {
				return first
			}
			k, _ := jsonscan.KeyText(key, plain)
			elem := reflect.New(t.Elem()).Elem()
			if err := decodeExactValue(raw[start:end], elem); err != nil && first == nil {
				first = err
			}
			v.SetMapIndex(reflect.ValueOf(k).Convert(t.Key()), elem)
		}
	case reflect.Slice:
		if null {
			v.SetZero()
			return nil
		}
		if raw[0] != '[' {
			return exactTypeError(raw, t)
		}
		// Elements go where json.Unmarshal puts them: into the slice's
		// own backing array while it has room.
		n := 0
		var first error
		for i := jsonscan.SkipSpace(raw, 1); i < len(raw) && raw[i] != ']'; n++ {
			end := jsonscan.SkipValue(raw, i)
			if end < 0 {
				break
			}
			if n >= v.Cap() {
				v.Grow(1)
			}
			if n >= v.Len() {
				v.SetLen(n + 1)
			}
			if err := decodeExactValue(raw[i:end], v.Index(n)); err != nil && first == nil {
				first = err
			}
			if i = jsonscan.SkipSpace(raw, end); i < len(raw) && raw[i] == ',' {
				i = jsonscan.SkipSpace(raw, i+1)
			}
		}
		if n < v.Len() {
			v.SetLen(n)
		}
		if n == 0 {
			v.Set(reflect.MakeSlice(t, 0, 0))
		}
		return first
	}
	return fmt.Errorf("gw: decodeExact: %v is not supported", t)
}

// exactTypeError is the *json.UnmarshalTypeError for a value of the wrong
// JSON type.
func exactTypeError(raw []byte, t reflect.Type) error {
	what := "number"
	switch raw[0] {
	case '{':
		what = "object"
	case '[':
		what = "array"
	case '"':
		what = "string"
	case 't', 'f':
		what = "bool"
	}
	return &json.UnmarshalTypeError{Value: what, Type: t}
}
