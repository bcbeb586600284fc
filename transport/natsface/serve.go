package natsface

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/gwmcp/gw/internal/jsonscan"
	"github.com/gwmcp/gw/transport/jsonrpc"
)

// Headers of requests, replies, frames and events.
const (
	// HeaderStream = "1" on a request opts into streaming frames (see the package doc).
	HeaderStream = "Mcp-Stream"
	// HeaderTimeout on a request is its timeout in milliseconds (a positive integer), counted from
	// when the face receives it.
	HeaderTimeout = "Mcp-Timeout-Ms"
	// HeaderDeadline on a request is its absolute deadline, RFC 3339 with optional fractional
	// seconds. With both deadline headers the earlier wins. The face also sets it on requests to
	// Options.LLMSubject.
	HeaderDeadline = "Mcp-Deadline"
	// HeaderFrame on a streaming frame is its type: progress, input, result or error.
	HeaderFrame = "Mcp-Frame"
	// HeaderClaimCheck = "1" marks a reply whose result is in the object store (FetchClaimCheck).
	HeaderClaimCheck = "Mcp-Claim-Check"
	// HeaderGateway on every reply, frame and event is the name of the gateway that sent it.
	HeaderGateway = "Mcp-Gateway"
	// HeaderServer on server events is the server's name (its subject token is encoded).
	HeaderServer = "Mcp-Server"
)

// Frame types, the values of HeaderFrame and of a frame's "type".
const (
	FrameProgress = "progress"
	FrameInput    = "input"
	FrameResult   = "result"
	FrameError    = "error"
)

// Frame is one message of a streaming reply (and the format test agents decode).
type Frame struct {
	Type string `json:"type"`
	// ID and Gateway identify an input request: answer it on Prefix.req.{principal}.at.{Gateway}.input.{ID}.
	ID      string `json:"id,omitempty"`
	Gateway string `json:"gateway,omitempty"`
	// Method and Params of an input request; Params of a progress frame.
	Method string          `json:"method,omitempty"`
	Params json.RawMessage `json:"params,omitempty"`
	// Result of a result frame, or ClaimCheck when the result is in the object store.
	Result     json.RawMessage `json:"result,omitempty"`
	ClaimCheck *ClaimCheck     `json:"claimCheck,omitempty"`
	// Error of an error frame.
	Error *jsonrpc.Error `json:"error,omitempty"`
}

// call is one request taken for serving (or refused). Exactly one answer is sent for it: finish
// retires it, whoever calls first (the handler goroutine, or Stop giving up).
type call struct {
	f         *Face
	ep        *endpoint
	subject   string
	reply     string
	data      []byte
	header    nats.Header
	principal string
	stream    bool

	mu   sync.Mutex // held while sending a frame, so no frame follows the final one
	done bool
}

// dispatch runs on micro's subscription goroutine, one request at a time per endpoint, so it
// never blocks: it takes a handler slot or sheds the request, and hands the call to a worker.
func (f *Face) dispatch(ep *endpoint, subject, reply string, data []byte, header nats.Header) {
	c := &call{
		f:       f,
		ep:      ep,
		subject: subject,
		reply:   reply,
		data:    data,
		header:  header,
	}
	if c.reply == "" {
		f.log.Debug("request without a reply subject ignored", "subject", c.subject)
		return
	}
	c.stream = c.header.Get(HeaderStream) == "1"
	rest := strings.TrimPrefix(c.subject, f.reqPrefix)
	c.principal, _, _ = strings.Cut(rest, ".")

	select {
	case f.sem <- struct{}{}:
	default:
		f.busy.Add(1)
		c.reject(errBusy())
		return
	}
	f.mu.Lock()
	if f.state >= stateStopping {
		f.mu.Unlock()
		<-f.sem
		c.reject(errShuttingDown())
		return
	}
	f.calls[c] = struct{}{}
	f.wg.Add(1)
	f.mu.Unlock()
	f.pool.Go(c)
}

