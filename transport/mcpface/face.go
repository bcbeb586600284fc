package mcpface

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gwmcp/gw/transport/face"
	"github.com/gwmcp/gw/transport/jsonrpc"
)

// Defaults of Options.
const (
	DefaultMaxMessageSize = 16 << 20
	DefaultMaxInFlight    = 64
	DefaultMaxListens     = 16
	DefaultStopGrace      = 5 * time.Second
	// maxQueuedUpdates bounds the resource updates waiting for the
	// notifier; more are dropped (and logged).
	maxQueuedUpdates = 1024
)

// Errors.
var (
	// ErrServed is returned by a second Serve: a Face serves one
	// connection.
	ErrServed = errors.New("mcpface: Serve called twice")
	// ErrClosed fails a request to the client when the connection has
	// ended.
	ErrClosed = errors.New("mcpface: connection closed")
	// errInputEnded is the cause of a shutdown at end of input.
	errInputEnded = errors.New("mcpface: input ended")
	// errOutputFailed is the cause of a shutdown when the client's stream
	// cannot be written.
	errOutputFailed = errors.New("mcpface: output failed")
)

// Options configure a Face. The zero value works.
type Options struct {
	// Info is the serverInfo; Name defaults to "gw".
	Info Implementation
	// Instructions, when set, go into initialize and server/discover.
	Instructions string
	// Principal is the caller every request is served as (face.Request's
	// Principal): the local user, for stdio.
	Principal string
	// MaxMessageSize bounds an incoming line; a longer one is answered
	// with -32600 and dropped. Default DefaultMaxMessageSize.
	MaxMessageSize int
	// MaxDepth bounds how deeply a message nests objects and arrays; a
	// deeper one is answered with -32600 and dropped. Default
	// jsonrpc.DefaultMaxDepth.
	MaxDepth int
	// MaxInFlight bounds the requests served at once; a request beyond it
	// is answered at once with "gw: busy" (-32603). Default
	// DefaultMaxInFlight.
	MaxInFlight int
	// MaxListens bounds the open subscriptions/listen streams. Default
	// DefaultMaxListens.
	MaxListens int
	// StopGrace bounds how long Serve waits, once the connection ends, for
	// the requests it cancelled to finish and for its reader. Default
	// DefaultStopGrace.
	StopGrace time.Duration
	// InputTTL bounds how long a modern request's gateway call waits for
	// the client's retry after an InputRequiredResult. Default
	// DefaultInputTTL.
	InputTTL time.Duration
	// MaxParked bounds the gateway calls waiting for their client's retry.
	// Default DefaultMaxParked.
	MaxParked int
	// Logger gets the face's logs; nil discards them.
	Logger *slog.Logger
}

// Face is an MCP server over one newline-delimited JSON-RPC connection,
// serving a face.Handler in either era of the protocol.
//
// Goroutines, all owned by Serve and stopped before it returns (or, past
// Options.StopGrace, abandoned and logged): one reader (decodes lines,
// answers what needs no handler, starts the rest); one goroutine per request
// served and per open listen stream; one notifier that writes list changes
// and resource updates; and, owned by the face's Rounds, one per gateway
// call of a modern request that may ask its client (it outlives the request
// while parked for a retry; Serve cancels parked ones at shutdown and waits
// for them). Writes are serialised by writeMu.
//
// Lock order: mu, then a listen's mu, then a call's mu, then writeMu.
// Nothing is written with mu held.
type Face struct {
	h    face.Handler
	opts Options
	log  *slog.Logger

	served  atomic.Bool
	started chan struct{} // closed when the session's era is decided
	closed  chan struct{} // closed when the connection ends
	wake    chan struct{} // buffered 1: the notifier has work

	out      io.Writer
	writeMu  sync.Mutex
	writeErr error
	stop     context.CancelCauseFunc // ends the connection; set by Serve

	wg     sync.WaitGroup // request and listen goroutines
	rounds *Rounds        // modern requests' round trips; owns their gateway calls

	mu          sync.Mutex
	era         Era
	caps        map[string]json.RawMessage // the client's declared capabilities (modern: its latest request's)
	initialized bool                       // legacy: notifications/initialized seen
	calls       map[string]*call           // requests in flight, by id text
	listens     map[string]*listen         // modern listen streams, by id text
	outbox      Outbox                     // gw's requests to the client
	subscribed  map[string]bool            // legacy: resources the client subscribed to
	uriRefs     map[string]int             // modern: listen streams per resource uri
	changed     Kind                       // list changes not yet announced
	updates     []string                   // resource updates not yet announced
	logs        []json.RawMessage          // legacy: servers' log messages not yet sent
	logLevel    string                     // legacy: the client's logging/setLevel; "" = all
	isClosed    bool
}

