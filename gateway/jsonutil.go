package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
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
