package kit

import (
	"strconv"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/gwmcp/gw/policies/guest/kit/internal/abi"
)

// Kind is the kind of a JSON value, as seen from its first byte.
type Kind uint8

// The kinds Peek reports.
const (
	Invalid Kind = iota // not the start of a value, the end of input, or after an error
	Null
	Bool
	Number
	String
	Array
	Object
)

var kindNames = [...]string{"invalid", "null", "boolean", "number", "string", "array", "object"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// MaxDepth is the deepest nesting Skip accepts, the same as encoding/json.
const MaxDepth = 10000

// SyntaxError is the error a Scanner reports: bad JSON, or a value of a kind
// the caller did not ask for. Offset is the byte offset where it was found.
type SyntaxError struct {
	Offset int
	Msg    string
}

func (e *SyntaxError) Error() string {
	return "json: " + e.Msg + " at offset " + strconv.Itoa(e.Offset)
}

// Scanner is a lazy, allocation-light JSON pull scanner: the caller walks
// the document it expects, reads the values it needs and skips the others
// without decoding them. Keys match case-sensitively, as written after
// unescaping. Strings are unescaped exactly as encoding/json unescapes them
// (invalid UTF-8 and lone surrogates become U+FFFD). Skipping and walking
// allocate nothing; Str allocates the string it returns.
//
// Errors are sticky: after the first, every method is a no-op that returns a
// zero value, Iter.Next returns false, and Err reports the error. So a
// decoder checks Err once at the end.
//
//	var s kit.Scanner
//	s.Reset(data)
//	obj := s.Object()
//	for obj.Next() {
//		switch string(obj.Key()) {
//		case "name":
//			name = s.Str()
//		default:
//			s.Skip()
//		}
//	}
//	err := s.End()
//
// The zero Scanner scans an empty input; a Scanner may be reused with Reset.
//
// Performance note: Go compiled to wasm runs roughly 10-15 times slower than
// native and pays for every call, so the scanning loops below work on local
// (data, index) pairs in plain functions rather than on the struct.
type Scanner struct {
	data []byte
	pos  int
	err  error
	key  []byte // scratch for keys with escapes
}

// NewScanner returns a Scanner reading data.
func NewScanner(data []byte) *Scanner { return &Scanner{data: data} }

// Reset makes s read data from the start, keeping its scratch buffer.
func (s *Scanner) Reset(data []byte) {
	s.data, s.pos, s.err = data, 0, nil
}

// Err returns the first error met, or nil.
func (s *Scanner) Err() error { return s.err }

// Offset returns the byte offset of the next unread byte.
func (s *Scanner) Offset() int { return s.pos }

// Fail records a *SyntaxError with msg at the current offset, unless an
// error is already recorded. Decoders use it to refuse a value of the right
// JSON kind but the wrong meaning.
func (s *Scanner) Fail(msg string) {
	if s.err == nil {
		s.err = &SyntaxError{Offset: s.pos, Msg: msg}
	}
}

// failAt records an error found at offset i (if msg is not empty) and
// reports whether it did.
func (s *Scanner) failAt(i int, msg string) bool {
	if msg == "" {
		return false
	}
	s.pos = i
	s.Fail(msg)
	return true
}

// Byte tables.
var (
	// kindOf is the kind of a value starting with each byte.
	kindOf = func() (t [256]Kind) {
		t['{'], t['['], t['"'], t['t'], t['f'], t['n'], t['-'] = Object, Array, String, Bool, Bool, Null, Number
		for c := '0'; c <= '9'; c++ {
			t[c] = Number
		}
		return t
	}()
	// strStop marks the bytes a string scan must look at: the quote, the
	// backslash, control characters and non-ASCII bytes.
	strStop = func() (t [256]bool) {
		for c := 0; c < 256; c++ {
			t[c] = c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf
		}
		return t
	}()
)

func skipWS(d []byte, i int) int {
	for i < len(d) {
		switch d[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// String flags from scanStr.
const (
	strEscaped = 1 << iota // has backslash escapes
	strHigh                // has non-ASCII bytes
)

// scanStr scans the string whose opening quote is d[i] and returns the
// index of its closing quote, or an error message and where it was found.
// Plain runs are skipped 8 bytes at a time: in a wasm guest every loop
// iteration costs, and far more under a host's termination checks.
func scanStr(d []byte, i int) (end int, flags uint8, msg string) {
	i++
	for {
		for i+8 <= len(d) && abi.PlainWord(abi.Load64(d, i)) {
			i += 8
		}
		for i < len(d) && !strStop[d[i]] {
			i++
		}
		if i >= len(d) {
			return i, flags, "unexpected end of input in string"
		}
		switch c := d[i]; {
		case c == '"':
			return i, flags, ""
		case c == '\\':
			flags |= strEscaped
			if i+1 >= len(d) {
				return len(d), flags, "unexpected end of input in string"
			}
			switch d[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(d) || !isHex4(d[i+2:i+6]) {
					return i + 1, flags, `invalid \u escape in string`
				}
				i += 6
			default:
				return i + 1, flags, "invalid escape in string"
			}
		case c < 0x20:
			return i, flags, "control character in string"
		default:
			flags |= strHigh
			i++
		}
	}
}

// plainStr reports whether string content with these flags is its own value.
func plainStr(content []byte, flags uint8) bool {
	return flags == 0 || flags == strHigh && utf8.Valid(content)
}

// scanNum scans the number starting at d[i].
func scanNum(d []byte, i int) (next int, integer bool, msg string) {
	if i < len(d) && d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && '1' <= d[i] && d[i] <= '9':
		i++
		for i < len(d) && isDigit(d[i]) {
			i++
		}
	default:
		return i, false, "invalid number"
	}
	integer = true
	if i < len(d) && d[i] == '.' {
		integer = false
		i++
		if i >= len(d) || !isDigit(d[i]) {
			return i, false, "invalid number"
		}
		for i < len(d) && isDigit(d[i]) {
			i++
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		integer = false
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if i >= len(d) || !isDigit(d[i]) {
			return i, false, "invalid number"
		}
		for i < len(d) && isDigit(d[i]) {
			i++
		}
	}
	return i, integer, ""
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func scanLit(d []byte, i int, lit string) (int, string) {
	if len(d)-i >= len(lit) && string(d[i:i+len(lit)]) == lit {
		return i + len(lit), ""
	}
	return i, "invalid literal"
}

// scanKey scans an object key at d[i] (after whitespace) and its colon.
func scanKey(d []byte, i int) (start, end, next int, flags uint8, msg string) {
	i = skipWS(d, i)
	if i >= len(d) {
		return 0, 0, i, 0, "unexpected end of input, expected string"
	}
	if d[i] != '"' {
		return 0, 0, i, 0, "expected string, found " + kindOf[d[i]].String()
	}
	start = i + 1
	end, flags, msg = scanStr(d, i)
	if msg != "" {
		return 0, 0, end, 0, msg
	}
	i = skipWS(d, end+1)
	if i >= len(d) || d[i] != ':' {
		return 0, 0, i, 0, "expected ':' after object key"
	}
	return start, end, i + 1, flags, ""
}

// skipValue skips the value at d[i] (after whitespace). It does not
// recurse: nesting costs one byte per level, up to MaxDepth, and the first
// 64 levels live on the stack.
func skipValue(d []byte, i int) (int, string) {
	var buf [64]byte
	stack := buf[:0]
	var msg string
	for {
		i = skipWS(d, i)
		if i >= len(d) {
			return i, "unexpected end of input"
		}
		switch c := d[i]; c {
		case '{', '[':
			if len(stack) >= MaxDepth { // an empty container counts too
				return i, "exceeded max depth"
			}
			closer := c + 2 // '{'+2 is '}', '['+2 is ']'
			i = skipWS(d, i+1)
			if i < len(d) && d[i] == closer {
				i++
				break
			}
			stack = append(stack, closer)
			if closer == '}' {
				if _, _, i, _, msg = scanKey(d, i); msg != "" {
					return i, msg
				}
			}
			continue
		case '"':
			if i, _, msg = scanStr(d, i); msg != "" {
				return i, msg
			}
			i++
		case 't':
			if i, msg = scanLit(d, i, "true"); msg != "" {
				return i, msg
			}
		case 'f':
			if i, msg = scanLit(d, i, "false"); msg != "" {
				return i, msg
			}
		case 'n':
			if i, msg = scanLit(d, i, "null"); msg != "" {
				return i, msg
			}
		default:
			if c != '-' && !isDigit(c) {
				return i, "invalid character " + strconv.QuoteRune(rune(c)) + " looking for a value"
			}
			if i, _, msg = scanNum(d, i); msg != "" {
				return i, msg
			}
		}
		// After a value: close containers or move to the next element.
		for {
			if len(stack) == 0 {
				return i, ""
			}
			i = skipWS(d, i)
			if i >= len(d) {
				return i, "unexpected end of input"
			}
			c, top := d[i], stack[len(stack)-1]
			if c == top {
				i++
				stack = stack[:len(stack)-1]
				continue
			}
			if c != ',' {
				return i, "expected ',' or '" + string(top) + "'"
			}
			i++
			if top == '}' {
				if _, _, i, _, msg = scanKey(d, i); msg != "" {
					return i, msg
				}
			}
			break
		}
	}
}

// Peek skips whitespace and reports the kind of the next value without
// consuming it.
func (s *Scanner) Peek() Kind {
	if s.err != nil {
		return Invalid
	}
	i := skipWS(s.data, s.pos)
	s.pos = i
	if i >= len(s.data) {
		return Invalid
	}
	return kindOf[s.data[i]]
}

// expect fails unless the next value is of kind k.
func (s *Scanner) expect(k Kind) bool {
	got := s.Peek()
	if got == k {
		return true
	}
	if s.err == nil {
		if s.pos >= len(s.data) {
			s.Fail("unexpected end of input, expected " + k.String())
		} else {
			s.Fail("expected " + k.String() + ", found " + got.String())
		}
	}
	return false
}

// Lit consumes lit if the input continues with exactly those bytes (no
// whitespace skipped) and reports whether it did; otherwise it consumes
// nothing and records no error. A decoder uses it for a fast path over
// input laid out as it expects, a member's key and colon at a time, and
// falls back to walking with Object when the layout differs. In a wasm
// guest one comparison costs far less than scanning the key byte by byte.
func (s *Scanner) Lit(lit string) bool {
	if s.err != nil || len(s.data)-s.pos < len(lit) || string(s.data[s.pos:s.pos+len(lit)]) != lit {
		return false
	}
	s.pos += len(lit)
	return true
}

// Iter walks the members of an object or the elements of an array. Each
// time Next returns true the caller must consume exactly one value (read it
// or Skip it).
type Iter struct {
	s    *Scanner
	key  []byte
	n    int
	end  byte
	done bool
}

// Object starts reading an object; it fails unless the next value is one.
func (s *Scanner) Object() Iter { return s.enter(Object, '}') }

// Array starts reading an array; it fails unless the next value is one.
func (s *Scanner) Array() Iter { return s.enter(Array, ']') }

func (s *Scanner) enter(k Kind, end byte) Iter {
	it := Iter{s: s, end: end}
	if !s.expect(k) {
		it.done = true
		return it
	}
	s.pos++
	return it
}

// Next advances to the next member or element and reports whether there is
// one. For an object it reads the member's key (see Key) and the colon.
func (it *Iter) Next() bool {
	s := it.s
	if it.done || s == nil || s.err != nil {
		it.done = true
		return false
	}
	d := s.data
	i := skipWS(d, s.pos)
	if i >= len(d) {
		it.done = true
		s.failAt(i, "unexpected end of input")
		return false
	}
	if d[i] == it.end {
		s.pos = i + 1
		it.done = true
		return false
	}
	if it.n > 0 {
		if d[i] != ',' {
			it.done = true
			s.failAt(i, "expected ',' or '"+string(it.end)+"'")
			return false
		}
		i = skipWS(d, i+1)
		if i < len(d) && d[i] == it.end {
			it.done = true
			s.failAt(i, "unexpected '"+string(it.end)+"' after ','")
			return false
		}
	}
	it.n++
	if it.end == '}' {
		start, end, next, flags, msg := scanKey(d, i)
		if s.failAt(next, msg) {
			it.done = true
			return false
		}
		if flags&strEscaped == 0 {
			// Without escapes the key's bytes are the key (invalid UTF-8
			// never equals a key a decoder looks for, decoded or not).
			it.key = d[start:end]
		} else {
			s.key = Unquote(s.key[:0], d[start:end])
			it.key = s.key
		}
		i = next
	}
	s.pos = i
	return true
}

// Key returns the current member's key, unescaped. It is valid until the
// next call on the Scanner; string(it.Key()) in a switch does not allocate.
func (it *Iter) Key() []byte { return it.key }

// Index returns how many members or elements Next has returned so far, so
// inside the loop the current one's 0-based index is Index()-1.
func (it *Iter) Index() int { return it.n }

// StrBytes reads a string value without decoding it. It returns the bytes
// between the quotes, which alias the input, and plain: true when they are
// the value as is (no escapes, valid UTF-8), false when Unquote must decode
// them. Decoders use it to avoid an allocation per string.
func (s *Scanner) StrBytes() (content []byte, plain bool) {
	if !s.expect(String) {
		return nil, true
	}
	end, flags, msg := scanStr(s.data, s.pos)
	if s.failAt(end, msg) {
		return nil, true
	}
	content = s.data[s.pos+1 : end]
	s.pos = end + 1
	return content, plainStr(content, flags)
}

// Str reads a string value and returns it unescaped. It allocates once
// (not at all for ""); use Null first for a string that may be null.
func (s *Scanner) Str() string {
	b, plain := s.StrBytes()
	if plain {
		return string(b)
	}
	return string(Unquote(make([]byte, 0, len(b)+8), b))
}

// AppendStr reads a string value and appends it, unescaped, to dst.
func (s *Scanner) AppendStr(dst []byte) []byte {
	b, plain := s.StrBytes()
	if plain {
		return append(dst, b...)
	}
	return Unquote(dst, b)
}

// Bool reads true or false.
func (s *Scanner) Bool() bool {
	if !s.expect(Bool) {
		return false
	}
	lit := "false"
	if s.data[s.pos] == 't' {
		lit = "true"
	}
	i, msg := scanLit(s.data, s.pos, lit)
	if s.failAt(i, msg) {
		return false
	}
	s.pos = i
	return lit == "true"
}

// Null consumes a null if the next value is one and reports whether it did;
// any other value is left unread.
func (s *Scanner) Null() bool {
	if s.Peek() != Null {
		return false
	}
	i, msg := scanLit(s.data, s.pos, "null")
	if s.failAt(i, msg) {
		return false
	}
	s.pos = i
	return true
}

// Int reads a number that is an integer in int64's range (no fraction or
// exponent, as encoding/json requires for an integer field).
func (s *Scanner) Int() int64 {
	if !s.expect(Number) {
		return 0
	}
	start := s.pos
	next, integer, msg := scanNum(s.data, start)
	if s.failAt(next, msg) {
		return 0
	}
	if !integer {
		s.Fail("expected an integer")
		return 0
	}
	v, err := strconv.ParseInt(string(s.data[start:next]), 10, 64)
	if err != nil {
		s.Fail("integer out of range")
		return 0
	}
	s.pos = next
	return v
}

// Skip consumes one value of any kind without decoding it, checking its
// syntax as encoding/json would. It allocates nothing up to 64 levels of
// nesting and accepts up to MaxDepth.
func (s *Scanner) Skip() {
	if s.err != nil {
		return
	}
	i, msg := skipValue(s.data, s.pos)
	if !s.failAt(i, msg) {
		s.pos = i
	}
}

// Raw consumes one value and returns its bytes, which alias the input.
func (s *Scanner) Raw() []byte {
	if s.err != nil {
		return nil
	}
	start := skipWS(s.data, s.pos)
	i, msg := skipValue(s.data, start)
	if s.failAt(i, msg) {
		return nil
	}
	s.pos = i
	return s.data[start:i]
}

// End checks that only whitespace follows and returns Err.
func (s *Scanner) End() error {
	if s.err == nil {
		s.pos = skipWS(s.data, s.pos)
		if s.pos < len(s.data) {
			s.Fail("invalid character " + strconv.QuoteRune(rune(s.data[s.pos])) + " after top-level value")
		}
	}
	return s.err
}

func isHex4(b []byte) bool {
	return isHex(b[0]) && isHex(b[1]) && isHex(b[2]) && isHex(b[3])
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func hexVal(c byte) rune {
	switch {
	case c <= '9':
		return rune(c - '0')
	case c >= 'a':
		return rune(c - 'a' + 10)
	}
	return rune(c - 'A' + 10)
}

// getu4 decodes \uXXXX at the start of b, or returns -1.
func getu4(b []byte) rune {
	if len(b) < 6 || b[0] != '\\' || b[1] != 'u' || !isHex4(b[2:6]) {
		return -1
	}
	return hexVal(b[2])<<12 | hexVal(b[3])<<8 | hexVal(b[4])<<4 | hexVal(b[5])
}

// Unquote appends the value of string content (the bytes StrBytes returns,
// which the scanner has validated) to dst, with encoding/json's rules:
// lone or reversed surrogates and invalid UTF-8 become U+FFFD.
func Unquote(dst, content []byte) []byte {
	b := content
	for i := 0; i < len(b); {
		c := b[i]
		switch {
		case c == '\\':
			if i+1 >= len(b) {
				return utf8.AppendRune(dst, unicode.ReplacementChar)
			}
			switch b[i+1] {
			case 'b':
				dst = append(dst, '\b')
			case 'f':
				dst = append(dst, '\f')
			case 'n':
				dst = append(dst, '\n')
			case 'r':
				dst = append(dst, '\r')
			case 't':
				dst = append(dst, '\t')
			case 'u':
				rr := getu4(b[i:])
				if rr < 0 {
					return utf8.AppendRune(dst, unicode.ReplacementChar)
				}
				i += 6
				if utf16.IsSurrogate(rr) {
					if dec := utf16.DecodeRune(rr, getu4(b[i:])); dec != unicode.ReplacementChar {
						i += 6
						dst = utf8.AppendRune(dst, dec)
						continue
					}
					rr = unicode.ReplacementChar
				}
				dst = utf8.AppendRune(dst, rr)
				continue
			default: // '"', '\\', '/'
				dst = append(dst, b[i+1])
			}
			i += 2
		case c < utf8.RuneSelf:
			dst = append(dst, c)
			i++
		default:
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 {
				dst = utf8.AppendRune(dst, unicode.ReplacementChar)
			} else {
				dst = append(dst, b[i:i+size]...)
			}
			i += size
		}
	}
	return dst
}
