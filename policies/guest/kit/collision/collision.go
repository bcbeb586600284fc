// Package collision makes a policy module a collision resolver: importing
// it adds the gw_collision export, and Handle registers the function gw
// calls when servers' tool or prompt lists are merged, to choose each item's
// exposed name or leave it out.
//
// gw calls it when a catalog changes, never on the call path. The input is
// still read with kit's scanner, which keeps encoding/json (and its weight in
// the module) out of the kit.
package collision

import (
	"errors"

	"github.com/gwmcp/gw/policies/guest/kit"
	"github.com/gwmcp/gw/policies/guest/kit/internal/abi"
)

// Input is the lists to merge.
type Input struct {
	Kind    string   // "tools" or "prompts"
	Servers []Server // in configuration order
}

// Server is one server's items, in the server's order.
type Server struct {
	Server string
	Items  []Item
}

// Item is one tool or prompt. The byte slices alias gw's input buffer and
// are valid only until the handler returns.
type Item struct {
	Name        string
	Description string
	Annotations []byte // raw JSON, nil when absent
	Raw         []byte // the whole item object as gw sent it
}

// Resolution is a handler's answer: every item should be either exposed
// under a name or rejected with a reason. gw refuses an answer whose exposed
// names are not unique or break the MCP rule ^[A-Za-z0-9_.-]{1,128}$, and
// keeps its last good catalog.
type Resolution struct {
	Names    []Name
	Rejected []Rejection
}

// Name is an item kept in the catalog under Exposed.
type Name struct{ Server, Name, Exposed string }

// Rejection is an item left out, with the reason gw logs and reports.
type Rejection struct{ Server, Name, Reason string }

// Expose adds an item to the catalog under exposed.
func (r *Resolution) Expose(server, name, exposed string) {
	r.Names = append(r.Names, Name{server, name, exposed})
}

// Reject leaves an item out with reason.
func (r *Resolution) Reject(server, name, reason string) {
	r.Rejected = append(r.Rejected, Rejection{server, name, reason})
}

var handler func(*Input) Resolution

// Handle registers the policy's resolver; call it once, from an init
// function. A second registration panics.
func Handle(f func(*Input) Resolution) {
	if handler != nil {
		panic("collision: Handle called twice")
	}
	handler = f
}

// ErrNoHandler is Eval's error when the module registered no resolver.
var ErrNoHandler = errors.New("collision: policy registered no collision handler")

// Eval runs the registered handler on one input exactly as gw_collision
// does and returns the output JSON; tests call it natively. On an error
// gw_collision returns no output (gw keeps its last good catalog) and
// writes the error to stderr, which gw logs.
func Eval(input []byte) ([]byte, error) { return eval(input, nil) }

func eval(input, dst []byte) (out []byte, err error) {
	if handler == nil {
		return nil, ErrNoHandler
	}
	var in Input
	if err := Parse(input, &in); err != nil {
		return nil, errors.New("collision: policy input: " + err.Error())
	}
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, errors.New("collision: policy panicked: "+abi.PanicText(r))
		}
	}()
	res := handler(&in)
	return AppendResolution(dst, &res), nil
}

// AppendResolution appends r as the output JSON gw expects:
// {"names":[{"server":…,"name":…,"exposed":…}],"rejected":[{"server":…,"name":…,"reason":…}]}.
func AppendResolution(dst []byte, r *Resolution) []byte {
	dst = append(dst, `{"names":[`...)
	for i, n := range r.Names {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendItem(dst, n.Server, n.Name, `,"exposed":`, n.Exposed)
	}
	dst = append(dst, `],"rejected":[`...)
	for i, n := range r.Rejected {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendItem(dst, n.Server, n.Name, `,"reason":`, n.Reason)
	}
	return append(dst, "]}"...)
}

// appendItem appends {"server":…,"name":…,"<key>":…}; member is the third
// member's separator, key and colon.
func appendItem(dst []byte, server, name, member, value string) []byte {
	dst = append(dst, `{"server":`...)
	dst = kit.AppendString(dst, server)
	dst = append(dst, `,"name":`...)
	dst = kit.AppendString(dst, name)
	dst = append(dst, member...)
	dst = kit.AppendString(dst, value)
	return append(dst, '}')
}

// Parse decodes a collision input into in. Keys match case-sensitively;
// unknown members are ignored; a known member given twice or with the wrong
// JSON type, or an item without a name, is an error. Item byte slices alias
// input.
func Parse(input []byte, in *Input) error {
	*in = Input{}
	var s kit.Scanner
	s.Reset(input)
	var seenKind, seenServers bool
	obj := s.Object()
	for obj.Next() {
		switch string(obj.Key()) {
		case "kind":
			in.Kind = str(&s, &seenKind, "kind")
		case "servers":
			if !once(&s, &seenServers, "servers") || s.Null() {
				continue
			}
			if s.Peek() != kit.Array {
				s.Fail("servers: expected an array")
				continue
			}
			arr := s.Array()
			for arr.Next() {
				in.Servers = append(in.Servers, Server{})
				parseServer(&s, input, &in.Servers[len(in.Servers)-1])
			}
		default:
			s.Skip()
		}
	}
	return s.End()
}

func parseServer(s *kit.Scanner, input []byte, srv *Server) {
	if s.Peek() != kit.Object {
		s.Fail("servers: expected objects")
		return
	}
	var seenServer, seenItems bool
	obj := s.Object()
	for obj.Next() {
		switch string(obj.Key()) {
		case "server":
			srv.Server = str(s, &seenServer, "server")
		case "items":
			if !once(s, &seenItems, "items") || s.Null() {
				continue
			}
			if s.Peek() != kit.Array {
				s.Fail("items: expected an array")
				continue
			}
			arr := s.Array()
			for arr.Next() {
				srv.Items = append(srv.Items, Item{})
				parseItem(s, input, &srv.Items[len(srv.Items)-1])
			}
		default:
			s.Skip()
		}
	}
}

func parseItem(s *kit.Scanner, input []byte, it *Item) {
	if s.Peek() != kit.Object {
		s.Fail("items: expected objects")
		return
	}
	start := s.Offset()
	var seenName, seenDesc, seenAnn bool
	obj := s.Object()
	for obj.Next() {
		switch string(obj.Key()) {
		case "name":
			it.Name = str(s, &seenName, "name")
		case "description":
			it.Description = str(s, &seenDesc, "description")
		case "annotations":
			if once(s, &seenAnn, "annotations") && !s.Null() {
				it.Annotations = s.Raw()
			}
		default:
			s.Skip()
		}
	}
	if s.Err() != nil {
		return
	}
	if !seenName {
		s.Fail("item without a name")
		return
	}
	it.Raw = input[start:s.Offset()]
}

func once(s *kit.Scanner, seen *bool, name string) bool {
	if *seen {
		s.Fail("duplicate member " + name)
		return false
	}
	*seen = true
	return true
}

func str(s *kit.Scanner, seen *bool, name string) string {
	if !once(s, seen, name) || s.Null() {
		return ""
	}
	if s.Peek() != kit.String {
		s.Fail(name + ": expected a string")
		return ""
	}
	return s.Str()
}