// serve runs one call on a worker of f.pool, counted in f.wg.
func (f *Face) serve(c *call) {
	start := time.Now()
	c.ep.stats.inFlight.Add(1)
	defer func() {
		c.ep.stats.inFlight.Add(-1)
		c.ep.stats.nanos.Add(int64(time.Since(start)))
		f.mu.Lock()
		delete(f.calls, c)
		f.mu.Unlock()
		<-f.sem
		f.wg.Done()
	}()

	req, deadline, rerr := c.request()
	if rerr != nil {
		c.finish(nil, rerr)
		return
	}
	ctx, cancel := context.WithDeadline(f.baseCtx, deadline)
	defer cancel()
	ctx = context.WithValue(ctx, inputKey{}, InputFunc(c.input))
	res, err := f.safeServe(ctx, req)
	if err != nil && errors.Is(err, context.DeadlineExceeded) {
		var je *jsonrpc.Error
		if !errors.As(err, &je) {
			err = internalError("deadline exceeded after %v", time.Since(start).Round(time.Millisecond))
		}
	}
	c.finish(res, err)
}

// safeServe calls the Handler, turning a panic into an internal error so that one broken request
// does not take the gateway down.
func (f *Face) safeServe(ctx context.Context, req *Request) (res json.RawMessage, err error) {
	defer func() {
		if p := recover(); p != nil {
			f.log.Error("handler panicked", "method", req.Method, "panic", p, "stack", string(debug.Stack()))
			res, err = nil, internalError("handler panicked")
		}
	}()
	return f.h.Serve(ctx, req)
}

// request checks the call and builds the Request and its deadline.
func (c *call) request() (*Request, time.Time, *jsonrpc.Error) {
	f := c.f
	if v := c.header.Get(HeaderStream); v != "" && v != "1" {
		return nil, time.Time{}, invalidRequest("header %s must be \"1\" or absent", HeaderStream)
	}
	deadline, err := f.deadline(c.header)
	if err != nil {
		return nil, time.Time{}, err
	}
	req := &Request{Principal: c.principal, Method: c.ep.method, Subject: c.subject, Header: c.header}
	if c.ep.at {
		req.Gateway = f.opts.Gateway
	}
	body := bytes.TrimSpace(c.data)
	var nameRaw json.RawMessage
	hasName := false
	if len(body) > 0 {
		if _, e := jsonrpc.CheckDepth(body, f.opts.MaxDepth); e != nil {
			return nil, time.Time{}, e
		}
		err := scanObject(body, nil, func(key []byte, value json.RawMessage) {
			if string(key) == "name" {
				nameRaw, hasName = value, true
			}
		})
		if err != nil {
			code := int64(jsonrpc.CodeInvalidParams) // JSON, but not a params object we accept
			if !json.Valid(body) {
				code = jsonrpc.CodeParseError
			}
			return nil, time.Time{}, jsonrpc.NewError(code, "gw: request body: %v", err)
		}
		req.Params = body
	}
	if c.ep.named {
		tok := c.subject[strings.LastIndexByte(c.subject, '.')+1:]
		name, derr := DecodeToken(tok)
		if derr != nil {
			return nil, time.Time{}, invalidParams("name token %q is not a valid encoding", tok)
		}
		got, ok := jsonscan.String(nameRaw)
		if !hasName || !ok {
			return nil, time.Time{}, invalidParams("params.name must be a string equal to the subject's name %q", name)
		}
		if string(got) != name {
			return nil, time.Time{}, invalidParams("params.name %q does not match the subject's name %q", got, name)
		}
	}
	if c.stream {
		req.Progress = c.progress
	}
	return req, deadline, nil
}

