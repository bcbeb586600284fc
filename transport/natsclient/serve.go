package natsclient

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/gwmcp/gw/transport/face"
	"github.com/gwmcp/gw/transport/jsonrpc"
	"github.com/gwmcp/gw/transport/natsface"
)

// replyGrace is how much longer than a request's deadline the client waits
// for its answer, so that the gateway's own deadline error arrives.
const replyGrace = 2 * time.Second

// errNoResponders means no gateway subscribes the subject.
var errNoResponders = errors.New("natsclient: no responders")

// clientMethods are the server-to-client requests a streaming caller may be
// asked for.
var clientMethods = []string{"sampling/createMessage", "elicitation/create", "roots/list"}

// Serve implements face.Handler: it answers req from the union or sends it
// to the gateways (see the package doc).
func (c *Client) Serve(ctx context.Context, req *face.Request) (json.RawMessage, error) {
	switch req.Method {
	case "ping", "logging/setLevel":
		return json.RawMessage(`{}`), nil
	}
	select {
	case <-c.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	switch req.Method {
	case "tools/list":
		return c.snapshot().toolsList, nil
	case "prompts/list":
		return c.snapshot().promptsList, nil
	case "tools/call":
		name, err := nameParam(req.Params)
		if err != nil {
			return nil, err
		}
		res, err := c.request(ctx, c.reqPrefix+"tools.call."+natsface.EncodeToken(name), req)
		if errors.Is(err, errNoResponders) {
			return nil, jsonrpc.NewError(jsonrpc.CodeInvalidParams, "gw: unknown tool %q: no gateway hosts it", name)
		}
		return res, err
	case "prompts/get":
		name, err := nameParam(req.Params)
		if err != nil {
			return nil, err
		}
		hosts := c.snapshot().promptHosts[name]
		res, err := c.tryEach(ctx, hosts, "prompts.get."+natsface.EncodeToken(name), req)
		if errors.Is(err, errNoResponders) || (err == nil && res == nil) {
			return nil, jsonrpc.NewError(jsonrpc.CodeInvalidParams, "gw: unknown prompt %q", name)
		}
		return res, err
	case "resources/list":
		return c.gather(ctx, "resources.list", req, "resources", "resourceTemplates")
	case "resources/templates/list":
		return c.gather(ctx, "resources.templates.list", req, "resourceTemplates")
	case "resources/read", "resources/subscribe", "resources/unsubscribe", "completion/complete":
		res, err := c.tryEach(ctx, c.snapshot().gateways, dotted(req.Method), req)
		if errors.Is(err, errNoResponders) || (err == nil && res == nil) {
			return nil, jsonrpc.NewError(jsonrpc.CodeInvalidParams, "gw: no gateway serves this %s", req.Method)
		}
		return res, err
	}
	if req.Method == "" || strings.ContainsAny(req.Method, ".*> \t\r\n") {
		return nil, jsonrpc.NewError(jsonrpc.CodeMethodNotFound, "gw: unknown method %q", req.Method)
	}
	res, err := c.request(ctx, c.reqPrefix+dotted(req.Method), req)
	if errors.Is(err, errNoResponders) {
		return nil, jsonrpc.NewError(jsonrpc.CodeMethodNotFound, "gw: no gateway serves %q", req.Method)
	}
	return res, err
}

func dotted(method string) string { return strings.ReplaceAll(method, "/", ".") }

// nameParam reads params.name, by exact key.
func nameParam(params json.RawMessage) (string, error) {
	var p map[string]json.RawMessage
	var name string
	if json.Unmarshal(params, &p) != nil || json.Unmarshal(p["name"], &name) != nil {
		return "", jsonrpc.NewError(jsonrpc.CodeInvalidParams, "gw: params.name must be a string")
	}
	return name, nil
}

// isUnknown reports whether err says the gateway does not have what was
// asked, so another gateway may.
func isUnknown(err error) bool {
	var e *jsonrpc.Error
	return errors.Is(err, errNoResponders) ||
		errors.As(err, &e) && (e.Code == jsonrpc.CodeInvalidParams || e.Code == jsonrpc.CodeResourceNotFoundLegacy)
}

// tryEach asks the gateways one after another (at.{gw}.suffix) until one
// answers other than "unknown"; it returns that answer, or the last
// "unknown" error (nil, nil without gateways).
func (c *Client) tryEach(ctx context.Context, gateways []string, suffix string, req *face.Request) (json.RawMessage, error) {
	var last error
	for _, gw := range gateways {
		res, err := c.request(ctx, c.reqPrefix+"at."+gw+"."+suffix, req)
		if err == nil || !isUnknown(err) {
			return res, err
		}
		last = err
	}
	return nil, last
}

// gather asks every gateway (at.{gw}.suffix) at once and merges the arrays
// under keys, in gateway order, each item once. A gateway that fails is
// left out (logged); if all fail, the first error is returned.
func (c *Client) gather(ctx context.Context, suffix string, req *face.Request, keys ...string) (json.RawMessage, error) {
	gateways := c.snapshot().gateways
	plain := &face.Request{Method: req.Method, Params: req.Params, Principal: req.Principal}
	type answer struct {
		res json.RawMessage
		err error
	}
	answers := make([]answer, len(gateways))
	var wg sync.WaitGroup
	for i, gw := range gateways {
		wg.Go(func() {
			res, err := c.request(ctx, c.reqPrefix+"at."+gw+"."+suffix, plain)
			answers[i] = answer{res, err}
		})
	}
	wg.Wait()
	merged := map[string][]json.RawMessage{}
	seen := map[string]bool{}
	var firstErr error
	ok := len(gateways) == 0
	for i, a := range answers {
		if a.err != nil {
			c.log.Warn("a gateway did not list", "gateway", gateways[i], "method", req.Method, "error", a.err)
			if firstErr == nil {
				firstErr = a.err
			}
			continue
		}
		ok = true
		var top map[string]json.RawMessage
		if err := json.Unmarshal(a.res, &top); err != nil {
			continue
		}
		for _, key := range keys {
			var list []json.RawMessage
			if json.Unmarshal(top[key], &list) != nil {
				continue
			}
			for _, it := range list {
				if k := key + "\x00" + string(it); !seen[k] {
					seen[k] = true
					merged[key] = append(merged[key], it)
				}
			}
		}
	}
	if !ok {
		return nil, firstErr
	}
	for _, key := range keys {
		if merged[key] == nil {
			merged[key] = []json.RawMessage{}
		}
	}
	return json.Marshal(merged)
}

// streams reports whether req should get streaming frames: it takes
// progress, or its caller can answer what servers ask.
func streams(req *face.Request) bool {
	if req.Progress != nil {
		return true
	}
	if req.Input == nil {
		return false
	}
	for _, m := range clientMethods {
		if req.Input.Supports(m) {
			return true
		}
	}
	return false
}

// request sends req to subject and returns its result: errNoResponders when
// nobody subscribes it, the gateway's *jsonrpc.Error, or ctx's error.
func (c *Client) request(ctx context.Context, subject string, req *face.Request) (json.RawMessage, error) {
	timeout := c.opts.Timeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
		if timeout <= 0 {
			return nil, context.DeadlineExceeded
		}
	}
	msg := nats.NewMsg(subject)
	msg.Data = req.Params
	msg.Header.Set(natsface.HeaderTimeout, strconv.FormatInt(max(timeout.Milliseconds(), 1), 10))
	wctx, cancel := context.WithTimeout(ctx, timeout+replyGrace)
	defer cancel()
	var (
		res json.RawMessage
		err error
	)
	if streams(req) {
		res, err = c.stream(wctx, msg, req)
	} else {
		var reply *nats.Msg
		reply, err = c.nc.RequestMsgWithContext(wctx, msg)
		if err == nil {
			res, err = c.final(wctx, reply)
		}
	}
	switch {
	case err == nil:
		return res, nil
	case errors.Is(err, nats.ErrNoResponders):
		return nil, errNoResponders
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case wctx.Err() != nil:
		return nil, jsonrpc.NewError(jsonrpc.CodeInternalError, "gw: no answer on %s within %v", subject, timeout.Round(time.Millisecond))
	}
	return nil, err
}

