// Package gateway is gw's core: it keeps a session with every configured MCP
// server, merges their tools, prompts and resources into one catalog and
// routes each call to the server that owns it.
//
// A Gateway is the router that faces (NATS today, an MCP server later) sit
// on: they call ListTools, CallTool and friends, and receive Events. The
// gateway knows nothing of faces; faces know nothing of sessions.
//
// Each server is supervised: its process is started, its era detected
// (2026-07-28 server/discover, or 2025-11-25 initialize), its lists
// discovered, and it is restarted with capped exponential backoff when it
// dies. See docs/ARCHITECTURE.md.
package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/gwmcp/gw/internal/tracing"
	"github.com/gwmcp/gw/transport/jsonrpc"
)

// RestartPolicy says when a server that ended is started again.
type RestartPolicy string

// Restart policies.
const (
	RestartOnFailure RestartPolicy = "on-failure" // restart unless it exited with status 0
	RestartAlways    RestartPolicy = "always"
	RestartNever     RestartPolicy = "never"
)

// ServerSpec is one configured server.
type ServerSpec struct {
	Name        string
	Command     string
	Args        []string
	Env         map[string]string
	Dir         string
	Restart     RestartPolicy // "" = on-failure
	CallTimeout time.Duration // 0 = Options.CallTimeout
	// Priority places the server in the gateway's order, which breaks
	// naming ties (Resolver input, resource ownership): higher first;
	// equal priorities keep the order the servers were configured or
	// added in.
	Priority int
}

// Options configure a Gateway. The zero value of each field has a sensible
// default.
type Options struct {
	// Servers in configuration order, which breaks naming ties; a higher
	// ServerSpec.Priority moves a server ahead (a stable sort).
	Servers []ServerSpec

	Resolver   Resolver      // collision policy; nil = PrefixResolver{}
	Authorizer Authorizer    // call authorization; nil = every call allowed
	Handler    ClientHandler // serves sampling, elicitation and roots; nil = none offered
	Events     EventSink     // nil = events dropped
	Observer   Observer      // told every request served, for metrics; nil = none
	Logger     *slog.Logger  // nil = slog.Default()

	// TracerProvider traces routed requests: a span per upstream round
	// trip and per authorization, children of the caller's span, and the
	// upstream span's trace context in the request's _meta. nil turns
	// tracing off, at no cost on the call path.
	TracerProvider trace.TracerProvider
	// Propagator reads and writes trace context in every carrier gw
	// uses, when tracing is on: transport headers, and _meta of the
	// requests callers send and of those gw sends to servers. nil = W3C
	// trace context and baggage (OTEL_PROPAGATORS' default).
	Propagator propagation.TextMapPropagator

	ClientInfo      Implementation // default gw/dev
	CallTimeout     time.Duration  // default 60s
	DiscoverTimeout time.Duration  // server/discover probe; default 5s
	StartTimeout    time.Duration  // spawn + handshake + discovery; default 30s
	MaxMessageSize  int            // default 16 MiB
	PingInterval    time.Duration  // keepalive period; default 15s, negative = off
	PingMisses      int            // unanswered pings in a row before a restart; default 3
	StopGrace       time.Duration  // each step of a child's shutdown; default 2s

	InitialBackoff time.Duration // default 500ms
	MaxBackoff     time.Duration // default 30s
	DegradedAfter  int           // consecutive failures before "degraded"; default 3
	StableAfter    time.Duration // uptime that resets the failure count; default 30s

	// Pinning is what gw does when a pinned tool's definition changes:
	// PinHold (the default), PinWarn or PinOff. Pins is where pins are
	// kept; nil = in memory (NewMemoryPinStore).
	Pinning PinMode
	Pins    PinStore

	// Audit is which authorization decisions become EventAudit events:
	// AuditOff (the zero value), AuditDenied or AuditAll. Without an
	// Authorizer no decision is made, so none is audited.
	// AuditArguments adds each call's arguments to its record; off, as
	// arguments may hold secrets.
	Audit          AuditMode
	AuditArguments bool

	// Dial opens a server's connection; nil = start it as a stdio child.
	// Tests use it to run servers in process.
	Dial func(ctx context.Context, spec ServerSpec) (Conn, error)
}

// ClientHandler serves the requests a server makes of its client, in both
// eras: legacy servers send them as JSON-RPC requests, modern servers as
// input_required results that gw answers and retries. Errors that are
// *jsonrpc.Error keep their code.
type ClientHandler interface {
	// Supports reports whether a method (MethodSampling, MethodElicitation,
	// MethodRoots) can be served; gw declares the matching capabilities. ctx
	// is the request's in the modern era, where capabilities are declared per
	// request (so they can depend on the caller), and the session's start in
	// the legacy era.
	Supports(ctx context.Context, method string) bool
	HandleClientRequest(ctx context.Context, req ClientRequest) (json.RawMessage, error)
}

