package mcptest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Keys of _meta the server reads or writes.
const (
	metaProtocolVersion    = "io.modelcontextprotocol/protocolVersion"
	metaClientInfo         = "io.modelcontextprotocol/clientInfo"
	metaClientCapabilities = "io.modelcontextprotocol/clientCapabilities"
	metaLogLevel           = "io.modelcontextprotocol/logLevel"
	metaServerInfo         = "io.modelcontextprotocol/serverInfo"
	metaSubscriptionID     = "io.modelcontextprotocol/subscriptionId"
	metaProgressToken      = "progressToken"
)

// phase is the progress of the legacy handshake.
type phase int

const (
	phaseNew          phase = iota // nothing yet
	phaseInitializing              // initialize answered, notifications/initialized not yet seen
	phaseReady                     // handshake complete
)

// handler answers one request. It returns the result body, or an error
// object, or errNoReply to send nothing.
type handler func(c *call) (map[string]any, *rpcError)

// call is one client request in flight.
type call struct {
	id     json.RawMessage // compacted; echoed exactly
	key    string          // string(id): the in-flight map key
	method string
	params object // never nil
	meta   object // params._meta, nil when absent
	modern bool   // served under the stateless revision
	caps   object // modern: the client capabilities from _meta

	ctx    context.Context // done when cancelled, or the server stops
	cancel context.CancelFunc
}

// server is one Serve invocation.
//
// Goroutines: Serve's own goroutine reads in and dispatches; each request runs
// in a goroutine of handlers; the ExitAfter timer in one of background.
// Shutdown order when in ends: wait up to Options.EOFGrace for handlers to
// finish on their own; then cancel ctx (every handler stops and every later
// write is dropped), close in and out, wait for handlers and background. When
// the server dies, ctx is cancelled and in and out closed at once, then the
// same waits. No goroutine is started after the reader returns.
//
// Lock order: subMu before wmu. mu is a leaf: nothing is locked or written
// while it is held.
type server struct {
	opts Options
	in   *stallReader
	out  io.Writer

	ctx        context.Context
	stop       context.CancelFunc
	handlers   sync.WaitGroup // request handlers
	background sync.WaitGroup // the ExitAfter timer
	closeIO    sync.Once

	wmu      sync.Mutex  // serialises writes to out
	dead     atomic.Bool // the server died: drop every write
	dieOnce  sync.Once
	exitCode atomic.Int64
	pings    atomic.Int64 // pings received, for Options.PingDelayEvery

	subMu sync.Mutex               // guards subs; held while writing to a stream
	subs  map[string]*subscription // open subscriptions/listen streams by id

	mu         sync.Mutex
	inflight   map[string]*call            // client requests by id
	pending    map[string]chan clientReply // legacy server-to-client requests by id
	nextOutID  int
	phase      phase
	legacyCaps object
	logLevel   string               // legacy logging/setLevel
	resSubs    map[string]bool      // legacy resources/subscribe
	tools      []*tool              // in listing order
	states     map[string]mrtrState // requestState values issued
	stats      Stats
}

// Serve runs a test MCP server that reads newline-delimited JSON-RPC from in
// and writes to out, configured by opts. It returns nil when in reaches EOF,
// an *ExitError when the server died (see Options.Exit), or an error wrapping
// ErrBadOptions. Requests are handled concurrently, each in its own goroutine.
// When in ends, requests still in flight have Options.EOFGrace to finish and
// reply; then the rest are cancelled without a reply.
// Before returning, Serve closes in and out when they implement io.Closer, as
// the exit of a server process would.
func Serve(in io.Reader, out io.Writer, opts Options) error {
	o, err := opts.withDefaults()
	if err != nil {
		return err
	}
	ctx, stop := context.WithCancel(context.Background())
	s := &server{
		opts:     o,
		in:       &stallReader{r: in, done: ctx.Done()},
		out:      out,
		ctx:      ctx,
		stop:     stop,
		subs:     map[string]*subscription{},
		inflight: map[string]*call{},
		pending:  map[string]chan clientReply{},
		resSubs:  map[string]bool{},
		states:   map[string]mrtrState{},
		stats: Stats{
			Era:       string(o.Era),
			Methods:   map[string]int{},
			ListCalls: map[string]int{},
		},
	}
	for i := range builtinTools {
		s.tools = append(s.tools, &builtinTools[i])
	}
	desc := o.ToolDescription
	if desc == "" {
		desc = "Extra tool from MCPTEST_TOOLS; behaves like echo."
	}
	for _, name := range o.Tools {
		s.tools = append(s.tools, echoTool(name, desc))
	}
	for i := range o.ToolCount {
		s.tools = append(s.tools, echoTool(fmt.Sprintf("bulk-%05d", i), "One of MCPTEST_TOOL_COUNT tools; behaves like echo."))
	}
	return s.run()
}

