package stdio

import (
	"bytes"
	"io"
)

const (
	// readBufSize is the buffer a lineReader starts with, and what an idle reader holds while it
	// waits: a gateway of 1,000 servers has 1,000 readers blocked in Read, and a 64 KiB buffer each
	// was 64 MB. A line that does not fit grows the buffer (doubling, up to the limit), so a large
	// message is read in large reads into one buffer, with no copy at the end (see take).
	readBufSize = 4 << 10

	// readBufKeep is the largest buffer kept once everything in it has been returned; a larger one,
	// grown for one long line, goes with that line.
	readBufKeep = 64 << 10

	// headMax caps MessageTooLargeError.Head.
	headMax = 64 << 10

	// maxEmptyReads is how many reads in a row may return nothing before the reader gives up on the
	// source (io.ErrNoProgress), as bufio does.
	maxEmptyReads = 100
)

// lineReader splits a byte stream into newline-delimited messages. It is the framing half of
// ReadMessage, kept free of processes so it can be tested and fuzzed over any io.Reader.
//
// It is not safe for concurrent use.
type lineReader struct {
	src     io.Reader
	buf     []byte // buf[start:end] was read and not yet returned
	start   int
	end     int
	scanned int   // buf[start:start+scanned] holds no '\n'
	initial int   // the size of a new buffer
	limit   int   // maximum message length, > 0
	err     error // first error from src; returned once the buffer is drained, and from then on
}

// newLineReader returns a lineReader over r that rejects messages longer than limit bytes (limit
// must be > 0). bufSize is the size of the buffer it starts with; 0 means readBufSize.
func newLineReader(r io.Reader, limit, bufSize int) *lineReader {
	if bufSize <= 0 {
		bufSize = readBufSize
	}
	return &lineReader{src: r, limit: limit, initial: bufSize}
}

// next returns the next message: the next line that is not empty or made only of JSON whitespace
// (space, tab, CR), without its "\n" or "\r\n" terminator. The returned slice is newly allocated and
// belongs to the caller.
//
// A final line not ended by a newline is returned as a message when the stream ends with io.EOF;
// after any other read error it is dropped. Once the underlying reader fails, next returns that
// error (io.EOF for a clean end) on this and every later call.
//
// A line longer than the limit is read to its end and discarded, and next returns a
// *MessageTooLargeError; the reader stays usable.
func (r *lineReader) next() ([]byte, error) {
	for {
		var line []byte
		if i := bytes.IndexByte(r.buf[r.start+r.scanned:r.end], '\n'); i >= 0 {
			at := r.start + r.scanned + i
			line = r.buf[r.start:at]
			r.start, r.scanned = at+1, 0
		} else {
			r.scanned = r.end - r.start
			switch {
			case r.err != nil && (r.err != io.EOF || r.scanned == 0):
				r.start, r.end, r.scanned = 0, 0, 0 // a partial line before an error is dropped
				return nil, r.err
			case r.err != nil: // an unterminated last line
				line = r.buf[r.start:r.end]
				r.start, r.scanned = r.end, 0
			case r.scanned-1 > r.limit:
				// Content beyond limit+1 bytes cannot shrink back under the limit (only a single
				// trailing '\r' is dropped), so the line is too large. (Written without limit+1,
				// which overflows for a limit of math.MaxInt.)
				return nil, r.discard()
			default:
				r.fill()
				continue
			}
		}
		msg := trimCR(line)
		if len(msg) > r.limit {
			return nil, &MessageTooLargeError{Size: len(msg), Limit: r.limit, Head: bytes.Clone(msg[:min(headMax, r.limit)])}
		}
		if blank(msg) {
			continue
		}
		return r.take(msg), nil
	}
}

// take returns msg, a slice of buf, for the caller to own: a copy, or a buffer grown beyond
// readBufKeep for a long line, handed over with that line instead of copied. A grown buffer is
// given up as soon as what it holds past msg fits in readBufKeep/2: that moves to a buffer of its
// own, so a reader does not keep the buffer of its longest line.
func (r *lineReader) take(msg []byte) []byte {
	if cap(r.buf) <= readBufKeep {
		return bytes.Clone(msg)
	}
	rest := r.buf[r.start:r.end]
	handOver := len(msg) > cap(r.buf)/4
	if !handOver {
		msg = bytes.Clone(msg)
		if len(rest) > readBufKeep/2 {
			return msg // keep the buffer until what it holds is returned
		}
	}
	buf := make([]byte, max(r.initial, len(rest)))
	r.start, r.end, r.scanned = 0, copy(buf, rest), 0
	r.buf = buf
	if handOver {
		return msg[:len(msg):len(msg)]
	}
	return msg
}

// fill reads more into the buffer: after the data not yet returned, moved to the front, in a buffer
// grown when that data fills it. It records a read error in r.err.
func (r *lineReader) fill() {
	pending := r.end - r.start
	switch {
	case r.buf == nil:
		r.buf = make([]byte, r.initial)
	case pending == 0 && cap(r.buf) > readBufKeep:
		r.buf = make([]byte, r.initial) // grown for a line since returned
	case pending == len(r.buf):
		grow := 2 * len(r.buf)
		if grow-2 > r.limit { // more than the limit and a "\r\n" is never needed
			grow = r.limit + 2
		}
		buf := make([]byte, grow)
		copy(buf, r.buf[r.start:r.end])
		r.buf = buf
	default:
		copy(r.buf, r.buf[r.start:r.end])
	}
	r.start, r.end = 0, pending
	for range maxEmptyReads {
		n, err := r.src.Read(r.buf[r.end:])
		r.end += n
		if err != nil {
			r.err = err
			return
		}
		if n > 0 {
			return
		}
	}
	r.err = io.ErrNoProgress
}

// discard drops the line that starts the buffer, known to be too large, reading to its end. It
// returns the error to report.
func (r *lineReader) discard() error {
	head := bytes.Clone(r.buf[r.start : r.start+min(headMax, r.limit)])
	size := 0
	var last byte // the line's last byte so far
	for {
		pending := r.buf[r.start:r.end]
		if i := bytes.IndexByte(pending, '\n'); i >= 0 {
			size += i
			if i > 0 {
				last = pending[i-1]
			}
			r.start, r.scanned = r.start+i+1, 0
			break
		}
		size += len(pending)
		if len(pending) > 0 {
			last = pending[len(pending)-1]
		}
		r.start, r.end, r.scanned = 0, 0, 0
		if r.err != nil {
			break
		}
		r.fill()
	}
	if last == '\r' {
		size-- // a "\r\n" terminator, or a '\r' ending the stream: not part of the message
	}
	return &MessageTooLargeError{Size: size, Limit: r.limit, Head: head}
}

// trimCR drops one trailing '\r'.
func trimCR(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\r' {
		return b[:n-1]
	}
	return b
}

// blank reports whether b is empty or holds only JSON whitespace other than '\n'.
func blank(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\r' {
			return false
		}
	}
	return true
}
