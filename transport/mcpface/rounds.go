package mcpface

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"maps"
	"strconv"
	"sync"
	"time"

	"github.com/gwmcp/gw/transport/face"
	"github.com/gwmcp/gw/transport/jsonrpc"
)

// This file is the protocol half of server-to-client requests in the
// modern era: multi round-trip requests (MRTR). A server that needs
// sampling, elicitation or roots while serving a modern client's request
// cannot send it a request of its own; gw answers the client's request with
// an InputRequiredResult instead, and the client retries it (a new id, the
// same params plus inputResponses and the echoed requestState).
//
// gw's gateway call does not start over on the retry: it keeps running,
// parked in face.Input.Ask, and the requestState names it. The request that
// started it, then each retry, waits for the call's next event — an Ask
// (answered with an InputRequiredResult) or its end (the final result).

// Defaults of RoundsOptions.
const (
	DefaultInputTTL  = 60 * time.Second
	DefaultMaxParked = 64
)

// Errors of multi round-trip requests.
var (
	// ErrInputExpired is the cause of a parked gateway call's cancellation
	// when its client did not retry within RoundsOptions.TTL.
	ErrInputExpired = errors.New("mcpface: the client did not retry in time")
	// ErrNoRetry fails an Ask whose gateway call ended, or whose face
	// stopped, before the client answered it.
	ErrNoRetry = errors.New("mcpface: the client's request ended before it answered")
	// errParkedFull is the cause of a gateway call's cancellation when
	// RoundsOptions.MaxParked calls already wait for their clients.
	errParkedFull = errors.New("mcpface: too many requests wait for their client's input")
)

// inputMethods are the requests that may be answered with an
// InputRequiredResult; the spec forbids it on any other.
var inputMethods = map[string]bool{"tools/call": true, "prompts/get": true, "resources/read": true}

// TakesInput reports whether a modern request of method may be answered
// with an InputRequiredResult.
func TakesInput(method string) bool { return inputMethods[method] }

// RoundsOptions configure Rounds. The zero value works.
type RoundsOptions struct {
	// TTL bounds how long a gateway call waits for its client's retry once
	// an InputRequiredResult went out; then it is cancelled with
	// ErrInputExpired and its requestState is unknown. Default
	// DefaultInputTTL.
	TTL time.Duration
	// MaxParked bounds the gateway calls waiting for a retry; a call that
	// would be one more is cancelled and its request answered with an
	// error. Default DefaultMaxParked.
	MaxParked int
}

// Rounds runs the modern requests whose clients can answer server-to-client
// requests, and keeps their gateway calls between round trips. Every binding
// of the protocol keeps one (a stream face: one connection; the HTTP face:
// every caller, told apart by owner). Its methods are safe for concurrent
// use.
//
// Goroutines: one per gateway call started by Serve, owned by Rounds: it
// ends when the handler returns. A call is cancelled when the request
// waiting for it ends, when it waits for a retry longer than TTL, or by
// Close (a parked call: no retry will come). Wait waits for them all.
//
// Lock order: Rounds.mu, then a roundCall's mu.
type Rounds struct {
	opts RoundsOptions
	wg   sync.WaitGroup

	mu     sync.Mutex
	parked map[string]*roundCall // by requestState
	live   []*roundCall          // started and not yet answered finally, oldest first
	closed bool
}

// NewRounds returns Rounds with opts.
func NewRounds(opts RoundsOptions) *Rounds {
	if opts.TTL <= 0 {
		opts.TTL = DefaultInputTTL
	}
	if opts.MaxParked <= 0 {
		opts.MaxParked = DefaultMaxParked
	}
	return &Rounds{opts: opts, parked: map[string]*roundCall{}}
}

// roundCall is one gateway call that can ask its client.
type roundCall struct {
	owner  string
	method string
	target string // params.name or params.uri: a retry must name the same
	caps   map[string]json.RawMessage
	cancel context.CancelCauseFunc
	wake   chan struct{} // buffered 1: an ask or the end

	mu       sync.Mutex
	asks     map[string]*ask // unanswered, by inputRequests key
	next     int
	done     bool
	res      json.RawMessage
	err      error
	progress func(json.RawMessage) // the waiting request's, nil when parked
	state    string                // its requestState while parked
	timer    *time.Timer           // its expiry while parked
}

// ask is one face.Input.Ask waiting for its client.
type ask struct {
	method string
	params json.RawMessage
	reply  chan askReply // buffered 1; sent once, by whoever deletes it from asks
}

