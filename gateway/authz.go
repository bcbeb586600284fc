package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/gwmcp/gw/transport/jsonrpc"
)

// Caller is who makes a call, as the face that received it established it
// (a NATS user, an HTTP token): never taken from the request body.
type Caller struct {
	ID     string   `json:"id"`
	Groups []string `json:"groups,omitempty"`
}

type callerKey struct{}

// WithCaller returns a context carrying the caller; faces set it.
func WithCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// CallerFrom returns the caller in ctx; the zero Caller is anonymous.
func CallerFrom(ctx context.Context) Caller {
	c, _ := ctx.Value(callerKey{}).(Caller)
	return c
}

// AuthzRequest is what an Authorizer decides on.
type AuthzRequest struct {
	Caller      Caller
	Server      string          // the owning server
	Tool        string          // the server's own tool name
	Name        string          // the exposed name
	Annotations json.RawMessage // the tool's annotations, nil if none
	Arguments   json.RawMessage // the call's arguments, nil if none
	// Pin is the tool's definition compared with its pin: PinNew,
	// PinPinned, PinChanged (served under PinWarn or allowed by the
	// collision policy), "" with pinning off.
	Pin PinState
}

// Decision is an Authorizer's answer.
type Decision struct {
	Allow  bool
	Reason string
	// Policy identifies the policy that decided (a module's digest), for the
	// audit record and the metrics, also with an error when it is known;
	// "" if unknown.
	Policy string
}

// Authorizer decides every tools/call before it reaches a server. It is on
// the hot path. An error denies the call (fail closed).
type Authorizer interface {
	Authorize(ctx context.Context, req AuthzRequest) (Decision, error)
}

// CodeDenied is the JSON-RPC error code of a call the authorizer refused.
// It is outside the range JSON-RPC and MCP reserve.
const CodeDenied = -31403

// ErrDenied marks a call the authorizer refused.
var ErrDenied = errors.New("gw: call denied by policy")

// authorize runs the configured authorizer for one call.
func (g *Gateway) authorize(ctx context.Context, e *Entry, params json.RawMessage) error {
	a := g.opts.Authorizer
	if a == nil {
		return nil
	}
	args, _ := field(params, "arguments")
	caller := CallerFrom(ctx)
	d, err := a.Authorize(ctx, AuthzRequest{
		Caller:      caller,
		Server:      e.Server,
		Tool:        e.Original,
		Name:        e.Name,
		Annotations: e.Item.Annotations,
		Arguments:   args,
		Pin:         e.Item.Pin,
	})
	if err != nil {
		g.log.Error("authorizer failed; denying the call", "tool", e.Name, "caller", caller.ID, "error", err)
		d = Decision{Reason: "authorization policy failed", Policy: d.Policy}
	}
	if g.opts.Audit == AuditAll || g.opts.Audit == AuditDenied && !d.Allow {
		g.audit(caller, e, args, d)
	}
	if o := g.opts.Observer; o != nil {
		o.Authorized(Authorized{Server: e.Server, Tool: e.Original, Policy: d.Policy, Outcome: authzOutcome(d, err)})
	}
	if d.Allow {
		return nil
	}
	reason := d.Reason
	if reason == "" {
		reason = "no reason given"
	}
	err = fmt.Errorf("%w: tool %q: %s", ErrDenied, e.Name, reason)
	return &codedError{err: err, rpc: &jsonrpc.Error{Code: CodeDenied, Message: err.Error()}}
}

// AuditMode is which authorization decisions are audited.
type AuditMode int

// Audit modes.
const (
	AuditOff    AuditMode = iota // none
	AuditDenied                  // the calls refused
	AuditAll                     // every decision
)

// AuditRecord is one authorization decision, as EventAudit carries it.
type AuditRecord struct {
	Time       time.Time `json:"time"`
	Principal  string    `json:"principal"`
	Groups     []string  `json:"groups,omitempty"`
	Server     string    `json:"server"`
	Tool       string    `json:"tool"`       // the exposed name
	ServerTool string    `json:"serverTool"` // the server's own name
	Decision   string    `json:"decision"`   // "allow" or "deny"
	Reason     string    `json:"reason,omitempty"`
	Policy     string    `json:"policy,omitempty"` // the deciding module's digest
	// Arguments are the call's, with Options.AuditArguments only.
	Arguments json.RawMessage `json:"arguments,omitempty"`
}

// audit queues the record of one decision.
func (g *Gateway) audit(c Caller, e *Entry, args json.RawMessage, d Decision) {
	r := &AuditRecord{
		Time:       time.Now().UTC(),
		Principal:  c.ID,
		Groups:     c.Groups,
		Server:     e.Server,
		Tool:       e.Name,
		ServerTool: e.Original,
		Decision:   "deny",
		Reason:     d.Reason,
		Policy:     d.Policy,
	}
	if d.Allow {
		r.Decision = "allow"
	}
	if g.opts.AuditArguments && len(args) > 0 {
		r.Arguments = bytes.Clone(args) // args alias the caller's params
	}
	g.events.push(Event{Kind: EventAudit, Server: e.Server, Audit: r})
}
