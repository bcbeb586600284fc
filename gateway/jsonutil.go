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
	"unicode/utf8"
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

// field returns one member of a JSON object.
func field(raw json.RawMessage, key string) (json.RawMessage, bool) {
	m, err := objectFields(raw)
	if err != nil {
		return nil, false
	}
	v, ok := m[key]
	return v, ok
}

// stringField returns a string member, "" when absent or not a string.
func stringField(raw json.RawMessage, key string) string {
	v, ok := field(raw, key)
	if !ok {
		return ""
	}
	var s string
	if json.Unmarshal(v, &s) != nil {
		return ""
	}
	return s
}

// setField returns obj with key set to value (removed when value is nil).
func setField(obj json.RawMessage, key string, value json.RawMessage) (json.RawMessage, error) {
	m, err := objectFields(obj)
	if err != nil {
		return nil, err
	}
	if value == nil {
		delete(m, key)
	} else {
		m[key] = value
	}
	return json.Marshal(m)
}

// withMeta sets entries of params._meta, keeping what the caller put there.
func withMeta(params json.RawMessage, entries map[string]json.RawMessage) (json.RawMessage, error) {
	m, err := objectFields(params)
	if err != nil {
		return nil, fmt.Errorf("params: %w", err)
	}
	meta, err := objectFields(m["_meta"])
	if err != nil {
		return nil, fmt.Errorf("params._meta: %w", err)
	}
	for k, v := range entries {
		meta[k] = v
	}
	if m["_meta"], err = json.Marshal(meta); err != nil {
		return nil, err
	}
	return json.Marshal(m)
}

// swapProgressToken puts token in params._meta.progressToken and returns the
// caller's token (or token itself when the caller set none).
func swapProgressToken(params json.RawMessage, token string) (json.RawMessage, json.RawMessage, error) {
	tok, _ := json.Marshal(token)
	callerTok := tok
	if meta, ok := field(params, "_meta"); ok {
		if t, ok := field(meta, metaProgressToken); ok {
			callerTok = t
		}
	}
	out, err := withMeta(params, map[string]json.RawMessage{metaProgressToken: tok})
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

// The scanner below walks JSON text that is already known to be valid (every
// message jsonrpc.Decode returns is), finding members by exact key without
// decoding or copying anything: it is what the hot paths (resultType,
// progress routing) use. On invalid text its answers are unspecified, but it
// never panics and never reads out of bounds.

// skipSpace returns the index of the first byte at or after i that is not
// JSON whitespace.
func skipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// skipString returns the index just past the string that starts at b[i]
// (a '"'), or -1 when it does not end; plain reports that its text needs no
// unescaping: no escapes, and valid UTF-8.
func skipString(b []byte, i int) (end int, plain bool) {
	escaped, ascii := false, true
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return j + 1, !escaped && (ascii || utf8.Valid(b[i+1:j]))
		case c == '\\':
			escaped = true
			j++
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return -1, false
}

// skipValue returns the index just past the value that starts at b[i], or -1.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		end, _ := skipString(b, i)
		return end
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				end, _ := skipString(b, j)
				if end < 0 {
					return -1
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	}
	j := i
	for j < len(b) {
		switch b[j] {
		case ',', '}', ']', ':', '"', '{', '[', ' ', '\t', '\n', '\r':
			if j == i {
				return -1
			}
			return j
		}
		j++
	}
	return j
}

// memberScanner yields the members of one JSON object in order.
type memberScanner struct {
	b []byte
	i int // next byte to read; -1 once done
}

// scanObject starts a memberScanner on b, which must hold a JSON object
// (surrounding whitespace allowed); ok is false otherwise.
func scanObject(b []byte) (sc memberScanner, ok bool) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return memberScanner{i: -1}, false
	}
	return memberScanner{b: b, i: i + 1}, true
}

// next returns the next member: its key as written, quotes included; whether
// the key is plain (its text is key[1:len(key)-1] as is); and where its value
// lies in b. ok is false at the end of the object or on malformed text.
func (sc *memberScanner) next() (key []byte, plain bool, start, end int, ok bool) {
	if sc.i < 0 {
		return nil, false, 0, 0, false
	}
	b := sc.b
	i := skipSpace(b, sc.i)
	if i < len(b) && b[i] == ',' {
		i = skipSpace(b, i+1)
	}
	if i >= len(b) || b[i] != '"' {
		sc.i = -1 // '}' or malformed
		return nil, false, 0, 0, false
	}
	kend, plain := skipString(b, i)
	if kend < 0 {
		sc.i = -1
		return nil, false, 0, 0, false
	}
	key = b[i:kend]
	i = skipSpace(b, kend)
	if i >= len(b) || b[i] != ':' {
		sc.i = -1
		return nil, false, 0, 0, false
	}
	start = skipSpace(b, i+1)
	end = skipValue(b, start)
	if end < 0 {
		sc.i = -1
		return nil, false, 0, 0, false
	}
	sc.i = end
	return key, plain, start, end, true
}

// keyText returns a member key's text (allocating only for keys that need
// unescaping); ok is false when it is not a valid JSON string.
func keyText(key []byte, plain bool) (string, bool) {
	if plain {
		return string(key[1 : len(key)-1]), true
	}
	var s string
	if json.Unmarshal(key, &s) != nil {
		return "", false
	}
	return s, true
}

// keyIs reports whether a member key, as next returns it, is exactly want.
func keyIs(key []byte, plain bool, want string) bool {
	if plain {
		return string(key[1:len(key)-1]) == want
	}
	s, ok := keyText(key, false)
	return ok && s == want
}

// findMember locates the member of the JSON object raw whose key is exactly
// key: raw[start:end] is its value and n how many members have that key (the
// last counts, as with encoding/json). n is 0 when there is none or raw is
// not an object. Nothing is copied or allocated.
func findMember(raw []byte, key string) (start, end, n int) {
	sc, ok := scanObject(raw)
	if !ok {
		return 0, 0, 0
	}
	for {
		k, plain, s, e, ok := sc.next()
		if !ok {
			return start, end, n
		}
		if keyIs(k, plain, key) {
			start, end, n = s, e, n+1
		}
	}
}

// stringValue returns the text of the JSON string v, without copying when it
// needs no unescaping; ok is false when v is not a string.
func stringValue(v []byte) ([]byte, bool) {
	if len(v) >= 2 && v[0] == '"' {
		if end, plain := skipString(v, 0); end == len(v) && plain {
			return v[1 : len(v)-1], true
		}
	}
	var s string
	if json.Unmarshal(v, &s) != nil {
		return nil, false
	}
	return []byte(s), true
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
		sc, ok := scanObject(raw)
		if !ok {
			return exactTypeError(raw, t)
		}
		var first error
		for {
			key, plain, start, end, ok := sc.next()
			if !ok {
				return first
			}
			var i int
			var found bool
			if plain {
				i, found = e.fields[string(key[1:len(key)-1])]
			} else if k, ok := keyText(key, false); ok {
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
		sc, ok := scanObject(raw)
		if !ok {
			return exactTypeError(raw, t)
		}
		if v.IsNil() {
			v.Set(reflect.MakeMap(t))
		}
		var first error
		for {
			key, plain, start, end, ok := sc.next()
			if !ok {
				return first
			}
			k, _ := keyText(key, plain)
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
		for i := skipSpace(raw, 1); i < len(raw) && raw[i] != ']'; n++ {
			end := skipValue(raw, i)
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
			if i = skipSpace(raw, end); i < len(raw) && raw[i] == ',' {
				i = skipSpace(raw, i+1)
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
