// Package interrupt makes a WebAssembly module stoppable, and preemptible by
// the Go runtime, at the cost of a counter decrement per loop iteration and
// per function call.
//
// Natively compiled wasm never passes a Go safe point, so a guest in a tight
// loop can neither be stopped nor let the Go runtime stop the world for a
// garbage collection: the whole process would wait for the guest. wazero's
// remedy (WithCloseOnContextDone) leaves the compiled code for Go at every
// loop head, which makes loop-heavy guests (any Go guest) several times
// slower. Instrument instead adds a countdown global and an imported host
// function, the checkpoint, and inserts at the entry of every function and
// the head of every loop:
//
//	global.get $budget
//	i32.const 1
//	i32.sub
//	global.set $budget
//	global.get $budget
//	i32.eqz
//	if
//	  i32.const Interval
//	  global.set $budget
//	  call $checkpoint
//	end
//
// Every unbounded computation passes a loop head or a function entry (wasm
// has no other backward jump), so the guest calls the checkpoint at least
// once per Interval of them. The checkpoint runs in Go: the runtime can
// preempt the goroutine there, and the host stops the guest by panicking.
//
// One instruction can do much more than one tick's work: memory.fill,
// memory.copy and memory.init touch as many bytes as the guest asks
// (megabytes at a time), table.fill, table.copy, table.init and table.grow
// as many elements, memory.grow as many pages. Before each of them the
// rewrite charges the countdown for the count on top of the stack, one tick
// per KiB (BulkBytesPerTick; a table element counts 8 bytes, a page 64 KiB),
// and calls the checkpoint when the charge uses up the countdown:
//
//	global.set $scratch  global.get $scratch     ;; the count stays on the stack
//	global.get $scratch  i32.const 10  i32.shr_u ;; ticks (i32.shl 6 for pages)
//	global.set $scratch
//	global.get $scratch  global.get $budget  i32.ge_u
//	if
//	  i32.const Interval  global.set $budget  call $checkpoint
//	else
//	  global.get $budget  global.get $scratch  i32.sub  global.set $budget
//	end
//
// The comparison is unsigned and the subtraction only runs when the charge
// is smaller than the countdown, so no count, however large, can raise the
// countdown. A single bulk instruction still runs to its end: its length is
// bounded by the memory (or table) size.
//
// Adding an import shifts the index of every function the module defines, so
// Instrument renumbers calls, ref.func, exports, the start function, element
// segments and global initialisers, and drops the "name" custom section
// (debug names keyed by the old indices). It walks every instruction, so it
// accepts exactly the WebAssembly 2.0 instruction set that wazero's default
// configuration accepts and refuses anything else, and it refuses a module
// that imports from the checkpoint's module itself.
package interrupt

import (
	"errors"
	"fmt"
)

// Options name the checkpoint import and set its frequency.
type Options struct {
	// Module and Name are the import of the checkpoint, a host function
	// () -> () that the host must provide.
	Module, Name string
	// Interval is how many loop iterations and function entries pass
	// between two checkpoint calls; at least 1. Bulk memory and table
	// instructions count BulkBytesPerTick bytes a tick.
	Interval uint32
}

// BulkBytesPerTick is how many bytes of a bulk instruction cost one tick of
// the countdown: a 1 MiB memory.fill costs 1024 loop iterations' worth.
// Plain memset runs at several GB/s, so with an Interval of 1000 the guest
// still calls the checkpoint every few hundred microseconds at most.
const BulkBytesPerTick = 1 << bulkShift

// Shifts from an instruction's count to ticks.
const (
	bulkShift  = 10             // bytes: one tick per KiB
	tableShift = bulkShift - 3  // table elements: 8 bytes each
	pageShift  = 16 - bulkShift // memory pages: 64 KiB each (a left shift)
)

// scratchIdx is the scratch global's index relative to the budget's.
const scratchIdx = 1

// Opcodes of the charge's shifts.
const (
	opShrU = 0x76 // i32.shr_u
	opShl  = 0x74 // i32.shl
)