func (s *server) run() error {
	defer s.stop()
	s.spam()
	if s.opts.CrashOnStart {
		fmt.Fprintf(s.opts.Stderr, "mcptest: crashing on start as asked (%s)\n", EnvCrashOnStart)
		s.die(2)
		return &ExitError{Code: 2}
	}
	if s.opts.GarbageOnStart {
		s.writeLine(nil, []byte("mcptest: this line on stdout is not JSON"))
		s.writeLine(nil, []byte(`{"mcptest":"this line is JSON but not JSON-RPC"}`))
	}
	if d := s.opts.ExitAfter; d > 0 {
		s.background.Go(func() {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-t.C:
				fmt.Fprintf(s.opts.Stderr, "mcptest: exiting after %v as asked (%s)\n", d, EnvExitAfterMs)
				s.die(1)
			case <-s.ctx.Done():
			}
		})
	}
	if d := s.opts.StartDelay; d > 0 {
		select {
		case <-time.After(d):
		case <-s.ctx.Done():
		}
	}
	err := s.readLoop()
	drained := s.drain()
	s.stop()
	s.close()
	s.handlers.Wait()
	s.background.Wait()
	<-drained
	if s.dead.Load() {
		return &ExitError{Code: int(s.exitCode.Load())}
	}
	return err
}

// drain waits up to Options.EOFGrace for the request handlers to finish on
// their own, or for the server to die. It returns a channel closed when its
// waiter goroutine has ended, which happens once the handlers have; run
// receives from it so that no goroutine outlives Serve.
func (s *server) drain() <-chan struct{} {
	done := make(chan struct{})
	if s.opts.EOFGrace < 0 {
		close(done)
		return done
	}
	go func() {
		s.handlers.Wait()
		close(done)
	}()
	t := time.NewTimer(s.opts.EOFGrace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	case <-s.ctx.Done():
	}
	return done
}

// spam writes Options.StderrSpamKiB KiB of text to Stderr.
func (s *server) spam() {
	if s.opts.StderrSpamKiB == 0 {
		return
	}
	line := strings.Repeat("mcptest: stderr spam ", 3)
	line = line[:63] + "\n" // 64 bytes
	w := bufio.NewWriter(s.opts.Stderr)
	for range s.opts.StderrSpamKiB * 16 {
		w.WriteString(line)
	}
	w.Flush()
}

// die ends the server with the given exit status: through Options.Exit when
// set, otherwise (or when Exit returns) by going silent and closing in and out.
func (s *server) die(code int) {
	if s.opts.Exit != nil {
		s.opts.Exit(code)
	}
	s.dieOnce.Do(func() {
		s.exitCode.Store(int64(code))
		s.dead.Store(true)
		s.stop()
		s.close()
	})
}

// close closes in and out if they can be closed, once.
func (s *server) close() {
	s.closeIO.Do(func() {
		if c, ok := s.in.r.(io.Closer); ok {
			c.Close()
		}
		if c, ok := s.out.(io.Closer); ok {
			c.Close()
		}
	})
}

func (s *server) readLoop() error {
	br := bufio.NewReader(s.in)
	for {
		line, err := br.ReadBytes('\n')
		if s.dead.Load() {
			return nil
		}
		s.handleLine(line)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("mcptest: reading input: %w", err)
		}
	}
}

// writeLine writes b and a newline unless ctx (nil means the server's) is
// done or the server died. Writes are serialised.
func (s *server) writeLine(ctx context.Context, b []byte) bool {
	line := make([]byte, 0, len(b)+1)
	return s.writeRaw(ctx, append(append(line, b...), '\n'))
}

