package plugins

import (
	"encoding/binary"
)

// A tiny WebAssembly binary writer for hand-made test modules: precise hostile cases without a
// toolchain. It emits the type, import, function, memory, export, code and data sections of the
// WebAssembly 1.0 binary format.

const (
	i32 byte = 0x7f
	i64 byte = 0x7e
)

type wasmFunc struct {
	typ    int
	locals []byte // one entry per local, each a value type
	body   []byte // instructions, without the final end
}

type wasmImport struct {
	module, name string
	typ          int
}

type wasmExport struct {
	name string
	kind byte // 0 function, 2 memory
	idx  uint32
}

type wasmData struct {
	offset uint32
	bytes  []byte
}

type wasmModule struct {
	types   [][2][]byte // params, results
	imports []wasmImport
	funcs   []wasmFunc
	mem     *[2]uint32 // min, max (max 0 = none)
	exports []wasmExport
	data    []wasmData
}

func (m *wasmModule) typeOf(params, results []byte) int {
	for i, t := range m.types {
		if string(t[0]) == string(params) && string(t[1]) == string(results) {
			return i
		}
	}
	m.types = append(m.types, [2][]byte{params, results})
	return len(m.types) - 1
}

// importFunc adds a function import; call it before any fn. It returns the function index.
func (m *wasmModule) importFunc(module, name string, params, results []byte) uint32 {
	if len(m.funcs) > 0 {
		panic("imports must come before functions")
	}
	m.imports = append(m.imports, wasmImport{module, name, m.typeOf(params, results)})
	return uint32(len(m.imports) - 1)
}

// fn adds a function and returns its index.
func (m *wasmModule) fn(params, results, locals []byte, body ...[]byte) uint32 {
	var b []byte
	for _, part := range body {
		b = append(b, part...)
	}
	m.funcs = append(m.funcs, wasmFunc{typ: m.typeOf(params, results), locals: locals, body: b})
	return uint32(len(m.imports) + len(m.funcs) - 1)
}

// export adds a function export.
func (m *wasmModule) export(name string, idx uint32) *wasmModule {
	m.exports = append(m.exports, wasmExport{name, 0, idx})
	return m
}

// memory declares the memory (max 0 = no maximum) and exports it as "memory".
func (m *wasmModule) memory(min, max uint32) *wasmModule {
	m.mem = &[2]uint32{min, max}
	m.exports = append(m.exports, wasmExport{"memory", 2, 0})
	return m
}

func (m *wasmModule) dataAt(offset uint32, b []byte) *wasmModule {
	m.data = append(m.data, wasmData{offset, b})
	return m
}

func (m *wasmModule) bytes() []byte {
	out := []byte("\x00asm\x01\x00\x00\x00")
	section := func(id byte, count int, body []byte) {
		if count == 0 {
			return
		}
		content := append(uleb(uint64(count)), body...)
		out = append(out, id)
		out = append(out, uleb(uint64(len(content)))...)
		out = append(out, content...)
	}
	var b []byte
	for _, t := range m.types {
		b = append(b, 0x60)
		b = append(b, vec(t[0])...)
		b = append(b, vec(t[1])...)
	}
	section(1, len(m.types), b)

	b = nil
	for _, im := range m.imports {
		b = append(b, name(im.module)...)
		b = append(b, name(im.name)...)
		b = append(b, 0x00)
		b = append(b, uleb(uint64(im.typ))...)
	}
	section(2, len(m.imports), b)

	b = nil
	for _, f := range m.funcs {
		b = append(b, uleb(uint64(f.typ))...)
	}
	section(3, len(m.funcs), b)

	if m.mem != nil {
		if m.mem[1] == 0 {
			b = append([]byte{0x00}, uleb(uint64(m.mem[0]))...)
		} else {
			b = append(append([]byte{0x01}, uleb(uint64(m.mem[0]))...), uleb(uint64(m.mem[1]))...)
		}
		section(5, 1, b)
	}

	b = nil
	for _, e := range m.exports {
		b = append(b, name(e.name)...)
		b = append(b, e.kind)
		b = append(b, uleb(uint64(e.idx))...)
	}
	section(7, len(m.exports), b)

	b = nil
	for _, f := range m.funcs {
		var body []byte
		body = append(body, uleb(uint64(len(f.locals)))...)
		for _, l := range f.locals {
			body = append(body, 0x01, l)
		}
		body = append(body, f.body...)
		body = append(body, 0x0b)
		b = append(b, uleb(uint64(len(body)))...)
		b = append(b, body...)
	}
	section(10, len(m.funcs), b)

	b = nil
	for _, d := range m.data {
		b = append(b, 0x00)
		b = append(b, i32c(int32(d.offset))...)
		b = append(b, 0x0b)
		b = append(b, vec(d.bytes)...)
	}
	section(11, len(m.data), b)
	return out
}

func uleb(v uint64) []byte { return binary.AppendUvarint(nil, v) }