// call is one request being served.
type call struct {
	id     jsonrpc.ID
	cancel context.CancelFunc

	mu        sync.Mutex
	cancelled bool // by the client: no reply, no progress
	done      bool // replied: no more progress
}

// listen is one open subscriptions/listen stream.
type listen struct {
	id     jsonrpc.ID
	kinds  Kind
	uris   map[string]bool
	cancel context.CancelFunc

	mu        sync.Mutex // held while writing on the stream
	acked     bool       // nothing goes on the stream before its ack
	ended     bool
	cancelled bool // by the client
}

// New returns a face serving h.
func New(h face.Handler, opts Options) *Face {
	if opts.Info.Name == "" {
		opts.Info.Name = "gw"
	}
	if opts.MaxMessageSize <= 0 {
		opts.MaxMessageSize = DefaultMaxMessageSize
	}
	if opts.MaxDepth <= 0 {
		opts.MaxDepth = jsonrpc.DefaultMaxDepth
	}
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = DefaultMaxInFlight
	}
	if opts.MaxListens <= 0 {
		opts.MaxListens = DefaultMaxListens
	}
	if opts.StopGrace <= 0 {
		opts.StopGrace = DefaultStopGrace
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Face{
		h: h, opts: opts, log: log,
		started:    make(chan struct{}),
		closed:     make(chan struct{}),
		wake:       make(chan struct{}, 1),
		calls:      map[string]*call{},
		listens:    map[string]*listen{},
		subscribed: map[string]bool{},
		uriRefs:    map[string]int{},
		rounds:     NewRounds(RoundsOptions{TTL: opts.InputTTL, MaxParked: opts.MaxParked}),
	}
}

// Started is closed once the client's first request decided the session's
// era (and, in the legacy era, declared its capabilities).
func (f *Face) Started() <-chan struct{} { return f.started }

// Era reports the session's era; EraUnknown before Started.
func (f *Face) Era() Era {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.era
}

// ListChanged announces that the lists of kinds (KindTools|KindPrompts|…)
// changed: legacy clients get notifications/…/list_changed once
// initialized; modern clients on each listen stream that asked for the
// kind. It never blocks: changes coalesce until the notifier writes them.
func (f *Face) ListChanged(kinds Kind) {
	f.mu.Lock()
	f.changed |= kinds
	f.mu.Unlock()
	f.kick()
}

// ResourceUpdated announces notifications/resources/updated for uri to a
// legacy client that subscribed to it, or on the modern listen streams that
// named it. It never blocks.
func (f *Face) ResourceUpdated(uri string) {
	f.mu.Lock()
	if len(f.updates) >= maxQueuedUpdates {
		f.mu.Unlock()
		f.log.Warn("resource update dropped: too many queued", "uri", uri)
		return
	}
	f.updates = append(f.updates, uri)
	f.mu.Unlock()
	f.kick()
}

// Log sends a server's notifications/message params to a legacy client,
// when its level passes the client's logging/setLevel. A modern session
// gets none: its log messages belong to requests. It never blocks; past
// maxQueuedUpdates waiting, messages are dropped.
func (f *Face) Log(params json.RawMessage) {
	f.mu.Lock()
	if f.era == EraModern || len(f.logs) >= maxQueuedUpdates {
		f.mu.Unlock()
		return
	}
	f.logs = append(f.logs, params)
	f.mu.Unlock()
	f.kick()
}

