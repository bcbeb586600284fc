// Package jsonscan walks JSON text without decoding it: it finds an object's
// members by exact key and hands out where their values lie, copying and
// allocating nothing. gw's call path reads and edits messages with it (the
// id and result of a reply, a call's name and _meta) whatever the size of
// the arguments.
//
// The text is expected to be valid JSON (check it with json.Valid first, or
// take it from a reader that did): on invalid text the answers are
// unspecified, but nothing panics or reads out of bounds.
package jsonscan

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// SkipSpace returns the index of the first byte at or after i that is not
// JSON whitespace.
func SkipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// SkipString returns the index just past the string that starts at b[i]
// (a '"'), or -1 when it does not end; plain reports that its text needs no
// unescaping: no escapes, and valid UTF-8.
func SkipString(b []byte, i int) (end int, plain bool) {
	end = skipStringEnd(b, i)
	if end < 0 {
		return -1, false
	}
	text := b[i+1 : end-1]
	return end, bytes.IndexByte(text, '\\') < 0 && utf8.Valid(text)
}

// skipStringEnd is SkipString without plain: it finds the closing quote with
// bytes.IndexByte, which reads many bytes at a time, so a long string (a
// file's text, base64) costs little more than a memory scan.
func skipStringEnd(b []byte, i int) int {
	j := i + 1
	for {
		q := bytes.IndexByte(b[j:], '"')
		if q < 0 {
			return -1
		}
		q += j
		// The quote ends the string unless an odd run of backslashes
		// escapes it.
		n := 0
		for k := q - 1; k > i && b[k] == '\\'; k-- {
			n++
		}
		if n%2 == 0 {
			return q + 1
		}
		j = q + 1
	}
}

// SkipValue returns the index just past the value that starts at b[i], or -1.
func SkipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return skipStringEnd(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				end := skipStringEnd(b, j)
				if end < 0 {
					return -1
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	}
	j := i
	for j < len(b) {
		switch b[j] {
		case ',', '}', ']', ':', '"', '{', '[', ' ', '\t', '\n', '\r':
			if j == i {
				return -1
			}
			return j
		}
		j++
	}
	return j
}

// Scanner yields the members of one JSON object in order.
type Scanner struct {
	b []byte
	i int // next byte to read; -1 once done
}

// Object starts a Scanner on b, which must hold a JSON object
// (surrounding whitespace allowed); ok is false otherwise.
func Object(b []byte) (sc Scanner, ok bool) {
	i := SkipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return Scanner{i: -1}, false
	}
	return Scanner{b: b, i: i + 1}, true
}

// Next returns the next member: its key as written, quotes included; whether
// the key is plain (its text is key[1:len(key)-1] as is); and where its value
// lies in b. ok is false at the end of the object or on malformed text.
func (sc *Scanner) Next() (key []byte, plain bool, start, end int, ok bool) {
	if sc.i < 0 {
		return nil, false, 0, 0, false
	}
	b := sc.b
	i := SkipSpace(b, sc.i)
	if i < len(b) && b[i] == ',' {
		i = SkipSpace(b, i+1)
	}
	if i >= len(b) || b[i] != '"' {
		sc.i = -1 // '}' or malformed
		return nil, false, 0, 0, false
	}
	kend, plain := SkipString(b, i)
	if kend < 0 {
		sc.i = -1
		return nil, false, 0, 0, false
	}
	key = b[i:kend]
	i = SkipSpace(b, kend)
	if i >= len(b) || b[i] != ':' {
		sc.i = -1
		return nil, false, 0, 0, false
	}
	start = SkipSpace(b, i+1)
	end = SkipValue(b, start)
	if end < 0 {
		sc.i = -1
		return nil, false, 0, 0, false
	}
	sc.i = end
	return key, plain, start, end, true
}

// KeyText returns a member key's text (allocating only for keys that need
// unescaping); ok is false when it is not a valid JSON string.
func KeyText(key []byte, plain bool) (string, bool) {
	if plain {
		return string(key[1 : len(key)-1]), true
	}
	var s string
	if json.Unmarshal(key, &s) != nil {
		return "", false
	}
	return s, true
}

// KeyIs reports whether a member key, as Next returns it, is exactly want.
func KeyIs(key []byte, plain bool, want string) bool {
	if plain {
		return string(key[1:len(key)-1]) == want
	}
	s, ok := KeyText(key, false)
	return ok && s == want
}

// Member locates the member of the JSON object raw whose key is exactly
// key: raw[start:end] is its value and n how many members have that key (the
// last counts, as with encoding/json). n is 0 when there is none or raw is
// not an object. Nothing is copied or allocated.
func Member(raw []byte, key string) (start, end, n int) {
	sc, ok := Object(raw)
	if !ok {
		return 0, 0, 0
	}
	for {
		k, plain, s, e, ok := sc.Next()
		if !ok {
			return start, end, n
		}
		if KeyIs(k, plain, key) {
			start, end, n = s, e, n+1
		}
	}
}

// String returns the text of the JSON string v, without copying when it
// needs no unescaping; ok is false when v is not a string.
func String(v []byte) ([]byte, bool) {
	if len(v) >= 2 && v[0] == '"' {
		if end, plain := SkipString(v, 0); end == len(v) && plain {
			return v[1 : len(v)-1], true
		}
	}
	var s string
	if json.Unmarshal(v, &s) != nil {
		return nil, false
	}
	return []byte(s), true
}

// Pos is where the scanner stands: after the last member Next returned, or
// at the object's first byte after '{' before any. It is -1 once Next has
// reported the end.
func (sc *Scanner) Pos() int { return sc.i }