type askReply struct {
	res json.RawMessage
	err error
}

func (c *roundCall) kick() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Supports reports whether the client declared the capability method
// needs, in the _meta of the request that started the call.
func (c *roundCall) Supports(method string) bool {
	return declared(c.caps, method)
}

func declared(caps map[string]json.RawMessage, method string) bool {
	name := CapabilityOf(method)
	raw, ok := caps[name]
	return name != "" && ok && !isNull(raw)
}

// Ask queues method for the client's next InputRequiredResult and waits for
// its inputResponse, ctx, or the end of the call (ErrNoRetry).
func (c *roundCall) Ask(ctx context.Context, method string, params json.RawMessage) (json.RawMessage, error) {
	return c.AskAs(ctx, "", method, params)
}

// AskAs is Ask under the key the server gave the request, when no other
// pending ask of this call holds it; else under a key of gw's ("gw-N").
func (c *roundCall) AskAs(ctx context.Context, key, method string, params json.RawMessage) (json.RawMessage, error) {
	if !c.Supports(method) {
		return nil, jsonrpc.NewError(jsonrpc.CodeMethodNotFound, "gw: the client did not declare the capability %s needs", method)
	}
	a := &ask{method: method, params: params, reply: make(chan askReply, 1)}
	c.mu.Lock()
	if c.done {
		c.mu.Unlock()
		return nil, ErrNoRetry
	}
	for _, taken := c.asks[key]; key == "" || taken; _, taken = c.asks[key] {
		c.next++
		key = "gw-" + strconv.Itoa(c.next)
	}
	c.asks[key] = a
	c.mu.Unlock()
	c.kick()
	select {
	case r := <-a.reply:
		return r.res, r.err
	case <-ctx.Done():
		c.mu.Lock()
		if c.asks[key] == a {
			delete(c.asks, key)
			c.mu.Unlock()
			return nil, ctx.Err()
		}
		c.mu.Unlock()
		r := <-a.reply // answered meanwhile: the answer was sent
		return r.res, r.err
	}
}

// finish records the handler's answer and fails the asks nobody answered.
func (c *roundCall) finish(res json.RawMessage, err error) {
	c.mu.Lock()
	c.done, c.res, c.err = true, res, err
	for key, a := range c.asks {
		delete(c.asks, key)
		a.reply <- askReply{err: ErrNoRetry}
	}
	c.mu.Unlock()
	c.kick()
}

// Serve serves a modern request whose method TakesInput through h: req gets
// an Input that Supports what the client declared in params._meta, and the
// answer is the final result, or an InputRequiredResult when the call asks.
// A request whose params carry requestState is a retry: it resumes the call
// that requestState names. owner is who may retry: a retry by another owner
// finds no call. req.Progress, when not nil, takes the call's progress while
// this request waits (the original request's Progress decides whether the
// call reports progress at all). The result is the MCP result object (resultType set
// for InputRequiredResult only; the caller adds "complete").
func (r *Rounds) Serve(ctx context.Context, h face.Handler, req *face.Request, owner string) (json.RawMessage, error) {
	progress := req.Progress
	retry, e := readRetry(req.Params)
	if e != nil {
		return nil, e
	}
	if retry.hasState {
		c, e := r.resume(owner, req.Method, req.Params, retry)
		if e != nil {
			return nil, e
		}
		return r.wait(ctx, c, progress)
	}

	var caps map[string]json.RawMessage
	_ = json.Unmarshal(ReadMeta(req.Params).capabilities, &caps)
	if !declared(caps, "sampling/createMessage") && !declared(caps, "elicitation/create") && !declared(caps, "roots/list") {
		// Nothing can be asked: no round trips, served inline.
		in := *req
		in.Input = noInput{}
		return h.Serve(ctx, &in)
	}

	// The call outlives the request that started it: its context is its
	// own, ended by cancel (see Rounds).
	cctx, cancel := context.WithCancelCause(context.Background())
	c := &roundCall{
		owner: owner, method: req.Method, target: targetOf(req.Method, req.Params), caps: caps,
		cancel: cancel, wake: make(chan struct{}, 1), asks: map[string]*ask{}, progress: progress,
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		cancel(nil)
		return nil, jsonrpc.NewError(jsonrpc.CodeInternalError, "gw: shutting down")
	}
	r.live = append(r.live, c)
	r.wg.Add(1)
	r.mu.Unlock()

	in := *req
	in.Input = c
	// The call may outlive the request that carries it (and the
	// transport's headers with it, an HTTP handler's once it returned):
	// the handler gets headers of its own (face.Trace.Header). A shallow
	// copy: no face writes into a header's values.
	in.Trace.Header = maps.Clone(req.Trace.Header)
	if progress != nil {
		in.Progress = func(params json.RawMessage) {
			c.mu.Lock()
			p := c.progress
			c.mu.Unlock()
			if p != nil {
				p(params)
			}
		}
	}
	go func() {
		defer r.wg.Done()
		defer cancel(nil)
		res, err := h.Serve(cctx, &in)
		c.finish(res, err)
	}()
	return r.wait(ctx, c, progress)
}

