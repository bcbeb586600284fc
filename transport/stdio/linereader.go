package stdio

import (
	"bufio"
	"bytes"
	"io"
)

const (
	// readBufSize is the size of the bufio.Reader in front of stdout. Lines that fit are copied out
	// once; longer lines are accumulated fragment by fragment.
	readBufSize = 64 << 10

	// headMax caps MessageTooLargeError.Head.
	headMax = 64 << 10
)

// lineReader splits a byte stream into newline-delimited messages. It is the framing half of
// ReadMessage, kept free of processes so it can be tested and fuzzed over any io.Reader.
//
// It is not safe for concurrent use.
type lineReader struct {
	br    *bufio.Reader
	limit int   // maximum message length, > 0
	err   error // first error from the underlying reader; returned from then on
}

// newLineReader returns a lineReader over r that rejects messages longer than limit bytes (limit
// must be > 0). bufSize is the size of the read buffer; 0 means readBufSize.
func newLineReader(r io.Reader, limit, bufSize int) *lineReader {
	if bufSize <= 0 {
		bufSize = readBufSize
	}
	return &lineReader{br: bufio.NewReaderSize(r, bufSize), limit: limit}
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
		if r.err != nil {
			return nil, r.err
		}
		// acc collects a line that does not fit in the read buffer; it is owned by this call.
		var acc []byte
		var frag []byte
		for {
			var err error
			frag, err = r.br.ReadSlice('\n')
			if err == bufio.ErrBufferFull {
				// The line continues. Content so far beyond limit+1 bytes cannot shrink back under
				// the limit (only a single trailing '\r' is dropped), so it is too large.
				// (Written without limit+1, which overflows for a limit of math.MaxInt.)
				if len(acc)+len(frag)-1 > r.limit {
					return nil, r.discard(acc, frag)
				}
				acc = append(acc, frag...)
				continue
			}
			if err == nil {
				frag = frag[:len(frag)-1] // drop '\n'
				break
			}
			r.err = err
			if err != io.EOF || len(acc)+len(frag) == 0 {
				return nil, err
			}
			break // an unterminated last line
		}

		msg := frag // aliases the read buffer until copied
		if acc != nil {
			acc = append(acc, frag...)
			msg = acc
		}
		msg = trimCR(msg)
		if len(msg) > r.limit {
			return nil, &MessageTooLargeError{
				Size:  len(msg),
				Limit: r.limit,
				Head:  bytes.Clone(msg[:min(headMax, r.limit)]),
			}
		}
		if blank(msg) {
			continue
		}
		if acc == nil {
			msg = bytes.Clone(msg)
		}
		return msg, nil
	}
}

// discard reads and drops the rest of a line that is known to be too large. acc and frag are the
// bytes of the line read so far (frag aliases the read buffer). It returns the error to report.
func (r *lineReader) discard(acc, frag []byte) error {
	h := min(headMax, r.limit)
	head := make([]byte, 0, h)
	head = append(head, acc[:min(len(acc), h)]...)
	head = append(head, frag[:min(len(frag), h-len(head))]...)

	size := len(acc) + len(frag)
	last := frag[len(frag)-1] // frag is a full buffer here, never empty
	for {
		frag, err := r.br.ReadSlice('\n')
		if err == nil {
			frag = frag[:len(frag)-1]
		} else if err != bufio.ErrBufferFull {
			r.err = err
		}
		size += len(frag)
		if len(frag) > 0 {
			last = frag[len(frag)-1]
		}
		if err != bufio.ErrBufferFull {
			break
		}
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
