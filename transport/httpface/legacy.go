package httpface

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"time"

	"github.com/gwmcp/gw/transport/face"
	"github.com/gwmcp/gw/transport/jsonrpc"
	"github.com/gwmcp/gw/transport/mcpface"
)

// session is one legacy (initialize) session. Its mutable state is guarded
// by Face.mu.
type session struct {
	id        string
	principal string // who created it; nobody else may use it
	view      string
	version   string // negotiated
	caps      map[string]json.RawMessage
	h         face.Handler

	ctx    context.Context // ends with the session; its requests' base
	cancel context.CancelFunc

	initialized bool
	busy        int       // requests in flight and GET streams
	lastUsed    time.Time // when busy last dropped to 0
	hasStream   bool
	subscribed  map[string]bool
	logLevel    string                        // logging/setLevel; "" = every level
	calls       map[string]context.CancelFunc // requests in flight by id
	outbox      mcpface.Outbox                // gw's requests to the client, answered by its POSTs
	ended       bool
}

// newSessionID is 256 random bits, base64url: visible ASCII, as the spec
// asks.
func newSessionID() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// initialize answers the legacy handshake with a new session.
func (f *Face) initialize(w http.ResponseWriter, r *http.Request, c *caller, msg *jsonrpc.Message) {
	ip, err := mcpface.ReadInitialize(msg.Params)
	if err != nil {
		writeError(w, http.StatusBadRequest, msg.ID, jsonrpc.NewError(jsonrpc.CodeInvalidParams, "gw: %v", err))
		return
	}
	version := mcpface.LegacyVersionFor(ip.Version)
	res, err := mcpface.InitializeResult(version, f.opts.Info, f.opts.Instructions)
	if err != nil {
		writeError(w, http.StatusInternalServerError, msg.ID, jsonrpc.AsError(err))
		return
	}
	ctx, cancel := f.withBase(context.Background())
	s := &session{
		id: newSessionID(), principal: c.principal, view: c.view, version: version, caps: ip.Capabilities, h: c.h,
		ctx: ctx, cancel: cancel,
		subscribed: map[string]bool{}, calls: map[string]context.CancelFunc{},
	}
	ended, ok := f.addSession(s)
	for _, old := range ended {
		f.endSession(old)
	}
	if !ok {
		cancel()
		f.shed.Add(1)
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, msg.ID, jsonrpc.NewError(jsonrpc.CodeInternalError, "gw: busy: %d sessions in use", f.opts.MaxSessions))
		return
	}
	f.log.Debug("session started", "principal", c.principal, "version", version, "view", c.view)
	w.Header().Set(hdrSessionID, s.id)
	writeResult(w, msg.ID, res)
}

// addSession registers s, dropping expired sessions and, when MaxSessions
// are in use, evicting the least recently used idle one. It returns the
// sessions dropped, for the caller to end outside the lock; ok is false
// when every session is busy.
func (f *Face) addSession(s *session) (ended []*session, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, false
	}
	now := f.now()
	for id, old := range f.sessions {
		if old.busy == 0 && now.Sub(old.lastUsed) > f.opts.SessionIdle {
			delete(f.sessions, id)
			ended = append(ended, old)
		}
	}
	if len(f.sessions) >= f.opts.MaxSessions {
		var lru *session
		for _, old := range f.sessions {
			if old.busy == 0 && (lru == nil || old.lastUsed.Before(lru.lastUsed)) {
				lru = old
			}
		}
		if lru == nil {
			return ended, false
		}
		f.log.Info("idle session evicted for a new one", "principal", lru.principal)
		delete(f.sessions, lru.id)
		ended = append(ended, lru)
	}
	s.lastUsed = now
	f.sessions[s.id] = s
	return ended, true
}

// endSession ends a session removed from the map: its GET stream closes,
// its requests are cancelled, gw's requests to its client fail, its
// resource subscriptions are dropped.
func (f *Face) endSession(s *session) {
	f.mu.Lock()
	if s.ended {
		f.mu.Unlock()
		return
	}
	s.ended = true
	uris := make([]string, 0, len(s.subscribed))
	for uri := range s.subscribed {
		uris = append(uris, uri)
	}
	s.subscribed = map[string]bool{}
	f.mu.Unlock()
	s.outbox.Close()
	s.cancel()
	c := &caller{principal: s.principal, h: s.h, view: s.view}
	for _, uri := range uris {
		f.unsubscribe(c, uri)
	}
}

