package abi

import (
	"unicode/utf8"
	"unsafe"
)

const hexDigits = "0123456789abcdef"

// SWAR constants: a byte's lowest and highest bit in each of 8 lanes.
const (
	lanes01 = 0x0101010101010101
	lanes80 = 0x8080808080808080
)

// PlainWord reports whether none of the 8 bytes of x needs attention in a
// JSON string, read or written: no '"', no '\\', no control character,
// nothing non-ASCII. (The classic "has zero byte" and "has byte less than"
// bit tricks; exact as an any-lane test.) Scanning 8 bytes per iteration
// matters in a wasm guest, where every loop iteration costs, and far more
// under a host's termination checks.
func PlainWord(x uint64) bool {
	q := x ^ (lanes01 * '"')
	b := x ^ (lanes01 * '\\')
	return ((q-lanes01)&^q|(b-lanes01)&^b|(x-lanes01*0x20)&^x|x)&lanes80 == 0
}

// Load64 reads 8 bytes at d[i:] (the caller checks i+8 <= len(d)) with one
// little-endian load: wasm and every platform gw runs on allow unaligned
// loads.
func Load64(d []byte, i int) uint64 {
	return *(*uint64)(unsafe.Pointer(unsafe.SliceData(d[i:])))
}

func load64s(s string, i int) uint64 {
	return *(*uint64)(unsafe.Pointer(unsafe.StringData(s[i:])))
}

// AppendString appends s as a JSON string, escaped exactly as encoding/json
// does with HTML escaping off: '"', '\\' and control characters escaped,
// invalid UTF-8 replaced by \ufffd, U+2028 and U+2029 escaped. The result is
// always valid UTF-8 JSON.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if i+8 <= len(s) && PlainWord(load64s(s, i)) {
			i += 8
			continue
		}
		if b := s[i]; b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		if c == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if c == '\u2028' || c == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[c&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
