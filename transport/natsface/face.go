package natsface

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/gwmcp/gw/internal/workers"
)

// Handler serves the requests that reach the face. The gateway implements it (through an
// adapter outside transport/), so this package knows no gateway types.
//
// Serve is called on a goroutine of its own (a worker kept between calls), up to Options.MaxConcurrent at once, and must be safe for
// concurrent use. ctx carries the caller's deadline (capped by Options.MaxTimeout) and an
// InputFunc (see InputFromContext); it is cancelled when the caller's deadline passes or when Stop
// gives up waiting. Serve must return soon after ctx is done: Stop waits for it.
//
// The returned result is the MCP result object, sent to the caller as is; nil means {}.
// An error is sent as a JSON-RPC error object: the code of a *jsonrpc.Error found with errors.As
// is kept, any other error becomes -32603 with the error's text.
type Handler interface {
	Serve(ctx context.Context, req *Request) (json.RawMessage, error)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, req *Request) (json.RawMessage, error)

// Serve calls fn.
func (fn HandlerFunc) Serve(ctx context.Context, req *Request) (json.RawMessage, error) {
	return fn(ctx, req)
}

// Request is one request taken from NATS.
type Request struct {
	// Principal is the {principal} token of the request subject, as sent. It is the caller's
	// identity: NATS publish permissions decide who may publish under which token. It never comes
	// from the payload or headers. It is not decoded; callers whose identity is not a valid token
	// can use EncodeToken and the gateway DecodeToken.
	Principal string

	// Method is the MCP method: tools/list, tools/call, prompts/list, prompts/get, resources/list,
	// resources/read, or servers/list (gw's own).
	Method string

	// Params is the request body, the MCP params object; nil when the body was empty. It is a JSON
	// object with no duplicate top-level keys. For tools/call and prompts/get, params.name equals
	// the decoded name token of the subject.
	Params json.RawMessage

	// Gateway is set when the request was addressed to this gateway by name (the at.{gw} subjects),
	// and empty when it came through the shared subjects.
	Gateway string

	// Progress is non-nil when the caller opted into streaming (header Mcp-Stream: 1). Each call
	// sends one progress frame with params (typically a notifications/progress params object) to
	// the caller. It never blocks for long, is safe for concurrent use, and does nothing once the
	// call is answered. Frames over the max payload are dropped.
	Progress func(params json.RawMessage)

	// Subject is the subject the request was sent to.
	Subject string

	// Header is the message's headers, nil when it has none, for the trace context they may
	// carry (traceparent, b3, …: which ones is the configured propagator's business). The face
	// does not trace; it hands them over as they are. Read only, and only during Handler.Serve.
	Header nats.Header
}

// InputFunc asks for a client feature on behalf of a running request: method is
// sampling/createMessage, elicitation/create, roots/list or another client method, params its
// params. It returns the result, or an error: a *jsonrpc.Error with the answerer's code, or one with
// code -32603 naming why no answer came (no LLM subject, no responders, deadline).
//
// If the caller opted into streaming, the question goes to the caller as an input frame and the
// answer comes back on the caller's input subject; otherwise it goes as a NATS request to
// Options.LLMSubject. It is safe for concurrent use.
type InputFunc func(ctx context.Context, method string, params json.RawMessage) (json.RawMessage, error)

type inputKey struct{}

// InputFromContext returns the InputFunc that the face put into the ctx given to Handler.Serve.
// The gateway's client-handler adapter uses it to answer a server's sampling, elicitation and
// roots requests.
func InputFromContext(ctx context.Context) (InputFunc, bool) {
	fn, ok := ctx.Value(inputKey{}).(InputFunc)
	return fn, ok && fn != nil
}

// state is the Face's lifecycle: new → started → draining → stopping → stopped.
type state int

const (
	stateNew      state = iota
	stateStarted        // serving
	stateDraining       // Stop began: micro service stopped, buffered requests still accepted
	stateStopping       // no new handler goroutine starts; in-flight calls finish
	stateStopped
)

