package httpface

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gwmcp/gw/transport/face"
	"github.com/gwmcp/gw/transport/jsonrpc"
	"github.com/gwmcp/gw/transport/mcpface"
)

// Defaults of Options.
const (
	DefaultMaxBodySize = 16 << 20
	DefaultMaxSessions = 1024
	DefaultSessionIdle = 30 * time.Minute
	DefaultMaxInFlight = 256
	DefaultMaxListens  = 256
	DefaultKeepAlive   = 25 * time.Second
	DefaultMaxParked   = 256
	DefaultAnonymous   = "anonymous"
	// maxQueuedUpdates bounds the resource updates waiting on one stream;
	// more are dropped (and logged).
	maxQueuedUpdates = 256
)

// HTTP headers of the transport.
const (
	hdrProtocolVersion = "Mcp-Protocol-Version"
	hdrSessionID       = "Mcp-Session-Id"
	hdrMethod          = "Mcp-Method"
	hdrName            = "Mcp-Name"
)

// Endpoint is the path of the MCP endpoint; a view is served at
// Endpoint + "/" + its name.
const Endpoint = "/mcp"

// ErrShuttingDown fails what the face is asked once Shutdown began.
var ErrShuttingDown = errors.New("httpface: shutting down")

// Options configure a Face. The zero value serves anonymous loopback clients.
type Options struct {
	// Info is the serverInfo; Name defaults to "gw".
	Info mcpface.Implementation
	// Instructions, when set, go into initialize and server/discover.
	Instructions string
	// Authenticate maps a bearer token to its principal. When set, every
	// request needs a token it accepts (401 otherwise). Nil: no tokens,
	// every caller is Anonymous.
	Authenticate func(token string) (principal string, ok bool)
	// Anonymous is the principal of every caller when Authenticate is nil.
	// Default DefaultAnonymous.
	Anonymous string
	// AllowedOrigins are the browser origins ("https://app.example.com")
	// allowed besides loopback ones.
	AllowedOrigins []string
	// Views returns the handler of the view called name, served at
	// /mcp/{name}; nil serves no views.
	Views func(name string) (face.Handler, bool)
	// MaxBodySize bounds a request body (413 beyond). Default
	// DefaultMaxBodySize.
	MaxBodySize int64
	// MaxDepth bounds how deeply a message nests objects and arrays; a
	// deeper one is answered with 400 and -32600. Default
	// jsonrpc.DefaultMaxDepth.
	MaxDepth int
	// MaxSessions bounds the legacy sessions. Default DefaultMaxSessions.
	MaxSessions int
	// SessionIdle is how long a legacy session with no request and no GET
	// stream lives. Default DefaultSessionIdle.
	SessionIdle time.Duration
	// MaxInFlight bounds the requests served at once; more get 503.
	// Default DefaultMaxInFlight.
	MaxInFlight int
	// MaxListens bounds the open streams (listen and GET); more get 503.
	// Default DefaultMaxListens.
	MaxListens int
	// KeepAlive is the interval of SSE comments on idle streams. Default
	// DefaultKeepAlive.
	KeepAlive time.Duration
	// InputTTL bounds how long a modern request's gateway call waits for
	// the client's retry after an InputRequiredResult. Default
	// mcpface.DefaultInputTTL.
	InputTTL time.Duration
	// MaxParked bounds the gateway calls waiting for their clients'
	// retries. Default DefaultMaxParked.
	MaxParked int
	// Logger gets the face's logs; nil discards them.
	Logger *slog.Logger
}

// Face is gw's Streamable HTTP face; see the package documentation. It is
// an http.Handler, safe for concurrent use.
type Face struct {
	h    face.Handler
	opts Options
	log  *slog.Logger

	base     context.Context // every request's context ends with it
	abort    context.CancelFunc
	closing  chan struct{} // closed when Shutdown begins
	inflight chan struct{} // a semaphore of MaxInFlight
	shed     atomic.Int64  // requests refused as busy (503), for Shed
	wg       sync.WaitGroup
	rounds   *mcpface.Rounds // modern requests' round trips; owns their gateway calls

	mu       sync.Mutex
	closed   bool
	sessions map[string]*session
	streams  map[*stream]struct{}
	uriRefs  map[string]int // streams and sessions per subscribed resource
	now      func() time.Time
}