// writeRaw writes b as it is, under the write lock, unless ctx (nil means
// the server's) is done or the server died.
func (s *server) writeRaw(ctx context.Context, b []byte) bool {
	if ctx == nil {
		ctx = s.ctx
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.dead.Load() || ctx.Err() != nil {
		return false
	}
	if _, err := s.out.Write(b); err != nil {
		fmt.Fprintf(s.opts.Stderr, "mcptest: writing output: %v\n", err)
		return false
	}
	return true
}

// send writes msg as one line of JSON (encoding/json escapes every newline
// inside strings, so a message never spans lines).
func (s *server) send(ctx context.Context, msg any) bool {
	b, err := json.Marshal(msg)
	if err != nil {
		fmt.Fprintf(s.opts.Stderr, "mcptest: encoding message: %v\n", err)
		return false
	}
	return s.writeLine(ctx, b)
}

func (s *server) sendError(id json.RawMessage, e *rpcError) {
	s.send(nil, errorMsg{JSONRPC: "2.0", ID: id, Error: e})
}

func (s *server) notify(ctx context.Context, method string, params any) bool {
	return s.send(ctx, notificationMsg{JSONRPC: "2.0", Method: method, Params: params})
}

// handleLine decodes and dispatches one line from the client.
func (s *server) handleLine(line []byte) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 {
		return
	}
	// JSON text is UTF-8 (RFC 8259); encoding/json alone would let invalid
	// bytes through inside strings, and ids are echoed byte for byte.
	if !utf8.Valid(line) || !json.Valid(line) {
		s.sendError(nullID, newError(CodeParseError, "Parse error: the line is not valid UTF-8 JSON"))
		return
	}
	if line[0] == '[' {
		s.sendError(nullID, newError(CodeInvalidRequest, "Invalid request: JSON-RPC batches are not supported"))
		return
	}
	m, ok := decodeObject(line)
	if !ok {
		s.sendError(nullID, newError(CodeInvalidRequest, "Invalid request: a message must be a JSON object"))
		return
	}
	idRaw, hasID := m["id"]
	id, idOK := requestID(idRaw)
	replyID := nullID
	if hasID && idOK {
		replyID = id
	}
	if v, _, ok := str(m, "jsonrpc"); !ok || v != "2.0" {
		s.sendError(replyID, newError(CodeInvalidRequest, `Invalid request: "jsonrpc" must be "2.0"`))
		return
	}
	method, hasMethod, ok := str(m, "method")
	if !ok {
		s.sendError(replyID, newError(CodeInvalidRequest, `Invalid request: "method" must be a string`))
		return
	}
	if !hasMethod {
		_, hasResult := m["result"]
		_, hasError := m["error"]
		if hasID && idOK && hasResult != hasError {
			s.onResponse(id, m)
			return
		}
		s.sendError(replyID, newError(CodeInvalidRequest, `Invalid request: no "method", and not a response`))
		return
	}
	params, hasParams, ok := obj(m, "params")
	if !hasParams {
		params = object{}
	}
	if !hasID {
		if ok {
			s.onNotification(method, params)
		}
		return
	}
	if !idOK {
		s.sendError(nullID, newError(CodeInvalidRequest, "Invalid request: id must be a string or an integer"))
		return
	}
	if !ok {
		s.sendError(id, invalidParams(`Invalid params: "params" must be an object`))
		return
	}
	s.onRequest(id, method, params)
}

func (s *server) onNotification(method string, params object) {
	switch method {
	case "notifications/initialized":
		s.mu.Lock()
		s.stats.Initialized++
		if s.phase == phaseInitializing {
			s.phase = phaseReady
		}
		s.mu.Unlock()
	case "notifications/cancelled":
		id, ok := requestID(params["requestId"])
		if !ok {
			return // malformed: ignored, as the spec asks
		}
		s.mu.Lock()
		s.stats.Cancelled = append(s.stats.Cancelled, id)
		c := s.inflight[string(id)]
		delete(s.inflight, string(id))
		s.mu.Unlock()
		if c != nil {
			c.cancel()
		}
	}
}

