// Package router maps MCP methods onto a gateway, once, for every face: the
// NATS face today, the stdio and Streamable HTTP faces next. A face builds a
// face.Request; the router establishes the caller, routes the method and
// returns the result untouched.
//
// Server-to-client requests (sampling, elicitation, roots) that a server
// raises while serving a face's request go back to that request's caller
// when it can answer them (Clients), else to a fallback.
package router

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/gwmcp/gw/gateway"
	"github.com/gwmcp/gw/transport/face"
	"github.com/gwmcp/gw/transport/jsonrpc"
)

// Router serves face requests with a gateway. It implements face.Handler.
type Router struct {
	g    *gateway.Gateway
	view *View // nil: the whole namespace
}

// New returns a router over g's whole namespace.
func New(g *gateway.Gateway) *Router { return &Router{g: g} }

// WithView returns a router that serves only the items in v: lists leave
// the others out, and calls to them fail as calls to unknown items do.
func (r *Router) WithView(v *View) *Router { return &Router{g: r.g, view: v} }

// method is how one MCP method is served.
type method func(r *Router, ctx context.Context, req *face.Request) (json.RawMessage, error)

// methods is the table of every method a face may pass on. servers/list is
// gw's own.
var methods = map[string]method{
	"ping": func(*Router, context.Context, *face.Request) (json.RawMessage, error) {
		return json.RawMessage(`{}`), nil
	},
	"tools/list": func(r *Router, ctx context.Context, _ *face.Request) (json.RawMessage, error) {
		return listResult("tools", r.view.filter(r.g.ListTools(ctx), true))
	},
	"tools/call": func(r *Router, ctx context.Context, req *face.Request) (json.RawMessage, error) {
		if err := r.view.checkNamed(req.Params, "tool", r.g.Catalog().Tool); err != nil {
			return nil, err
		}
		opts := gateway.CallOptions{Progress: req.Progress}
		if req.Log != nil {
			name, _ := jsonrpc.StringMember(req.Params, "name")
			if e, ok := r.g.Catalog().Tool(name); ok {
				opts.Log = func(params json.RawMessage) { req.Log(NameLogger(params, e.Server)) }
			}
		}
		return r.g.CallTool(ctx, req.Params, opts)
	},
	"prompts/list": func(r *Router, ctx context.Context, _ *face.Request) (json.RawMessage, error) {
		return listResult("prompts", r.view.filter(r.g.ListPrompts(ctx), true))
	},
	"prompts/get": func(r *Router, ctx context.Context, req *face.Request) (json.RawMessage, error) {
		if err := r.view.checkNamed(req.Params, "prompt", r.g.Catalog().Prompt); err != nil {
			return nil, err
		}
		return r.g.GetPrompt(ctx, req.Params)
	},
	// resources/list carries the templates too, which NATS callers read
	// there; MCP clients ignore the extra member and ask
	// resources/templates/list.
	"resources/list": func(r *Router, ctx context.Context, _ *face.Request) (json.RawMessage, error) {
		resources, templates := r.g.ListResources(ctx)
		return json.Marshal(map[string][]json.RawMessage{"resources": RawItems(r.view.filter(resources, false)), "resourceTemplates": RawItems(r.view.filter(templates, false))})
	},
	"resources/templates/list": func(r *Router, ctx context.Context, _ *face.Request) (json.RawMessage, error) {
		_, templates := r.g.ListResources(ctx)
		return listResult("resourceTemplates", r.view.filter(templates, false))
	},
	"resources/read": func(r *Router, ctx context.Context, req *face.Request) (json.RawMessage, error) {
		if _, err := r.resourceURI(req.Params); err != nil {
			return nil, err
		}
		return r.g.ReadResource(ctx, req.Params)
	},
	"resources/subscribe": func(r *Router, ctx context.Context, req *face.Request) (json.RawMessage, error) {
		uri, err := r.resourceURI(req.Params)
		if err != nil {
			return nil, err
		}
		return json.RawMessage(`{}`), r.g.SubscribeResource(ctx, uri)
	},
	"resources/unsubscribe": func(r *Router, ctx context.Context, req *face.Request) (json.RawMessage, error) {
		uri, err := r.resourceURI(req.Params)
		if err != nil {
			return nil, err
		}
		return json.RawMessage(`{}`), r.g.UnsubscribeResource(ctx, uri)
	},
	"completion/complete": func(r *Router, ctx context.Context, req *face.Request) (json.RawMessage, error) {
		if r.view != nil {
			if err := r.view.checkRef(req.Params, r.g.Catalog()); err != nil {
				return nil, err
			}
		}
		return r.g.Complete(ctx, req.Params)
	},
	// A face filters what it forwards by its client's level; the servers
	// are asked for that level too (the last client's wins), since some
	// log nothing until a level is set.
	"logging/setLevel": func(r *Router, ctx context.Context, req *face.Request) (json.RawMessage, error) {
		level, ok := jsonrpc.StringMember(req.Params, "level")
		if !ok || level == "" {
			return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "gw: params.level must be a string"}
		}
		r.g.SetLogLevel(ctx, level)
		return json.RawMessage(`{}`), nil
	},
	"servers/list": func(r *Router, _ context.Context, _ *face.Request) (json.RawMessage, error) {
		res := map[string]any{"servers": r.g.Servers()}
		if ch := r.g.Changes(); len(ch) > 0 {
			res["changedTools"] = ch // tools whose definitions differ from their pins
		}
		return json.Marshal(res)
	},
}

