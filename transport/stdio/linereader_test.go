package stdio

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"testing"
	"testing/iotest"
)

// chunkReader returns data at most n bytes per Read.
type chunkReader struct {
	data []byte
	n    int
}

func (r *chunkReader) Read(b []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := copy(b[:min(len(b), r.n)], r.data)
	r.data = r.data[n:]
	return n, nil
}

// refItem is one expected result of lineReader.next.
type refItem struct {
	msg      string
	tooLarge bool
	size     int
	head     string
}

// splitRef is an independent, obviously correct model of lineReader for complete input.
func splitRef(data []byte, limit int) []refItem {
	lines := bytes.Split(data, []byte("\n"))
	if len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1] // data ended with '\n' (or was empty)
	}
	var out []refItem
	for _, l := range lines {
		l = bytes.TrimSuffix(l, []byte("\r"))
		switch {
		case len(l) > limit:
			out = append(out, refItem{tooLarge: true, size: len(l), head: string(l[:min(limit, headMax)])})
		case len(bytes.Trim(l, " \t\r")) == 0:
		default:
			out = append(out, refItem{msg: string(l)})
		}
	}
	return out
}

// checkLineReader reads everything from r and compares it with want.
func checkLineReader(t *testing.T, r *lineReader, want []refItem) {
	t.Helper()
	var kept [][]byte // messages returned earlier must not change later
	var keptWant []string
	for i, w := range want {
		got, err := r.next()
		if w.tooLarge {
			var tl *MessageTooLargeError
			if !errors.As(err, &tl) {
				t.Fatalf("item %d: got (%q, %v), want MessageTooLargeError", i, got, err)
			}
			if tl.Size != w.size || tl.Limit != r.limit || string(tl.Head) != w.head {
				t.Fatalf("item %d: got {Size:%d Limit:%d Head:%q}, want {Size:%d Limit:%d Head:%q}",
					i, tl.Size, tl.Limit, tl.Head, w.size, r.limit, w.head)
			}
			kept = append(kept, tl.Head)
			keptWant = append(keptWant, w.head)
			continue
		}
		if err != nil || string(got) != w.msg {
			t.Fatalf("item %d: got (%q, %v), want %q", i, got, err, w.msg)
		}
		kept = append(kept, got)
		keptWant = append(keptWant, w.msg)
	}
	for range 2 { // io.EOF, and it sticks
		if got, err := r.next(); err != io.EOF {
			t.Fatalf("after %d items: got (%q, %v), want io.EOF", len(want), got, err)
		}
	}
	for i := range kept {
		if string(kept[i]) != keptWant[i] {
			t.Fatalf("returned slice %d changed to %q, was %q: it aliases a reused buffer", i, kept[i], keptWant[i])
		}
	}
}

