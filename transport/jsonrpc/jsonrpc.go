// Package jsonrpc holds the JSON-RPC 2.0 wire types that every gw transport and
// face shares: message decoding, request ids and error objects with their codes.
//
// Decoding is strict and case-sensitive: a message from a child process or a
// remote caller is untrusted input, and "Method" is not "method".
// Result and params stay raw bytes so replies pass through gw untouched.
package jsonrpc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/gwmcp/gw/internal/jsonscan"
)

// Version is the only JSON-RPC version MCP speaks.
const Version = "2.0"

// ID is a JSON-RPC request id: a string or an integer. It keeps the id's JSON
// text so that an id is echoed back exactly as the peer wrote it. The zero ID
// is "no id" (a notification, or an error reply to an unreadable request).
type ID struct {
	raw string // canonical JSON text of the id; "" when absent
}

// Int64ID returns the integer id n.
func Int64ID(n int64) ID { return ID{raw: strconv.FormatInt(n, 10)} }

// StringID returns the string id s.
func StringID(s string) ID {
	b, _ := json.Marshal(s)
	return ID{raw: string(b)}
}

// IsValid reports whether the id is present.
func (id ID) IsValid() bool { return id.raw != "" }

// String returns the id's JSON text, which is also a good map key.
func (id ID) String() string { return id.raw }

// MarshalJSON writes the id as it was read, or null when absent.
func (id ID) MarshalJSON() ([]byte, error) {
	if id.raw == "" {
		return []byte("null"), nil
	}
	return []byte(id.raw), nil
}

// UnmarshalJSON accepts a string or an integer; null, floats and other
// values are errors because MCP forbids them.
func (id *ID) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return errors.New("jsonrpc: empty id")
	}
	if canonicalID(b) { // as StringID or Int64ID would write it: keep the text
		*id = ID{raw: string(b)}
		return nil
	}
	switch b[0] {
	case '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return fmt.Errorf("jsonrpc: bad id: %w", err)
		}
		*id = StringID(s)
		return nil
	case 'n':
		return errors.New("jsonrpc: id must not be null")
	default:
		n, err := strconv.ParseInt(string(b), 10, 64)
		if err != nil {
			return fmt.Errorf("jsonrpc: id %s is not a string or an integer", truncate(b, 32))
		}
		*id = Int64ID(n)
		return nil
	}
}