// logFor sends a log message raised while serving one of a legacy client's
// requests, when its level passes the client's logging/setLevel.
func (f *Face) logFor(params json.RawMessage) {
	level, _ := jsonrpc.StringMember(params, "level")
	f.mu.Lock()
	min := f.logLevel
	f.mu.Unlock()
	if LogAllows(min, level) {
		f.notify(NotifMessage, params)
	}
}

func (f *Face) kick() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// Client is the connected client as a face.Input, for the capabilities it
// declared (in initialize; modern: in its latest request's _meta). In the
// legacy era it asks with JSON-RPC requests, and every legacy request's
// face.Request.Input is Client(). In the modern era a question can only ride
// on a request: Client asks through the oldest request in flight whose
// client can answer it (Rounds.AskAny) — for a legacy server asking on its
// own, which names no request; a modern request's own Input asks through
// that request.
func (f *Face) Client() face.Input { return clientInput{f} }

// Serve serves the client on in and out until in ends (EOF; nil is
// returned) or ctx ends (ctx's error). Then requests in flight are
// cancelled and answered, listen streams closed (gracefully when ctx ended),
// and Serve returns once they finished, or after Options.StopGrace,
// abandoning them. When ctx ends first and in is an io.Closer, in is closed
// to stop the reader. A Face serves one connection.
func (f *Face) Serve(ctx context.Context, in io.Reader, out io.Writer) error {
	if !f.served.CompareAndSwap(false, true) {
		return ErrServed
	}
	f.out = out
	base, stop := context.WithCancelCause(ctx)
	f.stop = stop
	defer stop(nil)

	notifierDone := make(chan struct{})
	notifierStop := make(chan struct{})
	go func() {
		defer close(notifierDone)
		f.notifier(notifierStop)
	}()
	readerDone := make(chan error, 1)
	go func() { readerDone <- f.read(base, in) }()

	var readErr error
	readerEnded := false
	select {
	case readErr = <-readerDone:
		readerEnded = true
		if readErr == nil {
			stop(errInputEnded)
		} else {
			stop(readErr)
		}
	case <-base.Done():
	}

	// Shutdown: refuse new work, fail the client requests waiting for
	// answers, cancel what is in flight and wait for it (bounded).
	f.mu.Lock()
	f.isClosed = true
	f.mu.Unlock()
	f.outbox.Close()
	f.rounds.Close()
	close(f.closed)
	if !f.waitBounded(func() { f.wg.Wait(); f.rounds.Wait() }) {
		f.log.Warn("requests still running at shutdown were abandoned", "grace", f.opts.StopGrace)
	}
	close(notifierStop)
	<-notifierDone
	if !readerEnded {
		if c, ok := in.(io.Closer); ok {
			_ = c.Close()
		}
		if !f.waitBounded(func() { <-readerDone }) {
			f.log.Warn("input reader still blocked at shutdown was abandoned")
		}
	}

	cause := context.Cause(base)
	switch {
	case errors.Is(cause, errInputEnded):
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case readErr != nil:
		return readErr
	default:
		return cause
	}
}

