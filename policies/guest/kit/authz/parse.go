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
// All of in's strings share one allocation (they may be kept);
// in.Arguments, in.Annotations.Raw and in.Caller.Groups' backing array
// alias input or in itself and are valid while both are.
func Parse(input []byte, in *Input) error {
	*in = Input{}
	var p parser
	p.s.Reset(input)
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
			if p.first(fAnnotations, "annotations") && !s.Null() {
				p.annotations(input, &in.Annotations)
			}
		case "arguments":
			if p.first(fArguments, "arguments") {
				in.Arguments = s.Raw()
			}
		default:
			s.Skip()
		}
	}
	if err := s.End(); err != nil {
		return err
	}
	p.strings(in)
	return nil
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
	if !p.first(f, name) {
		return
	}
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
			if !p.first(fGroups, "caller.groups") || s.Null() {
				continue
			}
			if s.Peek() != kit.Array {
				s.Fail("caller.groups: expected an array")
				continue
			}
			arr := s.Array()
			for arr.Next() {
				if s.Peek() != kit.String {
					s.Fail("caller.groups: expected strings")
					break
				}
				b, plain := s.StrBytes()
				if p.ngroup < maxInlineGroups {
					p.spans[sGroup0+p.ngroup] = span{b, plain}
				} else {
					p.groups = append(p.groups, span{b, plain})
				}
				p.ngroup++
			}
		default:
			s.Skip()
		}
	}
}

func (p *parser) annotations(input []byte, a *Annotations) {
	s := &p.s
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

// strings decodes every string span into one buffer, turned into one
// string that all of in's strings are slices of.
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
	buf := make([]byte, 0, size)
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
	if p.ngroup == 0 {
		return
	}
	if p.ngroup <= maxInlineGroups {
		in.Caller.Groups = in.groups[:p.ngroup:p.ngroup]
	} else {
		in.Caller.Groups = make([]string, p.ngroup)
	}
	prev := ends[sName]
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