// final reads a plain (non-streaming) reply: an error reply, a claim check,
// or the result.
func (c *Client) final(ctx context.Context, msg *nats.Msg) (json.RawMessage, error) {
	if msg.Header.Get("Status") == "503" && len(msg.Data) == 0 {
		return nil, nats.ErrNoResponders
	}
	if err := ReplyError(msg); err != nil {
		return nil, err
	}
	if msg.Header.Get(natsface.HeaderClaimCheck) == "1" {
		return c.fetchClaimCheck(ctx, msg)
	}
	return msg.Data, nil
}

// ReplyError returns the error a gateway's plain reply carries, nil when it
// is not an error reply (it has no Nats-Service-Error-Code header): the
// *jsonrpc.Error of its body, or one made of its headers when the body is
// not one.
func ReplyError(msg *nats.Msg) error {
	code := msg.Header.Get(micro.ErrorCodeHeader)
	if code == "" {
		return nil
	}
	return replyError(msg.Data, code, msg.Header.Get(micro.ErrorHeader))
}

// replyError decodes an error reply's body, or makes one of its headers.
func replyError(body []byte, code, message string) error {
	var e jsonrpc.Error
	if e.UnmarshalJSON(body) == nil {
		return &e
	}
	n, err := strconv.ParseInt(code, 10, 64)
	if err != nil {
		n = jsonrpc.CodeInternalError
	}
	return &jsonrpc.Error{Code: n, Message: message}
}

func (c *Client) fetchClaimCheck(ctx context.Context, msg *nats.Msg) (json.RawMessage, error) {
	js, err := c.jetStream()
	if err != nil {
		return nil, err
	}
	data, err := natsface.FetchClaimCheck(ctx, js, msg)
	if err != nil {
		return nil, jsonrpc.NewError(jsonrpc.CodeInternalError, "gw: fetching a claim-checked result: %v", err)
	}
	return data, nil
}