// New returns a face serving h.
func New(h face.Handler, opts Options) *Face {
	if opts.Info.Name == "" {
		opts.Info.Name = "gw"
	}
	if opts.Anonymous == "" {
		opts.Anonymous = DefaultAnonymous
	}
	if opts.MaxBodySize <= 0 {
		opts.MaxBodySize = DefaultMaxBodySize
	}
	if opts.MaxDepth <= 0 {
		opts.MaxDepth = jsonrpc.DefaultMaxDepth
	}
	if opts.MaxSessions <= 0 {
		opts.MaxSessions = DefaultMaxSessions
	}
	if opts.SessionIdle <= 0 {
		opts.SessionIdle = DefaultSessionIdle
	}
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = DefaultMaxInFlight
	}
	if opts.MaxListens <= 0 {
		opts.MaxListens = DefaultMaxListens
	}
	if opts.KeepAlive <= 0 {
		opts.KeepAlive = DefaultKeepAlive
	}
	if opts.MaxParked <= 0 {
		opts.MaxParked = DefaultMaxParked
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	base, abort := context.WithCancel(context.Background())
	return &Face{
		h: h, opts: opts, log: log,
		base: base, abort: abort,
		closing:  make(chan struct{}),
		inflight: make(chan struct{}, opts.MaxInFlight),
		sessions: map[string]*session{},
		streams:  map[*stream]struct{}{},
		uriRefs:  map[string]int{},
		rounds:   mcpface.NewRounds(mcpface.RoundsOptions{TTL: opts.InputTTL, MaxParked: opts.MaxParked}),
		now:      time.Now,
	}
}

// TokenAuthenticator returns an Options.Authenticate over a map from
// principal to token. Tokens are compared by their SHA-256, so the lookup
// takes the same time whatever prefix of a token a caller guesses. Empty
// tokens are never accepted.
func TokenAuthenticator(tokens map[string]string) func(string) (string, bool) {
	byHash := make(map[[32]byte]string, len(tokens))
	for principal, token := range tokens {
		if token != "" {
			byHash[sha256.Sum256([]byte(token))] = principal
		}
	}
	return func(token string) (string, bool) {
		if token == "" {
			return "", false
		}
		p, ok := byHash[sha256.Sum256([]byte(token))]
		return p, ok
	}
}

// ListChanged announces that the lists of kinds changed: on every legacy
// session's GET stream and on every listen stream that asked for the kind.
// It never blocks.
func (f *Face) ListChanged(kinds mcpface.Kind) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for st := range f.streams {
		if k := kinds & st.kinds; k != 0 {
			st.changed |= k
			st.kick()
		}
	}
}

// ResourceUpdated announces notifications/resources/updated for uri on the
// streams whose client subscribed to it. It never blocks.
func (f *Face) ResourceUpdated(uri string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for st := range f.streams {
		if !st.wantsLocked(uri) {
			continue
		}
		if len(st.updates) >= maxQueuedUpdates {
			f.log.Warn("resource update dropped: too many queued", "uri", uri)
			continue
		}
		st.updates = append(st.updates, uri)
		st.kick()
	}
}

// Log sends a server's notifications/message params on the GET stream of
// every legacy session whose logging/setLevel it passes. Modern clients get
// none: their log messages belong to requests. It never blocks; past
// maxQueuedUpdates waiting on a stream, messages are dropped.
func (f *Face) Log(params json.RawMessage) {
	level, _ := jsonrpc.StringMember(params, "level")
	f.mu.Lock()
	defer f.mu.Unlock()
	for st := range f.streams {
		if st.sess == nil || !mcpface.LogAllows(st.sess.logLevel, level) || len(st.logs) >= maxQueuedUpdates {
			continue
		}
		st.logs = append(st.logs, params)
		st.kick()
	}
}

