package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gwmcp/gw/gateway"
	"github.com/gwmcp/gw/transport/jsonrpc"
	"github.com/gwmcp/gw/transport/natsface"
)

// faceHandler serves the NATS face's requests with the gateway: the
// principal of the subject becomes the caller the authorizer sees.
type faceHandler struct{ g *gateway.Gateway }

type streamingKey struct{}

func (h *faceHandler) Serve(ctx context.Context, req *natsface.Request) (json.RawMessage, error) {
	ctx = gateway.WithCaller(ctx, gateway.Caller{ID: req.Principal})
	if req.Progress != nil {
		ctx = context.WithValue(ctx, streamingKey{}, true)
	}
	switch req.Method {
	case "tools/list":
		return listResult("tools", h.g.ListTools(ctx))
	case "tools/call":
		return h.g.CallTool(ctx, req.Params, gateway.CallOptions{Progress: req.Progress})
	case "prompts/list":
		return listResult("prompts", h.g.ListPrompts(ctx))
	case "prompts/get":
		return h.g.GetPrompt(ctx, req.Params)
	case "resources/list":
		resources, templates := h.g.ListResources(ctx)
		out := map[string][]json.RawMessage{"resources": rawItems(resources), "resourceTemplates": rawItems(templates)}
		return json.Marshal(out)
	case "resources/read":
		return h.g.ReadResource(ctx, req.Params)
	case "servers/list":
		return json.Marshal(map[string]any{"servers": h.g.Servers()})
	}
	return nil, &jsonrpc.Error{Code: jsonrpc.CodeMethodNotFound, Message: fmt.Sprintf("gw: unknown method %q", req.Method)}
}

func rawItems(entries []gateway.Entry) []json.RawMessage {
	out := make([]json.RawMessage, 0, len(entries))
	for _, e := range entries {
		out = append(out, e.JSON)
	}
	return out
}

func listResult(key string, entries []gateway.Entry) (json.RawMessage, error) {
	return json.Marshal(map[string][]json.RawMessage{key: rawItems(entries)})
}

// clientHandler answers servers' sampling, elicitation and roots requests
// through NATS: to the calling agent when it streams (modern era, where the
// request belongs to a call), else to the LLM-host subject.
type clientHandler struct {
	nc         *nats.Conn
	llmSubject string
	timeout    time.Duration
}

// Supports declares a client feature only when someone can serve it: an
// LLM host, or (per request, modern era) a caller that streams.
func (h clientHandler) Supports(ctx context.Context, method string) bool {
	switch method {
	case gateway.MethodSampling, gateway.MethodElicitation, gateway.MethodRoots:
	default:
		return false
	}
	streaming, _ := ctx.Value(streamingKey{}).(bool)
	return h.llmSubject != "" || streaming
}

func (h clientHandler) HandleClientRequest(ctx context.Context, req gateway.ClientRequest) (json.RawMessage, error) {
	if input, ok := natsface.InputFromContext(ctx); ok {
		return input(ctx, req.Method, req.Params)
	}
	// A legacy server asking on its own: no call to attribute it to.
	if h.llmSubject == "" {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeMethodNotFound, Message: "gw: no LLM host configured (nats.llm_subject) for " + req.Method}
	}
	body, _ := json.Marshal(map[string]any{"principal": "", "server": req.Server, "method": req.Method, "params": req.Params})
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	msg, err := h.nc.RequestWithContext(ctx, h.llmSubject, body)
	if err != nil {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: fmt.Sprintf("gw: %s via %s: %v", req.Method, h.llmSubject, err)}
	}
	var answer struct {
		Result json.RawMessage `json:"result"`
		Error  *jsonrpc.Error  `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &answer); err != nil {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: "gw: LLM host answered invalid JSON"}
	}
	if answer.Error != nil {
		return nil, answer.Error
	}
	return answer.Result, nil
}

// eventBridge publishes gateway events on NATS. The gateway must never wait
// on NATS, so events go through a bounded queue to one publisher goroutine;
// when the queue is full, events are dropped and counted. A newer catalog
// replaces an older one still queued.
type eventBridge struct {
	face *natsface.Face
	log  *slog.Logger
	q    chan gateway.Event
	done chan struct{}
	once sync.Once

	mu      sync.Mutex
	dropped int
}

func newEventBridge(face *natsface.Face, log *slog.Logger) *eventBridge {
	b := &eventBridge{face: face, log: log, q: make(chan gateway.Event, 1024), done: make(chan struct{})}
	go b.run()
	return b
}

func (b *eventBridge) HandleEvent(e gateway.Event) {
	select {
	case b.q <- e:
	default:
		b.mu.Lock()
		b.dropped++
		n := b.dropped
		b.mu.Unlock()
		if n&(n-1) == 0 {
			b.log.Warn("NATS event queue full; events dropped", "dropped", n)
		}
	}
}

func (b *eventBridge) run() {
	defer close(b.done)
	for e := range b.q {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := b.publish(ctx, e); err != nil && !errors.Is(err, context.Canceled) {
			b.log.Warn("could not publish event", "error", err)
		}
		cancel()
	}
}

func (b *eventBridge) publish(ctx context.Context, e gateway.Event) error {
	switch e.Kind {
	case gateway.EventCatalogChanged:
		names := make([]string, 0, len(e.Catalog.Tools))
		for _, t := range e.Catalog.Tools {
			names = append(names, t.Name)
		}
		if err := b.face.SetTools(names); err != nil {
			b.log.Error("could not update tool endpoints", "error", err)
		}
		catalog, err := json.Marshal(map[string]any{"tools": rawItems(e.Catalog.Tools), "prompts": rawItems(e.Catalog.Prompts)})
		if err != nil {
			return err
		}
		return b.face.PublishCatalog(ctx, catalog)
	case gateway.EventServerStatus:
		st, err := json.Marshal(e.Status)
		if err != nil {
			return err
		}
		return b.face.PublishServerStatus(ctx, e.Server, st)
	case gateway.EventServerNotification:
		return b.face.PublishNotification(ctx, e.Server, natsface.NotificationKind(e.Method), e.Params)
	}
	return nil
}

// close stops the publisher after the queued events are out.
func (b *eventBridge) close() {
	b.once.Do(func() { close(b.q) })
	<-b.done
}
