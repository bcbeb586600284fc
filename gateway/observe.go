package gateway

import (
	"encoding/json"
	"time"
)

// Observer is told what the gateway served, for metrics. Its methods run on
// the caller's goroutine, on the call path: they must be quick, must not
// block and must not call back into the gateway. Options.Observer nil
// costs the call path one nil check.
type Observer interface {
	// Routed reports one request when it ends, served or refused.
	Routed(Routed)
	// Authorized reports one decision of the Authorizer.
	Authorized(Authorized)
}

// Routed is one request the gateway served.
type Routed struct {
	// Method is tools/call, prompts/get, resources/read, or a list the
	// gateway answers from its catalog
	// (tools/list, prompts/list, resources/list: resources/templates/list
	// is served by the same call and reported as resources/list).
	Method string
	// Server owns the tool, prompt or resource (a held tool's too); ""
	// when none does (an unknown name, a malformed request) and for
	// lists, which gw answers itself.
	Server string
	// Name is the server's own tool or prompt name; "" for resources,
	// lists and unknown names (a caller's unknown name is
	// not a bounded label).
	Name     string
	Duration time.Duration
	// Result is the result as returned to the caller (nil on error): a
	// tool's isError result is a success of the protocol.
	Result json.RawMessage
	Err    error
}

// AuthzOutcome is what an authorization came to.
type AuthzOutcome string

// Authorization outcomes: an error (a trap, a timeout, a bad answer) denies
// the call too, but is told apart.
const (
	AuthzAllow AuthzOutcome = "allow"
	AuthzDeny  AuthzOutcome = "deny"
	AuthzError AuthzOutcome = "error"
)

// Authorized is one authorization decision.
type Authorized struct {
	Server  string // the owning server
	Tool    string // the server's own tool name
	Policy  string // Decision.Policy: which policy decided; "" if it did not say
	Outcome AuthzOutcome
}

func authzOutcome(d Decision, err error) AuthzOutcome {
	switch {
	case err != nil:
		return AuthzError
	case d.Allow:
		return AuthzAllow
	}
	return AuthzDeny
}

// observe reports a request to the Observer; deferred by the methods that
// route, with the entry the name resolved to (nil: none).
func (g *Gateway) observe(method string, e *Entry, named bool, start time.Time, res *json.RawMessage, err *error) {
	r := Routed{Method: method, Duration: time.Since(start), Result: *res, Err: *err}
	if e != nil {
		r.Server = e.Server
		if named {
			r.Name = e.Original
		}
	}
	g.opts.Observer.Routed(r)
}

// orHeld is e, or for a name that is not served because its tool is held
// back (changed since pinned), the held tool: its calls are refused, but
// it belongs to a server.
func orHeld(c *Catalog, name string, e *Entry) *Entry {
	if e == nil {
		if h, ok := c.held[name]; ok {
			return h.entry
		}
	}
	return e
}

// observeList reports a list answered from the catalog.
func (g *Gateway) observeList(method string, start time.Time) {
	if o := g.opts.Observer; o != nil {
		o.Routed(Routed{Method: method, Duration: time.Since(start)})
	}
}

// ServerStats is a server's status with what only a snapshot can tell:
// the calls in flight to it now.
type ServerStats struct {
	ServerStatus
	// Pending is the requests sent to the server and not yet answered
	// (its session's pending map); 0 while it has no session.
	Pending int
}

// ServerStats reports every server's status and load in configuration
// order. It takes each server's and session's lock briefly: meant for a
// scrape, not the call path.
func (g *Gateway) ServerStats() []ServerStats {
	set := g.servers()
	out := make([]ServerStats, 0, len(set.order))
	for _, name := range set.order {
		m := set.byName[name]
		st := ServerStats{ServerStatus: m.status()}
		m.mu.Lock()
		s := m.sess
		m.mu.Unlock()
		if s != nil {
			s.mu.Lock()
			st.Pending = len(s.pending)
			s.mu.Unlock()
		}
		out = append(out, st)
	}
	return out
}
