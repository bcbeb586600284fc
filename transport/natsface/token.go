package natsface

import (
	"errors"
	"strings"
)

// ErrBadToken is returned by DecodeToken for a string that EncodeToken cannot have produced.
var ErrBadToken = errors.New("natsface: invalid subject token")

// tokenEscape starts an escape in an encoded token; it is never a literal.
const tokenEscape = '~'

const upperHex = "0123456789ABCDEF"

// safeTokenByte reports whether b stands for itself in an encoded token. The set is deliberately
// small (ASCII letters, digits, '-' and '_'): such tokens are valid NATS subject tokens, JetStream
// KV key parts, micro endpoint names and shell words at once.
func safeTokenByte(b byte) bool {
	return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || b == '-' || b == '_'
}

// EncodeToken turns any string (tool, prompt or server name; any bytes, even invalid UTF-8) into a
// single valid NATS subject token. The encoding is reversible (DecodeToken) and canonical (each
// string has exactly one encoding):
//
//   - ASCII letters, digits, '-' and '_' stand for themselves, so usual MCP names are unchanged:
//     "get_weather" → "get_weather";
//   - every other byte, '~' included, becomes '~' and two upper-case hex digits:
//     "github.create issue" → "github~2Ecreate~20issue", "a*b" → "a~2Ab";
//   - the empty string is the token "~".
//
// The output is never empty and never contains '.', '*', '>' or whitespace.
func EncodeToken(s string) string {
	if s == "" {
		return string(tokenEscape)
	}
	n := len(s)
	for i := 0; i < len(s); i++ {
		if !safeTokenByte(s[i]) {
			n += 2
		}
	}
	if n == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if safeTokenByte(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte(tokenEscape)
		b.WriteByte(upperHex[c>>4])
		b.WriteByte(upperHex[c&0xF])
	}
	return b.String()
}

// DecodeToken reverses EncodeToken. It accepts only canonical encodings, so that two different
// subjects never name the same tool: lower-case hex, an escaped safe byte, a stray '~' or any byte
// outside the encoded alphabet give an error wrapping ErrBadToken.
func DecodeToken(tok string) (string, error) {
	if tok == string(tokenEscape) {
		return "", nil
	}
	if tok == "" {
		return "", ErrBadToken
	}
	if strings.IndexByte(tok, tokenEscape) < 0 {
		for i := 0; i < len(tok); i++ {
			if !safeTokenByte(tok[i]) {
				return "", ErrBadToken
			}
		}
		return tok, nil
	}
	out := make([]byte, 0, len(tok))
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		switch {
		case safeTokenByte(c):
			out = append(out, c)
		case c == tokenEscape && i+2 < len(tok):
			hi, lo := unhex(tok[i+1]), unhex(tok[i+2])
			if hi < 0 || lo < 0 {
				return "", ErrBadToken
			}
			v := byte(hi<<4 | lo)
			if safeTokenByte(v) {
				return "", ErrBadToken // not canonical: v stands for itself
			}
			out = append(out, v)
			i += 2
		default:
			return "", ErrBadToken
		}
	}
	return string(out), nil
}

// unhex decodes one upper-case hex digit, or returns -1.
func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}