func TestLineReader(t *testing.T) {
	long := strings.Repeat("L", 100)
	tests := []struct {
		name  string
		in    string
		limit int
		want  []refItem
	}{
		{"empty", "", 10, nil},
		{"one", "abc\n", 10, []refItem{{msg: "abc"}}},
		{"crlf", "abc\r\ndef\r\n", 10, []refItem{{msg: "abc"}, {msg: "def"}}},
		{"only one CR dropped", "abc\r\r\n", 10, []refItem{{msg: "abc\r"}}},
		{"blank lines skipped", "\n\r\n \t \r\nx\n\n", 10, []refItem{{msg: "x"}}},
		{"inner whitespace kept", " a b \n", 10, []refItem{{msg: " a b "}}},
		{"unterminated last line", "a\nb", 10, []refItem{{msg: "a"}, {msg: "b"}}},
		{"unterminated last line with CR", "a\nb\r", 10, []refItem{{msg: "a"}, {msg: "b"}}},
		{"exactly the limit", "0123456789\n", 10, []refItem{{msg: "0123456789"}}},
		{"limit with CRLF", "0123456789\r\n", 10, []refItem{{msg: "0123456789"}}},
		{"one over", "0123456789A\nok\n", 10, []refItem{
			{tooLarge: true, size: 11, head: "0123456789"}, {msg: "ok"}}},
		{"long in the middle", "a\n" + long + "\r\nb\n", 10, []refItem{
			{msg: "a"}, {tooLarge: true, size: 100, head: "LLLLLLLLLL"}, {msg: "b"}}},
		{"long at EOF", "a\n" + long, 10, []refItem{
			{msg: "a"}, {tooLarge: true, size: 100, head: "LLLLLLLLLL"}}},
		{"long blank line is still too large", strings.Repeat(" ", 50) + "\nx\n", 10, []refItem{
			{tooLarge: true, size: 50, head: strings.Repeat(" ", 10)}, {msg: "x"}}},
		{"long but fits", long + "\n", 100, []refItem{{msg: long}}},
	}
	readers := map[string]func(string) io.Reader{
		"whole":   func(s string) io.Reader { return strings.NewReader(s) },
		"onebyte": func(s string) io.Reader { return iotest.OneByteReader(strings.NewReader(s)) },
		"dataerr": func(s string) io.Reader { return iotest.DataErrReader(strings.NewReader(s)) },
		"chunk7":  func(s string) io.Reader { return &chunkReader{[]byte(s), 7} },
	}
	for _, tt := range tests {
		if ref := splitRef([]byte(tt.in), tt.limit); !equalItems(ref, tt.want) {
			t.Fatalf("%s: the reference model disagrees with the table: %+v", tt.name, ref)
		}
		for rname, mk := range readers {
			for _, bufSize := range []int{16, 0} {
				t.Run(fmt.Sprintf("%s/%s/buf%d", tt.name, rname, bufSize), func(t *testing.T) {
					checkLineReader(t, newLineReader(mk(tt.in), tt.limit, bufSize), tt.want)
				})
			}
		}
	}
}

func equalItems(a, b []refItem) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestLineReaderHeadIsCapped(t *testing.T) {
	line := bytes.Repeat([]byte("h"), 3*headMax)
	in := append(append(line, '\n'), "next\n"...)
	r := newLineReader(bytes.NewReader(in), 2*headMax, 0)
	_, err := r.next()
	var tl *MessageTooLargeError
	if !errors.As(err, &tl) {
		t.Fatalf("got %v, want MessageTooLargeError", err)
	}
	if tl.Size != len(line) || tl.Limit != 2*headMax || len(tl.Head) != headMax {
		t.Fatalf("got Size %d Limit %d len(Head) %d", tl.Size, tl.Limit, len(tl.Head))
	}
	want := "stdio: message of 196608 bytes exceeds the limit of 131072 bytes"
	if tl.Error() != want {
		t.Fatalf("Error() = %q, want %q", tl.Error(), want)
	}
	if msg, err := r.next(); err != nil || string(msg) != "next" {
		t.Fatalf("after the long line: got (%q, %v), want \"next\"", msg, err)
	}
}

// errAfterReader returns data, then err.
type errAfterReader struct {
	data []byte
	err  error
}