// ClientRequest is one server-to-client request.
type ClientRequest struct {
	Server string
	Method string
	Params json.RawMessage
	// Related is the method of the client request that needed the input
	// (modern era); "" when the server asked on its own (legacy era).
	Related string
	// Key is the server's key for this request in its inputRequests
	// (modern era), "" otherwise: a face may show the client the same key.
	Key string
}

// EventSink receives the gateway's events, one at a time and in order, on a
// goroutine the gateway owns, with no gateway lock held: it may call back
// into the gateway. HandleEvent should return quickly, since later events
// wait for it. No event is delivered after Close returns.
type EventSink interface {
	HandleEvent(Event)
}

// EventKind tells events apart.
type EventKind int

// Event kinds.
const (
	EventCatalogChanged     EventKind = iota + 1 // Catalog is set
	EventServerStatus                            // Status is set
	EventServerNotification                      // Server, Method, Params are set
	EventToolChanged                             // Server, Change are set: once per changed definition
	EventAudit                                   // Audit is set: an authorization decision (Options.Audit)
)

// Event is something a face may want to tell its clients.
type Event struct {
	Kind    EventKind
	Server  string
	Method  string          // e.g. notifications/resources/updated, notifications/message
	Params  json.RawMessage // the server's params, untouched
	Status  *ServerStatus
	Catalog *Catalog
	Change  *ToolChange
	Audit   *AuditRecord

	flushed chan struct{} // a FlushEvents marker, never handed to the sink
}

// Gateway routes calls to many servers. Create it with New, then Start.
type Gateway struct {
	opts Options
	log  *slog.Logger
	scfg *sessionConfig

	// set is the configured servers, swapped whole (copy on write) by
	// AddServer and RemoveServer, so the call path reads it without a lock.
	set   atomic.Pointer[serverSet]
	setMu sync.Mutex // serialises changes to set

	tracer trace.Tracer // nil: tracing off
	prop   propagation.TextMapPropagator
	metaw  *tracing.MetaWriter // prop's writer of _meta entries

	catalog  atomic.Pointer[Catalog]
	logLevel atomic.Pointer[string] // the last SetLogLevel; nil: none
	events   *eventQueue

	mu        sync.Mutex // guards inventory, pins and rebuilds
	inventory map[string]*inventory
	editMu    sync.Mutex       // guards edits; nothing else is locked while it is held
	edits     []*inventoryEdit // waiting for the next holder of mu (mutateInventory)
	// nextRebuild paces mutateInventory's rebuilds while Start runs (starting):
	// one that took long makes the next wait as long, so edits pile up into
	// fewer rebuilds. Guarded by mu.
	nextRebuild time.Time
	starting    atomic.Bool
	pins        *pinTable  // nil: pinning off
	pinw        *pinWriter // writes to the pin store; nil: pinning off

	startOnce sync.Once
	started   bool // Start has launched the servers; guarded by setMu
	closeOnce sync.Once
	ctx       context.Context // cancelled by Close; every server's run loop watches it
	cancel    context.CancelFunc
	wg        sync.WaitGroup
}

// Sentinel errors of the router.
var (
	ErrUnknownTool     = errors.New("gw: unknown tool")
	ErrUnknownPrompt   = errors.New("gw: unknown prompt")
	ErrUnknownResource = errors.New("gw: unknown resource")
	ErrServerDown      = errors.New("gw: server unavailable")
	ErrClosed          = errors.New("gw: gateway closed")
)