// onResponse routes the client's answer to a legacy server-to-client request.
func (s *server) onResponse(id json.RawMessage, m object) {
	s.mu.Lock()
	ch := s.pending[string(id)]
	delete(s.pending, string(id))
	if ch == nil {
		s.stats.UnexpectedResponses++
	}
	s.mu.Unlock()
	if ch == nil {
		return
	}
	var r clientReply
	if raw, isErr := m["error"]; isErr {
		r.err = newError(CodeInternalError, "malformed error object")
		if e, ok := decodeObject(raw); ok {
			code, _, codeOK := integer(e, "code")
			msg, _, msgOK := str(e, "message")
			if codeOK && msgOK {
				r.err = &rpcError{Code: int(code), Message: msg}
			}
		}
	} else {
		r.result = m["result"]
	}
	ch <- r // buffered; never blocks
}

// hasModernMeta reports whether a request opted into the stateless revision.
func hasModernMeta(meta object) bool {
	_, v := meta[metaProtocolVersion]
	_, c := meta[metaClientCapabilities]
	return v || c
}

// onRequest records and dispatches a request. Anything that changes the
// legacy handshake state is done here, on the reader goroutine, so that the
// order of lines is the order of effects.
func (s *server) onRequest(id json.RawMessage, method string, params object) {
	meta, _, _ := obj(params, "_meta")
	c := &call{id: id, key: string(id), method: method, params: params, meta: meta}
	c.modern = s.opts.Era == EraModern || (s.opts.Era == EraDual && hasModernMeta(meta))
	s.record(c)

	if method == "ping" {
		s.start(c, s.ping)
		return
	}
	if method == "initialize" {
		if s.opts.Era == EraModern {
			requested, _, _ := str(params, "protocolVersion")
			s.sendError(id, &rpcError{
				Code: CodeMethodNotFound,
				Message: fmt.Sprintf("initialize is not supported: this server speaks only the stateless MCP revisions %s; send _meta with %s instead",
					strings.Join(s.opts.SupportedVersions, ", "), metaProtocolVersion),
				Data: map[string]any{"supported": s.opts.SupportedVersions, "requested": requested},
			})
			return
		}
		s.initialize(c)
		return
	}
	if c.modern {
		if e := s.checkMeta(c); e != nil {
			s.sendError(id, e)
			return
		}
		if h := s.handler(method, true); h != nil {
			s.start(c, h)
			return
		}
		s.sendError(id, newError(CodeMethodNotFound, "Method not found: %s", method))
		return
	}
	s.mu.Lock()
	ready := s.phase == phaseReady
	s.mu.Unlock()
	if method == "server/discover" && !ready {
		switch s.opts.Discover {
		case DiscoverSilent:
			return
		case DiscoverGarbageThenError:
			s.writeLine(nil, []byte("mcptest: garbage instead of an answer to server/discover"))
		}
	}
	if !ready {
		s.sendError(id, newError(s.opts.PreinitError,
			"Server not initialized: %s before initialize and notifications/initialized", method))
		return
	}
	if h := s.handler(method, false); h != nil {
		s.start(c, h)
		return
	}
	s.sendError(id, newError(CodeMethodNotFound, "Method not found: %s", method))
}

// record updates the request counters and the last _meta seen.
func (s *server) record(c *call) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := &s.stats
	st.Requests++
	st.Methods[c.method]++
	switch c.method {
	case "initialize":
		st.Initialize++
	case "server/discover":
		st.Discover++
	case "tools/list", "prompts/list", "resources/list", "resources/templates/list":
		st.ListCalls[c.method]++
	}
	_, v := c.meta[metaProtocolVersion]
	_, caps := c.meta[metaClientCapabilities]
	if !v || !caps {
		st.WithoutMeta = append(st.WithoutMeta, c.method)
	}
	if c.meta != nil {
		seen := &MetaSeen{Method: c.method, Raw: c.params["_meta"]}
		seen.ProtocolVersion, _, _ = str(c.meta, metaProtocolVersion)
		seen.ClientInfo = c.meta[metaClientInfo]
		seen.ClientCapabilities = c.meta[metaClientCapabilities]
		st.LastMeta = seen
	}
}

