package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
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

// exactKeysFor keeps the members of m whose keys equal a json tag name of the
// struct v points to.
func exactKeysFor(v any, m map[string]json.RawMessage) map[string]json.RawMessage {
	t := reflect.TypeOf(v)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	out := make(map[string]json.RawMessage, len(m))
	if t.Kind() != reflect.Struct {
		return m
	}
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		if val, ok := m[name]; ok {
			out[name] = val
		}
	}
	return out
}