// deadline computes a request's deadline from its headers, the default and the cap.
func (f *Face) deadline(h nats.Header) (time.Time, *jsonrpc.Error) {
	now := time.Now()
	limit := now.Add(f.opts.MaxTimeout)
	d := now.Add(f.opts.DefaultTimeout)
	set := false
	if v := h.Get(HeaderTimeout); v != "" {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil || ms <= 0 {
			return time.Time{}, invalidRequest("header %s must be a positive integer of milliseconds", HeaderTimeout)
		}
		d, set = limit, true
		if ms < f.opts.MaxTimeout.Milliseconds() {
			d = now.Add(time.Duration(ms) * time.Millisecond)
		}
	}
	if v := h.Get(HeaderDeadline); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return time.Time{}, invalidRequest("header %s must be an RFC 3339 time", HeaderDeadline)
		}
		if !set || t.Before(d) {
			d = t
		}
	}
	if d.After(limit) {
		d = limit
	}
	return d, nil
}

// retire marks the call answered and reports whether this caller is the one to answer it.
func (c *call) retire() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done {
		return false
	}
	c.done = true
	return true
}

// finish answers the call once: with err if non-nil, else with res.
func (c *call) finish(res json.RawMessage, err error) {
	if !c.retire() {
		return
	}
	if err != nil {
		c.ep.stats.errors.Add(1)
		c.sendError(jsonrpc.AsError(err))
		return
	}
	c.ep.stats.served.Add(1)
	c.sendResult(res)
}

// reject answers a call that was not run (busy, shutting down).
func (c *call) reject(e *jsonrpc.Error) {
	if c.retire() {
		c.ep.stats.shed.Add(1)
		c.sendError(e)
	}
}

// newHeader returns the header of a reply or frame.
func (c *call) newHeader(frame string) nats.Header {
	h := nats.Header{HeaderGateway: []string{c.f.opts.Gateway}}
	if c.stream {
		h[HeaderFrame] = []string{frame}
	}
	return h
}

func (c *call) send(h nats.Header, data []byte) error {
	return c.f.nc.PublishMsg(&nats.Msg{Subject: c.reply, Header: h, Data: data})
}

func (c *call) sendResult(res json.RawMessage) {
	if len(res) == 0 {
		res = json.RawMessage("{}")
	}
	if int64(len(res)) > c.f.nc.MaxPayload() { // cannot fit: skip building a frame that will not go
		c.sendClaimCheck(res)
		return
	}
	data := []byte(res)
	if c.stream {
		var err error
		if data, err = json.Marshal(Frame{Type: FrameResult, Result: res}); err != nil {
			c.ep.stats.errors.Add(1)
			c.sendError(internalError("handler returned a result that is not JSON"))
			return
		}
	}
	err := c.send(c.newHeader(FrameResult), data)
	switch {
	case errors.Is(err, nats.ErrMaxPayload):
		c.sendClaimCheck(res)
	case err != nil:
		c.f.log.Warn("sending a reply", "subject", c.subject, "error", err)
	}
}

func (c *call) sendError(e *jsonrpc.Error) {
	h := c.newHeader(FrameError)
	msg := e.Message
	if msg == "" {
		msg = "error"
	}
	h[micro.ErrorCodeHeader] = []string{strconv.FormatInt(e.Code, 10)}
	h[micro.ErrorHeader] = []string{headerValue(msg)}
	for _, obj := range []*jsonrpc.Error{e, {Code: e.Code, Message: truncate(e.Message, 1024)}} {
		var data []byte
		var err error
		if c.stream {
			data, err = json.Marshal(Frame{Type: FrameError, Error: obj})
		} else {
			data, err = json.Marshal(obj)
		}
		if err != nil { // e.Data is not JSON: drop it
			continue
		}
		err = c.send(h, data)
		if errors.Is(err, nats.ErrMaxPayload) { // e.Data is too large: drop it
			continue
		}
		if err != nil {
			c.f.log.Warn("sending an error reply", "subject", c.subject, "error", err)
		}
		return
	}
}