// waitBounded runs wait, giving up after StopGrace.
func (f *Face) waitBounded(wait func()) bool {
	done := make(chan struct{})
	go func() {
		wait()
		close(done)
	}()
	t := time.NewTimer(f.opts.StopGrace)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// read is the reader: it returns nil at EOF, else the read error.
func (f *Face) read(ctx context.Context, in io.Reader) error {
	lr := newLineReader(in, f.opts.MaxMessageSize)
	for {
		line, err := lr.next()
		switch {
		case errors.Is(err, errLineTooLong):
			f.log.Warn("message over the size limit dropped", "limit", f.opts.MaxMessageSize)
			f.replyError(jsonrpc.ID{}, jsonrpc.NewError(jsonrpc.CodeInvalidRequest, "gw: message larger than %d bytes", f.opts.MaxMessageSize))
			continue
		case errors.Is(err, io.EOF):
			return nil
		case err != nil:
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
		f.handleLine(ctx, line)
	}
}

// handleLine decodes one message and acts on it.
func (f *Face) handleLine(ctx context.Context, line []byte) {
	if id, e := jsonrpc.CheckDepth(line, f.opts.MaxDepth); e != nil {
		f.replyError(id, e)
		return
	}
	msg, err := jsonrpc.Decode(line) // the one validating pass
	if err != nil {
		f.replyError(DecodeFailure(err))
		return
	}
	switch msg.Kind() {
	case jsonrpc.KindResponse:
		f.deliver(msg)
	case jsonrpc.KindNotification:
		f.handleNotification(msg)
	default:
		f.handleRequest(ctx, msg)
	}
}

func (f *Face) handleNotification(msg *jsonrpc.Message) {
	switch msg.Method {
	case NotifInitialized:
		f.mu.Lock()
		if f.era == EraLegacy && !f.initialized {
			// Changes before now are not announced: the client lists
			// after its handshake.
			f.initialized, f.changed = true, 0
		}
		f.mu.Unlock()
	case NotifCancelled:
		id, ok := CancelledID(msg.Params)
		if !ok {
			return
		}
		f.mu.Lock()
		c := f.calls[id.String()]
		l := f.listens[id.String()]
		f.mu.Unlock()
		if c != nil {
			c.mu.Lock()
			c.cancelled = true
			c.mu.Unlock()
			c.cancel()
		}
		if l != nil {
			l.mu.Lock()
			l.cancelled = true
			l.mu.Unlock()
			l.cancel()
		}
	}
	// Other notifications (roots/list_changed, …) are not needed by gw.
}

// handleRequest decides the era when it is not yet decided, answers what
// the face answers itself, and starts the rest.
func (f *Face) handleRequest(ctx context.Context, msg *jsonrpc.Message) {
	meta := ReadMeta(msg.Params)
	f.mu.Lock()
	era := f.era
	f.mu.Unlock()

	if era == EraUnknown {
		switch {
		case msg.Method == MethodInitialize:
			f.initialize(msg)
			return
		case meta.IsModern() || msg.Method == MethodDiscover:
			if e := meta.CheckModern(); e != nil {
				f.replyError(msg.ID, e) // the era stays open: the client may fall back
				return
			}
			era = f.decide(EraModern, nil)
		case msg.Method == MethodPing:
			f.reply(msg.ID, json.RawMessage(`{}`))
			return
		default:
			f.replyError(msg.ID, jsonrpc.NewError(jsonrpc.CodeInvalidRequest, "gw: send initialize first (or, in %s, params._meta[%q])", ModernVersion, metaProtocolVersion))
			return
		}
	}

	switch era {
	case EraLegacy:
		switch msg.Method {
		case MethodInitialize:
			f.replyError(msg.ID, jsonrpc.NewError(jsonrpc.CodeInvalidRequest, "gw: already initialized"))
		case MethodPing:
			f.reply(msg.ID, json.RawMessage(`{}`))
		case MethodDiscover, MethodListen:
			f.replyError(msg.ID, jsonrpc.NewError(jsonrpc.CodeMethodNotFound, "gw: %s is not a method of %s (this session began with initialize)", msg.Method, LegacyVersion))
		case MethodSetLevel:
			level, _ := jsonrpc.StringMember(msg.Params, "level")
			if !ValidLogLevel(level) {
				f.replyError(msg.ID, jsonrpc.NewError(jsonrpc.CodeInvalidParams, "gw: params.level must be one of %v", logLevels))
				return
			}
			f.mu.Lock()
			f.logLevel = level
			f.mu.Unlock()
			// The servers too: some log nothing until a level is set.
			_, _ = f.h.Serve(ctx, &face.Request{Method: MethodSetLevel, Params: msg.Params, Principal: f.opts.Principal})
			f.reply(msg.ID, json.RawMessage(`{}`))
		default:
			f.start(ctx, msg, meta, EraLegacy)
		}
	case EraModern:
		if msg.Method == MethodInitialize {
			f.replyError(msg.ID, jsonrpc.NewError(jsonrpc.CodeInvalidRequest, "gw: this session speaks %s without initialize", ModernVersion))
			return
		}
		if e := meta.CheckModern(); e != nil {
			f.replyError(msg.ID, e)
			return
		}
		f.noteCapabilities(meta)
		switch msg.Method {
		case MethodDiscover:
			res, err := DiscoverResult(f.opts.Info, f.opts.Instructions)
			f.answer(msg.ID, res, err)
		case MethodPing:
			f.reply(msg.ID, json.RawMessage(`{"resultType":"complete"}`))
		case MethodSubscribe, MethodUnsubscribe:
			f.replyError(msg.ID, jsonrpc.NewError(jsonrpc.CodeMethodNotFound, "gw: %s is not a method of %s; use subscriptions/listen", msg.Method, ModernVersion))
		case MethodListen:
			f.startListen(ctx, msg)
		default:
			f.start(ctx, msg, meta, EraModern)
		}
	}
}

// decide fixes the session's era (once) and returns it.
func (f *Face) decide(era Era, caps map[string]json.RawMessage) Era {
	f.mu.Lock()
	if f.era != EraUnknown {
		era = f.era
		f.mu.Unlock()
		return era
	}
	f.era, f.caps = era, caps
	f.mu.Unlock()
	close(f.started)
	f.log.Debug("client session", "era", era)
	return era
}

// noteCapabilities keeps a modern request's declared client capabilities
// as the session's (Client).
func (f *Face) noteCapabilities(meta RequestMeta) {
	var caps map[string]json.RawMessage
	if json.Unmarshal(meta.capabilities, &caps) != nil {
		return
	}
	f.mu.Lock()
	f.caps = caps
	f.mu.Unlock()
}

// initialize answers the legacy handshake and fixes the era.
func (f *Face) initialize(msg *jsonrpc.Message) {
	ip, err := ReadInitialize(msg.Params)
	if err != nil {
		f.replyError(msg.ID, jsonrpc.NewError(jsonrpc.CodeInvalidParams, "gw: %v", err))
		return
	}
	if f.decide(EraLegacy, ip.Capabilities) != EraLegacy {
		f.replyError(msg.ID, jsonrpc.NewError(jsonrpc.CodeInvalidRequest, "gw: this session speaks %s without initialize", ModernVersion))
		return
	}
	res, err := InitializeResult(LegacyVersionFor(ip.Version), f.opts.Info, f.opts.Instructions)
	f.answer(msg.ID, res, err)
}

// admitLocked says why a request with id key cannot start, or nil: the face
// is closing, the id is in flight, or n of its kind already run against a
// limit of max (what names them). f.mu is held.
func (f *Face) admitLocked(key string, n, max int, what string) *jsonrpc.Error {
	switch {
	case f.isClosed:
		return jsonrpc.NewError(jsonrpc.CodeInternalError, "gw: shutting down")
	case f.calls[key] != nil || f.listens[key] != nil:
		return jsonrpc.NewError(jsonrpc.CodeInvalidRequest, "gw: request id %s is already in flight", key)
	case n >= max:
		return jsonrpc.NewError(jsonrpc.CodeInternalError, "gw: busy: %d %s", max, what)
	}
	return nil
}

// start serves a request through the handler on a goroutine of its own.
func (f *Face) start(ctx context.Context, msg *jsonrpc.Message, meta RequestMeta, era Era) {
	key := msg.ID.String()
	f.mu.Lock()
	if e := f.admitLocked(key, len(f.calls), f.opts.MaxInFlight, "requests in flight"); e != nil {
		f.mu.Unlock()
		f.replyError(msg.ID, e)
		return
	}
	cctx, cancel := context.WithCancel(ctx)
	c := &call{id: msg.ID, cancel: cancel}
	f.calls[key] = c
	f.wg.Add(1)
	f.mu.Unlock()

	req := &face.Request{Method: msg.Method, Params: msg.Params, Principal: f.opts.Principal,
		Trace: face.Trace{Transport: face.TransportStdio, RequestID: msg.ID.String(), ProtocolVersion: meta.version}}
	if meta.progressToken != nil {
		req.Progress = func(params json.RawMessage) { f.progress(c, params) }
	}
	if era == EraLegacy {
		req.Input = f.Client()
		req.Log = f.logFor
	}
	go func() {
		defer f.wg.Done()
		defer cancel()
		var res json.RawMessage
		var err error
		if era == EraModern && TakesInput(msg.Method) {
			// One connection, one client: no owner to tell apart.
			res, err = f.rounds.Serve(cctx, f.h, req, "")
		} else {
			res, err = f.h.Serve(cctx, req)
		}
		if err == nil && len(res) == 0 {
			res = json.RawMessage(`{}`)
		}
		if err == nil && era == EraModern {
			res = ModernResult(msg.Method, res)
		}
		if err == nil && era == EraLegacy {
			f.trackSubscription(msg.Method, msg.Params)
		}
		f.mu.Lock()
		delete(f.calls, key)
		f.mu.Unlock()
		c.mu.Lock()
		c.done = true
		cancelled := c.cancelled
		c.mu.Unlock()
		if cancelled {
			return // the client said it will not read the answer
		}
		f.answer(msg.ID, res, err)
	}()
}

// trackSubscription records the legacy client's resource subscriptions, so
// that updates go only to the resources it asked for.
func (f *Face) trackSubscription(method string, params json.RawMessage) {
	if method != MethodSubscribe && method != MethodUnsubscribe {
		return
	}
	uri := URIOf(params)
	f.mu.Lock()
	defer f.mu.Unlock()
	if method == MethodSubscribe {
		f.subscribed[uri] = true
	} else {
		delete(f.subscribed, uri)
	}
}

// progress writes a notifications/progress of c while it is unanswered.
func (f *Face) progress(c *call, params json.RawMessage) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done || c.cancelled {
		return
	}
	f.notify(NotifProgress, params)
}

// startListen opens a subscriptions/listen stream on a goroutine of its own.
func (f *Face) startListen(ctx context.Context, msg *jsonrpc.Message) {
	filter, e := ReadListen(msg.Params)
	if e != nil {
		f.replyError(msg.ID, e)
		return
	}
	key := msg.ID.String()
	f.mu.Lock()
	if e := f.admitLocked(key, len(f.listens), f.opts.MaxListens, "subscriptions/listen streams open"); e != nil {
		f.mu.Unlock()
		f.replyError(msg.ID, e)
		return
	}
	lctx, cancel := context.WithCancel(ctx)
	l := &listen{id: msg.ID, kinds: filter.Kinds, uris: map[string]bool{}, cancel: cancel}
	// Registered before its subscriptions are set up, so that a
	// cancellation finds it; it carries nothing before its ack.
	f.listens[key] = l
	f.wg.Add(1)
	f.mu.Unlock()
	go func() {
		defer f.wg.Done()
		defer cancel()
		f.runListen(lctx, l, filter.URIs)
	}()
}

// runListen subscribes the stream's resources, acknowledges it, waits for
// its end and cleans up. Changes while it is set up are not announced on
// it: they come before its ack, and the client lists after the ack.
func (f *Face) runListen(ctx context.Context, l *listen, uris []string) {
	var agreed []string
	for _, uri := range uris {
		if l.uris[uri] {
			continue
		}
		if err := f.subscribeURI(ctx, uri); err != nil {
			f.log.Debug("listen: resource subscription refused", "uri", uri, "error", err)
			continue
		}
		l.uris[uri] = true
		agreed = append(agreed, uri)
	}
	l.mu.Lock()
	if ctx.Err() == nil {
		f.notify(NotifAcknowledged, AckParams(l.id, l.kinds, agreed))
		l.acked = true
	}
	l.mu.Unlock()

	<-ctx.Done()

	f.mu.Lock()
	delete(f.listens, l.id.String())
	f.mu.Unlock()
	l.mu.Lock()
	l.ended = true
	cancelled := l.cancelled
	l.mu.Unlock()
	for uri := range l.uris {
		f.unsubscribeURI(uri)
	}
	// A stream the server tears down (gw stopping) ends gracefully: its
	// result, then notifications/cancelled naming it. One the client
	// cancelled, or whose client went away, gets nothing more.
	if cancelled || errors.Is(context.Cause(ctx), errInputEnded) || errors.Is(context.Cause(ctx), errOutputFailed) {
		return
	}
	res, _ := json.Marshal(map[string]any{"resultType": "complete", "_meta": SubscriptionMeta(l.id)})
	f.reply(l.id, res)
	f.notify(NotifCancelled, map[string]any{"requestId": l.id, "reason": "gw is shutting down"})
}

// subscribeURI subscribes the gateway to uri for the first stream that
// names it, through the handler's resources/subscribe.
func (f *Face) subscribeURI(ctx context.Context, uri string) error {
	f.mu.Lock()
	n := f.uriRefs[uri]
	f.uriRefs[uri] = n + 1
	f.mu.Unlock()
	if n > 0 {
		return nil
	}
	params, _ := json.Marshal(map[string]string{"uri": uri})
	_, err := f.h.Serve(ctx, &face.Request{Method: MethodSubscribe, Params: params, Principal: f.opts.Principal})
	if err != nil {
		f.mu.Lock()
		if f.uriRefs[uri]--; f.uriRefs[uri] <= 0 {
			delete(f.uriRefs, uri)
		}
		f.mu.Unlock()
	}
	return err
}

// unsubscribeURI drops a stream's interest in uri, and the gateway's
// subscription with the last one.
func (f *Face) unsubscribeURI(uri string) {
	f.mu.Lock()
	f.uriRefs[uri]--
	last := f.uriRefs[uri] <= 0
	if last {
		delete(f.uriRefs, uri)
	}
	f.mu.Unlock()
	if !last {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), f.opts.StopGrace)
	defer cancel()
	params, _ := json.Marshal(map[string]string{"uri": uri})
	if _, err := f.h.Serve(ctx, &face.Request{Method: MethodUnsubscribe, Params: params, Principal: f.opts.Principal}); err != nil {
		f.log.Debug("resource unsubscribe failed", "uri", uri, "error", err)
	}
}

