package natsface

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gwmcp/gw/transport/jsonrpc"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// inputWait is an input request waiting for the streaming caller's answer.
type inputWait struct {
	principal string           // only this principal's answer is taken
	ch        chan inputAnswer // buffered 1: the one answer, sent by whoever removed it from f.inputs
}

type inputAnswer struct {
	result json.RawMessage
	err    error
}

// llmRequest is the body of a request to Options.LLMSubject.
type llmRequest struct {
	Principal string          `json:"principal"`
	Method    string          `json:"method"`
	Params    json.RawMessage `json:"params,omitempty"`
}

// input is the call's InputFunc.
func (c *call) input(ctx context.Context, method string, params json.RawMessage) (json.RawMessage, error) {
	if method == "" {
		return nil, internalError("input request without a method")
	}
	if c.stream {
		return c.askCaller(ctx, method, params)
	}
	return c.f.askLLM(ctx, c.principal, method, params)
}

// askCaller sends an input frame to the streaming caller and waits for its answer on
// Prefix.req.{principal}.at.{gw}.input.{id}.
func (c *call) askCaller(ctx context.Context, method string, params json.RawMessage) (json.RawMessage, error) {
	f := c.f
	id := newID()
	data, err := json.Marshal(Frame{Type: FrameInput, ID: id, Gateway: f.opts.Gateway, Method: method, Params: params})
	if err != nil {
		return nil, internalError("%s params are not JSON", method)
	}
	w := &inputWait{principal: c.principal, ch: make(chan inputAnswer, 1)}
	f.mu.Lock()
	f.inputs[id] = w
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.inputs, id)
		f.mu.Unlock()
	}()

	c.mu.Lock()
	if c.done {
		c.mu.Unlock()
		return nil, internalError("cannot ask for %s: the call is already answered", method)
	}
	err = c.send(c.newHeader(FrameInput), data)
	c.mu.Unlock()
	switch {
	case errors.Is(err, nats.ErrMaxPayload):
		return nil, internalError("%s request of %d bytes exceeds the max payload", method, len(data))
	case err != nil:
		return nil, internalError("sending %s request to the caller: %v", method, err)
	}
	select {
	case a := <-w.ch:
		return a.result, a.err
	case <-ctx.Done():
		return nil, fmt.Errorf("natsface: waiting for the caller's answer to %s: %w", method, ctx.Err())
	}
}

// handleInput takes a caller's answer to an input request. It runs on the input subscription's
// goroutine and never blocks. The answer is taken only if the principal token of its subject is
// the one of the call that asked; an unknown id and another principal get the same refusal, so a
// caller cannot probe for other callers' requests.
func (f *Face) handleInput(msg *nats.Msg) {
	rest := strings.TrimPrefix(msg.Subject, f.reqPrefix)
	principal, _, _ := strings.Cut(rest, ".")
	id := rest[strings.LastIndexByte(rest, '.')+1:]
	ans, err := decodeAnswer(msg.Data)
	if err != nil {
		f.respondInput(msg, invalidParams("bad input answer: %v", err))
		return
	}
	f.mu.Lock()
	w := f.inputs[id]
	if w == nil || w.principal != principal {
		f.mu.Unlock()
		f.log.Debug("input answer refused", "subject", msg.Subject)
		f.respondInput(msg, invalidParams("no input request %q waits for an answer from this caller", id))
		return
	}
	delete(f.inputs, id)
	f.mu.Unlock()
	w.ch <- ans
	f.respondInput(msg, nil)
}

// respondInput acknowledges an input answer with {} or refuses it with an error object and the
// micro error headers.
func (f *Face) respondInput(msg *nats.Msg, e *jsonrpc.Error) {
	if msg.Reply == "" {
		return
	}
	out := &nats.Msg{Subject: msg.Reply, Header: nats.Header{HeaderGateway: []string{f.opts.Gateway}}, Data: []byte("{}")}
	if e != nil {
		out.Header[micro.ErrorCodeHeader] = []string{strconv.FormatInt(e.Code, 10)}
		out.Header[micro.ErrorHeader] = []string{headerValue(e.Message)}
		out.Data, _ = json.Marshal(e)
	}
	if err := f.nc.PublishMsg(out); err != nil {
		f.log.Debug("answering an input answer", "error", err)
	}
}

// decodeAnswer decodes {"result":…} or {"error":{…}} strictly: exactly one of the two keys.
func decodeAnswer(data []byte) (inputAnswer, error) {
	fields, err := decodeObject(data, []string{"result", "error"})
	if err != nil {
		return inputAnswer{}, err
	}
	res, hasRes := fields["result"]
	eraw, hasErr := fields["error"]
	switch {
	case hasRes == hasErr:
		return inputAnswer{}, errors.New(`want exactly one of "result" and "error"`)
	case hasErr:
		var e jsonrpc.Error
		if err := e.UnmarshalJSON(eraw); err != nil {
			return inputAnswer{}, err
		}
		return inputAnswer{err: &e}, nil
	case isNull(res):
		return inputAnswer{}, errors.New(`"result" is null`)
	}
	return inputAnswer{result: res}, nil
}

// askLLM sends an input request to Options.LLMSubject (a queue group of LLM hosts) and returns
// its answer. Its body is {"principal":…,"method":…,"params":…}; the answer is {"result":…} or
// {"error":{…}}, or an error reply with micro's error headers.
func (f *Face) askLLM(ctx context.Context, principal, method string, params json.RawMessage) (json.RawMessage, error) {
	subj := f.opts.LLMSubject
	if subj == "" {
		return nil, internalError("cannot ask for %s: the caller did not opt into streaming (%s: 1) and no LLM subject is configured",
			method, HeaderStream)
	}
	body, err := json.Marshal(llmRequest{Principal: principal, Method: method, Params: params})
	if err != nil {
		return nil, internalError("%s params are not JSON", method)
	}
	msg := nats.NewMsg(subj)
	msg.Data = body
	msg.Header.Set(HeaderGateway, f.opts.Gateway)
	if dl, ok := ctx.Deadline(); ok {
		msg.Header.Set(HeaderDeadline, dl.UTC().Format(time.RFC3339Nano))
	}
	resp, err := f.nc.RequestMsgWithContext(ctx, msg)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return nil, internalError("no LLM host answers on %q for %s (no responders)", subj, method)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return nil, internalError("the LLM host on %q did not answer %s before the deadline", subj, method)
	case err != nil:
		return nil, internalError("asking the LLM host on %q for %s: %v", subj, method, err)
	}
	if code := resp.Header.Get(micro.ErrorCodeHeader); code != "" {
		var e jsonrpc.Error
		if e.UnmarshalJSON(resp.Data) == nil {
			return nil, &e
		}
		n, perr := strconv.ParseInt(code, 10, 64)
		if perr != nil {
			n = jsonrpc.CodeInternalError
		}
		return nil, &jsonrpc.Error{Code: n, Message: resp.Header.Get(micro.ErrorHeader)}
	}
	ans, err := decodeAnswer(resp.Data)
	if err != nil {
		return nil, internalError("the LLM host on %q sent a bad answer to %s: %v", subj, method, err)
	}
	return ans.result, ans.err
}

// newID returns a random, unguessable id that is a valid subject token.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}