// New validates opts and returns a gateway that has started nothing yet.
func New(opts Options) (*Gateway, error) {
	setDefaults(&opts)
	g := &Gateway{
		opts:      opts,
		log:       opts.Logger,
		inventory: map[string]*inventory{},
		tracer:    tracing.Tracer(opts.TracerProvider),
	}
	if g.tracer != nil {
		g.prop = opts.Propagator
		if g.prop == nil {
			g.prop = tracing.DefaultPropagator()
		}
		g.metaw = tracing.NewMetaWriter(g.prop)
	}
	switch opts.Pinning {
	case PinHold, PinWarn, PinOff:
	default:
		return nil, fmt.Errorf("gw: pinning %q is not hold, warn or off", opts.Pinning)
	}
	g.ctx, g.cancel = context.WithCancel(context.Background())
	set := &serverSet{byName: map[string]*managed{}}
	for _, spec := range opts.Servers {
		spec, err := checkSpec(spec)
		if err != nil {
			return nil, err
		}
		if _, dup := set.byName[spec.Name]; dup {
			return nil, fmt.Errorf("gw: server %q configured twice", spec.Name)
		}
		set.byName[spec.Name] = newManaged(g, spec)
		set.order = set.insert(spec, -1)
	}
	g.set.Store(set)
	g.scfg = &sessionConfig{
		clientInfo:      opts.ClientInfo,
		handler:         opts.Handler,
		discoverTimeout: opts.DiscoverTimeout,
		onNotify:        g.onNotify,
		traced:          g.tracer != nil,
	}
	if g.tracer != nil && opts.Handler != nil {
		g.scfg.handler = tracedClients{opts.Handler, g}
	}
	g.catalog.Store(emptyCatalog())
	// Last: New fails before them or not at all.
	if opts.Pinning != PinOff {
		g.pins = &pinTable{mode: opts.Pinning, pins: map[ItemKey]Pin{}, reported: map[ItemKey]string{}}
		g.pinw = newPinWriter(opts.Pins, g.log)
	}
	g.events = newEventQueue(opts.Events, g.log)
	return g, nil
}

// serverSet is an immutable view of the configured servers.
type serverSet struct {
	order  []string // configuration order, which breaks naming ties
	byName map[string]*managed
}

// insert returns a new order with spec's server placed by its priority:
// at index at when that keeps the order sorted by priority (ReplaceServer
// keeps a server's place), else (at < 0) after every server of the same or
// a higher priority. byName must already hold spec's server.
func (s *serverSet) insert(spec ServerSpec, at int) []string {
	prio := func(i int) int { return s.byName[s.order[i]].spec.Priority }
	fits := at >= 0 && at <= len(s.order) &&
		(at == 0 || prio(at-1) >= spec.Priority) &&
		(at == len(s.order) || prio(at) <= spec.Priority)
	if !fits {
		at = len(s.order)
		for i := range s.order {
			if prio(i) < spec.Priority {
				at = i
				break
			}
		}
	}
	return slices.Insert(slices.Clone(s.order), at, spec.Name)
}

// servers returns the current server set.
func (g *Gateway) servers() *serverSet { return g.set.Load() }

// server returns a configured server, or nil.
func (g *Gateway) server(name string) *managed { return g.set.Load().byName[name] }

// checkSpec validates a server spec and fills in its defaults.
func checkSpec(spec ServerSpec) (ServerSpec, error) {
	if spec.Name == "" {
		return spec, errors.New("gw: a server has no name")
	}
	if spec.Restart == "" {
		spec.Restart = RestartOnFailure
	}
	switch spec.Restart {
	case RestartAlways, RestartOnFailure, RestartNever:
	default:
		return spec, fmt.Errorf("gw: server %q: unknown restart policy %q", spec.Name, spec.Restart)
	}
	return spec, nil
}