func (r *errAfterReader) Read(b []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(b, r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestLineReaderErrorIsSticky(t *testing.T) {
	boom := errors.New("boom")
	r := newLineReader(&errAfterReader{[]byte("abc\npartial"), boom}, 100, 0)
	if msg, err := r.next(); err != nil || string(msg) != "abc" {
		t.Fatalf("got (%q, %v), want \"abc\"", msg, err)
	}
	for range 2 {
		// The partial line before a read error is not a message.
		if msg, err := r.next(); err != boom {
			t.Fatalf("got (%q, %v), want boom", msg, err)
		}
	}
}

func FuzzReadMessage(f *testing.F) {
	f.Add([]byte("a\nb\r\n\n  \nccc"), uint8(2), uint8(3))
	f.Add([]byte(strings.Repeat("x", 70)+"\r\n"+strings.Repeat("y", 17)+"\n\r\n"), uint8(16), uint8(5))
	f.Add([]byte(strings.Repeat("z", 40)+"\r"), uint8(20), uint8(1))
	f.Add([]byte("\r\r\n\t\r\n{\"jsonrpc\":\"2.0\"}\n"), uint8(63), uint8(200))
	f.Fuzz(func(t *testing.T, data []byte, limit, chunk uint8) {
		lim := int(limit%64) + 1
		r := newLineReader(&chunkReader{data, int(chunk%32) + 1}, lim, 16)
		checkLineReader(t, r, splitRef(data, lim))
	})
}

func TestLineReaderHugeLimit(t *testing.T) {
	long := strings.Repeat("m", 100)
	r := newLineReader(strings.NewReader(long+"\n"), math.MaxInt, 16)
	if msg, err := r.next(); err != nil || string(msg) != long {
		t.Fatalf("got (%q, %v), want the whole line", msg, err)
	}
}

// TestLineReaderLargeLines: lines far larger than the starting buffer, between small ones, in
// chunks of every size, are returned whole and never change afterwards (a buffer handed over with
// a line is not reused), and lines over the limit are reported with their size.
func TestLineReaderLargeLines(t *testing.T) {
	big := func(c byte, n int) string { return strings.Repeat(string(c), n) }
	in := "a\n" + big('b', 100<<10) + "\r\n" + "c\n" + big('d', 1<<20) + "\n" + big('e', 70<<10) + "\nf\n" +
		big('g', 3<<20) + "\r\n" + big('h', 40<<10) + "\n" + big('i', 200<<10)
	for _, chunk := range []int{1000, 4096, 65536, 1 << 22} {
		for _, limit := range []int{2 << 20, 16 << 20} {
			t.Run(fmt.Sprintf("chunk%d/limit%d", chunk, limit), func(t *testing.T) {
				checkLineReader(t, newLineReader(&chunkReader{[]byte(in), chunk}, limit, 0), splitRef([]byte(in), limit))
			})
		}
	}
}

// TestLineReaderBufferShrinks: a reader holds readBufSize while lines are small, grows for a long
// line, and holds no more than readBufKeep once that line was returned: an idle server's reader
// does not keep the buffer of its largest message.
func TestLineReaderBufferShrinks(t *testing.T) {
	in := "small\n" + strings.Repeat("x", 1<<20) + "\nsmall\n" + strings.Repeat("y", 50<<10) + "\nsmall\n"
	r := newLineReader(&chunkReader{[]byte(in), 1 << 16}, 16<<20, 0)
	for i, want := range []int{readBufSize, 0, readBufKeep, readBufKeep, readBufKeep} {
		msg, err := r.next()
		if err != nil {
			t.Fatal(err)
		}
		if want > 0 && cap(r.buf) > want {
			t.Errorf("after line %d (%d bytes) the buffer holds %d bytes, want at most %d", i, len(msg), cap(r.buf), want)
		}
	}
}

// BenchmarkLineReader reads lines as a pipe delivers them (64 KiB a read at most): small
// messages many to a read, and 1 MiB ones over many reads.
func BenchmarkLineReader(b *testing.B) {
	for _, size := range []int{200, 1 << 20} {
		line := append(bytes.Repeat([]byte("x"), size), '\n')
		in := bytes.Repeat(line, max(1, (4<<20)/len(line)))
		b.Run(fmt.Sprintf("line=%d", size), func(b *testing.B) {
			b.SetBytes(int64(len(in)))
			b.ReportAllocs()
			for b.Loop() {
				r := newLineReader(&chunkReader{in, 64 << 10}, DefaultMaxMessageSize, 0)
				for {
					if _, err := r.next(); err != nil {
						break
					}
				}
			}
		})
	}
}