// Face is the NATS face of a gateway. Create it with New, then Start; Stop ends it.
// All methods are safe for concurrent use.
type Face struct {
	nc   *nats.Conn
	h    Handler
	opts Options
	log  *slog.Logger
	sem  chan struct{} // one slot per running Handler.Serve
	pool *workers.Pool[*call]

	reqPrefix    string // Prefix + ".req."
	sharedPrefix string // Prefix + ".req.*."
	atPrefix     string // Prefix + ".req.*.at." + Gateway + "."
	static       []*endpoint

	// baseCtx is the parent of every handler ctx and of claim-check uploads; Stop cancels it.
	baseCtx context.Context
	cancel  context.CancelFunc

	// svcMu serialises Start, SetTools and the first step of Stop, and guards svc, tools and
	// toolSubs. It is taken before mu and held while calling into micro (never while mu is held).
	svcMu    sync.Mutex
	svc      micro.Service
	tools    map[string]struct{}           // raw names of the hosted tools, until Start subscribes them
	toolSubs map[string]*nats.Subscription // the hosted tools by raw name, once started

	hostedTools atomic.Int64 // len(toolSubs), for the stats handler
	busy        atomic.Int64 // requests refused with "gw: busy", for Shed

	// Hosted tools are plain queue subscriptions, not micro endpoints, all delivering into toolMsgs,
	// which one goroutine (dispatchTools) reads: a gateway of 100,000 tools has 100,000
	// subscriptions but not 100,000 goroutines, and a $SRV.INFO that fits in one message.
	toolMsgs  chan *nats.Msg
	toolEps   sync.Map      // subscription subject -> *endpoint
	toolsQuit chan struct{} // closed by Stop: dispatchTools serves what is queued and returns
	toolsDone chan struct{} // closed when dispatchTools returns

	// mu guards the fields below. It is a leaf except that it may be taken under svcMu.
	mu          sync.Mutex
	state       state
	js          jetstream.JetStream
	kv          jetstream.KeyValue
	obj         jetstream.ObjectStore
	inputSub    *nats.Subscription
	calls       map[*call]struct{}    // in flight, each with a handler goroutine counted in wg
	inputs      map[string]*inputWait // input requests waiting for the caller's answer, by id
	stopStarted bool
	stopDone    chan struct{}
	stopErr     error // set before stopDone is closed

	wg sync.WaitGroup // handler goroutines

	statsMu sync.Mutex // leaf; guards stats
	stats   map[string]*endpointStats

	auditFailures atomic.Int64
	// retired sums the counters of tools no longer hosted, so that a gateway whose tools come
	// and go keeps no endpoint or counters per name it ever hosted.
	retired endpointStats

	// catalogMu serialises PublishCatalog and guards the three fields below: the SHA-256 of the
	// last catalog published in full (bucket and event), whether there is one, and how many
	// catalog parts may be in the bucket. It is taken before mu.
	catalogMu        sync.Mutex
	catalogDigest    [sha256.Size]byte
	catalogPublished bool
	staleParts       int // catalog parts in the bucket that a later catalog may leave behind
}

// New returns a Face serving h over nc. It checks opts and does not start: Start subscribes.
// The Face never closes nc.
func New(nc *nats.Conn, h Handler, opts Options) (*Face, error) {
	if nc == nil || h == nil {
		return nil, fmt.Errorf("%w: nil connection or handler", ErrInvalidOptions)
	}
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &Face{
		nc:           nc,
		h:            h,
		opts:         o,
		log:          o.Logger.With("face", "nats", "gateway", o.Gateway),
		sem:          make(chan struct{}, o.MaxConcurrent),
		reqPrefix:    o.Prefix + ".req.",
		sharedPrefix: o.Prefix + ".req.*.",
		atPrefix:     o.Prefix + ".req.*.at." + o.Gateway + ".",
		baseCtx:      ctx,
		cancel:       cancel,
		tools:        map[string]struct{}{},
		toolSubs:     map[string]*nats.Subscription{},
		toolMsgs:     make(chan *nats.Msg, toolQueueLen),
		toolsQuit:    make(chan struct{}),
		toolsDone:    make(chan struct{}),
		calls:        map[*call]struct{}{},
		inputs:       map[string]*inputWait{},
		stopDone:     make(chan struct{}),
		stats:        map[string]*endpointStats{},
	}
	f.pool = workers.New(o.MaxConcurrent, f.serve)
	f.static = f.staticEndpoints()
	return f, nil
}