// sessionFor finds the request's session and marks it used, or answers 400
// (no header) or 404 (unknown, expired, another principal's or another
// view's) and returns nil.
func (f *Face) sessionFor(w http.ResponseWriter, r *http.Request, c *caller, id jsonrpc.ID) *session {
	sid := r.Header.Get(hdrSessionID)
	if sid == "" {
		writeError(w, http.StatusBadRequest, id, jsonrpc.NewError(jsonrpc.CodeInvalidRequest, "gw: the %s header is required", hdrSessionID))
		return nil
	}
	f.mu.Lock()
	s := f.sessions[sid]
	if s != nil && s.busy == 0 && f.now().Sub(s.lastUsed) > f.opts.SessionIdle {
		delete(f.sessions, sid)
		f.mu.Unlock()
		f.endSession(s)
		s = nil
		f.mu.Lock()
	}
	if s == nil || s.principal != c.principal || s.view != c.view {
		f.mu.Unlock()
		writeError(w, http.StatusNotFound, id, jsonrpc.NewError(jsonrpc.CodeInvalidRequest, "gw: no such session (unknown or expired); send initialize"))
		return nil
	}
	f.mu.Unlock()
	if hv := r.Header.Get(hdrProtocolVersion); hv != "" && hv != s.version {
		writeError(w, http.StatusBadRequest, id, jsonrpc.NewError(jsonrpc.CodeInvalidRequest, "gw: %s %q is not the session's version %q", hdrProtocolVersion, hv, s.version))
		return nil
	}
	f.mu.Lock()
	s.lastUsed = f.now()
	f.mu.Unlock()
	return s
}

// hold marks s busy (it does not expire) until the returned func runs.
func (f *Face) hold(s *session) func() {
	f.mu.Lock()
	s.busy++
	f.mu.Unlock()
	return func() {
		f.mu.Lock()
		s.busy--
		s.lastUsed = f.now()
		f.mu.Unlock()
	}
}

// legacyNotification handles a legacy client's notification.
func (f *Face) legacyNotification(s *session, msg *jsonrpc.Message) {
	switch msg.Method {
	case mcpface.NotifInitialized:
		f.mu.Lock()
		s.initialized = true
		f.mu.Unlock()
	case mcpface.NotifCancelled:
		id, ok := mcpface.CancelledID(msg.Params)
		if !ok {
			return
		}
		f.mu.Lock()
		cancel := s.calls[id.String()]
		f.mu.Unlock()
		if cancel != nil {
			cancel()
		}
	}
}

// deliver hands a client's response to gw's request waiting for it.
func (f *Face) deliver(s *session, msg *jsonrpc.Message) {
	if !s.outbox.Deliver(msg) {
		f.log.Debug("response to no pending request dropped", "id", msg.ID.String())
	}
}

// legacy serves a request of a legacy session.
func (f *Face) legacy(w http.ResponseWriter, r *http.Request, c *caller, msg *jsonrpc.Message, meta mcpface.RequestMeta) {
	s := f.sessionFor(w, r, c, msg.ID)
	if s == nil {
		return
	}
	defer f.hold(s)()
	switch msg.Method {
	case mcpface.MethodPing:
		writeResult(w, msg.ID, []byte(`{}`))
		return
	case mcpface.MethodDiscover, mcpface.MethodListen:
		writeError(w, http.StatusOK, msg.ID, jsonrpc.NewError(jsonrpc.CodeMethodNotFound, "gw: %s is not a method of %s (this session began with initialize)", msg.Method, mcpface.LegacyVersion))
		return
	case mcpface.MethodSetLevel:
		level, _ := jsonrpc.StringMember(msg.Params, "level")
		if !mcpface.ValidLogLevel(level) {
			writeError(w, http.StatusOK, msg.ID, jsonrpc.NewError(jsonrpc.CodeInvalidParams, "gw: params.level must be a syslog level (debug … emergency)"))
			return
		}
		f.mu.Lock()
		s.logLevel = level
		f.mu.Unlock()
		// The servers too: some log nothing until a level is set.
		_, _ = s.h.Serve(r.Context(), &face.Request{Method: mcpface.MethodSetLevel, Params: msg.Params, Principal: c.principal})
		writeResult(w, msg.ID, []byte(`{}`))
		return
	}
	if !f.acquire(w, msg.ID) {
		return
	}
	defer f.release()
	key := msg.ID.String()
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	f.mu.Lock()
	if s.calls[key] != nil {
		f.mu.Unlock()
		writeError(w, http.StatusOK, msg.ID, jsonrpc.NewError(jsonrpc.CodeInvalidRequest, "gw: request id %s is already in flight", key))
		return
	}
	s.calls[key] = cancel
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(s.calls, key)
		f.mu.Unlock()
	}()

	rep := newReply(w, r)
	switch msg.Method {
	case mcpface.MethodSubscribe, mcpface.MethodUnsubscribe:
		if err := f.sessionSubscription(ctx, s, c, msg); err != nil {
			rep.finalError(http.StatusOK, msg.ID, jsonrpc.AsError(err))
		} else {
			rep.finalResult(msg.ID, []byte(`{}`))
		}
		return
	}
	req := &face.Request{Method: msg.Method, Params: msg.Params, Principal: c.principal, Input: &input{f: f, s: s, rep: rep}, Trace: traceOf(r, msg.ID, s.id, s.version)}
	if meta.ProgressToken() != nil && rep.canSSE {
		req.Progress = progressTo(rep)
	}
	if rep.canSSE {
		req.Log = func(params json.RawMessage) {
			level, _ := jsonrpc.StringMember(params, "level")
			f.mu.Lock()
			min := s.logLevel
			f.mu.Unlock()
			if !mcpface.LogAllows(min, level) {
				return
			}
			if line, err := jsonrpc.EncodeNotification(mcpface.NotifMessage, params); err == nil {
				_ = rep.event(line)
			}
		}
	}
	f.serve(ctx, rep, c.h, req, msg.ID, mcpface.EraLegacy)
}