// Shutdown stops the face: new requests get 503, listen streams end with
// their result, GET streams close, gw's requests to legacy clients fail,
// gateway calls parked for a modern client's retry are cancelled, and
// requests in flight are waited for until ctx ends, then cancelled; then
// the sessions end. It returns ctx's error when requests were cancelled.
func (f *Face) Shutdown(ctx context.Context) error {
	f.mu.Lock()
	if !f.closed {
		f.closed = true
		close(f.closing)
	}
	open := make([]*session, 0, len(f.sessions))
	for _, s := range f.sessions {
		open = append(open, s)
	}
	f.mu.Unlock()
	for _, s := range open {
		s.outbox.Close()
	}
	// Parked calls end now (no retry will be taken); calls a request
	// waits for end with it.
	f.rounds.Close()
	done := make(chan struct{})
	go func() {
		f.wg.Wait()
		f.rounds.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	f.abort()
	<-done // every request's context has ended: handlers return promptly
	f.mu.Lock()
	sessions := make([]*session, 0, len(f.sessions))
	for id, s := range f.sessions {
		delete(f.sessions, id)
		sessions = append(sessions, s)
	}
	f.mu.Unlock()
	for _, s := range sessions {
		f.endSession(s)
	}
	return err
}

// enter registers a request, unless the face is shutting down.
func (f *Face) enter() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	f.wg.Add(1)
	return true
}

// ServeHTTP serves the MCP endpoint.
func (f *Face) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !f.enter() {
		writeError(w, http.StatusServiceUnavailable, jsonrpc.ID{}, jsonrpc.NewError(jsonrpc.CodeInternalError, "gw: shutting down"))
		return
	}
	defer f.wg.Done()
	principal, ok := f.admit(w, r)
	if !ok {
		return
	}
	h, view, ok := f.route(r.URL.Path)
	if !ok {
		http.NotFound(w, r)
		return
	}
	c := &caller{principal: principal, h: h, view: view}
	switch r.Method {
	case http.MethodPost:
		f.post(w, r, c)
	case http.MethodGet:
		f.get(w, r, c)
	case http.MethodDelete:
		f.delete(w, r, c)
	default:
		w.Header().Set("Allow", "GET, POST, DELETE")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

// admit applies the face's checks to a request: its Origin, its Host, its
// bearer token. It answers a refused request itself.
func (f *Face) admit(w http.ResponseWriter, r *http.Request) (principal string, ok bool) {
	if !f.originAllowed(r.Header.Get("Origin")) {
		f.log.Warn("request from a disallowed origin refused", "origin", r.Header.Get("Origin"), "remote", r.RemoteAddr)
		writeError(w, http.StatusForbidden, jsonrpc.ID{}, jsonrpc.NewError(jsonrpc.CodeInvalidRequest, "gw: origin not allowed"))
		return "", false
	}
	if !f.hostAllowed(r) {
		f.log.Warn("request naming a non-loopback host on a loopback address refused", "host", r.Host, "remote", r.RemoteAddr)
		writeError(w, http.StatusForbidden, jsonrpc.ID{}, jsonrpc.NewError(jsonrpc.CodeInvalidRequest, "gw: host not allowed"))
		return "", false
	}
	principal, ok = f.authenticate(r)
	if !ok {
		challenge := `Bearer realm="gw"`
		if r.Header.Get("Authorization") != "" {
			challenge += `, error="invalid_token"`
		}
		w.Header().Set("WWW-Authenticate", challenge)
		writeError(w, http.StatusUnauthorized, jsonrpc.ID{}, jsonrpc.NewError(jsonrpc.CodeInvalidRequest, "gw: a valid bearer token is required"))
		return "", false
	}
	return principal, true
}

// Guard returns h behind the face's own checks (Origin, Host on a loopback
// address, bearer token when Authenticate is set): for other endpoints of
// the same listener that should be reached by exactly who may reach /mcp,
// such as /metrics. Refusals are answered as the face answers them.
func (f *Face) Guard(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := f.admit(w, r); ok {
			h.ServeHTTP(w, r)
		}
	})
}

// caller is who asks and what they reach.
type caller struct {
	principal string
	h         face.Handler
	view      string // "" for the whole namespace
}

func (f *Face) route(path string) (face.Handler, string, bool) {
	if path == Endpoint {
		return f.h, "", true
	}
	name, ok := strings.CutPrefix(path, Endpoint+"/")
	if !ok || name == "" || strings.Contains(name, "/") || f.opts.Views == nil {
		return nil, "", false
	}
	h, ok := f.opts.Views(name)
	return h, name, ok
}

func (f *Face) authenticate(r *http.Request) (string, bool) {
	if f.opts.Authenticate == nil {
		return f.opts.Anonymous, true
	}
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return f.opts.Authenticate(strings.TrimSpace(token))
}

