// Package policy connects the gateway to WebAssembly policy modules: it
// loads, checks, dry-runs and hot-swaps them (Loader, Set) on the wazero
// host of package plugins, and adapts them to the gateway's Resolver and
// Authorizer (ABI v1, docs/POLICY_ABI.md). The gateway itself knows only
// those two interfaces.
package policy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/gwmcp/gw/gateway"
	"github.com/gwmcp/gw/plugins"
)

// Module runs one export of a loaded policy module with bytes in and
// out (docs/POLICY_ABI.md). *plugins.Slot satisfies it; the gateway knows
// nothing else of WebAssembly.
type Module interface {
	Call(ctx context.Context, export string, input []byte) ([]byte, error)
}

// Policy ABI v1 exports.
const (
	ExportAuthorize = plugins.ExportAuthorize
	ExportCollision = plugins.ExportCollision
)

// Resolver is a gateway.Resolver served by a collision policy module. It runs
// when the catalog changes, never on the call path; a failing module makes
// the rebuild fail, and the gateway keeps its last good catalog.
type Resolver struct {
	Module Module
	// Timeout bounds a resolution on top of the module's own call limit;
	// 0 leaves it to the module.
	Timeout time.Duration
}

// collisionInput is the ABI v1 JSON input of gw_collision; its output is
// read by ParseCollisionOutput.
type collisionInput struct {
	Kind    gateway.Kind      `json:"kind"`
	Servers []collisionServer `json:"servers"`
}

type collisionServer struct {
	Server string          `json:"server"`
	Items  []collisionItem `json:"items"`
}

type collisionItem struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Annotations json.RawMessage `json:"annotations,omitempty"`
	// Pin is a tool's pin state: "new", "pinned" or "changed"; absent with
	// pinning off and for prompts.
	Pin gateway.PinState `json:"pin,omitempty"`
}

// CollisionInput encodes the ABI input for servers' items.
func CollisionInput(kind gateway.Kind, servers []gateway.ServerItems) ([]byte, error) {
	in := collisionInput{Kind: kind, Servers: make([]collisionServer, 0, len(servers))}
	for _, s := range servers {
		cs := collisionServer{Server: s.Server, Items: make([]collisionItem, 0, len(s.Items))}
		for _, it := range s.Items {
			cs.Items = append(cs.Items, collisionItem{Name: it.Key, Description: it.Description, Annotations: it.Annotations, Pin: it.Pin})
		}
		in.Servers = append(in.Servers, cs)
	}
	return json.Marshal(in)
}

// ParseCollisionOutput decodes a module's answer strictly, by exact keys.
func ParseCollisionOutput(out []byte) (gateway.Resolution, error) {
	bad := func(err error) (gateway.Resolution, error) {
		return gateway.Resolution{}, fmt.Errorf("collision policy answered invalid JSON: %w", err)
	}
	top, err := members(out)
	if err != nil {
		return bad(err)
	}
	names, err := objects(top["names"])
	if err != nil {
		return bad(fmt.Errorf("names: %w", err))
	}
	if names == nil {
		return gateway.Resolution{}, errors.New(`collision policy answer has no "names"`)
	}
	rejected, err := objects(top["rejected"])
	if err != nil {
		return bad(fmt.Errorf("rejected: %w", err))
	}
	res := gateway.Resolution{Names: make(map[gateway.ItemKey]string, len(names))}
	for _, n := range names {
		var key gateway.ItemKey
		var exposed string
		if err := stringMembers(n, map[string]*string{"server": &key.Server, "name": &key.Name, "exposed": &exposed}); err != nil {
			return bad(fmt.Errorf("names: %w", err))
		}
		if _, dup := res.Names[key]; dup {
			return gateway.Resolution{}, fmt.Errorf("collision policy named %s/%s twice", key.Server, key.Name)
		}
		res.Names[key] = exposed
		if raw, ok := n["allowChanged"]; ok && string(raw) != "null" {
			var allow bool
			if err := json.Unmarshal(raw, &allow); err != nil {
				return bad(fmt.Errorf("names: allowChanged: %w", err))
			}
			if allow {
				if res.AllowChanged == nil {
					res.AllowChanged = map[gateway.ItemKey]bool{}
				}
				res.AllowChanged[key] = true
			}
		}
	}
	for _, r := range rejected {
		var rej gateway.Rejection
		if err := stringMembers(r, map[string]*string{"server": &rej.Server, "name": &rej.Name, "reason": &rej.Reason}); err != nil {
			return bad(fmt.Errorf("rejected: %w", err))
		}
		res.Rejected = append(res.Rejected, rej)
	}
	return res, nil
}

// Resolve implements gateway.Resolver.
func (r Resolver) Resolve(kind gateway.Kind, servers []gateway.ServerItems) (gateway.Resolution, error) {
	in, err := CollisionInput(kind, servers)
	if err != nil {
		return gateway.Resolution{}, err
	}
	ctx := context.Background()
	if r.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.Timeout)
		defer cancel()
	}
	out, err := r.Module.Call(ctx, ExportCollision, in)
	if err != nil {
		return gateway.Resolution{}, err
	}
	return ParseCollisionOutput(out)
}

