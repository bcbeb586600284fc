package authz

import (
	"unsafe"

	"github.com/gwmcp/gw/policies/guest/kit"
)

// Parse decodes an authorize input into in, lazily: it reads the members it
// knows and skips everything else, arguments included, without decoding.
// Keys match case-sensitively. Unknown members are ignored (gw may add
// optional ones within ABI v1); a known member given twice, or with the
// wrong JSON type, is an error (null counts as absent).
//
// in's strings are carved from a chunk that in keeps and only ever appends
// to, so they may be kept (a kept string keeps its chunk, at most 4 KiB,
// alive) and a reused Input parses without allocating.
// in.Arguments, in.Annotations.Raw and in.Caller.Groups' backing array
// alias input or in itself and are valid while both are.
func Parse(input []byte, in *Input) error { return parse(input, in, true) }

// parse is Parse, with the canonical fast path tried first when fast is set.
func parse(input []byte, in *Input, fast bool) error {
	arena := in.arena
	*in = Input{arena: arena}
	var p parser
	p.s.Reset(input)
	if !fast || !p.canonical(input, in) {
		// Not laid out as gw writes it: start again with the general walk.
		*in = Input{arena: arena}
		p = parser{}
		p.s.Reset(input)
		p.general(input, in)
	}
	if err := p.s.End(); err != nil {
		return err
	}
	p.strings(in)
	return nil
}

// canonical reads input laid out as gw writes it: members in the ABI's order,
// no whitespace, no escapes in keys, caller first. It reports false, having
// possibly read part of it, as soon as the layout differs; the general walk
// then decides, so a repeated member needs no tracking here: it breaks the
// layout. Wherever it reports true, the general walk reads the same.
// It exists for speed: matching "key": with one comparison instead of
// scanning it cuts a quarter of a Go-built guest's authorization.
func (p *parser) canonical(input []byte, in *Input) bool {
	s := &p.s
	if !s.Lit(`{"caller":{"id":`) {
		return false
	}
	p.strValue("caller.id", sID)
	if s.Lit(`,"groups":`) {
		p.groupsValue()
	}
	if !s.Lit(`},"server":`) {
		return false
	}
	p.strValue("server", sServer)
	if !s.Lit(`,"tool":`) {
		return false
	}
	p.strValue("tool", sTool)
	if !s.Lit(`,"name":`) {
		return false
	}
	p.strValue("name", sName)
	if s.Lit(`,"annotations":`) {
		p.annotations(input, &in.Annotations)
	}
	if s.Lit(`,"arguments":`) {
		in.Arguments = s.Raw()
	}
	if s.Lit(`,"pin":`) {
		p.strValue("pin", sPin)
	}
	return s.Lit("}") && s.Err() == nil
}

// general walks the members in any order and layout.
func (p *parser) general(input []byte, in *Input) {
	s := &p.s
	obj := s.Object()
	for obj.Next() {
		switch string(obj.Key()) {
		case "caller":
			if p.first(fCaller, "caller") && !s.Null() {
				p.caller()
			}
		case "server":
			p.str(fServer, "server", sServer)
		case "tool":
			p.str(fTool, "tool", sTool)
		case "name":
			p.str(fName, "name", sName)
		case "annotations":
			if p.first(fAnnotations, "annotations") {
				p.annotations(input, &in.Annotations)
			}
		case "arguments":
			if p.first(fArguments, "arguments") {
				in.Arguments = s.Raw()
			}
		case "pin":
			p.str(fPin, "pin", sPin)
		default:
			s.Skip()
		}
	}
}

// parser holds the state of one Parse: the members seen, and the string
// values found, kept as undecoded spans until the end, when they are
// decoded into one allocation.
type parser struct {
	s      kit.Scanner
	seen   fields
	spans  [sGroup0 + maxInlineGroups]span
	groups []span // groups past the inline ones
	ngroup int
}

type span struct {
	b     []byte
	plain bool
}

// Span slots.
const (
	sID = iota
	sServer
	sTool
	sName
	sPin
	sGroup0
)

// maxInlineGroups groups are kept without allocating; Input holds as many.
const maxInlineGroups = 4

// fields is a set of the members already read, to refuse duplicates.
type fields uint16

const (
	fCaller fields = 1 << iota
	fServer
	fTool
	fName
	fAnnotations
	fArguments
	fID
	fGroups
	fReadOnly
	fDestructive
	fIdempotent
	fOpenWorld
	fPin
)

// first records f and reports whether it was new; a repeat is an error.
func (p *parser) first(f fields, name string) bool {
	if p.seen&f != 0 {
		p.s.Fail("duplicate member " + name)
		return false
	}
	p.seen |= f
	return true
}

// str reads a string member into span slot i; null reads as "".
func (p *parser) str(f fields, name string, i int) {
	if p.first(f, name) {
		p.strValue(name, i)
	}
}

// strValue reads a string or null into span slot i.
func (p *parser) strValue(name string, i int) {
	switch p.s.Peek() {
	case kit.String:
		b, plain := p.s.StrBytes()
		p.spans[i] = span{b, plain}
	case kit.Null:
		p.s.Null()
	default:
		p.s.Fail(name + ": expected a string")
	}
}

