package stdio

import (
	"errors"
	"strconv"
)

// Sentinel errors. Compare with errors.Is; the errors returned by this package may wrap them.
var (
	// ErrClosed is returned by WriteMessage after Close has begun, and by ReadMessage once Close has
	// released the stdout pipe.
	ErrClosed = errors.New("stdio: process closed")

	// ErrBroken is returned by WriteMessage once a write failed part-way (by Close, or a pipe
	// error). The child has then received a partial line, so the stream can no longer be framed
	// and every later write fails. The write that broke the stream returns an error wrapping both
	// ErrBroken and its cause.
	ErrBroken = errors.New("stdio: stream broken by an interrupted write")

	// ErrDetached is wrapped, with the context's error, by a WriteMessage whose context ended after
	// part of the line was written. The rest is written in the background so the stream stays
	// framed: the child will still receive the whole message, so the caller should treat it as
	// sent (and, say, cancel the request it carried).
	ErrDetached = errors.New("stdio: write interrupted; the rest of the line follows in the background")

	// ErrNewline is returned by WriteMessage for a message that contains '\n'; nothing is written.
	ErrNewline = errors.New("stdio: message contains a newline")
)

// MessageTooLargeError is returned by ReadMessage for a line longer than the configured limit.
// The line has been read up to its newline and discarded; the next ReadMessage returns the
// following line.
type MessageTooLargeError struct {
	// Size is the length of the discarded line in bytes, without its "\n" or "\r\n" terminator.
	Size int
	// Limit is the configured maximum message size.
	Limit int
	// Head is a copy of the first min(64 KiB, Limit) bytes of the line, for diagnostics.
	Head []byte
}

func (e *MessageTooLargeError) Error() string {
	return "stdio: message of " + strconv.Itoa(e.Size) + " bytes exceeds the limit of " +
		strconv.Itoa(e.Limit) + " bytes"
}