// askSettle is how long a round waits for more asks after one arrives.
const askSettle = 5 * time.Millisecond

// wait waits for c's next event as the request of ctx: the final answer
// (then c is forgotten), or asks (then c is parked under a new requestState
// and the InputRequiredResult returned). When ctx ends first, the client
// is gone: the call is cancelled.
func (r *Rounds) wait(ctx context.Context, c *roundCall, progress func(json.RawMessage)) (json.RawMessage, error) {
	c.mu.Lock()
	c.progress = progress
	c.mu.Unlock()
	settled := 0 // asks seen when the last settle window ended
	for {
		c.mu.Lock()
		if n := len(c.asks); !c.done && n > 0 && n != settled {
			// Asks a server raised together reach us a moment apart:
			// gather them into one round, as the server asked them.
			c.mu.Unlock()
			t := time.NewTimer(askSettle)
			select {
			case <-t.C:
			case <-ctx.Done():
			}
			t.Stop()
			settled = n
			continue
		}
		switch {
		case c.done:
			res, err := c.res, c.err
			c.progress = nil
			c.mu.Unlock()
			r.forget(c)
			return res, err
		case len(c.asks) > 0:
			requests := make(map[string]any, len(c.asks))
			for key, a := range c.asks {
				requests[key] = map[string]any{"method": a.method, "params": a.params}
			}
			c.progress = nil
			c.mu.Unlock()
			state, e := r.park(c)
			if e != nil {
				return nil, e
			}
			return json.Marshal(map[string]any{"resultType": "input_required", "inputRequests": requests, "requestState": state})
		}
		c.mu.Unlock()
		select {
		case <-c.wake:
		case <-ctx.Done():
			c.cancel(ctx.Err())
			r.forget(c)
			return nil, ctx.Err()
		}
	}
}

// park files c under a fresh requestState until its client retries or TTL
// passes.
func (r *Rounds) park(c *roundCall) (string, *jsonrpc.Error) {
	state := newState()
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.closed:
		c.cancel(ErrNoRetry)
		r.forgetLocked(c)
		return "", jsonrpc.NewError(jsonrpc.CodeInternalError, "gw: shutting down")
	case len(r.parked) >= r.opts.MaxParked:
		c.cancel(errParkedFull)
		r.forgetLocked(c)
		return "", jsonrpc.NewError(jsonrpc.CodeInternalError, "gw: busy: %d requests wait for their client's input", r.opts.MaxParked)
	}
	r.parked[state] = c
	c.mu.Lock()
	c.state = state
	c.timer = time.AfterFunc(r.opts.TTL, func() { r.expire(c, state) })
	c.mu.Unlock()
	return state, nil
}

// expire cancels c when it still waits under state.
func (r *Rounds) expire(c *roundCall, state string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.parked[state] != c {
		return // retried, or closed
	}
	delete(r.parked, state)
	r.forgetLocked(c)
	c.cancel(ErrInputExpired)
}

// resume takes the call that state names off the shelf and hands it the
// client's inputResponses.
func (r *Rounds) resume(owner, method string, params json.RawMessage, rt retryParams) (*roundCall, *jsonrpc.Error) {
	r.mu.Lock()
	c := r.parked[rt.state]
	if c == nil || c.owner != owner {
		r.mu.Unlock()
		return nil, jsonrpc.NewError(jsonrpc.CodeInvalidParams, "gw: unknown or expired requestState; send the request again without it")
	}
	if c.method != method || c.target != targetOf(method, params) {
		r.mu.Unlock()
		return nil, jsonrpc.NewError(jsonrpc.CodeInvalidParams, "gw: requestState belongs to another request (%s %q)", c.method, c.target)
	}
	delete(r.parked, rt.state)
	r.mu.Unlock()

	c.mu.Lock()
	defer c.mu.Unlock()
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	c.state = ""
	// Responses to keys not asked are ignored; asks not answered are
	// asked again (the spec's advice), on the retry's answer.
	for key, raw := range rt.responses {
		if a := c.asks[key]; a != nil {
			delete(c.asks, key)
			a.reply <- askReply{res: raw}
		}
	}
	return c, nil
}