// Instrument returns a copy of wasm with the checkpoint import, the budget
// and scratch globals, and the checks and charges added. Sections other than those rewritten are
// copied unchanged. The output is deterministic, so a compilation cache
// keyed by module bytes keeps working.
func Instrument(wasm []byte, o Options) ([]byte, error) {
	if o.Interval == 0 {
		o.Interval = 1
	}
	if len(wasm) < 8 || string(wasm[:4]) != "\x00asm" || string(wasm[4:8]) != "\x01\x00\x00\x00" {
		return nil, errors.New("not a WebAssembly 1.0 binary module")
	}
	r := reader{b: wasm, pos: 8}
	type section struct {
		id   byte
		body []byte
	}
	var sections []section
	for r.pos < len(r.b) {
		id := r.byte()
		body := r.bytes(int(r.u32()))
		if r.err != nil {
			return nil, fmt.Errorf("section %d: %w", id, r.err)
		}
		sections = append(sections, section{id, body})
	}

	// First pass: the counts that fix the new indices.
	var m module
	for _, s := range sections {
		var err error
		switch s.id {
		case secType:
			m.types, err = count(s.body)
		case secImport:
			err = m.readImports(s.body, o.Module)
		case secGlobal:
			m.definedGlobals, err = count(s.body)
		}
		if err == nil {
			err = checkVectors(s.id, s.body)
		}
		if err != nil {
			return nil, fmt.Errorf("%s section: %w", sectionName(s.id), err)
		}
	}
	m.checkpoint = m.importedFuncs // appended after every imported function
	m.budget = m.importedGlobals + m.definedGlobals
	m.interval = o.Interval
	m.check = m.checkSequence()
	m.chargeBytes = m.chargeSequence(opShrU, bulkShift)
	m.chargeElems = m.chargeSequence(opShrU, tableShift)
	m.chargePages = m.chargeSequence(opShl, pageShift)

	out := make([]byte, 0, len(wasm)+len(wasm)/4+64)
	out = append(out, wasm[:8]...)
	emit := func(id byte, body []byte) {
		out = append(out, id)
		out = appendU32(out, uint32(len(body)))
		out = append(out, body...)
	}
	// Sections come in a fixed order (custom ones anywhere); a missing type,
	// import or global section is created where it belongs.
	added := map[byte]bool{}
	create := func(id byte) {
		switch id {
		case secType:
			emit(secType, m.appendType(nil, 0, nil))
		case secImport:
			emit(secImport, m.appendImport(nil, 0, nil, o))
		case secGlobal:
			emit(secGlobal, m.appendGlobal(nil, 0, nil))
		}
		added[id] = true
	}
	for _, s := range sections {
		if s.id != secCustom {
			for _, id := range []byte{secType, secImport, secGlobal} {
				if !added[id] && order(s.id) > order(id) {
					create(id)
				}
			}
		}
		var body []byte
		var err error
		switch s.id {
		case secCustom:
			if customName(s.body) == "name" {
				continue
			}
			body = s.body
		case secType:
			body, err = m.appendType(nil, m.types, rest(s.body)), nil
			added[secType] = true
		case secImport:
			body, err = m.appendImport(nil, m.imports, rest(s.body), o), nil
			added[secImport] = true
		case secGlobal:
			body, err = m.globals(s.body)
			added[secGlobal] = true
		case secExport:
			body, err = m.exports(s.body)
		case secStart:
			sr := reader{b: s.body}
			body = appendU32(nil, m.fn(sr.u32()))
			err = sr.end()
		case secTable:
			body, err = tables(s.body)
		case secElement:
			body, err = m.elements(s.body)
		case secCode:
			body, err = m.code(s.body)
		default:
			body = s.body
		}
		if err != nil {
			return nil, fmt.Errorf("%s section: %w", sectionName(s.id), err)
		}
		emit(s.id, body)
	}
	for _, id := range []byte{secType, secImport, secGlobal} {
		if !added[id] {
			create(id)
		}
	}
	return out, nil
}

// MaxLocals bounds the locals of one function, as V8 and Wasmtime do. wazero allocates a
// function's locals up front, so a 10-byte body declaring 2^32 of them would cost 4 GiB.
const MaxLocals = 50000