// Gateway is the gateway's name (Options.Gateway).
func (f *Face) Gateway() string { return f.opts.Gateway }

// endpoint is one micro endpoint: a subject and the MCP method it serves.
type endpoint struct {
	name    string // micro endpoint name
	subject string
	method  string
	at      bool // an at.{gw} subject: only this gateway subscribes
	named   bool // the last subject token is a (tool or prompt) name that must equal params.name
	stats   *endpointStats
}

// staticEndpoints lists the endpoints that do not depend on the hosted tools.
func (f *Face) staticEndpoints() []*endpoint {
	type spec struct {
		suffix, method string
		named          bool
	}
	var specs []spec
	for _, m := range f.opts.Methods {
		switch m {
		case "tools/call": // per hosted tool (toolEndpoint), and at-tools-call below
		case "prompts/get":
			specs = append(specs, spec{"prompts.get.*", m, true})
		default:
			specs = append(specs, spec{strings.ReplaceAll(m, "/", "."), m, false})
		}
	}
	var eps []*endpoint
	for _, s := range specs {
		name := strings.NewReplacer(".*", "", ".", "-").Replace(s.suffix)
		eps = append(eps, f.newEndpoint(name, f.sharedPrefix+s.suffix, s.method, false, s.named))
	}
	eps = append(eps, f.newEndpoint(atToolsCall, f.atPrefix+"tools.call.*", "tools/call", true, true))
	for _, s := range specs {
		name := "at-" + strings.NewReplacer(".*", "", ".", "-").Replace(s.suffix)
		eps = append(eps, f.newEndpoint(name, f.atPrefix+s.suffix, s.method, true, s.named))
	}
	return eps
}

// toolEndpoint is the shared subject of one hosted tool. It is no micro endpoint: it needs no name,
// and its counters are its own, summed in at-tools-call's stats (toolCallStats).
func (f *Face) toolEndpoint(tool string) *endpoint {
	return &endpoint{subject: f.sharedPrefix + "tools.call." + EncodeToken(tool), method: "tools/call", named: true,
		stats: &endpointStats{}}
}

func (f *Face) newEndpoint(name, subject, method string, at, named bool) *endpoint {
	return &endpoint{name: name, subject: subject, method: method, at: at, named: named,
		stats: f.statsFor(subject)}
}