// notifier writes list changes and resource updates until stop closes.
func (f *Face) notifier(stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case <-f.wake:
		}
		f.mu.Lock()
		changed, updates, logs, logLevel := f.changed, f.updates, f.logs, f.logLevel
		f.changed, f.updates, f.logs = 0, nil, nil
		era, initialized := f.era, f.initialized
		var listens []*listen
		var subscribed map[string]bool
		if era == EraModern {
			for _, l := range f.listens {
				listens = append(listens, l)
			}
		} else {
			subscribed = make(map[string]bool, len(updates))
			for _, uri := range updates {
				subscribed[uri] = f.subscribed[uri]
			}
		}
		f.mu.Unlock()

		switch {
		case era == EraLegacy && initialized:
			for _, k := range kinds {
				if changed&k != 0 {
					f.notify(k.Method(), nil)
				}
			}
			for _, uri := range updates {
				if subscribed[uri] {
					f.notify(NotifUpdated, map[string]any{"uri": uri})
				}
			}
			for _, params := range logs {
				if level, _ := jsonrpc.StringMember(params, "level"); LogAllows(logLevel, level) {
					f.notify(NotifMessage, params)
				}
			}
		case era == EraModern:
			for _, l := range listens {
				f.notifyListen(l, changed, updates)
			}
		}
		// Before the session is up, changes are not announced: the
		// client lists after its handshake anyway.
	}
}