func setDefaults(o *Options) {
	if o.Resolver == nil {
		o.Resolver = PrefixResolver{}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Pinning == "" {
		o.Pinning = PinHold
	}
	if o.Pins == nil {
		o.Pins = NewMemoryPinStore()
	}
	if o.ClientInfo.Name == "" {
		o.ClientInfo = Implementation{Name: "gw", Version: "dev"}
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.CallTimeout, 60*time.Second)
	def(&o.DiscoverTimeout, 5*time.Second)
	def(&o.StartTimeout, 30*time.Second)
	def(&o.StopGrace, 2*time.Second)
	def(&o.InitialBackoff, 500*time.Millisecond)
	def(&o.MaxBackoff, 30*time.Second)
	def(&o.StableAfter, 30*time.Second)
	if o.PingInterval == 0 {
		o.PingInterval = 15 * time.Second
	}
	if o.PingMisses <= 0 {
		o.PingMisses = 3
	}
	if o.MaxMessageSize <= 0 {
		o.MaxMessageSize = 16 << 20
	}
	if o.DegradedAfter <= 0 {
		o.DegradedAfter = 3
	}
}

// Start launches every server and returns once each has come up or failed
// its first attempt (servers that failed keep retrying per their policy).
// The error joins the first-attempt failures, one line per server; the
// gateway serves the servers that did come up either way.
func (g *Gateway) Start(ctx context.Context) error {
	var errs []error
	g.startOnce.Do(func() {
		g.starting.Store(true)
		defer g.starting.Store(false)
		// Pins first: a tool listed before them would be "new".
		if err := g.watchPins(ctx); err != nil {
			errs = append(errs, err)
			return
		}
		g.setMu.Lock()
		g.started = true
		set := g.servers()
		for _, name := range set.order {
			g.launch(set.byName[name])
		}
		g.setMu.Unlock()
		for _, name := range set.order {
			m := set.byName[name]
			select {
			case <-m.firstDone:
				if err := m.firstErr; err != nil {
					errs = append(errs, err)
				}
			case <-ctx.Done():
				errs = append(errs, fmt.Errorf("server %q: not up: %w", name, ctx.Err()))
			}
		}
	})
	return errors.Join(errs...)
}

// Close stops every server (stdin closed, then SIGTERM, then SIGKILL) and
// fails the calls still pending. It is idempotent.
func (g *Gateway) Close() error {
	g.closeOnce.Do(func() {
		g.setMu.Lock()
		g.cancel()
		g.setMu.Unlock()
		g.wg.Wait()
		if g.pinw != nil {
			g.pinw.close()
		}
		g.events.close()
	})
	return nil
}

// Catalog returns the current merged catalog. The snapshot is immutable.
func (g *Gateway) Catalog() *Catalog { return g.catalog.Load() }

// Servers reports every server's status in configuration order.
func (g *Gateway) Servers() []ServerStatus {
	set := g.servers()
	out := make([]ServerStatus, 0, len(set.order))
	for _, name := range set.order {
		out = append(out, set.byName[name].status())
	}
	return out
}

// CallOptions adjust one routed call.
type CallOptions struct {
	// Progress receives the server's notifications/progress params for this
	// call, with the caller's own progressToken (gw swaps in its own on the
	// wire so callers never clash).
	Progress func(params json.RawMessage)
	// Log, when not nil, receives the server's notifications/message params
	// raised while this call is in flight (the oldest such call with a Log
	// takes a message: a legacy server's log names no request); a message
	// no call takes becomes an EventServerNotification.
	Log func(params json.RawMessage)
}

// CallTool routes a tools/call by exposed name and returns the server's
// result bytes untouched. params is the MCP CallToolRequest params object
// with the exposed name; gw rewrites name to the server's own. A call has a
// deadline (ctx's, or the server's call timeout); on deadline or cancel the
// server is sent notifications/cancelled.
func (g *Gateway) CallTool(ctx context.Context, params json.RawMessage, opts CallOptions) (res json.RawMessage, err error) {
	name := stringField(params, "name")
	c := g.Catalog()
	e, ok := c.Tool(name)
	if g.opts.Observer != nil {
		defer g.observe(methodToolsCall, orHeld(c, name, e), true, time.Now(), &res, &err)
	}
	if !ok {
		if h, held := c.held[name]; held {
			return nil, heldError(h.entry, h.change)
		}
		return nil, invalidParams(fmt.Errorf("%w: %q", ErrUnknownTool, name))
	}
	if err := g.authorizeTraced(ctx, e, params); err != nil {
		return nil, err
	}
	p, err := setField(params, "name", mustJSON(e.Original))
	if err != nil {
		return nil, invalidParams(fmt.Errorf("params: %w", err))
	}
	return g.route(ctx, e.Server, methodToolsCall, p, opts)
}

// GetPrompt routes a prompts/get by exposed name.
func (g *Gateway) GetPrompt(ctx context.Context, params json.RawMessage) (res json.RawMessage, err error) {
	name := stringField(params, "name")
	e, ok := g.Catalog().Prompt(name)
	if g.opts.Observer != nil {
		defer g.observe(methodPromptsGet, e, true, time.Now(), &res, &err)
	}
	if !ok {
		return nil, invalidParams(fmt.Errorf("%w: %q", ErrUnknownPrompt, name))
	}
	p, err := setField(params, "name", mustJSON(e.Original))
	if err != nil {
		return nil, invalidParams(fmt.Errorf("params: %w", err))
	}
	return g.route(ctx, e.Server, methodPromptsGet, p, CallOptions{})
}

// ReadResource routes a resources/read by uri: to the server that listed
// it, else to the server whose template matches.
func (g *Gateway) ReadResource(ctx context.Context, params json.RawMessage) (res json.RawMessage, err error) {
	uri := stringField(params, "uri")
	e, ok := g.Catalog().resourceOwner(uri)
	if g.opts.Observer != nil {
		defer g.observe(methodResourcesRead, e, false, time.Now(), &res, &err)
	}
	if !ok {
		return nil, invalidParams(fmt.Errorf("%w: %q", ErrUnknownResource, uri))
	}
	return g.route(ctx, e.Server, methodResourcesRead, params, CallOptions{})
}

// methodComplete is argument completion, for prompts and resource templates.
const methodComplete = "completion/complete"

// Complete routes a completion/complete by its ref's owner: a ref/prompt to
// the server of the exposed prompt name (rewritten to the server's own), a
// ref/resource to the server that serves the URI or template. The result
// comes back untouched.
func (g *Gateway) Complete(ctx context.Context, params json.RawMessage) (json.RawMessage, error) {
	ref, _ := field(params, "ref")
	c := g.Catalog()
	switch typ := stringField(ref, "type"); typ {
	case "ref/prompt":
		name := stringField(ref, "name")
		e, ok := c.Prompt(name)
		if !ok {
			return nil, invalidParams(fmt.Errorf("%w: %q", ErrUnknownPrompt, name))
		}
		ref, err := setField(ref, "name", mustJSON(e.Original))
		if err == nil {
			params, err = setField(params, "ref", ref)
		}
		if err != nil {
			return nil, invalidParams(fmt.Errorf("params: %w", err))
		}
		return g.route(ctx, e.Server, methodComplete, params, CallOptions{})
	case "ref/resource":
		uri := stringField(ref, "uri")
		e, ok := c.resourceOwner(uri)
		if !ok {
			return nil, invalidParams(fmt.Errorf("%w: %q", ErrUnknownResource, uri))
		}
		return g.route(ctx, e.Server, methodComplete, params, CallOptions{})
	default:
		return nil, invalidParams(fmt.Errorf("params.ref.type %q is not ref/prompt or ref/resource", typ))
	}
}

// route sends one request to a server, waiting (within the call's deadline)
// for a restarting server to come back.
func (g *Gateway) route(ctx context.Context, server, method string, params json.RawMessage, opts CallOptions) (json.RawMessage, error) {
	if g.tracer != nil {
		return g.routeTraced(ctx, server, method, params, opts)
	}
	return g.routeTo(ctx, server, method, params, callOptions{onProgress: opts.Progress, onLog: opts.Log})
}

// routeTo is route with the session's call options.
func (g *Gateway) routeTo(ctx context.Context, server, method string, params json.RawMessage, copts callOptions) (json.RawMessage, error) {
	m := g.server(server)
	if m == nil {
		return nil, fmt.Errorf("%w: %q is not configured", ErrServerDown, server)
	}
	timeout := m.spec.CallTimeout
	if timeout <= 0 {
		timeout = g.opts.CallTimeout
	}
	// Whose deadline comes first names the error: the caller's own, or
	// call_timeout.
	callerDeadline, callerHas := ctx.Deadline()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	s, err := m.session(ctx)
	if err != nil {
		return nil, err
	}
	if copts.span != nil {
		copts.span.SetAttributes(tracing.ProtocolVersion.String(s.version))
	}
	res, err := s.request(ctx, method, params, copts)
	if errors.Is(err, context.DeadlineExceeded) {
		if d, _ := ctx.Deadline(); callerHas && !callerDeadline.After(d) {
			return nil, fmt.Errorf("server %q: %s: no reply by the caller's deadline: %w", server, method, err)
		}
		return nil, fmt.Errorf("server %q: %s: no reply within %v (call_timeout): %w", server, method, timeout, err)
	}
	return res, err
}

// onNotify handles a server's notifications: list changes refresh the
// catalog; the rest become events.
func (g *Gateway) onNotify(s *session, method string, params json.RawMessage) {
	m := g.server(s.name)
	if m == nil {
		return // removed while its session was ending
	}
	switch method {
	case methodToolsChanged:
		m.invalidate(s, KindTools)
	case methodPromptsChanged:
		m.invalidate(s, KindPrompts)
	case methodResChanged:
		m.invalidate(s, KindResources, KindTemplates)
	case methodCancelled:
		// A modern server ending a subscription; the listener re-opens it.
		return
	}
	g.emit(Event{Kind: EventServerNotification, Server: s.name, Method: method, Params: params})
}

// FlushEvents waits until every event emitted before it has been handed to
// the sink (and HandleEvent returned), or ctx ends, or the gateway closes.
func (g *Gateway) FlushEvents(ctx context.Context) error { return g.events.flush(ctx) }

// emit queues an event for the sink.
func (g *Gateway) emit(e Event) { g.events.push(e) }

// setInventory records a server's lists (nil removes them) and rebuilds the
// catalog; a failed rebuild keeps the last good catalog and says why.
func (g *Gateway) setInventory(server string, inv *inventory) error {
	return g.mutateInventory(server, func(*inventory) *inventory { return inv })
}

// mutateInventory replaces a server's lists with edit's answer, atomically
// with respect to other edits, and rebuilds the catalog. It returns once the
// catalog holds the edit (or the rebuild refused it).
//
// Edits are committed in groups: an edit is queued, and whoever holds g.mu
// next applies every queued edit and rebuilds once. When 1,000 servers come
// up together, a rebuild of the whole catalog per server was O(n²) (15 s of
// a 1,000-server start); edits that queue while a rebuild runs now share the
// next one. A lone edit is applied at once, as before.
//
// While Start runs, a rebuild that took rebuildPaceMin or more (a catalog
// of thousands of tools) keeps the next edit waiting as long again, g.mu not
// held: the rebuilds of a start take at most half of gw's time, and the
// servers that come up meanwhile share one rebuild instead of one each (a
// 1,000-server start: half the rebuilds and a third less CPU). After the
// start an edit never waits: a list_changed is applied at once.
func (g *Gateway) mutateInventory(server string, edit func(old *inventory) *inventory) error {
	e := &inventoryEdit{server: server, edit: edit, done: make(chan struct{})}
	g.editMu.Lock()
	g.edits = append(g.edits, e)
	g.editMu.Unlock()
	g.mu.Lock()
	defer g.mu.Unlock()
	for {
		select {
		case <-e.done: // an earlier holder of g.mu applied it
			return e.err
		default:
		}
		wait := time.Until(g.nextRebuild)
		if wait <= 0 || !g.starting.Load() {
			break
		}
		g.mu.Unlock()
		time.Sleep(wait)
		g.mu.Lock()
	}
	g.editMu.Lock()
	batch := g.edits
	g.edits = nil
	g.editMu.Unlock()
	start := time.Now()
	g.applyEditsLocked(batch)
	if took := time.Since(start); took >= rebuildPaceMin && g.starting.Load() {
		g.nextRebuild = time.Now().Add(took)
	}
	return e.err
}

// rebuildPaceMin is the shortest rebuild that paces the next: below it
// (catalogs of hundreds of tools) every edit is applied at once.
const rebuildPaceMin = 2 * time.Millisecond

// inventoryEdit is one server's change of lists waiting to be committed.
type inventoryEdit struct {
	server string
	edit   func(old *inventory) *inventory
	err    error         // the rebuild's refusal; set before done is closed
	done   chan struct{} // closed once applied or refused
}

// applyEditsLocked applies batch, in order, with one rebuild. When the
// rebuild is refused and the batch holds more than one edit, it is undone
// and each edit applied alone, so that only the edits the resolver refuses
// are refused, as if each had come alone. g.mu is held.
func (g *Gateway) applyEditsLocked(batch []*inventoryEdit) {
	defer func() {
		for _, e := range batch {
			close(e.done)
		}
	}()
	prev := make(map[string]*inventory, len(batch))
	for _, e := range batch {
		if _, ok := prev[e.server]; !ok {
			prev[e.server] = g.inventory[e.server]
		}
		g.setInventoryLocked(e.server, e.edit(g.inventory[e.server]))
	}
	err := g.rebuildLocked()
	if err == nil {
		return
	}
	for server, inv := range prev {
		g.setInventoryLocked(server, inv)
	}
	if len(batch) == 1 {
		g.log.Error("catalog rebuild refused; keeping the last good catalog", "server", batch[0].server, "error", err)
		batch[0].err = err
		return
	}
	for _, e := range batch {
		old := g.inventory[e.server]
		g.setInventoryLocked(e.server, e.edit(old))
		if err := g.rebuildLocked(); err != nil {
			g.log.Error("catalog rebuild refused; keeping the last good catalog", "server", e.server, "error", err)
			g.setInventoryLocked(e.server, old)
			e.err = err
		}
	}
}

// setInventoryLocked records a server's lists; nil removes them. g.mu is
// held.
func (g *Gateway) setInventoryLocked(server string, inv *inventory) {
	if inv == nil {
		delete(g.inventory, server)
	} else {
		g.inventory[server] = inv
	}
}

// storeCatalogLocked makes c the catalog and announces it. g.mu is held,
// so catalog events come in the order the catalogs were stored.
func (g *Gateway) storeCatalogLocked(c *Catalog) {
	g.logNewRejections(c)
	g.catalog.Store(c)
	g.events.push(Event{Kind: EventCatalogChanged, Catalog: c})
	g.notePinsLocked(c)
}

// logNewRejections logs the items c leaves out that the current catalog did
// not already leave out: each once, not at every rebuild. g.mu is held.
func (g *Gateway) logNewRejections(c *Catalog) {
	seen := map[Rejection]bool{}
	for _, r := range g.catalog.Load().Rejected {
		seen[r] = true
	}
	for _, r := range c.Rejected {
		if !seen[r] {
			g.log.Warn("left out of the catalog", "server", r.Server, "name", r.Name, "reason", r.Reason)
		}
	}
}

// refreshStale re-lists, before answering, the lists whose ttlMs has passed;
// lists without ttlMs rely on change notifications instead.
//
// One re-list per server runs at a time: concurrent callers that find the
// same stale list wait for the re-list under way and then find it fresh,
// rather than each listing the server again.
func (g *Gateway) refreshStale(ctx context.Context, kinds ...Kind) {
	set := g.servers()
	for _, name := range set.order {
		if len(g.staleKinds(name, kinds)) == 0 {
			continue
		}
		m := set.byName[name]
		if !m.lockRelist(ctx) {
			return
		}
		if stale := g.staleKinds(name, kinds); len(stale) > 0 {
			m.refresh(ctx, stale...)
		}
		m.unlockRelist()
	}
}

// staleKinds returns those of kinds whose ttlMs has passed for server.
func (g *Gateway) staleKinds(server string, kinds []Kind) []Kind {
	g.mu.Lock()
	inv := g.inventory[server]
	g.mu.Unlock()
	if inv == nil {
		return nil
	}
	now := time.Now()
	var stale []Kind
	for _, k := range kinds {
		if l, ok := inv.lists[k]; ok && !l.freshUntil.IsZero() && now.After(l.freshUntil) {
			stale = append(stale, k)
		}
	}
	return stale
}

// ListTools returns the merged tools, re-listing stale servers first.
func (g *Gateway) ListTools(ctx context.Context) []Entry {
	defer g.observeList(methodToolsList, time.Now())
	g.refreshStale(ctx, KindTools)
	return g.Catalog().Tools
}

// ListPrompts returns the merged prompts.
func (g *Gateway) ListPrompts(ctx context.Context) []Entry {
	defer g.observeList(methodPromptsList, time.Now())
	g.refreshStale(ctx, KindPrompts)
	return g.Catalog().Prompts
}

// ListResources returns the merged resources and resource templates.
func (g *Gateway) ListResources(ctx context.Context) (resources, templates []Entry) {
	defer g.observeList(methodResourcesList, time.Now())
	g.refreshStale(ctx, KindResources, KindTemplates)
	c := g.Catalog()
	return c.Resources, c.Templates
}

// codedError is a gw error that also carries the JSON-RPC error a face
// should answer with: errors.Is finds the sentinel, errors.As the code.
type codedError struct {
	err error
	rpc *jsonrpc.Error
}

func (e *codedError) Error() string   { return e.err.Error() }
func (e *codedError) Unwrap() []error { return []error{e.err, e.rpc} }

func invalidParams(err error) error {
	return &codedError{err: err, rpc: &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: err.Error()}}
}