// sessionSubscription serves resources/subscribe and unsubscribe for a
// session: updates go to its GET stream.
func (f *Face) sessionSubscription(ctx context.Context, s *session, c *caller, msg *jsonrpc.Message) error {
	uri := mcpface.URIOf(msg.Params)
	if uri == "" {
		return jsonrpc.NewError(jsonrpc.CodeInvalidParams, "gw: params.uri must be a non-empty string")
	}
	f.mu.Lock()
	had := s.subscribed[uri]
	f.mu.Unlock()
	if msg.Method == mcpface.MethodSubscribe {
		if had {
			return nil
		}
		if err := f.subscribe(ctx, c, uri); err != nil {
			return err
		}
		f.mu.Lock()
		if s.ended { // ended meanwhile: its subscriptions are gone
			f.mu.Unlock()
			f.unsubscribe(c, uri)
			return nil
		}
		s.subscribed[uri] = true
		f.mu.Unlock()
		return nil
	}
	if !had {
		return nil
	}
	f.mu.Lock()
	delete(s.subscribed, uri)
	f.mu.Unlock()
	f.unsubscribe(c, uri)
	return nil
}

// sessionStream serves a session's GET stream: list changes once the
// session is initialized and updates of the resources it subscribed to,
// until the client closes it, the session ends or the face stops.
func (f *Face) sessionStream(w http.ResponseWriter, r *http.Request, s *session) {
	if !acceptsSSE(r) {
		http.Error(w, "GET answers text/event-stream, which the Accept header leaves out", http.StatusNotAcceptable)
		return
	}
	f.mu.Lock()
	if s.hasStream {
		f.mu.Unlock()
		http.Error(w, "this session's stream is already open", http.StatusConflict)
		return
	}
	s.hasStream = true
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		s.hasStream = false
		f.mu.Unlock()
	}()
	defer f.hold(s)()
	st := &stream{kinds: mcpface.KindTools | mcpface.KindPrompts | mcpface.KindResources, sess: s, wake: make(chan struct{}, 1)}
	if !f.addStream(st) {
		f.shed.Add(1)
		http.Error(w, "busy: too many streams open", http.StatusServiceUnavailable)
		return
	}
	defer f.removeStream(st)
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := context.AfterFunc(s.ctx, cancel)
	defer stop()

	rc := http.NewResponseController(w)
	startSSE(w)
	if rc.Flush() != nil {
		return
	}
	f.pump(ctx, w, rc, st, func(mcpface.Kind) any { return nil }, func(uri string) any { return map[string]any{"uri": uri} })
}

// input asks a legacy session's client, on the stream of the request being
// served (face.Request.Input).
type input struct {
	f   *Face
	s   *session
	rep *reply
}

// Supports reports whether the client declared the capability method needs
// and can be sent a request on this request's stream.
func (in *input) Supports(method string) bool {
	capName := mcpface.CapabilityOf(method)
	if capName == "" || !in.rep.canSSE {
		return false
	}
	in.f.mu.Lock()
	defer in.f.mu.Unlock()
	_, ok := in.s.caps[capName]
	return ok && !in.s.ended
}

// Ask sends method to the client as a JSON-RPC request (ids "gw-1", …) on
// the request's stream and waits for the response the client POSTs, ctx,
// or the end of the session. When ctx ends first, the client is sent
// notifications/cancelled.
func (in *input) Ask(ctx context.Context, method string, params json.RawMessage) (json.RawMessage, error) {
	if !in.Supports(method) {
		return nil, jsonrpc.NewError(jsonrpc.CodeMethodNotFound, "gw: the client did not declare the capability %s needs", method)
	}
	return in.s.outbox.Ask(ctx, method, params, in.rep.event, ErrShuttingDown)
}