// notifyListen writes what l asked for, after its ack.
func (f *Face) notifyListen(l *listen, changed Kind, updates []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.acked || l.ended || l.cancelled {
		return
	}
	for _, k := range kinds {
		if changed&k != 0 && l.kinds&k != 0 {
			f.notify(k.Method(), map[string]any{"_meta": SubscriptionMeta(l.id)})
		}
	}
	for _, uri := range updates {
		if l.uris[uri] {
			f.notify(NotifUpdated, map[string]any{"_meta": SubscriptionMeta(l.id), "uri": uri})
		}
	}
}

// clientInput asks the legacy client (Face.Client).
type clientInput struct{ f *Face }

// CapabilityOf maps a server-to-client method to the client capability
// that allows it.
func CapabilityOf(method string) string {
	switch method {
	case "sampling/createMessage":
		return "sampling"
	case "elicitation/create":
		return "elicitation"
	case "roots/list":
		return "roots"
	}
	return ""
}

// Supports reports whether the client declared the capability method
// needs.
func (c clientInput) Supports(method string) bool {
	c.f.mu.Lock()
	defer c.f.mu.Unlock()
	return c.f.era != EraUnknown && declared(c.f.caps, method) && !c.f.isClosed
}

// Ask asks a legacy client with a JSON-RPC request (ids "gw-1", "gw-2", …)
// and waits for its response, ctx, or the end of the connection; when ctx
// ends first, the client is sent notifications/cancelled. A modern client
// is asked through a request it has in flight (Rounds.AskAny).
func (c clientInput) Ask(ctx context.Context, method string, params json.RawMessage) (json.RawMessage, error) {
	if !c.Supports(method) {
		return nil, jsonrpc.NewError(jsonrpc.CodeMethodNotFound, "gw: the client did not declare the capability %s needs", method)
	}
	if c.f.Era() == EraModern {
		return c.f.rounds.AskAny(ctx, method, params)
	}
	return c.f.outbox.Ask(ctx, method, params, c.f.write, ErrClosed)
}