// Methods lists the methods the router serves, sorted.
func Methods() []string {
	out := make([]string, 0, len(methods))
	for m := range methods {
		out = append(out, m)
	}
	slices.Sort(out)
	return out
}

// Serve routes req. The caller the authorizer sees is req.Principal; the
// request's Input, if any, answers what servers ask while serving it.
func (r *Router) Serve(ctx context.Context, req *face.Request) (json.RawMessage, error) {
	serve, ok := methods[req.Method]
	if !ok {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeMethodNotFound, Message: fmt.Sprintf("gw: unknown method %q", req.Method)}
	}
	ctx = gateway.WithCaller(ctx, gateway.Caller{ID: req.Principal})
	// Marked even without an Input: a request whose caller cannot answer
	// is not the same as no request at all (see Clients.Declare).
	ctx = context.WithValue(ctx, inputKey{}, requestInput{req.Input})
	if t := r.g.Tracer(); t != nil {
		return r.serveTraced(ctx, t, serve, req)
	}
	return serve(r, ctx, req)
}

type inputKey struct{}

// requestInput is what a face request's context carries: its Input, nil
// when its caller cannot answer anything.
type requestInput struct{ in face.Input }

// inputOf returns the Input of the face request ctx belongs to, and
// whether ctx belongs to one at all.
func inputOf(ctx context.Context) (face.Input, bool) {
	ri, ok := ctx.Value(inputKey{}).(requestInput)
	return ri.in, ok
}

// Clients is the gateway.ClientHandler of a gateway served through the
// router: a server's sampling, elicitation or roots request raised while
// serving a face request goes to that request's caller when it can answer
// it; otherwise (no caller, or a legacy server asking on its own) to
// Fallback, which may be nil.
type Clients struct {
	Fallback gateway.ClientHandler
	// Declare offers the client features to servers outside any request
	// (a legacy server's initialize, at gw's start), because faces whose
	// clients may answer them serve this gateway: a legacy server's
	// request then reaches the caller whose call is in flight (the gateway
	// asks in that call's context), or fails if nobody can answer.
	Declare bool
}

// Supports declares a client feature only when someone can serve it: the
// face request's caller, the fallback, or (outside any request) the faces
// when Declare is set.
func (c Clients) Supports(ctx context.Context, method string) bool {
	if !isClientMethod(method) {
		return false
	}
	in, inRequest := inputOf(ctx)
	if in != nil && in.Supports(method) {
		return true
	}
	if !inRequest && c.Declare {
		return true
	}
	return c.Fallback != nil && c.Fallback.Supports(ctx, method)
}

