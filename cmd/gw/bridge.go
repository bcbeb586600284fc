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
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gwmcp/gw/gateway"
	"github.com/gwmcp/gw/gateway/router"
	"github.com/gwmcp/gw/transport/face"
	"github.com/gwmcp/gw/transport/jsonrpc"
	"github.com/gwmcp/gw/transport/natsface"
)

// faceHandler adapts the NATS face to the router, which maps every MCP
// method onto the gateway: the principal of the subject becomes the caller
// the authorizer sees, and a streaming caller can be asked for what servers
// need mid-call.
type faceHandler struct{ g *gateway.Gateway }

func (h *faceHandler) Serve(ctx context.Context, req *natsface.Request) (json.RawMessage, error) {
	fr := &face.Request{Method: req.Method, Params: req.Params, Principal: req.Principal, Progress: req.Progress,
		Trace: face.Trace{Header: req.Header, Transport: face.TransportNATS, Destination: req.Subject}}
	if in, ok := natsface.InputFromContext(ctx); ok && req.Progress != nil {
		fr.Input = face.InputFunc(in)
	}
	return router.New(h.g).Serve(ctx, fr)
}

// clientHandler answers servers' sampling, elicitation and roots requests:
// to the calling agent when it streams (modern era, where the request
// belongs to a call), else to the LLM-host subject on NATS.
type clientHandler struct {
	nc         *nats.Conn
	llmSubject string
	timeout    time.Duration
	declare    bool // router.Clients.Declare: a face's clients may answer
}

func (h clientHandler) clients() router.Clients {
	return router.Clients{Fallback: llmHost(h), Declare: h.declare}
}

func (h clientHandler) Supports(ctx context.Context, method string) bool {
	return h.clients().Supports(ctx, method)
}

func (h clientHandler) HandleClientRequest(ctx context.Context, req gateway.ClientRequest) (json.RawMessage, error) {
	return h.clients().HandleClientRequest(ctx, req)
}

// llmHost asks the LLM host on nats.llm_subject: the fallback for requests
// no caller can answer, such as a legacy server asking on its own.
type llmHost clientHandler

func (h llmHost) Supports(context.Context, string) bool { return h.llmSubject != "" }

func (h llmHost) HandleClientRequest(ctx context.Context, req gateway.ClientRequest) (json.RawMessage, error) {
	body, _ := json.Marshal(map[string]any{"principal": "", "server": req.Server, "method": req.Method, "params": req.Params})
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	msg, err := h.nc.RequestWithContext(ctx, h.llmSubject, body)
	if err != nil {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: fmt.Sprintf("gw: %s via %s: %v", req.Method, h.llmSubject, err)}
	}
	// By exact key, like all untrusted JSON: "Error" is not "error".
	var answer map[string]json.RawMessage
	if err := json.Unmarshal(msg.Data, &answer); err != nil {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: "gw: LLM host answered invalid JSON"}
	}
	if raw, ok := answer["error"]; ok && string(raw) != "null" {
		var e jsonrpc.Error
		if err := json.Unmarshal(raw, &e); err != nil {
			return nil, &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: "gw: LLM host answered an invalid error"}
		}
		return nil, &e
	}
	return answer["result"], nil
}

// eventBridge publishes gateway events on NATS. The gateway must never wait
// on NATS, so events go through a bounded queue to one publisher goroutine,
// which publishes them in the order they came; when the queue is full,
// events are dropped and counted.
//
// Catalogs are not queued themselves: the newest one waits in catalog and a
// marker in the queue says where it goes out, so a newer catalog replaces an
// older one still waiting, and a catalog is never dropped (without room for
// a marker it goes out before the next queued event). The face publishes a
// catalog only when its bytes changed.
//
// A catalog that could not be published (NATS unreachable, or the catalog
// bucket without a quorum on this side of a partition) waits again and is
// tried every catalogRetry until it is out or a newer one replaces it: the
// bucket must end up holding what this gateway serves. Other events are
// tried for up to 5 s while no stream answers them (a stream electing a new
// leader), then logged and lost.
//
// The publisher runs from newEventBridge until close; close stops it once
// the events queued before are out. Nothing blocks on the publisher except
// flush, within its ctx.
type eventBridge struct {
	face *natsface.Face
	log  *slog.Logger
	q    chan bridgeItem
	stop chan struct{} // closed by close: the publisher drains q and returns
	done chan struct{} // closed when the publisher has returned
	once sync.Once

	mu            sync.Mutex
	dropped       int
	catalog       *gateway.Catalog // newest catalog not yet taken by the publisher
	catalogQueued bool             // a marker for catalog is in q
	catalogRetry  time.Time        // non-zero: catalog failed; try it again then
}