// checkVectors refuses a section whose element counts cannot be right: each element takes at
// least one byte, so a count larger than the section's bytes is a lie. wazero allocates vectors
// by their declared count before reading them, so such a module (22 bytes suffice) would make it
// allocate gigabytes and crash the process. The sections Instrument rewrites are read in full
// and fail on their own; this covers the others, in full for type and data (whose entries hold
// vectors of their own).
func checkVectors(id byte, body []byte) error {
	r := reader{b: body}
	switch id {
	case secCustom: // wazero allocates the name before checking it against the section
		r.bytes(int(r.u32()))
		return r.err
	case secType:
		n := r.vecLen()
		for i := uint32(0); i < n && r.err == nil; i++ {
			if form := r.byte(); r.err == nil && form != 0x60 {
				return fmt.Errorf("type %d: form 0x%02x is not a function type", i, form)
			}
			r.bytes(int(r.vecLen())) // params: one byte each in WebAssembly 2.0
			r.bytes(int(r.vecLen())) // results
		}
		return r.end()
	case secData:
		n := r.vecLen()
		for i := uint32(0); i < n && r.err == nil; i++ {
			switch flags := r.u32(); flags {
			case 0: // active, memory 0: offset, bytes
				skipConstExpr(&r)
			case 1: // passive: bytes
			case 2: // active: memory, offset, bytes
				r.u32()
				skipConstExpr(&r)
			default:
				if r.err == nil {
					return fmt.Errorf("segment %d: flags %d are not WebAssembly 2.0", i, flags)
				}
			}
			r.bytes(int(r.vecLen()))
		}
		return r.end()
	case secFunction, secMemory, secTag:
		r.vecLen()
		return r.err
	}
	return nil
}

// MaxTableElements bounds every table: its declared minimum must fit, and its maximum is set
// to at most this, so table.grow fails inside the guest beyond it. A table lives in Go memory
// (8 bytes an element), outside the linear-memory limit; wazero alone accepts 2^27 elements,
// 1 GiB per instance.
const MaxTableElements = 1 << 20

// tables rewrites a table section so that every table has a maximum within MaxTableElements.
func tables(body []byte) ([]byte, error) {
	r := reader{b: body}
	n := r.vecLen()
	dst := appendU32(nil, n)
	for i := uint32(0); i < n && r.err == nil; i++ {
		reftype := r.byte()
		flag := r.byte()
		min, max := r.u32(), uint32(MaxTableElements)
		switch flag {
		case 0x00:
		case 0x01:
			if declared := r.u32(); declared < max {
				max = declared
			}
		default:
			if r.err == nil {
				return nil, fmt.Errorf("table %d: limits flag 0x%02x is not WebAssembly 2.0", i, flag)
			}
		}
		if r.err == nil && min > MaxTableElements {
			return nil, fmt.Errorf("table %d: %d elements, more than the %d allowed", i, min, MaxTableElements)
		}
		// A declared maximum below the minimum stays: wazero refuses it.
		dst = append(dst, reftype, 0x01)
		dst = appendU32(dst, min)
		dst = appendU32(dst, max)
	}
	if err := r.end(); err != nil {
		return nil, err
	}
	return dst, nil
}

// skipConstExpr skips a constant expression (up to its end).
func skipConstExpr(r *reader) {
	var m module
	m.budget = ^uint32(0) // any global index may appear here
	_, _ = m.expr(nil, r, false)
}

// module holds the counts and new indices of one rewrite.
type module struct {
	types, imports                 uint32
	importedFuncs, importedGlobals uint32
	definedGlobals                 uint32
	checkpoint                     uint32 // function index of the added import
	budget                         uint32 // global index of the added global
	interval                       uint32
	check                          []byte // the inserted sequence; the same everywhere
	// The sequences inserted before bulk instructions counting bytes, table elements and pages.
	chargeBytes, chargeElems, chargePages []byte

	// Facts about the function body expr last read with checks.
	calls     bool // it has a call or call_indirect
	loopFirst bool // it enters a loop before any branch or call
	scratch   []byte
}

// fn renumbers a function index: defined functions move up by one.
func (m *module) fn(idx uint32) uint32 {
	if idx >= m.importedFuncs {
		return idx + 1
	}
	return idx
}