// launch starts a server's supervision loop; setMu must be held.
func (g *Gateway) launch(m *managed) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		m.run()
	}()
}

// AddServer configures and (once the gateway has started) starts another
// server. Its tools join the catalog when it is up. It goes after the
// servers of its priority and ahead of those of a lower one.
func (g *Gateway) AddServer(spec ServerSpec) error {
	return g.addServer(spec, -1)
}

// addServer adds spec's server at index at of the order if its priority
// allows, else by its priority (see serverSet.insert).
func (g *Gateway) addServer(spec ServerSpec, at int) error {
	spec, err := checkSpec(spec)
	if err != nil {
		return err
	}
	g.setMu.Lock()
	defer g.setMu.Unlock()
	if g.ctx.Err() != nil {
		return ErrClosed
	}
	old := g.servers()
	if _, dup := old.byName[spec.Name]; dup {
		return fmt.Errorf("gw: server %q is already configured", spec.Name)
	}
	next := &serverSet{order: old.order, byName: maps.Clone(old.byName)}
	m := newManaged(g, spec)
	next.byName[spec.Name] = m
	next.order = next.insert(spec, at)
	g.set.Store(next)
	if g.started {
		g.launch(m)
	}
	return nil
}

// RemoveServer stops a server (its pending calls fail, its process is
// stopped) and takes its tools out of the catalog.
func (g *Gateway) RemoveServer(name string) error {
	g.setMu.Lock()
	old := g.servers()
	m, ok := old.byName[name]
	if !ok {
		g.setMu.Unlock()
		return fmt.Errorf("%w: %q is not configured", ErrServerDown, name)
	}
	next := &serverSet{order: slices.DeleteFunc(slices.Clone(old.order), func(n string) bool { return n == name }), byName: maps.Clone(old.byName)}
	delete(next.byName, name)
	g.set.Store(next)
	started := g.started
	g.setMu.Unlock()
	m.cancel()
	if started {
		<-m.done
	}
	g.mutateInventory(name, func(*inventory) *inventory { return nil })
	return nil
}