// Start creates or binds the event stream, the catalog KV bucket and the claim-check object store,
// subscribes to input answers and registers the micro service with its endpoints, then flushes,
// so that a request sent after Start returns is served. ctx bounds the JetStream calls and the
// flush. A failed Start leaves nothing subscribed and may be retried.
func (f *Face) Start(ctx context.Context) error {
	f.svcMu.Lock()
	defer f.svcMu.Unlock()
	f.mu.Lock()
	st := f.state
	f.mu.Unlock()
	switch {
	case st == stateStarted:
		return ErrStarted
	case st != stateNew:
		return ErrStopped
	}

	o := f.opts
	js, err := jetstream.New(f.nc, jetstream.WithPublishAsyncErrHandler(f.auditFailed),
		jetstream.WithPublishAsyncMaxPending(auditMaxPending))
	if err != nil {
		return fmt.Errorf("natsface: start: %w", err)
	}
	// The event stream leaves the audit records to a stream of their own, with its own
	// retention: a subject belongs to one stream only, so the event stream is narrowed first.
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:              o.EventStream,
		Description:       "gw MCP gateway events",
		Subjects:          []string{o.Prefix + ".evt.catalog.>", o.Prefix + ".evt.srv.>", o.Prefix + ".evt.gw.>"},
		Retention:         jetstream.LimitsPolicy,
		Discard:           jetstream.DiscardOld,
		MaxAge:            o.EventMaxAge,
		MaxMsgsPerSubject: o.EventMaxPerSubject,
		Storage:           jetstream.FileStorage,
		Replicas:          o.Replicas,
	}); err != nil {
		return fmt.Errorf("natsface: start: event stream %q: %w", o.EventStream, err)
	}
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        o.AuditStream,
		Description: "gw MCP gateway audit records: authorization decisions",
		Subjects:    []string{o.Prefix + ".evt.audit.>"},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      o.AuditMaxAge,
		MaxBytes:    o.AuditMaxBytes,
		Storage:     jetstream.FileStorage,
		Replicas:    o.Replicas,
	}); err != nil {
		return fmt.Errorf("natsface: start: audit stream %q: %w", o.AuditStream, err)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      o.CatalogBucket,
		Description: "gw MCP gateway catalogs",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    o.Replicas,
	})
	if err != nil {
		return fmt.Errorf("natsface: start: catalog bucket %q: %w", o.CatalogBucket, err)
	}
	obj, err := js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket:      o.ObjectStoreBucket,
		Description: "gw MCP gateway claim-checked results",
		TTL:         o.ClaimCheckTTL,
		Storage:     jetstream.FileStorage,
		Replicas:    o.Replicas,
	})
	if err != nil {
		return fmt.Errorf("natsface: start: object store %q: %w", o.ObjectStoreBucket, err)
	}

	// Published under mu: every handler goroutine is started under mu, so it sees them.
	f.mu.Lock()
	f.js, f.kv, f.obj = js, kv, obj
	f.mu.Unlock()

	unpublish := func() {
		f.mu.Lock()
		f.js, f.kv, f.obj = nil, nil, nil
		f.mu.Unlock()
	}
	inputSub, err := f.nc.Subscribe(f.atPrefix+"input.*", f.handleInput)
	if err != nil {
		unpublish()
		return fmt.Errorf("natsface: start: subscribing to input answers: %w", err)
	}
	svc, err := f.buildService()
	if err != nil {
		_ = inputSub.Unsubscribe()
		unpublish()
		return fmt.Errorf("natsface: start: %w", err)
	}
	for _, name := range slices.Sorted(maps.Keys(f.tools)) {
		if err := f.subscribeTool(name); err != nil {
			f.unsubscribeTools(false)
			if serr := svc.Stop(); serr != nil {
				f.log.Warn("stopping a partly started micro service", "error", serr)
			}
			_ = inputSub.Unsubscribe()
			unpublish()
			return fmt.Errorf("natsface: start: %w", err)
		}
	}
	go f.dispatchTools()
	f.svc = svc
	f.mu.Lock()
	f.inputSub = inputSub
	f.state = stateStarted
	f.mu.Unlock()
	// Once Start returns, the server knows every subscription: a request sent now is served.
	if err := f.flush(ctx); err != nil {
		f.log.Warn("start: flush after subscribing", "error", err)
	}
	f.log.Info("nats face started", "prefix", o.Prefix, "queue_group", o.QueueGroup,
		"tools", len(f.toolSubs))
	return nil
}

// buildService registers the micro service with the static endpoints. On error nothing of it
// stays registered.
func (f *Face) buildService() (micro.Service, error) {
	o := f.opts
	svc, err := micro.AddService(f.nc, micro.Config{
		Name:        ServiceName,
		Version:     o.Version,
		Description: "gw MCP gateway " + o.Gateway,
		Metadata:    map[string]string{"gateway": o.Gateway, "prefix": o.Prefix},
		QueueGroup:  o.QueueGroup,
		StatsHandler: func(e *micro.Endpoint) any {
			own := f.statsFor(e.Subject).snapshot()
			if e.Name == atToolsCall {
				return f.toolCallStats(own)
			}
			return own
		},
		ErrorHandler: func(_ micro.Service, e *micro.NATSError) {
			f.log.Warn("micro service error", "subject", e.Subject, "error", e.Description)
		},
	})
	if err != nil {
		return nil, fmt.Errorf("micro service: %w", err)
	}
	for _, ep := range f.static {
		if err := f.addEndpoint(svc, ep); err != nil {
			if serr := svc.Stop(); serr != nil {
				f.log.Warn("stopping a partly built micro service", "error", serr)
			}
			return nil, err
		}
	}
	return svc, nil
}

