package natsface

import (
	"errors"

	"github.com/gwmcp/gw/transport/jsonrpc"
)

// CodeUnavailable is the error code (in the body and in the Nats-Service-Error-Code header) of a
// request the face refused without running it: every handler slot is busy ("gw: busy") or the
// face is shutting down ("gw: shutting down"). Such a request had no effect and may be retried;
// another gateway in the queue group will likely take it.
const CodeUnavailable = 503

// Sentinel errors of the Face's own methods. Compare with errors.Is.
var (
	// ErrInvalidOptions is wrapped by New's error for an Options value that fails validation.
	ErrInvalidOptions = errors.New("natsface: invalid options")
	// ErrNotStarted is returned by the Publish methods before Start has succeeded.
	ErrNotStarted = errors.New("natsface: not started")
	// ErrStarted is returned by a second Start.
	ErrStarted = errors.New("natsface: already started")
	// ErrStopped is returned by Start and SetTools once Stop has begun.
	ErrStopped = errors.New("natsface: stopped")
)

// Replies for refused requests. New values each time, so that a caller can't mutate a shared one.
func errBusy() *jsonrpc.Error { return &jsonrpc.Error{Code: CodeUnavailable, Message: "gw: busy"} }

func errShuttingDown() *jsonrpc.Error {
	return &jsonrpc.Error{Code: CodeUnavailable, Message: "gw: shutting down"}
}

func invalidRequest(format string, args ...any) *jsonrpc.Error {
	return jsonrpc.NewError(jsonrpc.CodeInvalidRequest, "gw: "+format, args...)
}

func invalidParams(format string, args ...any) *jsonrpc.Error {
	return jsonrpc.NewError(jsonrpc.CodeInvalidParams, "gw: "+format, args...)
}

func internalError(format string, args ...any) *jsonrpc.Error {
	return jsonrpc.NewError(jsonrpc.CodeInternalError, "gw: "+format, args...)
}