// Section ids.
const (
	secCustom    = 0
	secType      = 1
	secImport    = 2
	secFunction  = 3
	secTable     = 4
	secMemory    = 5
	secGlobal    = 6
	secExport    = 7
	secStart     = 8
	secElement   = 9
	secCode      = 10
	secData      = 11
	secDataCount = 12
	secTag       = 13
)

// order is a section's position in the binary format (tag sits between
// memory and global; data count between element and code).
func order(id byte) int {
	switch id {
	case secTag:
		return 55
	case secDataCount:
		return 95
	}
	return int(id) * 10
}

func sectionName(id byte) string {
	switch id {
	case secType:
		return "type"
	case secCustom:
		return "custom"
	case secImport:
		return "import"
	case secGlobal:
		return "global"
	case secExport:
		return "export"
	case secStart:
		return "start"
	case secElement:
		return "element"
	case secCode:
		return "code"
	case secTable:
		return "table"
	case secData:
		return "data"
	}
	return fmt.Sprintf("id %d", id)
}

// count reads the element count at the head of a section body.
func count(body []byte) (uint32, error) {
	r := reader{b: body}
	n := r.u32()
	return n, r.err
}

// rest returns a section body after its element count.
func rest(body []byte) []byte {
	r := reader{b: body}
	r.u32()
	return body[r.pos:]
}

// customName reads the name of a custom section.
func customName(body []byte) string {
	r := reader{b: body}
	return string(r.bytes(int(r.u32())))
}

// appendType writes a type section of n existing types (rest) and () -> ().
func (m *module) appendType(dst []byte, n uint32, rest []byte) []byte {
	dst = appendU32(dst, n+1)
	dst = append(dst, rest...)
	return append(dst, 0x60, 0x00, 0x00)
}

// appendImport writes an import section of n existing imports (rest) and
// the checkpoint, typed by the type appendType added.
func (m *module) appendImport(dst []byte, n uint32, rest []byte, o Options) []byte {
	dst = appendU32(dst, n+1)
	dst = append(dst, rest...)
	dst = appendName(dst, o.Module)
	dst = appendName(dst, o.Name)
	dst = append(dst, 0x00) // function
	return appendU32(dst, m.types)
}

func appendName(dst []byte, s string) []byte {
	dst = appendU32(dst, uint32(len(s)))
	return append(dst, s...)
}

// readImports counts the imports, imported functions and imported globals,
// and refuses imports from the checkpoint's module.
func (m *module) readImports(body []byte, reserved string) error {
	r := reader{b: body}
	m.imports = r.vecLen()
	for i := uint32(0); i < m.imports && r.err == nil; i++ {
		mod := string(r.bytes(int(r.u32())))
		r.bytes(int(r.u32())) // name
		if r.err == nil && mod == reserved {
			return fmt.Errorf("imports from %q, a module name the host reserves", mod)
		}
		switch kind := r.byte(); kind {
		case 0x00: // function: type index
			r.u32()
			m.importedFuncs++
		case 0x01: // table: reftype, limits
			r.byte()
			r.limits()
		case 0x02: // memory: limits
			r.limits()
		case 0x03: // global: valtype, mutability
			r.byte()
			r.byte()
			m.importedGlobals++
		default:
			if r.err == nil {
				r.err = fmt.Errorf("import kind 0x%02x is not WebAssembly 2.0", kind)
			}
		}
	}
	return r.end()
}

// appendGlobal writes a global section of n rewritten globals (rest), the
// budget (mutable i32 starting at the interval) and the scratch global of
// the bulk charges (mutable i32, 0).
func (m *module) appendGlobal(dst []byte, n uint32, rest []byte) []byte {
	dst = appendU32(dst, n+2)
	dst = append(dst, rest...)
	dst = append(dst, 0x7f, 0x01, 0x41)
	dst = appendS32(dst, int32(m.interval))
	dst = append(dst, 0x0b)
	return append(dst, 0x7f, 0x01, 0x41, 0x00, 0x0b)
}

