// Package abi is the guest side of gw's policy ABI v1 (docs/POLICY_ABI.md):
// the pinned input buffer behind gw_alloc, the output buffer behind packed
// results, gw_init and gw_abi_version. The wasm exports themselves live in
// exports_wasip1.go; everything here is plain Go so it is tested natively.
//
// A module instance is single-threaded and the host makes one call at a time,
// so the package state below needs no locks.
package abi

import "unsafe"

// Version is the ABI major version gw_abi_version reports.
const Version = 1

// MaxInput bounds one gw_alloc request. The host's memory ceiling (64 MiB by
// default) is the real limit; this only turns absurd sizes into a clean 0.
const MaxInput = 1 << 30

var (
	// in is the input buffer gw_alloc hands out. Keeping it in a package
	// variable pins it: the GC never frees it while the host writes into it.
	in []byte
	// out holds the last output so it stays alive until the next call.
	out []byte
	// initFunc is the policy's config handler, set by kit.Init.
	initFunc func(config []byte) error
)

// Alloc returns the address of a buffer of at least size bytes, growing the
// one input buffer when needed; 0 when size is negative or absurd.
func Alloc(size int32) uintptr {
	if size < 0 || size > MaxInput {
		return 0
	}
	if in == nil || len(in) < int(size) {
		n := max(int(size), 2*len(in), 4096)
		in = make([]byte, n)
	}
	return uintptr(unsafe.Pointer(unsafe.SliceData(in)))
}

// Input returns the n bytes the host wrote at ptr, which must be the address
// the last Alloc returned (the host writes nowhere else).
func Input(ptr, n uint32) ([]byte, bool) {
	if n == 0 {
		return nil, true
	}
	if in == nil || uintptr(ptr) != uintptr(unsafe.Pointer(unsafe.SliceData(in))) || int(n) > len(in) {
		return nil, false
	}
	return in[:n], true
}

// Buf returns the output buffer emptied, for appending the next output.
func Buf() []byte { return out[:0] }

// Emit keeps b alive until the next call and returns it packed as
// (ptr << 32) | len; 0 when b is empty.
func Emit(b []byte) uint64 {
	if len(b) == 0 {
		return 0
	}
	out = b
	return pack(uintptr(unsafe.Pointer(unsafe.SliceData(b))), len(b))
}

// EmitString packs a string that lives forever (a constant).
func EmitString(s string) uint64 {
	return pack(uintptr(unsafe.Pointer(unsafe.StringData(s))), len(s))
}

func pack(ptr uintptr, n int) uint64 { return uint64(ptr)<<32 | uint64(uint32(n)) }

// SetInit registers the config handler; a second registration panics, as
// two handlers would silently replace each other.
func SetInit(f func(config []byte) error) {
	if initFunc != nil {
		panic("kit: Init called twice")
	}
	initFunc = f
}

// initOK is the answer to a successful gw_init.
const initOK = `{"ok":true}`

// Init runs gw_init on config: the registered handler, or, when the policy
// registered none, a check that the config is empty. It returns the output
// JSON: {"ok":true} or {"error":"why"}.
func Init(config []byte, dst []byte) []byte {
	err := runInit(config)
	if err == nil {
		return append(dst, initOK...)
	}
	dst = append(dst, `{"error":`...)
	dst = AppendString(dst, err.Error())
	return append(dst, '}')
}

func runInit(config []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = initError("policy panicked in init: " + PanicText(r))
		}
	}()
	if initFunc == nil {
		if !emptyConfig(config) {
			return initError("this policy takes no config")
		}
		return nil
	}
	return initFunc(config)
}

type initError string

func (e initError) Error() string { return string(e) }

// emptyConfig reports whether config is empty, null or {} (with whitespace).
func emptyConfig(config []byte) bool {
	s := trimSpace(config)
	switch {
	case len(s) == 0, string(s) == "null":
		return true
	case len(s) >= 2 && s[0] == '{' && s[len(s)-1] == '}':
		return len(trimSpace(s[1:len(s)-1])) == 0
	}
	return false
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// PanicText turns a recovered value into a message without fmt.
func PanicText(r any) string {
	switch v := r.(type) {
	case string:
		return v
	case error:
		return v.Error()
	}
	return "non-error panic value"
}