func (f *Face) addEndpoint(svc micro.Service, ep *endpoint) error {
	md := map[string]string{"method": ep.method, "scope": "shared"}
	if ep.at {
		md["scope"] = "gateway"
	}
	handle := micro.HandlerFunc(func(r micro.Request) {
		f.dispatch(ep, r.Subject(), r.Reply(), r.Data(), nats.Header(r.Headers()))
	})
	err := svc.AddEndpoint(ep.name, handle, micro.WithEndpointSubject(ep.subject), micro.WithEndpointMetadata(md))
	if err != nil {
		return fmt.Errorf("endpoint %s: %w", ep.subject, err)
	}
	return nil
}

// SetTools sets the exposed names of the tools this gateway hosts. Each has a queue subscription
// to Prefix.req.*.tools.call.{EncodeToken(name)} in the face's queue group, so that a call reaches
// only gateways that host the tool. Before Start it only records the names.
//
// A tool that goes away is drained: calls already on their way to this gateway are still taken
// (and answered), none after. The subscriptions are not micro endpoints: $SRV.INFO lists the
// method endpoints, and the counters of the hosted tools are summed in at-tools-call's stats
// (ToolCallStats). If an update fails, the tools subscribed so far stay, and are recorded.
func (f *Face) SetTools(names []string) error {
	want := make(map[string]struct{}, len(names))
	for _, n := range names {
		want[n] = struct{}{}
	}
	f.svcMu.Lock()
	defer f.svcMu.Unlock()
	f.mu.Lock()
	st := f.state
	f.mu.Unlock()
	switch {
	case st == stateNew:
		f.tools = want
		return nil
	case st != stateStarted:
		return ErrStopped
	}
	changed := false
	for _, n := range slices.Sorted(maps.Keys(want)) {
		if _, ok := f.toolSubs[n]; ok {
			continue
		}
		if err := f.subscribeTool(n); err != nil {
			return fmt.Errorf("natsface: set tools: %w", err)
		}
		changed = true
	}
	for n, sub := range f.toolSubs {
		if _, ok := want[n]; ok {
			continue
		}
		if err := sub.Drain(); err != nil {
			f.log.Warn("set tools: draining a removed tool", "tool", n, "error", err)
		}
		f.retireTool(sub.Subject)
		delete(f.toolSubs, n)
		f.hostedTools.Store(int64(len(f.toolSubs)))
		changed = true
	}
	if !changed {
		return nil
	}
	return f.flushAfterSetTools()
}

// toolQueueLen bounds the calls to hosted tools that nats.go has handed over and dispatchTools has
// not yet taken. dispatchTools does not wait (it hands the call to a worker or sheds it), so the queue
// only fills if the process is starved; nats.go then reports a slow consumer.
const toolQueueLen = 1 << 16

// subscribeTool subscribes to one hosted tool's shared subject. svcMu is held.
func (f *Face) subscribeTool(name string) error {
	ep := f.toolEndpoint(name)
	sub, err := f.nc.ChanQueueSubscribe(ep.subject, f.opts.QueueGroup, f.toolMsgs)
	if err != nil {
		return fmt.Errorf("tool %q: %w", name, err)
	}
	f.toolEps.Store(ep.subject, ep)
	f.toolSubs[name] = sub
	f.hostedTools.Store(int64(len(f.toolSubs)))
	return nil
}

// unsubscribeTools drains (or, when failing a Start, drops) every tool subscription. svcMu is
// held.
func (f *Face) unsubscribeTools(drain bool) {
	for n, sub := range f.toolSubs {
		var err error
		if drain {
			err = sub.Drain()
		} else {
			err = sub.Unsubscribe()
		}
		if err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			f.log.Warn("unsubscribing a tool", "tool", n, "error", err)
		}
		delete(f.toolSubs, n)
	}
	f.hostedTools.Store(0)
}