// globals rewrites the initialisers of a global section (ref.func) and adds
// the budget.
func (m *module) globals(body []byte) ([]byte, error) {
	r := reader{b: body}
	n := r.u32()
	var defs []byte
	for i := uint32(0); i < n && r.err == nil; i++ {
		defs = append(defs, r.bytes(2)...) // valtype, mutability
		var err error
		if defs, err = m.expr(defs, &r, false); err != nil {
			return nil, fmt.Errorf("global %d: %w", i, err)
		}
	}
	if err := r.end(); err != nil {
		return nil, err
	}
	return m.appendGlobal(nil, n, defs), nil
}

// exports renumbers function exports.
func (m *module) exports(body []byte) ([]byte, error) {
	r := reader{b: body}
	n := r.u32()
	dst := appendU32(nil, n)
	for i := uint32(0); i < n && r.err == nil; i++ {
		dst = appendName(dst, string(r.bytes(int(r.u32()))))
		kind := r.byte()
		idx := r.u32()
		if kind == 0x00 {
			idx = m.fn(idx)
		}
		dst = append(dst, kind)
		dst = appendU32(dst, idx)
	}
	return dst, r.end()
}

// elements renumbers the functions of element segments, in all eight
// encodings of WebAssembly 2.0.
func (m *module) elements(body []byte) ([]byte, error) {
	r := reader{b: body}
	n := r.u32()
	dst := appendU32(nil, n)
	for i := uint32(0); i < n && r.err == nil; i++ {
		flags := r.u32()
		if flags > 7 {
			return nil, fmt.Errorf("segment %d: flags %d are not WebAssembly 2.0", i, flags)
		}
		dst = appendU32(dst, flags)
		if flags&3 == 2 { // explicit table index
			dst = appendU32(dst, r.u32())
		}
		var err error
		if flags&1 == 0 { // active: offset expression
			if dst, err = m.expr(dst, &r, false); err != nil {
				return nil, fmt.Errorf("segment %d: %w", i, err)
			}
		}
		if flags&3 != 0 { // elemkind or reftype
			dst = append(dst, r.byte())
		}
		items := r.u32()
		dst = appendU32(dst, items)
		for j := uint32(0); j < items && r.err == nil; j++ {
			if flags&4 == 0 {
				dst = appendU32(dst, m.fn(r.u32()))
			} else if dst, err = m.expr(dst, &r, false); err != nil {
				return nil, fmt.Errorf("segment %d: %w", i, err)
			}
		}
	}
	if err := r.end(); err != nil {
		return nil, err
	}
	return dst, nil
}

// code rewrites every function body of a code section.
func (m *module) code(body []byte) ([]byte, error) {
	r := reader{b: body}
	n := r.u32()
	dst := appendU32(make([]byte, 0, len(body)+len(body)/4), n)
	var fn []byte
	for i := uint32(0); i < n && r.err == nil; i++ {
		code := r.bytes(int(r.u32()))
		if r.err != nil {
			break
		}
		var err error
		if fn, err = m.body(fn[:0], code); err != nil {
			return nil, fmt.Errorf("function %d: %w", i, err)
		}
		dst = appendU32(dst, uint32(len(fn)))
		dst = append(dst, fn...)
	}
	if err := r.end(); err != nil {
		return nil, err
	}
	return dst, nil
}

// body rewrites one function body: locals, the entry check, then the
// instructions.
//
// The entry check is left out where it cannot matter: in a function that
// calls nothing (without loops it runs a bounded straight line, and
// recursion needs a call), and in one that reaches a loop head
// unconditionally before doing anything else (the head's check runs first
// thing; every Go function starts so).
func (m *module) body(dst, code []byte) ([]byte, error) {
	r := reader{b: code}
	groups := r.vecLen()
	var locals uint64
	for i := uint32(0); i < groups && r.err == nil; i++ {
		locals += uint64(r.u32())
		r.byte() // valtype
	}
	if r.err != nil {
		return nil, fmt.Errorf("locals: %w", r.err)
	}
	if locals > MaxLocals {
		return nil, fmt.Errorf("%d locals, more than the %d allowed", locals, MaxLocals)
	}
	dst = append(dst, code[:r.pos]...)
	m.calls, m.loopFirst = false, false
	var err error
	m.scratch, err = m.expr(m.scratch[:0], &r, true)
	if err == nil {
		err = r.end()
	}
	if m.calls && !m.loopFirst {
		dst = m.appendCheck(dst)
	}
	return append(dst, m.scratch...), err
}