// Authorizer is a gateway.Authorizer served by an authorization policy
// module. It is on every call's path, so its input is written without
// reflection.
type Authorizer struct {
	Module Module
	// Timeout bounds a decision on top of the module's own call limit;
	// 0 leaves it to the module (saves a timer on the hot path).
	Timeout time.Duration
}

var authzBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// AuthorizeInput encodes the ABI input of gw_authorize into buf.
func AuthorizeInput(buf *bytes.Buffer, req gateway.AuthzRequest) {
	buf.WriteString(`{"caller":{"id":`)
	appendJSONString(buf, req.Caller.ID)
	if len(req.Caller.Groups) > 0 {
		buf.WriteString(`,"groups":[`)
		for i, g := range req.Caller.Groups {
			if i > 0 {
				buf.WriteByte(',')
			}
			appendJSONString(buf, g)
		}
		buf.WriteByte(']')
	}
	buf.WriteString(`},"server":`)
	appendJSONString(buf, req.Server)
	buf.WriteString(`,"tool":`)
	appendJSONString(buf, req.Tool)
	buf.WriteString(`,"name":`)
	appendJSONString(buf, req.Name)
	if len(req.Annotations) > 0 {
		buf.WriteString(`,"annotations":`)
		buf.Write(req.Annotations)
	}
	if len(req.Arguments) > 0 {
		buf.WriteString(`,"arguments":`)
		buf.Write(req.Arguments)
	}
	// A pinned tool, the common case, says nothing: the input keeps the
	// layout the kit reads fastest (docs/POLICY_ABI.md).
	if req.Pin != "" && req.Pin != gateway.PinPinned {
		buf.WriteString(`,"pin":`)
		appendJSONString(buf, string(req.Pin))
	}
	buf.WriteByte('}')
}

// appendJSONString writes s as a JSON string: printable ASCII that needs no
// escape as it is (names and ids almost always are), anything else through
// encoding/json.
func appendJSONString(buf *bytes.Buffer, s string) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '\\' || c == '"' || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(s)
			buf.Write(b)
			return
		}
	}
	buf.WriteByte('"')
	buf.WriteString(s)
	buf.WriteByte('"')
}

// ParseDecision decodes an authorization answer by exact keys; anything but
// a clear {"allow": true} is a denial.
func ParseDecision(out []byte) (gateway.Decision, error) {
	if bytes.Equal(out, []byte(`{"allow":true}`)) {
		return gateway.Decision{Allow: true}, nil
	}
	bad := func(err error) (gateway.Decision, error) {
		return gateway.Decision{}, fmt.Errorf("authorization policy answered invalid JSON: %w", err)
	}
	m, err := members(out)
	if err != nil {
		return bad(err)
	}
	raw, ok := m["allow"]
	if !ok || string(raw) == "null" {
		return gateway.Decision{}, errors.New(`authorization policy answer has no "allow"`)
	}
	var d gateway.Decision
	if err := json.Unmarshal(raw, &d.Allow); err != nil {
		return bad(fmt.Errorf("allow: %w", err))
	}
	if err := stringMembers(m, map[string]*string{"reason": &d.Reason}); err != nil {
		return bad(err)
	}
	return d, nil
}

// members splits a JSON object into its members, by exact key: a policy's
// answer is untrusted, and "Allow" is not "allow". Empty input and null
// have no members; anything else that is not an object is an error.
func members(raw []byte) (map[string]json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if !json.Valid(raw) {
		return nil, errors.New("not JSON")
	}
	if raw[0] != '{' {
		return nil, errors.New("not a JSON object")
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	return m, nil
}

// objects decodes an array of objects into their members; absent or null
// is nil.
func objects(raw json.RawMessage) ([]map[string]json.RawMessage, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, errors.New("not an array")
	}
	out := make([]map[string]json.RawMessage, 0, len(items))
	for _, it := range items {
		m, err := members(it)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// stringMembers sets each target from the string member of m with its exact key;
// an absent or null member leaves it "", any other non-string is an error.
func stringMembers(m map[string]json.RawMessage, targets map[string]*string) error {
	for key, dst := range targets {
		raw, ok := m[key]
		if !ok || string(raw) == "null" {
			continue
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
	}
	return nil
}

// Authorize implements gateway.Authorizer.
func (a Authorizer) Authorize(ctx context.Context, req gateway.AuthzRequest) (gateway.Decision, error) {
	buf := authzBufs.Get().(*bytes.Buffer)
	buf.Reset()
	defer authzBufs.Put(buf)
	AuthorizeInput(buf, req)
	if a.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, a.Timeout)
		defer cancel()
	}
	var out []byte
	var digest string
	var err error
	if dm, ok := a.Module.(digestModule); ok {
		out, digest, err = dm.CallDigest(ctx, ExportAuthorize, buf.Bytes())
	} else {
		out, err = a.Module.Call(ctx, ExportAuthorize, buf.Bytes())
	}
	if err != nil {
		return gateway.Decision{Policy: digest}, err
	}
	d, err := ParseDecision(out)
	d.Policy = digest
	return d, err
}

// digestModule is a Module that names the module each call ran on (a plugins.Slot), for the
// decision's Policy.
type digestModule interface {
	CallDigest(ctx context.Context, export string, input []byte) ([]byte, string, error)
}
