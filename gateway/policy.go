package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"
)

// PolicyModule runs one export of a loaded policy module with bytes in and
// out (docs/POLICY_ABI.md). *plugins.Slot satisfies it; the gateway knows
// nothing else of WebAssembly.
type PolicyModule interface {
	Call(ctx context.Context, export string, input []byte) ([]byte, error)
}

// Policy ABI v1 exports.
const (
	ExportAuthorize = "gw_authorize"
	ExportCollision = "gw_collision"
)

// WasmResolver is a Resolver served by a collision policy module. It runs
// when the catalog changes, never on the call path; a failing module makes
// the rebuild fail, and the gateway keeps its last good catalog.
type WasmResolver struct {
	Module PolicyModule
	// Timeout bounds a resolution on top of the module's own call limit;
	// 0 leaves it to the module.
	Timeout time.Duration
}

// collisionInput and collisionOutput are the ABI v1 JSON of gw_collision.
type collisionInput struct {
	Kind    Kind              `json:"kind"`
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
}

type collisionOutput struct {
	Names []struct {
		Server  string `json:"server"`
		Name    string `json:"name"`
		Exposed string `json:"exposed"`
	} `json:"names"`
	Rejected []struct {
		Server string `json:"server"`
		Name   string `json:"name"`
		Reason string `json:"reason"`
	} `json:"rejected"`
}

// CollisionInput encodes the ABI input for servers' items.
func CollisionInput(kind Kind, servers []ServerItems) ([]byte, error) {
	in := collisionInput{Kind: kind, Servers: make([]collisionServer, 0, len(servers))}
	for _, s := range servers {
		cs := collisionServer{Server: s.Server, Items: make([]collisionItem, 0, len(s.Items))}
		for _, it := range s.Items {
			cs.Items = append(cs.Items, collisionItem{Name: it.Key, Description: it.Description, Annotations: it.Annotations})
		}
		in.Servers = append(in.Servers, cs)
	}
	return json.Marshal(in)
}

// ParseCollisionOutput decodes a module's answer strictly.
func ParseCollisionOutput(out []byte) (Resolution, error) {
	var co collisionOutput
	if err := decodeStrictFields(out, &co); err != nil {
		return Resolution{}, fmt.Errorf("collision policy answered invalid JSON: %w", err)
	}
	if co.Names == nil {
		return Resolution{}, errors.New(`collision policy answer has no "names"`)
	}
	res := Resolution{Names: make(map[ItemKey]string, len(co.Names))}
	for _, n := range co.Names {
		key := ItemKey{n.Server, n.Name}
		if _, dup := res.Names[key]; dup {
			return Resolution{}, fmt.Errorf("collision policy named %s/%s twice", n.Server, n.Name)
		}
		res.Names[key] = n.Exposed
	}
	for _, r := range co.Rejected {
		res.Rejected = append(res.Rejected, Rejection{Server: r.Server, Name: r.Name, Reason: r.Reason})
	}
	return res, nil
}

// Resolve implements Resolver.
func (r WasmResolver) Resolve(kind Kind, servers []ServerItems) (Resolution, error) {
	in, err := CollisionInput(kind, servers)
	if err != nil {
		return Resolution{}, err
	}
	ctx := context.Background()
	if r.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.Timeout)
		defer cancel()
	}
	out, err := r.Module.Call(ctx, ExportCollision, in)
	if err != nil {
		return Resolution{}, err
	}
	return ParseCollisionOutput(out)
}

// WasmAuthorizer is an Authorizer served by an authorization policy
// module. It is on every call's path, so its input is written without
// reflection.
type WasmAuthorizer struct {
	Module PolicyModule
	// Timeout bounds a decision on top of the module's own call limit;
	// 0 leaves it to the module (saves a timer on the hot path).
	Timeout time.Duration
}

var authzBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// AuthorizeInput encodes the ABI input of gw_authorize into buf.
func AuthorizeInput(buf *bytes.Buffer, req AuthzRequest) {
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

// ParseDecision decodes an authorization answer; anything but a clear
// {"allow": true} is a denial.
func ParseDecision(out []byte) (Decision, error) {
	if bytes.Equal(out, []byte(`{"allow":true}`)) {
		return Decision{Allow: true}, nil
	}
	var d struct {
		Allow  *bool  `json:"allow"`
		Reason string `json:"reason"`
	}
	if err := decodeStrictFields(out, &d); err != nil {
		return Decision{}, fmt.Errorf("authorization policy answered invalid JSON: %w", err)
	}
	if d.Allow == nil {
		return Decision{}, errors.New(`authorization policy answer has no "allow"`)
	}
	return Decision{Allow: *d.Allow, Reason: d.Reason}, nil
}

// Authorize implements Authorizer.
func (a WasmAuthorizer) Authorize(ctx context.Context, req AuthzRequest) (Decision, error) {
	buf := authzBufs.Get().(*bytes.Buffer)
	buf.Reset()
	defer authzBufs.Put(buf)
	AuthorizeInput(buf, req)
	if a.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, a.Timeout)
		defer cancel()
	}
	out, err := a.Module.Call(ctx, ExportAuthorize, buf.Bytes())
	if err != nil {
		return Decision{}, err
	}
	return ParseDecision(out)
}

// RebuildCatalog re-runs the resolver over every server's lists, as after a
// collision policy was swapped. A refused resolution keeps the catalog.
func (g *Gateway) RebuildCatalog() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	c, err := buildCatalog(g.servers().order, g.inventory, g.opts.Resolver)
	if err != nil {
		return err
	}
	g.logNewRejections(c)
	g.catalog.Store(c)
	g.events.push(Event{Kind: EventCatalogChanged, Catalog: c})
	return nil
}

// CheckResolver runs r over the current lists without changing anything:
// the dry run a new collision policy must pass before it is swapped in.
func (g *Gateway) CheckResolver(r Resolver) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	_, err := buildCatalog(g.servers().order, g.inventory, r)
	return err
}