// appendCheck appends the countdown and the checkpoint call.
func (m *module) appendCheck(dst []byte) []byte { return append(dst, m.check...) }

// checkSequence encodes the countdown and the checkpoint call for this module's indices.
func (m *module) checkSequence() []byte {
	g := appendU32(nil, m.budget)
	dst := []byte{0x23} // global.get
	dst = append(dst, g...)
	dst = append(dst, 0x41, 0x01, 0x6b, 0x24) // i32.const 1, i32.sub, global.set
	dst = append(dst, g...)
	dst = append(dst, 0x23)
	dst = append(dst, g...)
	dst = append(dst, 0x45, 0x04, 0x40, 0x41) // i32.eqz, if (empty), i32.const
	dst = appendS32(dst, int32(m.interval))
	dst = append(dst, 0x24)
	dst = append(dst, g...)
	dst = append(dst, 0x10) // call
	dst = appendU32(dst, m.checkpoint)
	return append(dst, 0x0b)
}

// chargeSequence encodes the charge inserted before a bulk instruction: the
// count on top of the stack, shifted by shift (op i32.shr_u or i32.shl), is
// taken from the budget, and the checkpoint called when it uses the budget up.
func (m *module) chargeSequence(op byte, shift uint32) []byte {
	b := appendU32(nil, m.budget)
	s := appendU32(nil, m.budget+scratchIdx)
	var dst []byte
	ins := func(op byte, imm []byte) { dst = append(append(dst, op), imm...) }
	ins(0x24, s) // global.set $scratch
	ins(0x23, s) // global.get $scratch: the count is back for the instruction
	ins(0x23, s)
	ins(0x41, appendS32(nil, int32(shift))) // i32.const shift
	ins(op, nil)
	ins(0x24, s) // $scratch = ticks
	ins(0x23, s)
	ins(0x23, b)
	ins(0x4f, nil)          // i32.ge_u: ticks >= budget
	ins(0x04, []byte{0x40}) // if
	ins(0x41, appendS32(nil, int32(m.interval)))
	ins(0x24, b)
	ins(0x10, appendU32(nil, m.checkpoint))
	ins(0x05, nil) // else: 0 <= ticks < budget
	ins(0x23, b)
	ins(0x23, s)
	ins(0x6b, nil) // i32.sub
	ins(0x24, b)
	ins(0x0b, nil)
	return dst
}

// charge returns the sequence to insert before the instruction op (whose
// opcode byte r has just read), or nil if it does no bulk work.
func (m *module) charge(op byte, r *reader) []byte {
	switch op {
	case 0x40: // memory.grow
		return m.chargePages
	case 0xfc:
		peek := *r
		switch peek.u32() {
		case 8, 10, 11: // memory.init, memory.copy, memory.fill
			return m.chargeBytes
		case 12, 14, 15, 17: // table.init, table.copy, table.grow, table.fill
			return m.chargeElems
		}
	}
	return nil
}

// expr copies one expression (up to the end that closes it) from r to dst,
// renumbering functions and, when checks is set, inserting a check after
// the block type of every loop and a charge before every bulk instruction.
func (m *module) expr(dst []byte, r *reader, checks bool) ([]byte, error) {
	copied := r.pos // r.b[copied:r.pos] is read but not yet written
	depth := 0
	prefix := checks // still in the straight line that opens the body
	for r.err == nil {
		at := r.pos
		op := r.byte()
		if r.err != nil {
			break
		}
		if prefix {
			m.loopFirst = op == 0x03
			prefix = !m.loopFirst && straight(op)
		}
		if op == 0x10 || op == 0x11 {
			m.calls = true
		}
		switch op {
		case 0x02, 0x03, 0x04: // block, loop, if
			depth++
		case 0x0b: // end
			if depth == 0 {
				return append(dst, r.b[copied:r.pos]...), nil
			}
			depth--
		case 0x10, 0xd2: // call, ref.func: renumber
			idx := r.u32()
			if r.err != nil {
				break
			}
			dst = append(dst, r.b[copied:at+1]...)
			dst = appendU32(dst, m.fn(idx))
			copied = r.pos
			continue
		}
		if checks {
			if seq := m.charge(op, r); seq != nil {
				dst = append(dst, r.b[copied:at]...)
				dst = append(dst, seq...)
				copied = at
			}
		}
		if err := m.skipImmediates(r, op); err != nil {
			return nil, fmt.Errorf("instruction 0x%02x at offset %d: %w", op, at, err)
		}
		if op == 0x03 && checks { // loop: the check opens its body
			dst = append(dst, r.b[copied:r.pos]...)
			dst = m.appendCheck(dst)
			copied = r.pos
		}
	}
	if r.err == nil {
		r.err = errShort
	}
	return nil, r.err
}

