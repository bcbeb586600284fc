package httpface

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/gwmcp/gw/transport/jsonrpc"
)

var (
	// errNoSSE: the client did not accept text/event-stream, so nothing
	// can go before the answer.
	errNoSSE = errors.New("httpface: the client does not accept an event stream")
	// errAnswered: the request is answered; nothing more goes on its
	// stream.
	errAnswered = errors.New("httpface: request already answered")
)

// reply is the answer to one POST: one JSON object, or an SSE stream once
// something must go before the final message. Its methods are safe for
// concurrent use (progress comes from server goroutines); nothing is
// written after the final message, so nothing touches the ResponseWriter
// after ServeHTTP returns.
type reply struct {
	w      http.ResponseWriter
	rc     *http.ResponseController
	canSSE bool

	mu   sync.Mutex
	sse  bool
	done bool
	err  error // the first write error: the client is gone
}

func newReply(w http.ResponseWriter, r *http.Request) *reply {
	return &reply{w: w, rc: http.NewResponseController(w), canSSE: acceptsSSE(r)}
}

// acceptsSSE: the Accept header lists text/event-stream (or anything), or
// is absent.
func acceptsSSE(r *http.Request) bool {
	accept := r.Header.Values("Accept")
	if len(accept) == 0 {
		return true
	}
	for _, v := range accept {
		for _, part := range strings.Split(v, ",") {
			mt, _, _ := strings.Cut(strings.TrimSpace(part), ";")
			switch strings.ToLower(strings.TrimSpace(mt)) {
			case "text/event-stream", "text/*", "*/*":
				return true
			}
		}
	}
	return false
}

// event sends msg before the answer, turning the answer into an SSE stream.
func (r *reply) event(msg []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.done:
		return errAnswered
	case r.err != nil:
		return r.err
	case !r.sse && !r.canSSE:
		return errNoSSE
	case !r.sse:
		startSSE(r.w)
		r.sse = true
	}
	r.err = writeEvent(r.w, r.rc, msg)
	return r.err
}

// final sends the answer: as the last event of the stream, or as the JSON
// body with status.
func (r *reply) final(status int, msg []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done {
		return
	}
	r.done = true
	if r.err != nil {
		return
	}
	if r.sse {
		r.err = writeEvent(r.w, r.rc, msg)
		return
	}
	r.w.Header().Set("Content-Type", "application/json")
	r.w.WriteHeader(status)
	_, r.err = r.w.Write(append(msg, '\n'))
}

func (r *reply) finalResult(id jsonrpc.ID, res []byte) {
	line, err := jsonrpc.EncodeResult(id, jsonRaw(res))
	if err != nil {
		r.finalError(http.StatusOK, id, jsonrpc.NewError(jsonrpc.CodeInternalError, "gw: invalid result: %v", err))
		return
	}
	r.final(http.StatusOK, line)
}

func (r *reply) finalError(status int, id jsonrpc.ID, e *jsonrpc.Error) {
	r.final(status, encodeError(id, e))
}

// answered reports whether the final message went out.
func (r *reply) answered() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.done
}

func startSSE(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
}

// writeEvent writes one SSE message event and flushes it. msg is one line
// (jsonrpc's encoders never put a newline in a message).
func writeEvent(w http.ResponseWriter, rc *http.ResponseController, msg []byte) error {
	if _, err := fmt.Fprintf(w, "event: message\ndata: %s\n\n", msg); err != nil {
		return err
	}
	return rc.Flush()
}

func encodeError(id jsonrpc.ID, e *jsonrpc.Error) []byte {
	line, err := jsonrpc.EncodeError(id, e)
	if err != nil {
		line, _ = jsonrpc.EncodeError(id, jsonrpc.NewError(e.Code, "%s", e.Message))
	}
	return line
}

// writeError answers with one JSON-RPC error and status.
func writeError(w http.ResponseWriter, status int, id jsonrpc.ID, e *jsonrpc.Error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(encodeError(id, e), '\n'))
}

// writeResult answers with one JSON-RPC result.
func writeResult(w http.ResponseWriter, id jsonrpc.ID, res []byte) {
	line, err := jsonrpc.EncodeResult(id, jsonRaw(res))
	if err != nil {
		writeError(w, http.StatusInternalServerError, id, jsonrpc.NewError(jsonrpc.CodeInternalError, "gw: invalid result: %v", err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(append(line, '\n'))
}