// bridgeItem is one entry of the queue: an event, a catalog marker (an
// EventCatalogChanged without its catalog), or a flush barrier.
type bridgeItem struct {
	event   gateway.Event
	barrier chan struct{} // closed by the publisher when it gets there
}

// flushTimeout bounds flush: a NATS that does not answer cannot hold up gw.
const flushTimeout = 10 * time.Second

// publishRetryWait is the pause between tries of an event that no stream
// answered.
const publishRetryWait = 250 * time.Millisecond

// sleepCtx waits d, or less when ctx ends first; it reports whether it
// waited d.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// catalogRetry is the pause before a catalog that could not be published is
// tried again.
const catalogRetry = 2 * time.Second

// newEventBridge returns a bridge whose publisher is running.
func newEventBridge(face *natsface.Face, log *slog.Logger) *eventBridge {
	b := makeEventBridge(face, log, 1024)
	go b.run()
	return b
}

// makeEventBridge returns a bridge with a queue of size events whose
// publisher is not started yet (tests fill its queue first).
func makeEventBridge(face *natsface.Face, log *slog.Logger, size int) *eventBridge {
	return &eventBridge{face: face, log: log, q: make(chan bridgeItem, size), stop: make(chan struct{}), done: make(chan struct{})}
}

// HandleEvent queues e for publishing; it never blocks.
func (b *eventBridge) HandleEvent(e gateway.Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if e.Kind == gateway.EventCatalogChanged {
		b.catalog, b.catalogRetry = e.Catalog, time.Time{}
		if b.catalogQueued {
			return
		}
		e.Catalog = nil
	}
	select {
	case b.q <- bridgeItem{event: e}:
		b.catalogQueued = b.catalogQueued || e.Kind == gateway.EventCatalogChanged
		return
	default:
	}
	if e.Kind == gateway.EventCatalogChanged {
		return // kept in b.catalog: it goes out before the next queued item
	}
	b.dropped++
	if n := b.dropped; n&(n-1) == 0 {
		b.log.Warn("NATS event queue full; events dropped", "dropped", n)
	}
}

// flush waits until the events handed to HandleEvent before it are published
// (or failed), at most flushTimeout or until ctx ends, and reports whether
// they were. gw run flushes before it announces the gateway ready, so that
// the catalog of the start is out first.
func (b *eventBridge) flush(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, flushTimeout)
	defer cancel()
	barrier := make(chan struct{})
	select {
	case b.q <- bridgeItem{barrier: barrier}:
	case <-b.stop:
		return false
	case <-ctx.Done():
		b.log.Warn("NATS event queue not flushed", "error", ctx.Err())
		return false
	}
	select {
	case <-barrier:
		return true
	case <-b.done:
		return false
	case <-ctx.Done():
		b.log.Warn("NATS event queue not flushed", "error", ctx.Err())
		return false
	}
}

func (b *eventBridge) run() {
	defer close(b.done)
	// One timer waits for a failed catalog's retry, re-armed only when the
	// due time changes: each queued item handled meanwhile must not leave
	// a timer behind. (Reset drops a value the timer sent before, as
	// timers do since Go 1.23.)
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	var armed time.Time // the due time retry is set for; zero: none
	for {
		var due time.Time
		b.mu.Lock()
		if b.catalog != nil {
			due = b.catalogRetry
		}
		b.mu.Unlock()
		var retryC <-chan time.Time
		if !due.IsZero() {
			if !due.Equal(armed) {
				retry.Reset(time.Until(due))
				armed = due
			}
			retryC = retry.C
		}
		select {
		case it := <-b.q:
			b.handle(it)
		case <-retryC:
			armed = time.Time{}
			b.publishCatalog(false)
		case <-b.stop:
			for {
				select {
				case it := <-b.q:
					b.handle(it)
				default:
					b.publishCatalog(false)
					return
				}
			}
		}
	}
}

