package mcptest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
)

// Messages are decoded into map[string]json.RawMessage rather than structs:
// encoding/json matches struct fields case-insensitively, and a client that
// writes "Method" or "ID" must be caught, not silently understood.

// object is a decoded JSON object whose keys matched exactly.
type object = map[string]json.RawMessage

// rpcError is a JSON-RPC error object.
type rpcError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Data    any    `json:"data,omitempty"`
}

// errNoReply is returned by a handler that must send nothing: the request was
// cancelled, the server died, or the misbehaviour asked for is silence.
var errNoReply = &rpcError{Code: 0, Message: "no reply"}

func newError(code int, format string, args ...any) *rpcError {
	return &rpcError{Code: code, Message: fmt.Sprintf(format, args...)}
}

func invalidParams(format string, args ...any) *rpcError {
	return newError(CodeInvalidParams, format, args...)
}

// resultMsg and errorMsg are the two responses; request and notification are
// what the server sends on its own.
type resultMsg struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Result  any             `json:"result"`
}

type errorMsg struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Error   *rpcError       `json:"error"`
}

type requestMsg struct {
	JSONRPC string `json:"jsonrpc"`
	ID      string `json:"id"`
	Method  string `json:"method"`
	Params  any    `json:"params,omitempty"`
}

type notificationMsg struct {
	JSONRPC string `json:"jsonrpc"`
	Method  string `json:"method"`
	Params  any    `json:"params,omitempty"`
}

var nullID = json.RawMessage("null")

var intPattern = regexp.MustCompile(`^-?(0|[1-9][0-9]*)$`)

// decodeObject decodes raw as a JSON object; null, arrays and scalars are not
// objects.
func decodeObject(raw json.RawMessage) (object, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return nil, false
	}
	var m object
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, false
	}
	return m, true
}

// isNull reports whether raw is absent or the JSON null.
func isNull(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) == 0 || string(raw) == "null"
}

// requestID validates a JSON-RPC id (a string or an integer; MCP forbids null)
// and returns it compacted, which is both how it is echoed and its map key.
func requestID(raw json.RawMessage) (json.RawMessage, bool) {
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil || buf.Len() == 0 {
		return nil, false
	}
	b := buf.Bytes()
	if b[0] == '"' {
		var s string
		if json.Unmarshal(b, &s) != nil {
			return nil, false
		}
		return b, true
	}
	if !intPattern.Match(b) {
		return nil, false
	}
	return b, true
}

// str decodes m[key] as a string. present is false when the key is absent
// or null; ok is false when it is present but not a string.
func str(m object, key string) (s string, present, ok bool) {
	raw, found := m[key]
	if !found || isNull(raw) {
		return "", false, true
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", true, false
	}
	return s, true, true
}

// integer decodes m[key] as an integer, with the same present/ok meaning as str.
func integer(m object, key string) (n int64, present, ok bool) {
	raw, found := m[key]
	if !found || isNull(raw) {
		return 0, false, true
	}
	if err := json.Unmarshal(raw, &n); err != nil {
		return 0, true, false
	}
	return n, true, true
}

// obj decodes m[key] as an object, with the same present/ok meaning as str.
func obj(m object, key string) (o object, present, ok bool) {
	raw, found := m[key]
	if !found || isNull(raw) {
		return nil, false, true
	}
	o, ok = decodeObject(raw)
	return o, true, ok
}