// canonicalID reports whether b is an id already in the form StringID or
// Int64ID gives: a string of printable ASCII that encoding/json writes as is
// (no escapes, no <, > or &), or a decimal integer of up to 18 digits without
// a leading zero. Most ids are, and are then read without decoding.
func canonicalID(b []byte) bool {
	if len(b) >= 2 && b[0] == '"' && b[len(b)-1] == '"' {
		for _, c := range b[1 : len(b)-1] {
			if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
				return false
			}
		}
		return true
	}
	digits := b
	if len(digits) > 0 && digits[0] == '-' {
		digits = digits[1:]
	}
	if len(digits) == 0 || len(digits) > 18 || (digits[0] == '0' && len(digits) > 1) || string(b) == "-0" {
		return false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// Kind tells what a decoded message is.
type Kind int

// Message kinds.
const (
	KindRequest      Kind = iota + 1 // method and id
	KindNotification                 // method, no id
	KindResponse                     // id and result or error
)

func (k Kind) String() string {
	switch k {
	case KindRequest:
		return "request"
	case KindNotification:
		return "notification"
	case KindResponse:
		return "response"
	}
	return "invalid"
}

// Message is any JSON-RPC 2.0 message. Params and Result are the peer's bytes.
type Message struct {
	ID     ID
	Method string
	Params json.RawMessage
	Result json.RawMessage
	Error  *Error
}

// Kind classifies the message; Decode guarantees it is one of the three kinds.
func (m *Message) Kind() Kind {
	switch {
	case m.Method != "" && m.ID.IsValid():
		return KindRequest
	case m.Method != "":
		return KindNotification
	default:
		return KindResponse
	}
}

// DecodeError is returned by Decode for bytes that are not a valid JSON-RPC
// message. ID is set when the id could still be read, so the sender of a broken
// request (or the caller waiting on a broken response) can be told.
type DecodeError struct {
	ID     ID
	Reason string
	// Syntax is set when the bytes are not JSON at all: a parse error
	// (-32700) rather than an invalid request (-32600).
	Syntax bool
}

func (e *DecodeError) Error() string { return "jsonrpc: " + e.Reason }

// Decode parses one message. Keys are matched case-sensitively; unknown
// top-level keys are ignored as JSON-RPC allows extension members; a repeated
// key counts once, the last (as with encoding/json). Params and Result are
// subslices of data: one validating pass over data and no copy, whatever
// their size.
func Decode(data []byte) (*Message, error) {
	if !json.Valid(data) {
		var v json.RawMessage
		err := json.Unmarshal(data, &v) // its error says where and why
		return nil, &DecodeError{Reason: "invalid JSON: " + err.Error(), Syntax: true}
	}
	sc, ok := jsonscan.Object(data)
	if !ok {
		return nil, &DecodeError{Reason: "message is not a JSON object"}
	}
	var idRaw, version, method, params, result, errRaw []byte
	for {
		k, plain, start, end, ok := sc.Next()
		if !ok {
			break
		}
		key, ok := string(k[1:len(k)-1]), plain
		if !ok {
			key, _ = jsonscan.KeyText(k, false)
		}
		switch v := data[start:end]; key {
		case "id":
			idRaw = v
		case "jsonrpc":
			version = v
		case "method":
			method = v
		case "params":
			params = v
		case "result":
			result = v
		case "error":
			errRaw = v
		}
	}
	var m Message
	if idRaw != nil && !isNull(idRaw) {
		if err := m.ID.UnmarshalJSON(idRaw); err != nil {
			return nil, &DecodeError{Reason: err.Error()}
		}
	}
	fail := func(format string, args ...any) (*Message, error) {
		return nil, &DecodeError{ID: m.ID, Reason: fmt.Sprintf(format, args...)}
	}
	if v, ok := jsonscan.String(version); !ok || string(v) != Version {
		return fail(`"jsonrpc" must be "2.0"`)
	}
	if method != nil {
		text, ok := jsonscan.String(method)
		if !ok || len(text) == 0 {
			return fail(`"method" must be a non-empty string`)
		}
		m.Method = string(text)
	}
	if params != nil && !isNull(params) {
		if c := params[0]; c != '{' && c != '[' {
			return fail(`"params" must be an object or an array`)
		}
		m.Params = params
	}
	hasResult, hasError := result != nil, errRaw != nil
	if m.Method != "" {
		if hasResult || hasError {
			return fail("a request must not carry result or error")
		}
		return &m, nil
	}
	switch {
	case hasResult && hasError:
		return fail("a response must not carry both result and error")
	case hasResult:
		if !m.ID.IsValid() {
			return fail("a result response must have an id")
		}
		m.Result = result
	case hasError:
		var e Error
		if err := e.UnmarshalJSON(errRaw); err != nil {
			return fail("bad error object: %v", err)
		}
		m.Error = &e
	default:
		return fail("message has neither method nor result nor error")
	}
	return &m, nil
}

// EncodeRequest returns a request line (without the newline). params may be
// nil, json.RawMessage or any value encoding/json can marshal.
func EncodeRequest(id ID, method string, params any) ([]byte, error) {
	return encode(wireMessage{JSONRPC: Version, ID: &id, Method: method, Params: params})
}

// AppendRequest appends a request line (without the newline) to dst, with
// params as they are: the caller guarantees they are valid JSON (nil for
// none). Nothing is validated or re-encoded, so the cost does not grow with
// the size of params beyond one copy; a newline in them, which valid JSON
// holds only as whitespace, becomes a space, so the line stays one line.
func AppendRequest(dst []byte, id ID, method string, params json.RawMessage) []byte {
	dst = append(dst, `{"jsonrpc":"2.0","id":`...)
	if id.raw == "" {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, id.raw...)
	}
	dst = append(dst, `,"method":`...)
	dst = AppendString(dst, method)
	if len(params) > 0 {
		dst = append(dst, `,"params":`...)
		at := len(dst)
		dst = append(dst, params...)
		if bytes.IndexByte(params, '\n') >= 0 || bytes.IndexByte(params, '\r') >= 0 {
			for i, c := range dst[at:] {
				if c == '\n' || c == '\r' {
					dst[at+i] = ' '
				}
			}
		}
	}
	return append(dst, '}')
}

// AppendString appends s to dst as a JSON string, without encoding/json
// for the plain ASCII strings method names and ids are.
func AppendString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			b, _ := json.Marshal(s)
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// EncodeNotification returns a notification line.
func EncodeNotification(method string, params any) ([]byte, error) {
	return encode(wireMessage{JSONRPC: Version, Method: method, Params: params})
}

// EncodeResult returns a success response line.
func EncodeResult(id ID, result any) ([]byte, error) {
	if result == nil {
		result = json.RawMessage("{}")
	}
	return encode(wireMessage{JSONRPC: Version, ID: &id, Result: result})
}