// deliver hands a client's response to the request waiting for it.
func (f *Face) deliver(msg *jsonrpc.Message) {
	if !f.outbox.Deliver(msg) {
		f.log.Debug("response to no pending request dropped", "id", msg.ID.String())
	}
}

// answer replies with res, or with err as a JSON-RPC error keeping its code.
func (f *Face) answer(id jsonrpc.ID, res json.RawMessage, err error) {
	if err != nil {
		f.replyError(id, jsonrpc.AsError(err))
		return
	}
	f.reply(id, res)
}

func (f *Face) reply(id jsonrpc.ID, res json.RawMessage) {
	line, err := jsonrpc.EncodeResult(id, res)
	if err != nil {
		// A handler's result that is not JSON.
		f.replyError(id, jsonrpc.NewError(jsonrpc.CodeInternalError, "gw: invalid result: %v", err))
		return
	}
	_ = f.write(line)
}

func (f *Face) replyError(id jsonrpc.ID, e *jsonrpc.Error) {
	line, err := jsonrpc.EncodeError(id, e)
	if err != nil {
		line, _ = jsonrpc.EncodeError(id, jsonrpc.NewError(e.Code, "%s", e.Message))
	}
	_ = f.write(line)
}

func (f *Face) notify(method string, params any) {
	line, err := jsonrpc.EncodeNotification(method, params)
	if err != nil {
		f.log.Warn("notification not encoded", "method", method, "error", err)
		return
	}
	_ = f.write(line)
}

// write writes one line. The first failure ends the connection: the client
// cannot be reached any more.
func (f *Face) write(line []byte) error {
	f.writeMu.Lock()
	defer f.writeMu.Unlock()
	if f.writeErr != nil {
		return f.writeErr
	}
	buf := make([]byte, 0, len(line)+1)
	buf = append(append(buf, line...), '\n')
	if _, err := f.out.Write(buf); err != nil {
		f.writeErr = fmt.Errorf("%w: %w", errOutputFailed, err)
		f.log.Warn("cannot write to the client; closing", "error", err)
		if f.stop != nil {
			f.stop(f.writeErr)
		}
		return f.writeErr
	}
	return nil
}