// forget drops c from the live calls.
func (r *Rounds) forget(c *roundCall) {
	r.mu.Lock()
	r.forgetLocked(c)
	r.mu.Unlock()
}

func (r *Rounds) forgetLocked(c *roundCall) {
	for i, l := range r.live {
		if l == c {
			r.live = append(r.live[:i], r.live[i+1:]...)
			return
		}
	}
}

// Supports reports whether a live call's client declared the capability
// method needs (see AskAny).
func (r *Rounds) Supports(method string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.live {
		if c.Supports(method) {
			return true
		}
	}
	return false
}

// AskAny asks method through the oldest live call whose client can answer
// it. It is for requests a server raises on its own, related to no request
// gw knows (a legacy server behind a modern client): the question rides on
// a request the client has open.
func (r *Rounds) AskAny(ctx context.Context, method string, params json.RawMessage) (json.RawMessage, error) {
	r.mu.Lock()
	var target *roundCall
	for _, c := range r.live {
		c.mu.Lock()
		ok := !c.done && c.Supports(method)
		c.mu.Unlock()
		if ok {
			target = c
			break
		}
	}
	r.mu.Unlock()
	if target == nil {
		return nil, jsonrpc.NewError(jsonrpc.CodeMethodNotFound, "gw: no request of the client in flight can carry %s", method)
	}
	return target.Ask(ctx, method, params)
}

// Close refuses new calls and cancels the parked ones (their requestStates
// become unknown); a call that asks later is cancelled instead of parked. A
// call whose request still waits for it ends with that request (the
// binding cancels it at shutdown).
func (r *Rounds) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	for state, c := range r.parked {
		delete(r.parked, state)
		r.forgetLocked(c)
		c.mu.Lock()
		if c.timer != nil {
			c.timer.Stop()
		}
		c.mu.Unlock()
		c.cancel(ErrNoRetry)
	}
}

// Wait waits for the goroutines of the calls started by Serve.
func (r *Rounds) Wait() { r.wg.Wait() }

// Parked reports how many calls wait for their client's retry.
func (r *Rounds) Parked() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.parked)
}

// noInput is the Input of a modern request whose client declared nothing
// that can be asked.
type noInput struct{}

func (noInput) Supports(string) bool { return false }

func (noInput) Ask(_ context.Context, method string, _ json.RawMessage) (json.RawMessage, error) {
	return nil, jsonrpc.NewError(jsonrpc.CodeMethodNotFound, "gw: the client did not declare the capability %s needs", method)
}

// retryParams is what a retry carries.
type retryParams struct {
	hasState  bool
	state     string
	responses map[string]json.RawMessage
}

// readRetry reads params.requestState and params.inputResponses by exact
// keys: a string, and an object. params must be valid JSON.
func readRetry(params json.RawMessage) (retryParams, *jsonrpc.Error) {
	var rt retryParams
	if raw := jsonrpc.Member(params, "requestState"); raw != nil && !isNull(raw) {
		if json.Unmarshal(raw, &rt.state) != nil {
			return rt, jsonrpc.NewError(jsonrpc.CodeInvalidParams, "gw: params.requestState must be a string")
		}
		rt.hasState = true
	}
	if raw := jsonrpc.Member(params, "inputResponses"); raw != nil && !isNull(raw) {
		if firstByte(raw) != '{' || json.Unmarshal(raw, &rt.responses) != nil {
			return rt, jsonrpc.NewError(jsonrpc.CodeInvalidParams, "gw: params.inputResponses must be an object")
		}
	}
	return rt, nil
}

// targetOf names what a request is about: the tool or prompt, or the
// resource.
func targetOf(method string, params json.RawMessage) string {
	key := "name"
	if method == "resources/read" {
		key = "uri"
	}
	s, _ := jsonrpc.StringMember(params, key)
	return s
}

// newState returns an unguessable requestState: 256 random bits.
func newState() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}