func sleb(v int64) []byte {
	var b []byte
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func vec(b []byte) []byte      { return append(uleb(uint64(len(b))), b...) }
func name(s string) []byte     { return vec([]byte(s)) }
func i32c(v int32) []byte      { return append([]byte{0x41}, sleb(int64(v))...) }
func i64c(v int64) []byte      { return append([]byte{0x42}, sleb(v)...) }
func localGet(i uint32) []byte { return append([]byte{0x20}, uleb(uint64(i))...) }
func call(i uint32) []byte     { return append([]byte{0x10}, uleb(uint64(i))...) }

// Instructions without immediates (or with fixed ones).
var (
	opUnreachable = []byte{0x00}
	opLoop        = []byte{0x03, 0x40} // loop with empty block type
	opIf          = []byte{0x04, 0x40}
	opEnd         = []byte{0x0b}
	opBr0         = []byte{0x0c, 0x00}
	opDrop        = []byte{0x1a}
	opMemGrow     = []byte{0x40, 0x00}
	opI32Eq       = []byte{0x46}
	opI32Sub      = []byte{0x6b}
)

// packed is the i64 a decision export returns for output at ptr of length n.
func packed(ptr, n uint32) int64 { return int64(uint64(ptr)<<32 | uint64(n)) }

// Layout of the hand-made modules: input buffer at inputAt, canned output at outputAt.
const (
	inputAt      = 4096
	outputAt     = 1024
	initOutputAt = 2048
)

// guest describes a hand-made module by its ABI behaviour; abiModule builds it.
type guest struct {
	version   int32    // gw_abi_version's answer (1 if zero)
	output    string   // canned output of the decision export (at outputAt)
	decision  [][]byte // body of gw_authorize; default returns the canned output
	decParams []byte   // gw_authorize params; default (i32, i32)
	decResult []byte   // gw_authorize results; default (i64)
	alloc     [][]byte // body of gw_alloc; default returns inputAt
	init      [][]byte // body of gw_init, if any
	initOut   string   // if set, gw_init returns this (placed at initOutputAt)
	initFunc  [][]byte // body of _initialize, if any
	start     bool     // export _start too
	noAlloc   bool
	noVersion bool
	noMemory  bool
	memMin    uint32 // pages (1 if zero)
	memMax    uint32
	imports   [][2]string // extra function imports () -> ()
	collision bool        // export gw_collision (same body) too
	noDecide  bool        // export no decision function
}

func abiModule(g guest) []byte {
	m := &wasmModule{}
	for _, im := range g.imports {
		m.importFunc(im[0], im[1], nil, nil)
	}
	if !g.noMemory {
		min := g.memMin
		if min == 0 {
			min = 1
		}
		m.memory(min, g.memMax)
	}
	version := g.version
	if version == 0 {
		version = 1
	}
	if !g.noVersion {
		m.export("gw_abi_version", m.fn(nil, []byte{i32}, nil, i32c(version)))
	}
	if !g.noAlloc {
		body := g.alloc
		if body == nil {
			body = [][]byte{i32c(inputAt)}
		}
		m.export("gw_alloc", m.fn([]byte{i32}, []byte{i32}, nil, body...))
	}
	if g.initOut != "" {
		g.init = [][]byte{i64c(packed(initOutputAt, uint32(len(g.initOut))))}
		m.dataAt(initOutputAt, []byte(g.initOut))
	}
	if g.init != nil {
		m.export("gw_init", m.fn([]byte{i32, i32}, []byte{i64}, nil, g.init...))
	}
	if g.initFunc != nil {
		m.export("_initialize", m.fn(nil, nil, nil, g.initFunc...))
	}
	if g.start {
		m.export("_start", m.fn(nil, nil, nil))
	}
	if !g.noDecide {
		body := g.decision
		if body == nil {
			body = [][]byte{i64c(packed(outputAt, uint32(len(g.output))))}
		}
		params, results := g.decParams, g.decResult
		if params == nil {
			params = []byte{i32, i32}
		}
		if results == nil {
			results = []byte{i64}
		}
		idx := m.fn(params, results, nil, body...)
		m.export("gw_authorize", idx)
		if g.collision {
			m.export("gw_collision", idx)
		}
	}
	if g.output != "" && !g.noMemory {
		m.dataAt(outputAt, []byte(g.output))
	}
	return m.bytes()
}

// Bodies used by several tests.
var (
	// bodyLoop spins forever.
	bodyLoop = [][]byte{opLoop, opBr0, opEnd, opUnreachable}
	// bodyTrap executes unreachable.
	bodyTrap = [][]byte{opUnreachable}
	// bodyMemoryBomb grows memory one page at a time until memory.grow fails, then traps.
	bodyMemoryBomb = [][]byte{
		opLoop,
		i32c(1), opMemGrow, i32c(-1), opI32Eq,
		opIf, opUnreachable, opEnd,
		opBr0,
		opEnd,
		opUnreachable,
	}
	// bodyEcho returns its input in place: (ptr << 32) | len.
	bodyEcho = [][]byte{
		localGet(0), []byte{0xad}, i64c(32), []byte{0x86}, // i64.extend_i32_u, i64.shl
		localGet(1), []byte{0xad}, []byte{0x84}, // i64.extend_i32_u, i64.or
	}
)

func localSet(i uint32) []byte { return append([]byte{0x21}, uleb(uint64(i))...) }
func localTee(i uint32) []byte { return append([]byte{0x22}, uleb(uint64(i))...) }

var opBrIf0 = []byte{0x0d, 0x00}