// progress sends a progress frame unless the call is answered.
func (c *call) progress(params json.RawMessage) {
	data, err := json.Marshal(Frame{Type: FrameProgress, Params: params})
	if err != nil {
		c.f.log.Warn("progress params are not JSON; dropped", "subject", c.subject)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done {
		return
	}
	if err := c.send(c.newHeader(FrameProgress), data); err != nil {
		c.f.log.Debug("progress frame dropped", "subject", c.subject, "error", err)
	}
}

// headerValue makes s safe as a header value (one line).
func headerValue(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, truncate(s, 1024))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// Shed returns how many requests the face refused with "gw: busy" (code 503: every one of
// Options.MaxConcurrent slots taken) since it was made. The refusals of a face shutting down are
// in the endpoint stats' shed, not here: they are not load.
func (f *Face) Shed() int64 { return f.busy.Load() }

// endpointStats are the face's own counters of one subject, shown as the "data" of each endpoint
// in `nats micro stats` (micro's own counters only see the fast hand-off to a goroutine).
type endpointStats struct {
	served, errors, shed, inFlight, nanos atomic.Int64
}

// EndpointStats is the "data" object of each endpoint in micro stats.
type EndpointStats struct {
	Served   int64 `json:"served"`    // answered with a result
	Errors   int64 `json:"errors"`    // answered with an error by the handler or the face
	Shed     int64 `json:"shed"`      // refused at once: busy or shutting down
	InFlight int64 `json:"in_flight"` // handlers running now
	// AverageHandlerTime is the mean time from taking a request to answering it, in nanoseconds.
	AverageHandlerTime time.Duration `json:"average_handler_time"`
}

func (s *endpointStats) snapshot() EndpointStats {
	out := EndpointStats{Served: s.served.Load(), Errors: s.errors.Load(), Shed: s.shed.Load(),
		InFlight: s.inFlight.Load()}
	if n := out.Served + out.Errors; n > 0 {
		out.AverageHandlerTime = time.Duration(s.nanos.Load() / n)
	}
	return out
}

// atToolsCall is the micro endpoint whose stats also sum the hosted tools' (ToolCallStats).
const atToolsCall = "at-tools-call"

// ToolCallStats is the "data" of the at-tools-call endpoint in micro stats: its own counters, and
// those of the calls to hosted tools on their shared subjects, summed (those subscriptions are not
// micro endpoints, so that $SRV.INFO stays one message however many tools a gateway hosts).
type ToolCallStats struct {
	EndpointStats
	// Tools is how many tools this gateway hosts now.
	Tools int `json:"tools"`
	// Hosted sums the counters of every hosted tool's shared subject, past tools included (summed
	// when they went).
	Hosted EndpointStats `json:"hosted"`
}

func (f *Face) toolCallStats(own EndpointStats) ToolCallStats {
	var hosted endpointStats
	hosted.add(&f.retired)
	f.toolEps.Range(func(_, v any) bool {
		s := v.(*endpoint).stats
		hosted.add(s)
		hosted.inFlight.Add(s.inFlight.Load())
		return true
	})
	// Not len(toolSubs): this runs under micro's lock, and svcMu is held while calling micro.
	return ToolCallStats{EndpointStats: own, Tools: int(f.hostedTools.Load()), Hosted: hosted.snapshot()}
}

// add adds o's counts of calls answered and their time to s (not the calls in flight).
func (s *endpointStats) add(o *endpointStats) {
	s.served.Add(o.served.Load())
	s.errors.Add(o.errors.Load())
	s.shed.Add(o.shed.Load())
	s.nanos.Add(o.nanos.Load())
}

// retireTool forgets the endpoint of a tool no longer hosted, adding its counters to f.retired. A
// call still running on it adds to its old counters when it ends: lost from the sums, which count
// it as in flight no more.
func (f *Face) retireTool(subject string) {
	if v, ok := f.toolEps.LoadAndDelete(subject); ok {
		f.retired.add(v.(*endpoint).stats)
	}
}

// statsFor returns the counters of subject, creating them once; they survive service rebuilds.
func (f *Face) statsFor(subject string) *endpointStats {
	f.statsMu.Lock()
	defer f.statsMu.Unlock()
	s, ok := f.stats[subject]
	if !ok {
		s = &endpointStats{}
		f.stats[subject] = s
	}
	return s
}
