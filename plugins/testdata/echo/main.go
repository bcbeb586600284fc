// Command echo is the Go policy module of the plugins tests: a realistic guest built with
// GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared (a reactor), implementing policy ABI v1
// (docs/POLICY_ABI.md). It avoids encoding/json and fmt to stay small (about 1.9 MB: no os either, stdout is written with syscall.Write),
// which keeps compilation under the race detector affordable.
//
// Config (gw_init): {"version":N} — N is echoed in every answer; {"fail":"reason"} makes gw_init
// refuse the load with that reason.
//
// gw_authorize and gw_collision answer {"allow":true,"version":N,"input":<input>}. A few inputs
// make it misbehave on purpose: "panic" panics (the Go runtime prints it and traps), "spin" loops
// forever, "print" writes 10,000 lines to stdout and to stderr, "grow" allocates until memory
// runs out.
package main

import (
	"bytes"
	"strconv"
	"syscall"
	"unsafe"
)

func main() {}

var (
	version int
	inBuf   []byte // the buffer gw_alloc hands out, reused
	outBuf  []byte // the last answer, valid until the next call
	hoard   [][]byte
	sink    int
)

//go:wasmexport gw_abi_version
func abiVersion() int32 { return 1 }

//go:wasmexport gw_alloc
func alloc(size uint32) uint32 {
	if uint32(cap(inBuf)) <= size {
		inBuf = make([]byte, size+1) // never zero-length: the pointer must be non-zero
	}
	inBuf = inBuf[:size]
	return uint32(uintptr(unsafe.Pointer(unsafe.SliceData(inBuf))))
}

func answer(b []byte) uint64 {
	outBuf = b
	return uint64(uintptr(unsafe.Pointer(unsafe.SliceData(outBuf))))<<32 | uint64(len(outBuf))
}

//go:wasmexport gw_init
func initPolicy(ptr, n uint32) uint64 {
	cfg := inBuf[:n]
	if i := bytes.Index(cfg, []byte(`"fail":"`)); i >= 0 {
		reason := cfg[i+8:]
		if j := bytes.IndexByte(reason, '"'); j >= 0 {
			reason = reason[:j]
		}
		return answer([]byte(`{"error":"` + string(reason) + `"}`))
	}
	if i := bytes.Index(cfg, []byte(`"version":`)); i >= 0 {
		digits := cfg[i+10:]
		j := 0
		for j < len(digits) && digits[j] >= '0' && digits[j] <= '9' {
			j++
		}
		v, err := strconv.Atoi(string(digits[:j]))
		if err != nil {
			return answer([]byte(`{"error":"version is not a number"}`))
		}
		version = v
	}
	return answer([]byte(`{"ok":true}`))
}

//go:wasmexport gw_authorize
func authorize(ptr, n uint32) uint64 { return decide(inBuf[:n]) }

//go:wasmexport gw_collision
func collision(ptr, n uint32) uint64 { return decide(inBuf[:n]) }

func decide(in []byte) uint64 {
	switch string(in) {
	case `"panic"`:
		panic("asked to panic")
	case `"spin"`:
		for i := 0; ; i++ {
			sink = i
		}
	case `"print"`:
		for i := range 10000 {
			line := "line " + strconv.Itoa(i) + "\n"
			syscall.Write(1, []byte(line))
			syscall.Write(2, []byte(line))
		}
	case `"grow"`:
		for {
			hoard = append(hoard, make([]byte, 1<<20))
		}
	}
	b := append(outBuf[:0], `{"allow":true,"version":`...)
	b = strconv.AppendInt(b, int64(version), 10)
	b = append(b, `,"input":`...)
	b = append(b, in...)
	b = append(b, '}')
	return answer(b)
}