// HandleClientRequest asks the caller, else the fallback.
func (c Clients) HandleClientRequest(ctx context.Context, req gateway.ClientRequest) (json.RawMessage, error) {
	if in, _ := inputOf(ctx); in != nil && in.Supports(req.Method) {
		if keyed, ok := in.(face.KeyedInput); ok && req.Key != "" {
			return keyed.AskAs(ctx, req.Key, req.Method, req.Params)
		}
		return in.Ask(ctx, req.Method, req.Params)
	}
	if c.Fallback != nil && c.Fallback.Supports(ctx, req.Method) {
		return c.Fallback.HandleClientRequest(ctx, req)
	}
	return nil, &jsonrpc.Error{Code: jsonrpc.CodeMethodNotFound, Message: "gw: nobody connected can answer " + req.Method}
}

func isClientMethod(m string) bool {
	return m == gateway.MethodSampling || m == gateway.MethodElicitation || m == gateway.MethodRoots
}

// resourceURI reads params.uri and checks that the view serves it.
func (r *Router) resourceURI(params json.RawMessage) (string, error) {
	uri, ok := jsonrpc.StringMember(params, "uri")
	if !ok || uri == "" {
		return "", &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "gw: params.uri must be a non-empty string"}
	}
	if r.view != nil {
		if e, found := r.g.Catalog().ResourceOwner(uri); !found || !r.view.has(e, false) {
			return "", &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: fmt.Sprintf("%v: %q", gateway.ErrUnknownResource, uri)}
		}
	}
	return uri, nil
}

// RawItems returns the entries' JSON objects, untouched, for a list result.
func RawItems(entries []gateway.Entry) []json.RawMessage {
	out := make([]json.RawMessage, 0, len(entries))
	for _, e := range entries {
		out = append(out, e.JSON)
	}
	return out
}

func listResult(key string, entries []gateway.Entry) (json.RawMessage, error) {
	return json.Marshal(map[string][]json.RawMessage{key: RawItems(entries)})
}

// NameLogger names the server in a log message's logger ("notes", or
// "notes/db" when the server named one), so a client can tell the servers'
// messages apart.
func NameLogger(params json.RawMessage, server string) json.RawMessage {
	var m map[string]json.RawMessage
	if json.Unmarshal(params, &m) != nil {
		return params
	}
	logger := server
	if own, ok := jsonrpc.StringMember(params, "logger"); ok && own != "" {
		logger += "/" + own
	}
	m["logger"], _ = json.Marshal(logger)
	out, err := json.Marshal(m)
	if err != nil {
		return params
	}
	return out
}

// ParamHeaders implements face.ToolHeaders from the tool's inputSchema as
// its server listed it: every x-mcp-header reachable through properties
// keys alone (what the 2026-07-28 Streamable HTTP transport allows).
func (r *Router) ParamHeaders(tool string) map[string][]string {
	e, ok := r.g.Catalog().Tool(tool)
	if !ok || !r.view.has(e, true) {
		return nil
	}
	return paramHeaders(e.JSON)
}

// paramHeaders reads the x-mcp-header annotations of a tool definition.
func paramHeaders(tool json.RawMessage) map[string][]string {
	// Every modern tools/call over HTTP asks, and few tools annotate any
	// argument: a schema whose text cannot hold the key (not even with
	// \u escapes) has none, and is not decoded.
	schema := jsonrpc.Member(tool, "inputSchema")
	if !bytes.Contains(schema, []byte("x-mcp-header")) && !bytes.Contains(schema, []byte(`\u`)) {
		return nil
	}
	out := map[string][]string{}
	collectHeaders(schema, nil, out, 0)
	if len(out) == 0 {
		return nil
	}
	return out
}

// collectHeaders walks a schema's properties (to a sane depth).
func collectHeaders(schema json.RawMessage, path []string, out map[string][]string, depth int) {
	var s map[string]json.RawMessage
	if depth > 16 || json.Unmarshal(schema, &s) != nil {
		return
	}
	if name, ok := jsonrpc.StringMember(schema, "x-mcp-header"); ok && name != "" && len(path) > 0 {
		out[name] = slices.Clone(path)
	}
	var props map[string]json.RawMessage
	if json.Unmarshal(s["properties"], &props) != nil {
		return
	}
	for key, sub := range props {
		collectHeaders(sub, append(path, key), out, depth+1)
	}
}