// originAllowed: no Origin (not a browser), a loopback origin, or a
// configured one.
func (f *Face) originAllowed(origin string) bool {
	if origin == "" {
		return true
	}
	if slices.Contains(f.opts.AllowedOrigins, strings.TrimSuffix(origin, "/")) {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return false
	}
	return isLoopbackHost(u.Hostname())
}

// hostAllowed: a request that came in on a loopback address names a
// loopback host or an allowed origin's host. Others pass.
func (f *Face) hostAllowed(r *http.Request) bool {
	local, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok {
		return true
	}
	tcp, ok := local.(*net.TCPAddr)
	if !ok || !tcp.IP.IsLoopback() {
		return true
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if isLoopbackHost(strings.Trim(host, "[]")) {
		return true
	}
	for _, o := range f.opts.AllowedOrigins {
		if u, err := url.Parse(o); err == nil && strings.EqualFold(u.Hostname(), host) {
			return true
		}
	}
	return false
}

func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// post serves one JSON-RPC message.
func (f *Face) post(w http.ResponseWriter, r *http.Request, c *caller) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, f.opts.MaxBodySize))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, jsonrpc.ID{}, jsonrpc.NewError(jsonrpc.CodeInvalidRequest, "gw: message larger than %d bytes", f.opts.MaxBodySize))
			return
		}
		writeError(w, http.StatusBadRequest, jsonrpc.ID{}, jsonrpc.NewError(jsonrpc.CodeParseError, "gw: cannot read the body"))
		return
	}
	if id, e := jsonrpc.CheckDepth(body, f.opts.MaxDepth); e != nil {
		writeError(w, http.StatusBadRequest, id, e)
		return
	}
	msg, err := jsonrpc.Decode(body) // the one validating pass
	if err != nil {
		id, e := mcpface.DecodeFailure(err)
		writeError(w, http.StatusBadRequest, id, e)
		return
	}
	sid := r.Header.Get(hdrSessionID)
	hv := r.Header.Get(hdrProtocolVersion)
	switch msg.Kind() {
	case jsonrpc.KindResponse:
		// Only a legacy session's client answers gw's requests.
		s := f.sessionFor(w, r, c, msg.ID)
		if s == nil {
			return
		}
		f.deliver(s, msg)
		w.WriteHeader(http.StatusAccepted)
		return
	case jsonrpc.KindNotification:
		// A modern client sends none over HTTP (closing a stream
		// cancels); one that does is accepted and ignored.
		if sid != "" && mcpface.EraOf(hv) != mcpface.EraModern {
			s := f.sessionFor(w, r, c, jsonrpc.ID{})
			if s == nil {
				return
			}
			f.legacyNotification(s, msg)
		}
		w.WriteHeader(http.StatusAccepted)
		return
	}
	meta := mcpface.ReadMeta(msg.Params)
	switch {
	case msg.Method == mcpface.MethodInitialize && !meta.IsModern() && mcpface.EraOf(hv) != mcpface.EraModern:
		f.initialize(w, r, c, msg)
	case meta.IsModern() || msg.Method == mcpface.MethodDiscover || msg.Method == mcpface.MethodListen ||
		sid == "" && hv != "" && mcpface.EraOf(hv) != mcpface.EraLegacy:
		f.modern(w, r, c, msg, meta)
	case sid == "":
		writeError(w, http.StatusBadRequest, msg.ID, jsonrpc.NewError(jsonrpc.CodeInvalidRequest,
			"gw: the %s header is required (send initialize first, or, in %s, params._meta[%q])", hdrSessionID, mcpface.ModernVersion, "io.modelcontextprotocol/protocolVersion"))
	default:
		f.legacy(w, r, c, msg, meta)
	}
}

// get opens a legacy session's notification stream; without a session it
// is not a method of the endpoint.
func (f *Face) get(w http.ResponseWriter, r *http.Request, c *caller) {
	if r.Header.Get(hdrSessionID) == "" || mcpface.EraOf(r.Header.Get(hdrProtocolVersion)) == mcpface.EraModern {
		w.Header().Set("Allow", "POST")
		http.Error(w, "method not allowed: this endpoint streams on POST (GET needs a 2025-11-25 session)", http.StatusMethodNotAllowed)
		return
	}
	s := f.sessionFor(w, r, c, jsonrpc.ID{})
	if s == nil {
		return
	}
	f.sessionStream(w, r, s)
}