// checkMeta enforces the per-request fields of the stateless revision.
func (s *server) checkMeta(c *call) *rpcError {
	if c.meta == nil {
		return invalidParams("Invalid params: params._meta with %s and %s is required", metaProtocolVersion, metaClientCapabilities)
	}
	version, present, ok := str(c.meta, metaProtocolVersion)
	if !present || !ok {
		return invalidParams("Invalid params: _meta[%q] must be a string", metaProtocolVersion)
	}
	caps, present, ok := obj(c.meta, metaClientCapabilities)
	if !present || !ok {
		return invalidParams("Invalid params: _meta[%q] must be an object", metaClientCapabilities)
	}
	if level, present, ok := str(c.meta, metaLogLevel); present && (!ok || levelRank(level) < 0) {
		return invalidParams("Invalid params: _meta[%q] is not a log level", metaLogLevel)
	}
	if !slices.Contains(s.opts.SupportedVersions, version) {
		return &rpcError{
			Code:    CodeUnsupportedProtocolVersion,
			Message: "Unsupported protocol version",
			Data:    map[string]any{"supported": s.opts.SupportedVersions, "requested": version},
		}
	}
	c.caps = caps
	return nil
}

// initialize performs the legacy handshake's first half, synchronously.
func (s *server) initialize(c *call) {
	version, present, ok := str(c.params, "protocolVersion")
	if !present || !ok {
		s.sendError(c.id, invalidParams("Invalid params: initialize needs a string protocolVersion"))
		return
	}
	caps, present, ok := obj(c.params, "capabilities")
	if !present || !ok {
		s.sendError(c.id, invalidParams("Invalid params: initialize needs a capabilities object"))
		return
	}
	if _, present, ok := obj(c.params, "clientInfo"); !present || !ok {
		s.sendError(c.id, invalidParams("Invalid params: initialize needs a clientInfo object"))
		return
	}
	s.mu.Lock()
	if s.phase != phaseNew {
		s.mu.Unlock()
		s.sendError(c.id, newError(CodeInvalidRequest, "Invalid request: initialize was already received"))
		return
	}
	s.phase = phaseInitializing
	s.legacyCaps = caps
	s.stats.Legacy = &LegacyHello{ProtocolVersion: version, ClientInfo: c.params["clientInfo"], Capabilities: c.params["capabilities"]}
	s.mu.Unlock()
	if !slices.Contains(LegacyVersions, version) {
		version = LegacyVersion
	}
	s.send(nil, resultMsg{JSONRPC: "2.0", ID: c.id, Result: map[string]any{
		"protocolVersion": version,
		"capabilities":    capabilities(),
		"serverInfo":      s.serverInfo(),
		"instructions":    instructions,
	}})
}

const instructions = "mcptest is a deliberately configurable MCP server for testing clients; its tools misbehave on request."

func capabilities() map[string]any {
	return map[string]any{
		"tools":     map[string]any{"listChanged": true},
		"prompts":   map[string]any{"listChanged": true},
		"resources": map[string]any{"subscribe": true, "listChanged": true},
		"logging":   map[string]any{},
	}
}

func (s *server) serverInfo() map[string]any {
	return map[string]any{"name": s.opts.Name, "version": s.opts.Version}
}

// handler returns the handler of method in the given era, or nil.
func (s *server) handler(method string, modern bool) handler {
	switch method {
	case "tools/list":
		return s.listTools
	case "tools/call":
		return s.callTool
	case "prompts/list":
		return s.listPrompts
	case "prompts/get":
		return s.getPrompt
	case "resources/list":
		return s.listResources
	case "resources/templates/list":
		return s.listTemplates
	case "resources/read":
		return s.readResource
	}
	if modern {
		switch method {
		case "server/discover":
			return s.discover
		case "subscriptions/listen":
			return s.listen
		}
		return nil
	}
	switch method {
	case "resources/subscribe":
		return s.subscribeResource
	case "resources/unsubscribe":
		return s.unsubscribeResource
	case "logging/setLevel":
		return s.setLevel
	}
	return nil
}