// straight reports whether op neither branches nor calls: block, and
// instructions on values, locals, globals and memory.
func straight(op byte) bool {
	return op == 0x01 || op == 0x02 || op == 0x1a || op == 0x1b ||
		(op >= 0x20 && op <= 0x24) || (op >= 0x28 && op <= 0xc4)
}

// skipImmediates reads the immediates of the instruction op, refusing
// opcodes outside WebAssembly 2.0 and the budget global (a guest could
// refill its own budget).
func (m *module) skipImmediates(r *reader, op byte) error {
	switch {
	case op == 0x00, op == 0x01, op == 0x05, op == 0x0b, op == 0x0f, op == 0x1a, op == 0x1b, op == 0xd1:
		// unreachable, nop, else, end, return, drop, select, ref.is_null
	case op >= 0x02 && op <= 0x04: // block, loop, if
		r.blockType()
	case op == 0x0c, op == 0x0d: // br, br_if
		r.u32()
	case op == 0x0e: // br_table
		n := r.u32()
		for i := uint32(0); i <= n && r.err == nil; i++ { // n labels and the default
			r.u32()
		}
	case op == 0x11: // call_indirect: type, table
		r.u32()
		r.u32()
	case op == 0x1c: // select with types
		n := r.u32()
		for i := uint32(0); i < n && r.err == nil; i++ {
			r.byte()
		}
	case op >= 0x20 && op <= 0x22: // local.get, local.set, local.tee
		r.u32()
	case op == 0x23, op == 0x24: // global.get, global.set: not the budget nor the scratch
		if idx := r.u32(); r.err == nil && idx >= m.budget {
			return fmt.Errorf("global %d does not exist", idx)
		}
	case op == 0x25, op == 0x26: // table.get, table.set
		r.u32()
	case op >= 0x28 && op <= 0x3e: // loads and stores
		r.memarg()
	case op == 0x3f, op == 0x40: // memory.size, memory.grow
		r.u32()
	case op == 0x41, op == 0x42: // i32.const, i64.const
		r.s64()
	case op == 0x43:
		r.bytes(4)
	case op == 0x44:
		r.bytes(8)
	case op >= 0x45 && op <= 0xc4: // numeric and sign extension: no immediates
	case op == 0xd0: // ref.null
		r.byte()
	case op == 0xfc:
		return skipMisc(r)
	case op == 0xfd:
		return skipVector(r)
	default:
		return errors.New("not a WebAssembly 2.0 instruction")
	}
	return r.err
}

// skipMisc reads a 0xFC-prefixed instruction: saturating truncation, bulk
// memory and table operations.
func skipMisc(r *reader) error {
	switch sub := r.u32(); {
	case r.err != nil:
	case sub <= 7: // trunc_sat
	case sub == 8, sub == 10, sub == 12, sub == 14: // memory.init, memory.copy, table.init, table.copy
		r.u32()
		r.u32()
	case sub == 9, sub == 11, sub == 13, sub == 15, sub == 16, sub == 17:
		r.u32() // data.drop, memory.fill, elem.drop, table.grow, table.size, table.fill
	default:
		return fmt.Errorf("0xfc %d is not a WebAssembly 2.0 instruction", sub)
	}
	return r.err
}