// dispatchTools hands the calls of every hosted tool to dispatch, on one goroutine that Start
// starts and Stop ends after the tools were drained: the calls still queued then are dispatched
// too, and answered (a stopping face sheds them with "shutting down").
func (f *Face) dispatchTools() {
	defer close(f.toolsDone)
	take := func(m *nats.Msg) {
		ep, ok := f.toolEps.Load(m.Sub.Subject)
		if !ok { // a call that was on its way when its tool went: served all the same
			ep = &endpoint{subject: m.Sub.Subject, method: "tools/call", named: true, stats: &f.retired}
		}
		f.dispatch(ep.(*endpoint), m.Subject, m.Reply, m.Data, m.Header)
	}
	for {
		select {
		case m := <-f.toolMsgs:
			take(m)
		case <-f.toolsQuit:
			for {
				select {
				case m := <-f.toolMsgs:
					take(m)
				default:
					return
				}
			}
		}
	}
}

func (f *Face) flushAfterSetTools() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := f.flush(ctx); err != nil {
		return fmt.Errorf("natsface: set tools: %w", err)
	}
	return nil
}

// flush waits until the server has processed everything sent so far, at most 5s (or ctx).
func (f *Face) flush(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return f.nc.FlushWithContext(ctx)
}

// Stop ends the face. In order:
//
//  1. SetTools fails from now on; the micro service is stopped: its subscriptions drain, so the
//     server sends no new requests and those already received are still served;
//  2. a flush makes sure the server has seen the unsubscriptions; from then on no handler
//     goroutine starts, and a request still buffered is answered 503 "gw: shutting down";
//  3. Stop waits for every in-flight Handler.Serve to return and its caller to be answered;
//     input answers are still accepted meanwhile;
//  4. if ctx ends first, every call not yet answered is answered 503 "gw: shutting down", every
//     handler ctx is cancelled, Stop waits for the handlers to return and then returns an error
//     wrapping ctx.Err();
//  5. the input subscription is removed.
//
// Stop is idempotent: later calls wait for the first one (or their own ctx) and return its
// result. The Publish methods keep working after Stop (e.g. for a final gateway status); the
// connection is the caller's to close.
func (f *Face) Stop(ctx context.Context) error {
	f.mu.Lock()
	if f.stopStarted {
		f.mu.Unlock()
		select {
		case <-f.stopDone:
			return f.stopErr
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f.stopStarted = true
	f.mu.Unlock()
	err := f.stop(ctx)
	f.stopErr = err
	close(f.stopDone)
	return err
}

func (f *Face) stop(ctx context.Context) error {
	f.svcMu.Lock()
	f.mu.Lock()
	if f.state == stateNew {
		f.state = stateStopped
		f.mu.Unlock()
		f.svcMu.Unlock()
		f.cancel()
		return nil
	}
	f.state = stateDraining
	f.mu.Unlock()
	svc := f.svc
	f.svc = nil
	f.svcMu.Unlock()

	var errs []error
	if err := svc.Stop(); err != nil {
		errs = append(errs, fmt.Errorf("natsface: stop: micro service: %w", err))
	}
	f.svcMu.Lock()
	f.unsubscribeTools(true)
	f.svcMu.Unlock()
	if err := f.flush(ctx); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		f.log.Warn("stop: flush after unsubscribing", "error", err)
	}
	// Everything sent before the unsubscriptions has arrived: dispatch what is queued.
	close(f.toolsQuit)
	<-f.toolsDone

	f.mu.Lock()
	f.state = stateStopping
	f.mu.Unlock()

	done := make(chan struct{})
	go func() { // owned by stop, which waits for it below in every case
		f.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		f.mu.Lock()
		calls := slices.Collect(maps.Keys(f.calls))
		f.mu.Unlock()
		for _, c := range calls {
			c.finish(nil, errShuttingDown())
		}
		f.cancel()
		<-done
		errs = append(errs, fmt.Errorf("natsface: stop: %d in-flight calls failed: %w", len(calls), ctx.Err()))
	}
	f.cancel()
	f.pool.Close() // no call is dispatched any more, and every call has returned

	f.mu.Lock()
	sub := f.inputSub
	f.state = stateStopped
	f.mu.Unlock()
	if err := sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) &&
		!errors.Is(err, nats.ErrBadSubscription) {
		errs = append(errs, fmt.Errorf("natsface: stop: input subscription: %w", err))
	}
	f.log.Info("nats face stopped")
	return errors.Join(errs...)
}
