// Package authz makes a policy module an authorizer: importing it adds the
// gw_authorize export, and Handle registers the function gw calls, once per
// tool call, to allow or deny it.
//
// This is the hot path, so the input is read with kit's lazy scanner: no
// encoding/json, no reflection, the arguments skipped without decoding, and
// an allow answered with a constant.
package authz

import (
	"github.com/gwmcp/gw/policies/guest/kit"
	"github.com/gwmcp/gw/policies/guest/kit/internal/abi"
)

// Input is one tool call to decide on. Its strings may be kept (each keeps
// the chunk of at most 4 KiB it was carved from alive). The Input
// itself, its byte slices and the Groups slice are reused or alias gw's
// input buffer: they are valid only until the handler returns (copy what
// you keep).
type Input struct {
	// Caller is who calls, as the transport established it.
	Caller Caller
	// Server is the configured server that owns the tool.
	Server string
	// Tool is the server's own name for the tool.
	Tool string
	// Name is the exposed name callers use (after collision resolution).
	Name string
	// Annotations are the tool's annotation hints.
	Annotations Annotations
	// Arguments is the raw JSON of the call's arguments, nil when absent.
	Arguments []byte
	// Pin is the tool definition's pin state: "new" (first seen), "changed"
	// (differs from the definition pinned, and served only because gw runs
	// with gateway.pinning: warn or a collision policy allowed it), or ""
	// for a tool that matches its pin (gw leaves "pinned" out).
	Pin string

	groups [maxInlineGroups]string // backs Caller.Groups without allocating
	arena  []byte                  // the chunk strings are carved from (see carve)
}

// Caller identifies who makes the call.
type Caller struct {
	ID     string   // "" = anonymous
	Groups []string // nil when absent
}

// Annotations are the MCP tool annotations gw passes along. Each hint is
// tri-state: a tool may leave it out, and MCP gives each a default.
type Annotations struct {
	ReadOnlyHint    Hint // MCP default: false
	DestructiveHint Hint // MCP default: true (meaningful when not read-only)
	IdempotentHint  Hint // MCP default: false
	OpenWorldHint   Hint // MCP default: true
	// Raw is the annotations object as gw sent it, nil when absent.
	Raw []byte
}

// Hint is a tool annotation hint: absent, false or true.
type Hint uint8

// The values of a Hint.
const (
	Absent Hint = iota
	False
	True
)

// Or returns the hint's value, or def when the tool left it out.
func (h Hint) Or(def bool) bool {
	if h == Absent {
		return def
	}
	return h == True
}

// Decision is a handler's answer.
type Decision struct {
	Allow  bool
	Reason string // why, for a deny; shown to the caller and logged
}

// Allow returns a decision that allows the call.
func Allow() Decision { return Decision{Allow: true} }

// Deny returns a decision that denies the call with reason.
func Deny(reason string) Decision { return Decision{Reason: reason} }

var handler func(*Input) Decision

// Handle registers the policy's decision function; call it once, from an
// init function. A second registration panics.
func Handle(f func(*Input) Decision) {
	if handler != nil {
		panic("authz: Handle called twice")
	}
	handler = f
}

// allowJSON is every allow: a constant, nothing to build.
const allowJSON = `{"allow":true}`

// Eval runs the registered handler on one input exactly as gw_authorize
// does and returns the output JSON; tests call it natively. Bad input,
// a missing handler or a panic in the handler deny (fail closed).
func Eval(input []byte) []byte { return appendDecision(nil, decide(input, new(Input))) }

// decide parses input into in (gw_authorize reuses one Input: a guest runs
// one call at a time) and runs the handler.
func decide(input []byte, in *Input) (d Decision) {
	if handler == nil {
		return Deny("policy registered no authorize handler")
	}
	if err := Parse(input, in); err != nil {
		return Deny("policy input: " + err.Error())
	}
	defer func() {
		if r := recover(); r != nil {
			msg := "policy panicked: " + abi.PanicText(r)
			println("gw policy:", msg)
			d = Deny(msg)
		}
	}()
	return handler(in)
}

func appendDecision(dst []byte, d Decision) []byte {
	if d.Allow {
		return append(dst, allowJSON...)
	}
	dst = append(dst, `{"allow":false,"reason":`...)
	dst = kit.AppendString(dst, d.Reason)
	return append(dst, '}')
}