// ReplaceServer restarts a server with a new spec, in place: its tools stay
// in the catalog, and calls that arrive meanwhile wait for the new process
// (within their deadlines), as during any restart. Calls in flight on the
// old process fail as it stops. ReplaceServer waits for the new process's
// first start; if that fails, the previous spec is started again and the
// error is returned. The server keeps its place in the order unless its
// priority changed; then it goes after the servers of its new priority.
func (g *Gateway) ReplaceServer(spec ServerSpec) error {
	spec, err := checkSpec(spec)
	if err != nil {
		return err
	}
	old, err := g.swapServer(spec)
	if err != nil {
		return err
	}
	next := g.server(spec.Name)
	if startErr := g.awaitFirstStart(next); startErr != nil {
		if _, err := g.swapServer(old.spec); err != nil {
			return fmt.Errorf("server %q: new configuration failed to start (%w), and the previous one could not be restored: %w", spec.Name, startErr, err)
		}
		return fmt.Errorf("server %q: new configuration failed to start; running the previous one: %w", spec.Name, startErr)
	}
	return nil
}

// swapServer puts a new managed server with spec in the place of the one of
// the same name, stops the old one and starts the new one. The server's
// lists stay in the catalog throughout. It returns the old managed server.
func (g *Gateway) swapServer(spec ServerSpec) (*managed, error) {
	g.setMu.Lock()
	if g.ctx.Err() != nil {
		g.setMu.Unlock()
		return nil, ErrClosed
	}
	cur := g.servers()
	old, ok := cur.byName[spec.Name]
	if !ok {
		g.setMu.Unlock()
		return nil, fmt.Errorf("%w: %q is not configured", ErrServerDown, spec.Name)
	}
	m := newManaged(g, spec)
	m.inherit(old)
	next := &serverSet{order: cur.order, byName: maps.Clone(cur.byName)}
	next.byName[spec.Name] = m
	if old.spec.Priority != spec.Priority {
		without := &serverSet{order: slices.DeleteFunc(slices.Clone(cur.order), func(n string) bool { return n == spec.Name }), byName: next.byName}
		next.order = without.insert(spec, -1)
	}
	g.set.Store(next) // from here on, calls wait for m
	started := g.started
	g.setMu.Unlock()
	old.cancel()
	if started {
		<-old.done
		g.setMu.Lock()
		if g.ctx.Err() == nil {
			g.launch(m)
		}
		g.setMu.Unlock()
	}
	return old, nil
}