// start registers c as in flight and runs h in its own goroutine.
func (s *server) start(c *call, h handler) {
	c.ctx, c.cancel = context.WithCancel(s.ctx)
	s.mu.Lock()
	if _, dup := s.inflight[c.key]; dup {
		s.mu.Unlock()
		c.cancel()
		s.sendError(c.id, newError(CodeInvalidRequest, "Invalid request: id %s is already in use by a request in flight", c.key))
		return
	}
	s.inflight[c.key] = c
	s.mu.Unlock()
	s.handlers.Go(func() {
		res, e := h(c)
		s.finish(c, res, e)
	})
}

// finish retires c and sends its reply, unless c was cancelled. Retiring
// first means a cancellation that arrives from now on finds nothing to cancel
// and the reply goes out; before, it cancels c.ctx and send drops the reply.
func (s *server) finish(c *call, res map[string]any, e *rpcError) {
	defer c.cancel()
	s.retire(c)
	switch {
	case e == errNoReply:
	case e != nil:
		s.send(c.ctx, errorMsg{JSONRPC: "2.0", ID: c.id, Error: e})
	default:
		s.send(c.ctx, resultMsg{JSONRPC: "2.0", ID: c.id, Result: s.decorate(c, res)})
	}
}

// retire removes c from the in-flight map if it is still there.
func (s *server) retire(c *call) {
	s.mu.Lock()
	if s.inflight[c.key] == c {
		delete(s.inflight, c.key)
	}
	s.mu.Unlock()
}

// decorate adds what the era requires of every result: in the modern era a
// resultType ("complete" unless the handler set one) and serverInfo in _meta.
func (s *server) decorate(c *call, res map[string]any) map[string]any {
	if res == nil {
		res = map[string]any{}
	}
	if !c.modern {
		return res
	}
	if _, ok := res["resultType"]; !ok {
		res["resultType"] = "complete"
	}
	meta, _ := res["_meta"].(map[string]any)
	if meta == nil {
		meta = map[string]any{}
	}
	meta[metaServerInfo] = s.serverInfo()
	res["_meta"] = meta
	return res
}

func (s *server) ping(c *call) (map[string]any, *rpcError) {
	n := s.pings.Add(1)
	if d := s.opts.PingDelay; d > 0 && (s.opts.PingDelayEvery <= 1 || n%int64(s.opts.PingDelayEvery) == 0) {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-c.ctx.Done():
		}
	}
	return map[string]any{}, nil
}

func (s *server) discover(*call) (map[string]any, *rpcError) {
	return map[string]any{
		"supportedVersions": s.opts.SupportedVersions,
		"capabilities":      capabilities(),
		"instructions":      instructions,
		"ttlMs":             s.opts.TTLMs,
		"cacheScope":        "public",
	}, nil
}

func (s *server) setLevel(c *call) (map[string]any, *rpcError) {
	level, _, ok := str(c.params, "level")
	if !ok || levelRank(level) < 0 {
		return nil, invalidParams("Invalid params: level must be a log level")
	}
	s.mu.Lock()
	s.logLevel = level
	s.mu.Unlock()
	return map[string]any{}, nil
}

var logLevels = []string{"debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"}

// levelRank is the severity of a log level, or -1 if it is not one.
func levelRank(level string) int { return slices.Index(logLevels, level) }

// logs reports whether c may receive a notifications/message at level:
// modern requests only when their _meta set a log level at or below it,
// legacy ones unless logging/setLevel raised the threshold above it.
func (s *server) logs(c *call, level string) bool {
	if c.modern {
		threshold, present, _ := str(c.meta, metaLogLevel)
		return present && levelRank(level) >= levelRank(threshold)
	}
	s.mu.Lock()
	threshold := s.logLevel
	s.mu.Unlock()
	return threshold == "" || levelRank(level) >= levelRank(threshold)
}

// stallReader is the server's input; stallFor makes its next reads wait,
// so the client's writes back up in the pipe.
type stallReader struct {
	r     io.Reader
	done  <-chan struct{} // the server stopped: stop stalling
	until atomic.Int64    // unix nanoseconds
}

func (r *stallReader) stallFor(d time.Duration) { r.until.Store(time.Now().Add(d).UnixNano()) }

func (r *stallReader) Read(p []byte) (int, error) {
	if d := time.Until(time.Unix(0, r.until.Load())); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-r.done:
			t.Stop()
		}
	}
	return r.r.Read(p)
}