// frame is a streaming frame's members, by exact key.
type frame struct {
	fields map[string]json.RawMessage
}

func decodeFrame(data []byte) (frame, error) {
	var f frame
	if err := json.Unmarshal(data, &f.fields); err != nil || f.fields == nil {
		return f, errors.New("a frame that is not a JSON object")
	}
	return f, nil
}

func (f frame) str(key string) string {
	var s string
	_ = json.Unmarshal(f.fields[key], &s)
	return s
}

// stream sends msg with Mcp-Stream: 1 and a reply inbox of its own, and
// follows the frames until the result or the error. Input frames are asked
// of req.Input each on a goroutine, which stream waits for before it
// returns.
func (c *Client) stream(ctx context.Context, msg *nats.Msg, req *face.Request) (json.RawMessage, error) {
	inbox := c.nc.NewRespInbox()
	sub, err := c.nc.SubscribeSync(inbox)
	if err != nil {
		return nil, err
	}
	defer func() { _ = sub.Unsubscribe() }()
	ictx, icancel := context.WithCancel(ctx)
	var inputs sync.WaitGroup
	defer func() {
		icancel()
		inputs.Wait()
	}()
	msg.Reply = inbox
	msg.Header.Set(natsface.HeaderStream, "1")
	if err := c.nc.PublishMsg(msg); err != nil {
		return nil, err
	}
	for {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return nil, err
		}
		kind := m.Header.Get(natsface.HeaderFrame)
		if kind == "" { // not a frame: a plain reply, or no responders
			return c.final(ctx, m)
		}
		if kind == natsface.FrameResult && m.Header.Get(natsface.HeaderClaimCheck) == "1" {
			return c.fetchClaimCheck(ctx, m)
		}
		f, err := decodeFrame(m.Data)
		if err != nil {
			return nil, jsonrpc.NewError(jsonrpc.CodeInternalError, "gw: a gateway sent %v", err)
		}
		switch kind {
		case natsface.FrameProgress:
			if req.Progress != nil && len(f.fields["params"]) > 0 {
				req.Progress(f.fields["params"])
			}
		case natsface.FrameInput:
			inputs.Go(func() { c.answerInput(ictx, req, f) })
		case natsface.FrameResult:
			res, ok := f.fields["result"]
			if !ok {
				return nil, jsonrpc.NewError(jsonrpc.CodeInternalError, "gw: a result frame without a result")
			}
			return res, nil
		case natsface.FrameError:
			return nil, replyError(f.fields["error"], m.Header.Get(micro.ErrorCodeHeader), m.Header.Get(micro.ErrorHeader))
		default:
			c.log.Debug("a frame of an unknown type; ignored", "type", kind)
		}
	}
}

// answerInput asks the caller what an input frame asks, and sends the
// answer to the gateway that asked.
func (c *Client) answerInput(ctx context.Context, req *face.Request, f frame) {
	id, gw, method := f.str("id"), f.str("gateway"), f.str("method")
	if !plainToken(id) || !plainToken(gw) {
		c.log.Warn("an input frame with a bad id or gateway; ignored", "id", id, "gateway", gw)
		return
	}
	var res json.RawMessage
	var err error
	if req.Input == nil || !req.Input.Supports(method) {
		err = jsonrpc.NewError(jsonrpc.CodeMethodNotFound, "gw: the client cannot answer %s", method)
	} else {
		res, err = req.Input.Ask(ctx, method, f.fields["params"])
	}
	var body []byte
	if err != nil {
		body, err = json.Marshal(map[string]*jsonrpc.Error{"error": jsonrpc.AsError(err)})
	} else {
		if len(res) == 0 {
			res = json.RawMessage(`{}`)
		}
		body, err = json.Marshal(map[string]json.RawMessage{"result": res})
	}
	if err != nil {
		c.log.Warn("an input answer that is not JSON; not sent", "method", method, "error", err)
		return
	}
	subject := c.reqPrefix + "at." + gw + ".input." + id
	reply, err := c.nc.RequestWithContext(ctx, subject, body)
	switch {
	case err != nil:
		c.log.Warn("sending an input answer", "subject", subject, "error", err)
	case reply.Header.Get(micro.ErrorCodeHeader) != "":
		c.log.Warn("the gateway refused an input answer", "subject", subject, "error", string(reply.Data))
	}
}

// plainToken reports whether s is a non-empty subject token of
// [A-Za-z0-9_-], as gateway names and input ids are.
func plainToken(s string) bool {
	return s != "" && natsface.EncodeToken(s) == s
}

// String names the changed lists, for logs.
func (k Change) String() string {
	var parts []string
	if k&ChangeTools != 0 {
		parts = append(parts, "tools")
	}
	if k&ChangePrompts != 0 {
		parts = append(parts, "prompts")
	}
	return strings.Join(parts, ",")
}