// awaitFirstStart waits for m's first start attempt and returns its error.
func (g *Gateway) awaitFirstStart(m *managed) error {
	g.setMu.Lock()
	started := g.started
	g.setMu.Unlock()
	if !started {
		return nil
	}
	select {
	case <-m.firstDone:
		return m.firstErr
	case <-g.ctx.Done():
		return ErrClosed
	}
}

// ServerSpecs returns the configured servers' specs in order.
func (g *Gateway) ServerSpecs() []ServerSpec {
	set := g.servers()
	out := make([]ServerSpec, 0, len(set.order))
	for _, name := range set.order {
		out = append(out, set.byName[name].spec)
	}
	return out
}

// RebuildCatalog re-runs the resolver over every server's lists, as after a
// collision policy was swapped. A refused resolution keeps the catalog.
func (g *Gateway) RebuildCatalog() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.rebuildLocked()
}

// rebuildLocked re-runs the resolver over every server's lists. g.mu is held.
func (g *Gateway) rebuildLocked() error {
	c, err := rebuildCatalog(g.catalog.Load(), g.servers().order, g.inventory, g.opts.Resolver, g.pins)
	if err != nil {
		return err
	}
	g.storeCatalogLocked(c)
	return nil
}

// CheckResolver runs r over the current lists without changing anything:
// the dry run a new collision policy must pass before it is swapped in.
func (g *Gateway) CheckResolver(r Resolver) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	_, err := rebuildCatalog(g.catalog.Load(), g.servers().order, g.inventory, r, g.pins)
	return err
}

// SetLogLevel asks every running server that offers logging, in the legacy
// era (logging/setLevel), to send messages at level and above, and servers
// started later too. Best effort: a server that refuses is logged.
func (g *Gateway) SetLogLevel(ctx context.Context, level string) {
	g.logLevel.Store(&level)
	for _, name := range g.servers().order {
		m := g.server(name)
		if m == nil {
			continue
		}
		m.mu.Lock()
		s := m.sess
		m.mu.Unlock()
		if s != nil {
			s.setLogLevel(ctx, level)
		}
	}
}