// delete ends a legacy session.
func (f *Face) delete(w http.ResponseWriter, r *http.Request, c *caller) {
	if r.Header.Get(hdrSessionID) == "" || mcpface.EraOf(r.Header.Get(hdrProtocolVersion)) == mcpface.EraModern {
		w.Header().Set("Allow", "POST")
		http.Error(w, "method not allowed: there is no session to end", http.StatusMethodNotAllowed)
		return
	}
	s := f.sessionFor(w, r, c, jsonrpc.ID{})
	if s == nil {
		return
	}
	f.mu.Lock()
	delete(f.sessions, s.id)
	f.mu.Unlock()
	f.endSession(s)
	w.WriteHeader(http.StatusNoContent)
}

// acquire takes a slot of MaxInFlight, or answers 503.
func (f *Face) acquire(w http.ResponseWriter, id jsonrpc.ID) bool {
	select {
	case f.inflight <- struct{}{}:
		return true
	default:
		f.shed.Add(1)
		writeError(w, http.StatusServiceUnavailable, id, jsonrpc.NewError(jsonrpc.CodeInternalError, "gw: busy: %d requests in flight", f.opts.MaxInFlight))
		return false
	}
}

// Shed returns how many requests the face refused as busy (503) since it
// was made: past MaxInFlight, MaxSessions or MaxListens. A face at shutdown
// refuses too, but does not count: that is not load.
func (f *Face) Shed() int64 { return f.shed.Load() }

func (f *Face) release() { <-f.inflight }

// withBase returns ctx that also ends with the face (Shutdown's abort).
func (f *Face) withBase(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(f.base, cancel)
	return ctx, func() {
		stop()
		cancel()
	}
}

// serve runs a request through the handler and answers it on rep. era
// decides the result's shape and the status of an unknown method.
func (f *Face) serve(ctx context.Context, rep *reply, h face.Handler, req *face.Request, id jsonrpc.ID, era mcpface.Era) {
	res, err := h.Serve(ctx, req)
	f.answer(rep, id, req.Method, era, res, err)
}

// answer answers a request on rep with the handler's result or error.
func (f *Face) answer(rep *reply, id jsonrpc.ID, method string, era mcpface.Era, res json.RawMessage, err error) {
	if err != nil {
		e := jsonrpc.AsError(err)
		status := http.StatusOK
		if era == mcpface.EraModern {
			switch e.Code {
			case jsonrpc.CodeMethodNotFound:
				status = http.StatusNotFound
			case jsonrpc.CodeMissingRequiredClientCapability, jsonrpc.CodeUnsupportedProtocolVersion:
				status = http.StatusBadRequest // the request, not the call, is at fault
			}
		}
		rep.finalError(status, id, e)
		return
	}
	if len(res) == 0 {
		res = json.RawMessage(`{}`)
	}
	if era == mcpface.EraModern {
		res = mcpface.ModernResult(method, res)
	}
	rep.finalResult(id, res)
}

// subscribe subscribes the gateway to uri for one more stream or session.
// The handler is asked every time (the gateway's subscribe is idempotent),
// so a view's handler refuses a resource outside the view even when another
// client subscribed it already.
func (f *Face) subscribe(ctx context.Context, c *caller, uri string) error {
	params, _ := json.Marshal(map[string]string{"uri": uri})
	if _, err := c.h.Serve(ctx, &face.Request{Method: mcpface.MethodSubscribe, Params: params, Principal: c.principal}); err != nil {
		return err
	}
	f.mu.Lock()
	f.uriRefs[uri]++
	f.mu.Unlock()
	return nil
}

// unsubscribe drops one interest in uri, and the gateway's subscription
// with the last.
func (f *Face) unsubscribe(c *caller, uri string) {
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
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	params, _ := json.Marshal(map[string]string{"uri": uri})
	if _, err := c.h.Serve(ctx, &face.Request{Method: mcpface.MethodUnsubscribe, Params: params, Principal: c.principal}); err != nil {
		f.log.Debug("resource unsubscribe failed", "uri", uri, "error", err)
	}
}