// handle publishes one queued item, after a catalog that found no room in
// the queue.
func (b *eventBridge) handle(it bridgeItem) {
	b.publishCatalog(false)
	switch {
	case it.barrier != nil:
		close(it.barrier)
	case it.event.Kind == gateway.EventCatalogChanged:
		b.publishCatalog(true)
	default:
		_ = b.send(it.event) // logged; only catalogs are tried again
	}
}

// publishCatalog publishes the waiting catalog: the one its marker announced
// (marker), or one that found no room for a marker, or one that failed
// before, once its retry is due. A catalog that fails waits again, unless a
// newer one came meanwhile.
func (b *eventBridge) publishCatalog(marker bool) {
	b.mu.Lock()
	c := b.catalog
	if c == nil || b.catalogQueued != marker || time.Now().Before(b.catalogRetry) {
		b.mu.Unlock()
		return
	}
	b.catalog, b.catalogQueued, b.catalogRetry = nil, false, time.Time{}
	b.mu.Unlock()
	if b.send(gateway.Event{Kind: gateway.EventCatalogChanged, Catalog: c}) == nil {
		return
	}
	b.mu.Lock()
	if b.catalog == nil {
		b.catalog, b.catalogRetry = c, time.Now().Add(catalogRetry)
	}
	b.mu.Unlock()
}

// send publishes e, and logs and returns its error. A stream that does not
// answer has no leader yet (an election after a node was lost takes
// seconds): e is tried again while its time lasts.
func (b *eventBridge) send(e gateway.Event) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := b.publish(ctx, e)
	for errors.Is(err, jetstream.ErrNoStreamResponse) && sleepCtx(ctx, publishRetryWait) {
		err = b.publish(ctx, e)
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		b.log.Warn("could not publish event", "error", err)
	}
	return err
}

func (b *eventBridge) publish(ctx context.Context, e gateway.Event) error {
	switch e.Kind {
	case gateway.EventCatalogChanged:
		names := make([]string, 0, len(e.Catalog.Tools)+len(e.Catalog.Held))
		for _, t := range e.Catalog.Tools {
			names = append(names, t.Name)
		}
		// A held-back tool keeps its subject, so that its callers learn
		// why it is refused rather than find no responders.
		for _, t := range e.Catalog.Held {
			names = append(names, t.Name)
		}
		if err := b.face.SetTools(names); err != nil {
			b.log.Error("could not update tool endpoints", "error", err)
		}
		body := map[string]any{"tools": router.RawItems(e.Catalog.Tools), "prompts": router.RawItems(e.Catalog.Prompts),
			"toolsByServer": toolsByServer(e.Catalog.Tools)}
		if len(e.Catalog.Rejected) > 0 {
			// Shadowing in the open: a name one server could not take
			// because another has it is listed with both.
			body["rejected"] = e.Catalog.Rejected
		}
		catalog, err := json.Marshal(body)
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
	case gateway.EventToolChanged:
		ch, err := json.Marshal(e.Change)
		if err != nil {
			return err
		}
		return b.face.PublishToolChanged(ctx, e.Server, ch)
	case gateway.EventAudit:
		rec, err := json.Marshal(auditBody{Gateway: b.face.Gateway(), AuditRecord: e.Audit})
		if err != nil {
			return err
		}
		// Acknowledged later, not waited for; a failure is counted and
		// logged (sparingly) by the face, not once per record here.
		_ = b.face.PublishAudit(e.Audit.Principal, rec)
		return nil
	}
	return nil
}

// auditMode maps audit.record to the gateway's mode.
func auditMode(record string) gateway.AuditMode {
	switch record {
	case "all":
		return gateway.AuditAll
	case "denied":
		return gateway.AuditDenied
	}
	return gateway.AuditOff
}

// auditBody is an audit record as published: the gateway's record, and the
// gateway that made it.
type auditBody struct {
	Gateway string `json:"gateway"`
	*gateway.AuditRecord
}

// close stops the publisher after the queued events are out. Events handed
// over later are not published. It is idempotent.
func (b *eventBridge) close() {
	b.once.Do(func() { close(b.stop) })
	<-b.done
}
