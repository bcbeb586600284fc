package jsonrpc

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Error codes from JSON-RPC 2.0 and the MCP specification.
const (
	CodeParseError     = -32700
	CodeInvalidRequest = -32600
	CodeMethodNotFound = -32601
	CodeInvalidParams  = -32602
	CodeInternalError  = -32603

	// CodeResourceNotFoundLegacy is 2025-11-25's "resource not found";
	// 2026-07-28 replaced it with CodeInvalidParams but clients still accept it.
	CodeResourceNotFoundLegacy = -32002

	CodeHeaderMismatch                  = -32020
	CodeMissingRequiredClientCapability = -32021
	CodeUnsupportedProtocolVersion      = -32022
)

// Error is a JSON-RPC error object. It is also a Go error, so a peer's error
// travels through gw with its code, message and data intact.
type Error struct {
	Code    int64           `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data,omitempty"`
}

// NewError returns an error object with the given code and message.
func NewError(code int64, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

func (e *Error) Error() string {
	if len(e.Data) > 0 && len(e.Data) <= 200 {
		return fmt.Sprintf("jsonrpc error %d: %s (data: %s)", e.Code, e.Message, e.Data)
	}
	return fmt.Sprintf("jsonrpc error %d: %s", e.Code, e.Message)
}

// Is makes errors.Is match two error objects by code, so callers can test
// errors.Is(err, &jsonrpc.Error{Code: jsonrpc.CodeMethodNotFound}).
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// UnmarshalJSON decodes an error object strictly: code must be an integer and
// message a string.
func (e *Error) UnmarshalJSON(b []byte) error {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil || fields == nil {
		return errors.New("error is not an object")
	}
	raw, ok := fields["code"]
	if !ok {
		return errors.New(`error has no "code"`)
	}
	if err := json.Unmarshal(raw, &e.Code); err != nil {
		return fmt.Errorf(`error "code" is not an integer: %s`, truncate(raw, 32))
	}
	if raw, ok := fields["message"]; ok {
		if err := json.Unmarshal(raw, &e.Message); err != nil {
			return errors.New(`error "message" is not a string`)
		}
	}
	if raw, ok := fields["data"]; ok && !isNull(raw) {
		e.Data = raw
	}
	return nil
}

// AsError returns err as a JSON-RPC error object: the peer's own object when
// err wraps one, otherwise an internal error carrying err's text. Faces use it
// to answer their callers with the right code.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: CodeInternalError, Message: err.Error()}
}
