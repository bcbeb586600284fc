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
	g *gateway.Gateway
}

// New returns a router over g.
func New(g *gateway.Gateway) *Router { return &Router{g: g} }

// method is how one MCP method is served.
type method func(r *Router, ctx context.Context, req *face.Request) (json.RawMessage, error)

// methods is the table of every method a face may pass on. servers/list is
// gw's own.
var methods = map[string]method{
	"ping": func(*Router, context.Context, *face.Request) (json.RawMessage, error) {
		return json.RawMessage(`{}`), nil
	},
	"tools/list": func(r *Router, ctx context.Context, _ *face.Request) (json.RawMessage, error) {
		return listResult("tools", r.g.ListTools(ctx))
	},
	"tools/call": func(r *Router, ctx context.Context, req *face.Request) (json.RawMessage, error) {
		return r.g.CallTool(ctx, req.Params, gateway.CallOptions{Progress: req.Progress})
	},
	"prompts/list": func(r *Router, ctx context.Context, _ *face.Request) (json.RawMessage, error) {
		return listResult("prompts", r.g.ListPrompts(ctx))
	},
	"prompts/get": func(r *Router, ctx context.Context, req *face.Request) (json.RawMessage, error) {
		return r.g.GetPrompt(ctx, req.Params)
	},
	// resources/list carries the templates too, which NATS callers read
	// there; MCP clients ignore the extra member and ask
	// resources/templates/list.
	"resources/list": func(r *Router, ctx context.Context, _ *face.Request) (json.RawMessage, error) {
		resources, templates := r.g.ListResources(ctx)
		return json.Marshal(map[string][]json.RawMessage{"resources": RawItems(resources), "resourceTemplates": RawItems(templates)})
	},
	"resources/templates/list": func(r *Router, ctx context.Context, _ *face.Request) (json.RawMessage, error) {
		_, templates := r.g.ListResources(ctx)
		return listResult("resourceTemplates", templates)
	},
	"resources/read": func(r *Router, ctx context.Context, req *face.Request) (json.RawMessage, error) {
		return r.g.ReadResource(ctx, req.Params)
	},
	"resources/subscribe": func(r *Router, ctx context.Context, req *face.Request) (json.RawMessage, error) {
		uri, err := uriParam(req.Params)
		if err != nil {
			return nil, err
		}
		return json.RawMessage(`{}`), r.g.SubscribeResource(ctx, uri)
	},
	"resources/unsubscribe": func(r *Router, ctx context.Context, req *face.Request) (json.RawMessage, error) {
		uri, err := uriParam(req.Params)
		if err != nil {
			return nil, err
		}
		return json.RawMessage(`{}`), r.g.UnsubscribeResource(ctx, uri)
	},
	"servers/list": func(r *Router, _ context.Context, _ *face.Request) (json.RawMessage, error) {
		return json.Marshal(map[string]any{"servers": r.g.Servers()})
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
	if req.Input != nil {
		ctx = context.WithValue(ctx, inputKey{}, req.Input)
	}
	return serve(r, ctx, req)
}

type inputKey struct{}

// Clients is the gateway.ClientHandler of a gateway served through the
// router: a server's sampling, elicitation or roots request raised while
// serving a face request goes to that request's caller when it can answer
// it; otherwise (no caller, or a legacy server asking on its own) to
// Fallback, which may be nil.
type Clients struct {
	Fallback gateway.ClientHandler
}

// Supports declares a client feature only when someone can serve it.
func (c Clients) Supports(ctx context.Context, method string) bool {
	if !isClientMethod(method) {
		return false
	}
	if in, ok := ctx.Value(inputKey{}).(face.Input); ok && in.Supports(method) {
		return true
	}
	return c.Fallback != nil && c.Fallback.Supports(ctx, method)
}

// HandleClientRequest asks the caller, else the fallback.
func (c Clients) HandleClientRequest(ctx context.Context, req gateway.ClientRequest) (json.RawMessage, error) {
	if in, ok := ctx.Value(inputKey{}).(face.Input); ok && in.Supports(req.Method) {
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

// uriParam reads params.uri, by its exact key: params come from callers.
func uriParam(params json.RawMessage) (string, error) {
	var p map[string]json.RawMessage
	var uri string
	if json.Unmarshal(params, &p) != nil || json.Unmarshal(p["uri"], &uri) != nil || uri == "" {
		return "", &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "gw: params.uri must be a non-empty string"}
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