// skipVector reads a 0xFD-prefixed (SIMD) instruction.
func skipVector(r *reader) error {
	switch sub := r.u32(); {
	case r.err != nil:
	case sub <= 0x0b: // loads and store
		r.memarg()
	case sub == 0x0c, sub == 0x0d: // v128.const, i8x16.shuffle
		r.bytes(16)
	case sub >= 0x15 && sub <= 0x22: // extract_lane, replace_lane
		r.byte()
	case sub >= 0x54 && sub <= 0x5b: // load_lane, store_lane
		r.memarg()
		r.byte()
	case sub == 0x5c, sub == 0x5d: // load32_zero, load64_zero
		r.memarg()
	case sub <= 0xff: // arithmetic, comparisons, conversions: no immediates
	default:
		return fmt.Errorf("0xfd %d is not a WebAssembly 2.0 instruction", sub)
	}
	return r.err
}

// reader decodes the binary format; the first error sticks and later reads
// return zero values.
type reader struct {
	b   []byte
	pos int
	err error
}

var errShort = errors.New("unexpected end")

func (r *reader) byte() byte {
	if r.err != nil {
		return 0
	}
	if r.pos >= len(r.b) {
		r.err = errShort
		return 0
	}
	c := r.b[r.pos]
	r.pos++
	return c
}

func (r *reader) bytes(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b)-r.pos {
		r.err = errShort
		return nil
	}
	b := r.b[r.pos : r.pos+n]
	r.pos += n
	return b
}

// u32 reads an unsigned LEB128 of at most 5 bytes.
func (r *reader) u32() uint32 {
	var v uint32
	for i := 0; i < 5; i++ {
		c := r.byte()
		if r.err != nil {
			return 0
		}
		v |= uint32(c&0x7f) << (7 * i)
		if c&0x80 == 0 {
			if i == 4 && c > 0x0f {
				r.err = errors.New("u32 overflows")
			}
			return v
		}
	}
	r.err = errors.New("u32 is longer than 5 bytes")
	return 0
}

// vecLen reads a vector's element count and checks that enough bytes remain for that many
// elements of at least one byte each.
func (r *reader) vecLen() uint32 {
	n := r.u32()
	if r.err == nil && int64(n) > int64(len(r.b)-r.pos) {
		r.err = fmt.Errorf("a vector of %d elements in %d bytes", n, len(r.b)-r.pos)
		return 0
	}
	return n
}

// s64 skips a signed LEB128 of at most 10 bytes (s32 and s33 fit).
func (r *reader) s64() {
	for i := 0; i < 10; i++ {
		c := r.byte()
		if r.err != nil || c&0x80 == 0 {
			return
		}
	}
	r.err = errors.New("integer is longer than 10 bytes")
}

// blockType reads an empty type (0x40), a value type, or a type index (s33).
func (r *reader) blockType() {
	if r.err != nil {
		return
	}
	if r.pos < len(r.b) {
		switch r.b[r.pos] {
		case 0x40, 0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f:
			r.pos++
			return
		}
		if r.b[r.pos]&0xc0 == 0x40 { // another negative one-byte s33: a type of a later proposal
			r.err = fmt.Errorf("block type 0x%02x is not WebAssembly 2.0", r.b[r.pos])
			return
		}
	}
	r.s64()
}

// memarg reads alignment and offset.
func (r *reader) memarg() {
	r.u32()
	r.u32()
}

// limits reads table or memory limits: a flag, the minimum and an optional maximum.
func (r *reader) limits() {
	switch flag := r.byte(); flag {
	case 0x00:
		r.u32()
	case 0x01:
		r.u32()
		r.u32()
	default:
		if r.err == nil {
			r.err = fmt.Errorf("limits flag 0x%02x is not WebAssembly 2.0", flag)
		}
	}
}

// end reports the sticky error, or trailing bytes.
func (r *reader) end() error {
	if r.err == nil && r.pos != len(r.b) {
		r.err = errors.New("trailing bytes")
	}
	return r.err
}

// appendS32 appends v as signed LEB128.
func appendS32(dst []byte, v int32) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(dst, c)
		}
		dst = append(dst, c|0x80)
	}
}

// appendU32 appends v as unsigned LEB128.
func appendU32(dst []byte, v uint32) []byte {
	for v >= 0x80 {
		dst = append(dst, byte(v)|0x80)
		v >>= 7
	}
	return append(dst, byte(v))
}