// EncodeError returns an error response line.
func EncodeError(id ID, e *Error) ([]byte, error) {
	return encode(wireMessage{JSONRPC: Version, ID: &id, Error: e})
}

type wireMessage struct {
	JSONRPC string `json:"jsonrpc"`
	ID      *ID    `json:"id,omitempty"`
	Method  string `json:"method,omitempty"`
	Params  any    `json:"params,omitempty"`
	Result  any    `json:"result,omitempty"`
	Error   *Error `json:"error,omitempty"`
}

func encode(w wireMessage) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(w); err != nil {
		return nil, fmt.Errorf("jsonrpc: encode %s: %w", w.Method, err)
	}
	// Encode appends '\n'; compact raw params may still hold newlines inside
	// whitespace, which the line framing forbids.
	out := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	if bytes.IndexByte(out, '\n') >= 0 {
		var c bytes.Buffer
		if err := json.Compact(&c, out); err != nil {
			return nil, fmt.Errorf("jsonrpc: encode %s: %w", w.Method, err)
		}
		out = c.Bytes()
	}
	return out, nil
}

func isNull(raw json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(raw), []byte("null")) }

func firstByte(raw json.RawMessage) byte {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return 0
	}
	return raw[0]
}

func truncate(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	return string(b[:n]) + "…"
}

// Member returns the value of the member key of the JSON object obj, by its
// exact key (untrusted JSON: "Name" is not "name"; the last one when a key
// repeats, as encoding/json reads it); nil when obj is not an object or has
// no such member. obj must be valid JSON, as a decoded message's params
// are: it is scanned, not decoded, so reading a call's name or _meta costs
// the same whatever the size of its arguments.
func Member(obj json.RawMessage, key string) json.RawMessage {
	start, end, n := jsonscan.Member(obj, key)
	if n == 0 {
		return nil
	}
	return obj[start:end:end]
}

// StringMember reads the string member key of the JSON object obj (valid
// JSON, see Member). ok is false when obj is not an object or the member
// is absent or not a string; a null member reads as "", as encoding/json
// has it.
func StringMember(obj json.RawMessage, key string) (string, bool) {
	v := Member(obj, key)
	if v == nil {
		return "", false
	}
	s, ok := jsonscan.String(v)
	if !ok {
		return "", false
	}
	return string(s), true
}

// IsToolError reports whether a tools/call result says isError: true: a
// member of the result object itself (one inside content or
// structuredContent does not count) whose key reads isError as encoding/json
// reads keys (an escaped "\u0069sError" counts; "IsError" does not) and
// whose value is true; the last one counts when the key repeats. result
// must be valid JSON, as a decoded reply's is. It allocates nothing unless
// the result has a top-level key written with escapes.
func IsToolError(result json.RawMessage) bool {
	// Most results name no isError, which two byte searches tell faster
	// than a scan: a key is "isError" as written or has \u escapes (JSON's
	// other escapes stand for no letter).
	if !bytes.Contains(result, []byte(`"isError"`)) && !bytes.Contains(result, []byte(`\u`)) {
		return false
	}
	start, end, n := jsonscan.Member(result, "isError")
	return n > 0 && string(result[start:end]) == "true"
}

// DefaultMaxDepth is how deeply a face lets one message nest objects and
// arrays by default. encoding/json stops at 10,000 levels; servers stop
// earlier (one made with the Go SDK exited on 1,100), so one caller could
// take a server down for everyone. Real tool arguments stay far below.
const DefaultMaxDepth = 128

// CheckDepth returns nil when the JSON text b nests objects and arrays at
// most max deep. Otherwise it returns the -32600 error to answer with, and
// the message's id when b is a JSON-RPC message that can be read (else the
// zero ID). It does not validate b: it is one pass over the bytes that skips
// strings.
func CheckDepth(b []byte, max int) (ID, *Error) {
	if !tooDeep(b, max) {
		return ID{}, nil
	}
	var id ID
	if m, err := Decode(b); err == nil {
		id = m.ID
	}
	return id, NewError(CodeInvalidRequest, "gw: message nests objects and arrays deeper than %d levels", max)
}

func tooDeep(b []byte, max int) bool {
	depth := 0
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '{', '[':
			if depth++; depth > max {
				return true
			}
		case '}', ']':
			depth--
		case '"': // skipped as the scanner does, many bytes at a time
			end := jsonscan.SkipValue(b, i)
			if end < 0 {
				return false // unterminated: not JSON, which the caller reports
			}
			i = end - 1
		}
	}
	return false
}
