package router

import (
	"encoding/json"
	"fmt"
	"path"
	"slices"

	"github.com/gwmcp/gw/gateway"
	"github.com/gwmcp/gw/transport/jsonrpc"
)

// View is a named subset of the namespace, so one gateway can give each
// client a short list. An item is in the view when its server is one of
// Servers or its exposed name matches an Include pattern (with neither,
// every item is), and it matches no Exclude pattern. Patterns are
// path.Match globs over exposed names ("fs__*"); resources and templates,
// whose names are URIs, follow their server only.
type View struct {
	Name             string
	Servers          []string
	Include, Exclude []string
}

// has reports whether e is in the view; a nil view holds everything. named
// says e is a tool or prompt, whose exposed name patterns apply to.
func (v *View) has(e *gateway.Entry, named bool) bool {
	if v == nil {
		return true
	}
	in := len(v.Servers) == 0 && len(v.Include) == 0 ||
		slices.Contains(v.Servers, e.Server) ||
		named && matchAny(v.Include, e.Name)
	return in && !(named && matchAny(v.Exclude, e.Name))
}

func matchAny(patterns []string, name string) bool {
	for _, p := range patterns {
		if ok, _ := path.Match(p, name); ok {
			return true
		}
	}
	return false
}

// filter keeps the entries in the view.
func (v *View) filter(entries []gateway.Entry, named bool) []gateway.Entry {
	if v == nil {
		return entries
	}
	out := make([]gateway.Entry, 0, len(entries))
	for i := range entries {
		if v.has(&entries[i], named) {
			out = append(out, entries[i])
		}
	}
	return out
}

// checkNamed refuses a call to a tool or prompt outside the view as the
// gateway refuses an unknown one.
func (v *View) checkNamed(params json.RawMessage, kind string, lookup func(string) (*gateway.Entry, bool)) error {
	if v == nil {
		return nil
	}
	name, _ := jsonrpc.StringMember(params, "name")
	if e, ok := lookup(name); ok && v.has(e, true) {
		return nil
	}
	sentinel := gateway.ErrUnknownTool
	if kind == "prompt" {
		sentinel = gateway.ErrUnknownPrompt
	}
	return &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: fmt.Sprintf("%v: %q", sentinel, name)}
}

// checkRef refuses a completion whose ref is outside the view.
func (v *View) checkRef(params json.RawMessage, c *gateway.Catalog) error {
	var p map[string]json.RawMessage
	_ = json.Unmarshal(params, &p)
	typ, _ := jsonrpc.StringMember(p["ref"], "type")
	if typ == "ref/prompt" {
		return v.checkNamed(p["ref"], "prompt", c.Prompt)
	}
	uri, _ := jsonrpc.StringMember(p["ref"], "uri")
	if e, ok := c.ResourceOwner(uri); ok && v.has(e, false) {
		return nil
	}
	return &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: fmt.Sprintf("%v: %q", gateway.ErrUnknownResource, uri)}
}
