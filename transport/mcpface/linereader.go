package mcpface

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// errLineTooLong is returned by lineReader.next for a line over the limit;
// the line has been read to its end and dropped, and the reader goes on.
var errLineTooLong = errors.New("mcpface: message too large")

// lineReader splits a byte stream into newline-delimited messages, dropping
// blank lines and lines longer than limit. It is not safe for concurrent use.
type lineReader struct {
	br    *bufio.Reader
	limit int
	err   error // sticky error of the underlying reader
}

func newLineReader(r io.Reader, limit int) *lineReader {
	return &lineReader{br: bufio.NewReaderSize(r, 64<<10), limit: limit}
}

// next returns the next non-blank line without its terminator, in a slice
// the caller owns; errLineTooLong for a line over the limit (the reader stays
// usable); or the reader's error (io.EOF at a clean end) from then on. An
// unterminated last line is a message.
func (r *lineReader) next() ([]byte, error) {
	for {
		if r.err != nil {
			return nil, r.err
		}
		var acc []byte
		tooLong := false
		for {
			frag, err := r.br.ReadSlice('\n')
			if !tooLong {
				if len(acc)+len(frag) > r.limit+2 { // room for "\r\n"
					tooLong, acc = true, nil
				} else {
					acc = append(acc, frag...)
				}
			}
			if err == bufio.ErrBufferFull {
				continue
			}
			if err != nil {
				r.err = err
				if err != io.EOF || (len(acc) == 0 && !tooLong) {
					return nil, err
				}
			}
			break
		}
		if tooLong {
			return nil, errLineTooLong
		}
		line := bytes.TrimSpace(acc)
		if len(line) > r.limit {
			return nil, errLineTooLong
		}
		if len(line) == 0 {
			continue
		}
		return line, nil
	}
}