func (p *parser) caller() {
	s := &p.s
	if s.Peek() != kit.Object {
		s.Fail("caller: expected an object")
		return
	}
	obj := s.Object()
	for obj.Next() {
		switch string(obj.Key()) {
		case "id":
			p.str(fID, "caller.id", sID)
		case "groups":
			if p.first(fGroups, "caller.groups") {
				p.groupsValue()
			}
		default:
			s.Skip()
		}
	}
}

// groupsValue reads caller.groups: an array of strings, or null.
func (p *parser) groupsValue() {
	s := &p.s
	if s.Null() {
		return
	}
	if s.Peek() != kit.Array {
		s.Fail("caller.groups: expected an array")
		return
	}
	arr := s.Array()
	for arr.Next() {
		if s.Peek() != kit.String {
			s.Fail("caller.groups: expected strings")
			return
		}
		b, plain := s.StrBytes()
		if p.ngroup < maxInlineGroups {
			p.spans[sGroup0+p.ngroup] = span{b, plain}
		} else {
			p.groups = append(p.groups, span{b, plain})
		}
		p.ngroup++
	}
}

// annotations reads the annotations object, or null.
func (p *parser) annotations(input []byte, a *Annotations) {
	s := &p.s
	if s.Null() {
		return
	}
	if s.Peek() != kit.Object {
		s.Fail("annotations: expected an object")
		return
	}
	start := s.Offset()
	obj := s.Object()
	for obj.Next() {
		switch string(obj.Key()) {
		case "readOnlyHint":
			a.ReadOnlyHint = p.hint(fReadOnly, "annotations.readOnlyHint")
		case "destructiveHint":
			a.DestructiveHint = p.hint(fDestructive, "annotations.destructiveHint")
		case "idempotentHint":
			a.IdempotentHint = p.hint(fIdempotent, "annotations.idempotentHint")
		case "openWorldHint":
			a.OpenWorldHint = p.hint(fOpenWorld, "annotations.openWorldHint")
		default:
			s.Skip()
		}
	}
	if s.Err() == nil {
		a.Raw = input[start:s.Offset()]
	}
}

// hint reads a boolean hint; null reads as Absent.
func (p *parser) hint(f fields, name string) Hint {
	if !p.first(f, name) {
		return Absent
	}
	switch p.s.Peek() {
	case kit.Bool:
		if p.s.Bool() {
			return True
		}
		return False
	case kit.Null:
		p.s.Null()
	default:
		p.s.Fail(name + ": expected a boolean")
	}
	return Absent
}

// strings decodes every string span into one buffer, carved from in's
// chunk, turned into one string that all of in's strings are slices of.
func (p *parser) strings(in *Input) {
	ninline := min(p.ngroup, maxInlineGroups)
	size := 0
	for _, sp := range p.spans[:sGroup0+ninline] {
		size += len(sp.b)
	}
	for _, sp := range p.groups {
		size += len(sp.b)
	}
	if size == 0 && p.ngroup == 0 {
		return
	}
	buf := in.carve(size)
	var ends [sGroup0 + maxInlineGroups]int
	for i, sp := range p.spans[:sGroup0+ninline] {
		buf = sp.append(buf)
		ends[i] = len(buf)
	}
	var more []int
	if len(p.groups) > 0 {
		more = make([]int, len(p.groups))
		for i, sp := range p.groups {
			buf = sp.append(buf)
			more[i] = len(buf)
		}
	}
	// buf is never written again, so the string may share its memory.
	all := unsafe.String(unsafe.SliceData(buf), len(buf))
	in.Caller.ID = all[:ends[sID]]
	in.Server = all[ends[sID]:ends[sServer]]
	in.Tool = all[ends[sServer]:ends[sTool]]
	in.Name = all[ends[sTool]:ends[sName]]
	in.Pin = all[ends[sName]:ends[sPin]]
	if p.ngroup == 0 {
		return
	}
	if p.ngroup <= maxInlineGroups {
		in.Caller.Groups = in.groups[:p.ngroup:p.ngroup]
	} else {
		in.Caller.Groups = make([]string, p.ngroup)
	}
	prev := ends[sPin]
	for i := range p.ngroup {
		end := 0
		if i < maxInlineGroups {
			end = ends[sGroup0+i]
		} else {
			end = more[i-maxInlineGroups]
		}
		in.Caller.Groups[i] = all[prev:end]
		prev = end
	}
}

func (sp span) append(dst []byte) []byte {
	if sp.plain {
		return append(dst, sp.b...)
	}
	return kit.Unquote(dst, sp.b)
}

// Chunks for Input.carve: the first is small (an Input used once parses
// one input), later ones grow to maxChunk; a string set longer than
// maxChunk/4 gets its own allocation.
const (
	minChunk = 256
	maxChunk = 4096
)

// carve returns an empty slice with room for size bytes, from in's chunk
// when it has room. A chunk is only ever appended to, never rewritten, so
// the strings carved from it earlier stay as they were for as long as a
// policy keeps them, and a reused Input allocates once per chunk instead of
// once per call: in a Go-built guest that allocation was an eighth of a
// call.
func (in *Input) carve(size int) []byte {
	if size > maxChunk/4 {
		return make([]byte, 0, size)
	}
	if cap(in.arena)-len(in.arena) < size {
		in.arena = make([]byte, 0, max(min(max(2*cap(in.arena), minChunk), maxChunk), size))
	}
	start := len(in.arena)
	in.arena = in.arena[:start+size]
	return in.arena[start : start : start+size]
}
