package gateway

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/trace"

	"github.com/gwmcp/gw/internal/jsonscan"
	"github.com/gwmcp/gw/internal/loglimit"
	"github.com/gwmcp/gw/internal/tracing"
	"github.com/gwmcp/gw/transport/jsonrpc"
	"github.com/gwmcp/gw/transport/stdio"
)

// Conn is what a session needs from a transport. *stdio.Process satisfies it.
//
// ReadMessage is called by one goroutine only (the session's reader) and
// returns io.EOF, or another error, once the peer is gone; Close unblocks it.
// WriteMessage may be called concurrently and must not interleave messages.
// Close is idempotent.
type Conn interface {
	ReadMessage() ([]byte, error)
	WriteMessage(ctx context.Context, msg []byte) error
	Close() error
}

// Errors a session returns; they wrap with the server's name.
var (
	// ErrSessionClosed means the server's connection ended (exit, EOF, stop)
	// while the call was pending, or before it was sent.
	ErrSessionClosed = errors.New("gw: server connection closed")
	// ErrNotMCP means the server never answered the handshake with valid
	// JSON-RPC.
	ErrNotMCP = errors.New("gw: not an MCP server")
)

// notificationQueueSize bounds the notifications waiting for dispatch; the
// reader never blocks on a slow consumer, it drops and counts instead.
const notificationQueueSize = 4096

// Server-to-client requests (ping, sampling, elicitation, roots) are served
// by at most requestWorkers goroutines per session, with requestQueueSize
// more waiting. A server that asks more than that without waiting for the
// answers (or stops reading them) is flooding its client: the session ends
// and the supervisor restarts it. Without the bound, 200,000 pings from a
// server that stopped reading left as many goroutines and 1.25 GB behind.
const (
	requestWorkers   = 8
	requestQueueSize = 256
)

// A server that writes garbage on stdout gets badOutputLogBurst log lines
// about it, then badOutputLogRate a second; the rest are counted. Unbounded,
// 1 MB of "x\n" was 500,000 WARN lines (90 MB of log).
const (
	badOutputLogRate  = 5
	badOutputLogBurst = 20
)

// session is one JSON-RPC client connection to one server process, in
// whichever era the server speaks. It owns two goroutines: the reader and the
// notification dispatcher; server-to-client requests and cancellation
// notices run on goroutines tracked by wg. close stops them all.
type session struct {
	name string
	conn Conn
	log  *slog.Logger
	cfg  *sessionConfig

	nextID atomic.Int64

	mu      sync.Mutex
	pending map[string]*pendingCall // by id text; changed only by addPending and retire
	closed  bool
	err     error                   // why the session ended
	tokens  map[string]*pendingCall // gw progress token -> call

	// Set once by open, read-only afterwards: open runs before anything
	// else may use the session (it is published under managed.mu, its
	// helpers start after open), and a restart opens a new session.
	era          Era
	version      string
	versionJSON  json.RawMessage // version as JSON text, for the modern era's _meta
	serverInfo   Implementation
	caps         serverCapabilities
	rawCaps      json.RawMessage
	instructions string

	notes   noteQueue
	dropped atomic.Int64

	logLevel atomic.Pointer[string] // the last logging/setLevel sent

	requests chan *jsonrpc.Message // server-to-client requests waiting for a worker
	workers  int                   // request workers running; guarded by mu

	acked   chan struct{} // closed when a subscriptions/listen is acknowledged
	ackOnce sync.Once

	garbageLines atomic.Int64
	firstGarbage atomic.Pointer[string]
	badOutput    *loglimit.Limiter // bounds the log lines about bad stdout output

	ctx        context.Context // cancelled when the session ends
	cancelCtx  context.CancelFunc
	readerDone chan struct{}
	dispDone   chan struct{}
	wg         sync.WaitGroup
	closeOnce  sync.Once
}

// sessionConfig is shared by every session a gateway opens.
type sessionConfig struct {
	// traced: tracing is on, so a call's progress and log messages become
	// events on its span (noteEvent).
	traced bool

	clientInfo      Implementation
	handler         ClientHandler
	discoverTimeout time.Duration
	// onNotify receives server notifications other than progress and
	// subscription acknowledgements, in the order the server sent them.
	onNotify func(s *session, method string, params json.RawMessage)

	infoOnce sync.Once
	infoText json.RawMessage
}

// clientInfoText is clientInfo as JSON, made once.
func (c *sessionConfig) clientInfoText() json.RawMessage {
	c.infoOnce.Do(func() { c.infoText = mustJSON(c.clientInfo) })
	return c.infoText
}

type pendingCall struct {
	method     string
	seq        int64           // its id: older calls have smaller ones
	ctx        context.Context // the caller's: whom the server's own requests may ask
	reply      chan callReply  // buffered 1; receives exactly once
	onProgress func(params json.RawMessage)
	onLog      func(params json.RawMessage)
	token      string // gw's progress token, "" if none
	callerTok  json.RawMessage
}

type callReply struct {
	result json.RawMessage
	err    error
}

func newSession(name string, conn Conn, cfg *sessionConfig, log *slog.Logger) *session {
	s := &session{
		name:       name,
		conn:       conn,
		log:        log,
		cfg:        cfg,
		pending:    make(map[string]*pendingCall),
		tokens:     make(map[string]*pendingCall),
		notes:      noteQueue{wake: make(chan struct{}, 1)},
		requests:   make(chan *jsonrpc.Message, requestQueueSize),
		acked:      make(chan struct{}),
		readerDone: make(chan struct{}),
		dispDone:   make(chan struct{}),
		badOutput:  loglimit.New(badOutputLogRate, badOutputLogBurst),
	}
	s.ctx, s.cancelCtx = context.WithCancel(context.Background())
	go s.readLoop()
	go s.dispatchLoop()
	return s
}

// done is closed when the connection has ended.
func (s *session) done() <-chan struct{} { return s.readerDone }

// cause returns why the session ended, or nil while it is alive.
func (s *session) cause() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// close ends the session: the connection is closed, pending calls fail and
// every goroutine the session started has returned when close returns.
func (s *session) close() error {
	var err error
	s.closeOnce.Do(func() {
		s.shutdown(fmt.Errorf("%w: gateway closed it", ErrSessionClosed))
		err = s.conn.Close()
		<-s.readerDone
		<-s.dispDone
		s.wg.Wait()
	})
	return err
}

// shutdown marks the session dead and fails every pending call with cause.
func (s *session) shutdown(cause error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.err = cause
	calls := s.pending
	s.pending = map[string]*pendingCall{}
	s.tokens = map[string]*pendingCall{}
	s.mu.Unlock()
	s.cancelCtx()
	for _, c := range calls {
		c.reply <- callReply{err: fmt.Errorf("server %q: %s: %w", s.name, c.method, cause)}
	}
}

func (s *session) readLoop() {
	defer close(s.readerDone)
	defer func() {
		if n := s.badOutput.Flush(); n > 0 {
			s.log.Warn("bad output lines not logged", "suppressed", n)
		}
	}()
	for {
		line, err := s.conn.ReadMessage()
		if err == nil && !utf8.Valid(line) {
			line = s.validUTF8(line)
		}
		if err != nil {
			var tooLarge *stdio.MessageTooLargeError
			if errors.As(err, &tooLarge) {
				s.oversized(tooLarge)
				continue
			}
			if errors.Is(err, io.EOF) {
				err = errors.New("server closed its output (EOF)")
			}
			s.endReading(err)
			return
		}
		msg, err := jsonrpc.Decode(line)
		if err != nil {
			s.badLine(line, err)
			continue
		}
		switch msg.Kind() {
		case jsonrpc.KindResponse:
			// A call that takes progress or log messages gets its reply
			// after those the server sent before it: through the same
			// queue, in order.
			if s.wantsNotes(msg.ID) && s.notes.push(msg) {
				continue
			}
			s.deliver(msg)
		case jsonrpc.KindNotification:
			if !s.notes.push(msg) {
				if n := s.dropped.Add(1); n&(n-1) == 0 { // log at 1, 2, 4, 8…
					s.log.Warn("notification queue full; dropping", "method", msg.Method, "dropped", n)
				}
			}
		case jsonrpc.KindRequest:
			if !s.enqueueRequest(msg) {
				err := fmt.Errorf("%w: more than %d", errRequestFlood, requestWorkers+requestQueueSize)
				s.log.Error("ending the session", "error", err)
				s.endReading(err)
				return
			}
		}
	}
}

// enqueueRequest hands a server-to-client request to a worker, starting one
// if fewer than requestWorkers run. The reader never blocks here: it reports
// a full queue, and the reader ends the session.
func (s *session) enqueueRequest(msg *jsonrpc.Message) bool {
	select {
	case s.requests <- msg:
	default:
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.workers < requestWorkers && s.spawnLocked(s.requestWorker) {
		s.workers++
	}
	return true
}

// requestWorker serves queued requests until the queue is empty. It checks
// the queue again under mu before it leaves, so a request enqueued while it
// was leaving is never stranded: enqueueRequest starts a worker under the
// same lock.
func (s *session) requestWorker() {
	for {
		select {
		case msg := <-s.requests:
			s.serveRequest(msg)
			continue
		default:
		}
		s.mu.Lock()
		if len(s.requests) > 0 {
			s.mu.Unlock()
			continue
		}
		s.workers--
		s.mu.Unlock()
		return
	}
}

// spawnLocked runs f on a goroutine close waits for, unless the session has
// ended, and reports whether it did. s.mu is held: shutdown marks the session
// closed under it before close waits, so no goroutine is added to wg once
// close may be waiting.
func (s *session) spawnLocked(f func()) bool {
	if s.closed {
		return false
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
	return true
}

// endReading ends the session from the reader. Replies already queued behind
// progress are delivered before the rest fail: no reply that arrived is lost.
func (s *session) endReading(why error) {
	s.notes.close()
	<-s.dispDone
	s.shutdown(fmt.Errorf("%w: %w", ErrSessionClosed, why))
}

// badLine handles stdout output that is not JSON-RPC. A broken response
// whose id is readable fails that call; anything else is logged and kept as
// evidence for a "not an MCP server" diagnosis.
func (s *session) badLine(line []byte, err error) {
	var de *jsonrpc.DecodeError
	if errors.As(err, &de) && de.ID.IsValid() {
		if c := s.retire(de.ID.String()); c != nil {
			c.reply <- callReply{err: fmt.Errorf("server %q: %s: invalid response: %w", s.name, c.method, err)}
			return
		}
	}
	if s.garbageLines.Add(1) == 1 {
		text := string(line)
		if len(text) > 120 {
			text = text[:120] + "…"
		}
		s.firstGarbage.Store(&text)
	}
	if ok, suppressed := s.badOutput.Allow(); ok {
		s.log.Warn("ignoring invalid line on stdout", "error", err, "line", truncateBytes(line, 200), "suppressed", suppressed)
	}
}

// validUTF8 replaces each invalid UTF-8 sequence in a line from the server
// with U+FFFD, as encoding/json and a JavaScript TextDecoder do when they
// read it. JSON text must be UTF-8 (RFC 8259), and outside strings such bytes
// already make the line invalid, so only string contents change: the message
// is still delivered, and a caller never receives bytes its decoder refuses.
func (s *session) validUTF8(line []byte) []byte {
	if ok, suppressed := s.badOutput.Allow(); ok {
		s.log.Warn("replacing invalid UTF-8 in a line on stdout with U+FFFD", "line", truncateBytes(line, 200), "suppressed", suppressed)
	}
	return bytes.ToValidUTF8(line, []byte("\uFFFD"))
}

// oversized fails the call whose reply did not fit, when its id can be
// found at the head of the line, so the caller hears why at once.
func (s *session) oversized(e *stdio.MessageTooLargeError) {
	if id, ok := headID(e.Head); ok {
		if c := s.retire(id.String()); c != nil {
			c.reply <- callReply{err: fmt.Errorf("server %q: %s: reply too large: %w", s.name, c.method, e)}
			return
		}
	}
	s.log.Error("dropped oversized message from server", "error", e)
}

// headID finds the "id" member of a JSON-RPC message from its first bytes,
// scanning top-level members until a value too large to skip.
func headID(head []byte) (jsonrpc.ID, bool) {
	dec := json.NewDecoder(strings.NewReader(string(head)))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return jsonrpc.ID{}, false
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return jsonrpc.ID{}, false
		}
		key, _ := t.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return jsonrpc.ID{}, false
		}
		if key == "id" {
			var id jsonrpc.ID
			if id.UnmarshalJSON(raw) != nil {
				return jsonrpc.ID{}, false
			}
			return id, true
		}
	}
	return jsonrpc.ID{}, false
}

func (s *session) deliver(msg *jsonrpc.Message) {
	if !msg.ID.IsValid() {
		// An error reply to something the server could not parse.
		s.log.Warn("server reported an error without an id", "error", msg.Error)
		return
	}
	c := s.retire(msg.ID.String())
	if c == nil {
		s.log.Debug("reply to no pending request (late or unknown id)", "id", msg.ID.String())
		return
	}
	if msg.Error != nil {
		c.reply <- callReply{err: msg.Error}
		return
	}
	c.reply <- callReply{result: msg.Result}
}

// wantsNotes reports whether the pending call id takes progress or log
// messages: its reply then follows them through the notification queue.
func (s *session) wantsNotes(id jsonrpc.ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.pending[id.String()]
	return c != nil && (c.onProgress != nil || c.onLog != nil)
}

// addPending registers a call; it fails when the session has ended.
func (s *session) addPending(id string, c *pendingCall) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("server %q: %s: %w", s.name, c.method, s.err)
	}
	s.pending[id] = c
	if c.token != "" {
		s.tokens[c.token] = c
	}
	return nil
}

// retire removes a pending call; whoever retires it answers it, so each call
// is answered exactly once.
func (s *session) retire(id string) *pendingCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.pending[id]
	if !ok {
		return nil
	}
	delete(s.pending, id)
	if c.token != "" {
		delete(s.tokens, c.token)
	}
	return c
}

// callOptions adjust one request.
type callOptions struct {
	onProgress func(params json.RawMessage)
	onLog      func(params json.RawMessage)
	// noCancel suppresses notifications/cancelled on abandon, for the
	// handshake: a server that did not finish it is stopped anyway.
	noCancel bool
	// span and meta trace the request: the upstream span, told the id
	// each round is sent with (nil unless it records), and the _meta
	// entries of its trace context as the propagator writes it, set in
	// the same pass as gw's own (nil when tracing is off, or there is
	// nothing to write: traceMeta).
	span trace.Span
	meta []member
}

// call sends one request and waits for its reply. params must be a JSON
// object or nil. On ctx's end it sends notifications/cancelled and frees the
// slot.
func (s *session) call(ctx context.Context, method string, params json.RawMessage, opts callOptions) (json.RawMessage, error) {
	id, c, err := s.send(ctx, method, params, opts)
	if err != nil {
		return nil, err
	}
	return s.await(ctx, id, c, opts)
}

// send registers and writes a request; the caller must await or abandon it.
func (s *session) send(ctx context.Context, method string, params json.RawMessage, opts callOptions) (jsonrpc.ID, *pendingCall, error) {
	seq := s.nextID.Add(1)
	id := jsonrpc.Int64ID(seq)
	c := &pendingCall{method: method, seq: seq, ctx: ctx, reply: make(chan callReply, 1), onProgress: opts.onProgress, onLog: opts.onLog}
	if opts.onProgress != nil {
		// gw owns the token so two callers' tokens never clash on one server.
		c.token = "gw-" + id.String()
		var err error
		params, c.callerTok, err = swapProgressToken(params, c.token, opts.meta...)
		if err != nil {
			return id, nil, fmt.Errorf("server %q: %s: %w", s.name, method, err)
		}
	} else if opts.meta != nil {
		var err error
		if params, err = withMeta(params, opts.meta...); err != nil {
			return id, nil, fmt.Errorf("server %q: %s: %w", s.name, method, err)
		}
	}
	if opts.span != nil {
		opts.span.SetAttributes(tracing.RequestID.String(id.String()))
	}
	// params are valid JSON: a face checked what the caller sent, and gw's
	// edits keep it so.
	line := jsonrpc.AppendRequest(nil, id, method, params)
	if err := s.addPending(id.String(), c); err != nil {
		return id, nil, err
	}
	// A detached write still reaches the server whole: the request counts as
	// sent, so await cancels it like any other abandoned call.
	if err := s.write(ctx, line); err != nil && !errors.Is(err, stdio.ErrDetached) {
		if s.retire(id.String()) != nil {
			return id, nil, fmt.Errorf("server %q: %s: write: %w", s.name, method, err)
		}
		// Answered or failed meanwhile: the reply is waiting in c.
	}
	return id, c, nil
}

// await waits for a sent request's reply, or abandons it when ctx ends.
func (s *session) await(ctx context.Context, id jsonrpc.ID, c *pendingCall, opts callOptions) (json.RawMessage, error) {
	select {
	case r := <-c.reply:
		return r.result, r.err
	case <-ctx.Done():
		if s.retire(id.String()) == nil {
			r := <-c.reply
			return r.result, r.err
		}
		if !opts.noCancel {
			s.sendCancel(id, ctx.Err())
		}
		return nil, fmt.Errorf("server %q: %s: %w", s.name, c.method, ctx.Err())
	}
}

// sendCancel tells the server to stop work on id, without holding up the
// caller that gave up on it.
func (s *session) sendCancel(id jsonrpc.ID, why error) {
	reason := "request cancelled by the client"
	if errors.Is(why, context.DeadlineExceeded) {
		reason = "request timed out"
	}
	params, _ := json.Marshal(map[string]any{"requestId": id, "reason": reason})
	s.mu.Lock()
	defer s.mu.Unlock()
	s.spawnLocked(func() {
		if err := s.notify(context.Background(), methodCancelled, params); err != nil {
			s.log.Debug("could not send cancellation", "id", id.String(), "error", err)
		}
	})
}

// notify sends a notification with a bounded wait.
func (s *session) notify(ctx context.Context, method string, params json.RawMessage) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	line, err := jsonrpc.EncodeNotification(method, rawOrNil(params))
	if err != nil {
		return err
	}
	return s.write(ctx, line)
}

// write sends one line. A stream broken part-way can never be framed again,
// so the session ends and the supervisor restarts the server (status, event,
// log) rather than every later call failing against a server that looks
// ready.
func (s *session) write(ctx context.Context, line []byte) error {
	err := s.conn.WriteMessage(ctx, line)
	if err != nil && errors.Is(err, stdio.ErrBroken) {
		s.log.Error("the stream to the server is broken; ending the session", "error", err)
		s.shutdown(fmt.Errorf("%w: %w: %w", ErrSessionClosed, errStreamBroken, err))
		_ = s.conn.Close()
	}
	return err
}

func (s *session) dispatchLoop() {
	defer close(s.dispDone)
	for {
		msg, ok := s.notes.pop()
		if !ok {
			return
		}
		if msg.Kind() == jsonrpc.KindResponse {
			s.deliver(msg)
			continue
		}
		switch msg.Method {
		case methodProgress:
			s.routeProgress(msg.Params)
		case methodListenAck:
			s.log.Debug("subscription acknowledged", "params", truncateBytes(msg.Params, 200))
			s.ackOnce.Do(func() { close(s.acked) })
		case methodLogMessage:
			if !s.routeLog(msg.Params) && s.cfg.onNotify != nil {
				s.cfg.onNotify(s, msg.Method, msg.Params)
			}
		default:
			if s.cfg.onNotify != nil {
				s.cfg.onNotify(s, msg.Method, msg.Params)
			}
		}
	}
}

// noteQueue is the bounded FIFO from the reader to the dispatcher
// (notificationQueueSize at most). Its memory follows what is queued: a
// channel of that size was 32 KiB per session, idle or not, 32 MB for 1,000
// servers.
type noteQueue struct {
	mu     sync.Mutex
	items  []*jsonrpc.Message // items[head:] are queued
	head   int
	closed bool
	wake   chan struct{} // buffered 1: something was pushed, or close
}

// push queues m and reports whether it did: not when the queue is full.
func (q *noteQueue) push(m *jsonrpc.Message) bool {
	q.mu.Lock()
	if len(q.items)-q.head >= notificationQueueSize {
		q.mu.Unlock()
		return false
	}
	if q.head > 0 && q.head >= len(q.items)/2 && len(q.items) == cap(q.items) {
		// Reuse the popped half rather than grow: a queue that never
		// drains must not grow without end.
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
	q.items = append(q.items, m)
	q.mu.Unlock()
	q.signal()
	return true
}

// close makes pop report the end once the queue is empty. Only the reader
// pushes and closes, so nothing is pushed after close.
func (q *noteQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.signal()
}

func (q *noteQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// pop waits for the next message; false once the queue is closed and empty.
func (q *noteQueue) pop() (*jsonrpc.Message, bool) {
	for {
		q.mu.Lock()
		if q.head < len(q.items) {
			m := q.items[q.head]
			q.items[q.head] = nil
			q.head++
			if q.head == len(q.items) {
				// Drained: reuse a small backing array, drop a burst's.
				q.items, q.head = q.items[:0], 0
				if cap(q.items) > 64 {
					q.items = nil
				}
			}
			q.mu.Unlock()
			return m, true
		}
		closed := q.closed
		q.mu.Unlock()
		if closed {
			return nil, false
		}
		<-q.wake
	}
}

// routeLog hands a log message to the oldest call in flight that takes
// them, and reports whether one did. The message names no request, so the
// oldest is the best guess: a tool that logs as it runs is usually alone.
func (s *session) routeLog(params json.RawMessage) bool {
	calls := s.callsByAge(func(c *pendingCall) bool { return c.onLog != nil })
	if len(calls) == 0 {
		return false
	}
	if s.cfg.traced {
		noteEvent(calls[0].ctx, methodLogMessage, params)
	}
	calls[0].onLog(params)
	return true
}

// callsByAge returns the pending calls that keep accepts, oldest first: a
// server's message that names no call goes to the oldest that can take it.
func (s *session) callsByAge(keep func(*pendingCall) bool) []*pendingCall {
	s.mu.Lock()
	calls := make([]*pendingCall, 0, len(s.pending))
	for _, c := range s.pending {
		if keep(c) {
			calls = append(calls, c)
		}
	}
	s.mu.Unlock()
	slices.SortFunc(calls, func(a, b *pendingCall) int { return cmp.Compare(a.seq, b.seq) })
	return calls
}

// routeProgress hands a progress notification to the call that owns its
// token (params.progressToken, by exact key), with the caller's own token
// put back. Progress is frequent: the token is found by scanning and
// replaced by splicing bytes, one allocation for the copy.
func (s *session) routeProgress(params json.RawMessage) {
	start, end, n := jsonscan.Member(params, metaProgressToken)
	if n == 0 {
		return
	}
	tok, ok := jsonscan.String(params[start:end])
	if !ok {
		return
	}
	s.mu.Lock()
	c := s.tokens[string(tok)]
	s.mu.Unlock()
	if c == nil || c.onProgress == nil {
		return
	}
	if s.cfg.traced {
		noteEvent(c.ctx, methodProgress, params)
	}
	if n == 1 {
		c.onProgress(splice(params, start, end, c.callerTok))
		return
	}
	// The key repeats: rebuild the object, so gw's token is left nowhere.
	if out, err := setField(params, metaProgressToken, c.callerTok); err == nil {
		c.onProgress(out)
	}
}

// serveRequest answers a server-to-client request (legacy era): ping always,
// the client features through the handler, anything else method-not-found.
func (s *session) serveRequest(msg *jsonrpc.Message) {
	var result json.RawMessage
	var rpcErr *jsonrpc.Error
	switch msg.Method {
	case methodPing:
		result = json.RawMessage("{}")
	case MethodSampling, MethodElicitation, MethodRoots:
		h := s.cfg.handler
		ctx, related := s.askerFor(msg.Method)
		if h == nil || !h.Supports(ctx, msg.Method) {
			rpcErr = jsonrpc.NewError(jsonrpc.CodeMethodNotFound, "gw: %s is not offered by this gateway", msg.Method)
			break
		}
		r, err := h.HandleClientRequest(ctx, ClientRequest{Server: s.name, Method: msg.Method, Params: msg.Params, Related: related})
		if err != nil {
			rpcErr = jsonrpc.AsError(err)
		} else {
			result = r
		}
	default:
		rpcErr = jsonrpc.NewError(jsonrpc.CodeMethodNotFound, "gw: unknown method %q", msg.Method)
	}
	var line []byte
	var err error
	if rpcErr != nil {
		line, err = jsonrpc.EncodeError(msg.ID, rpcErr)
	} else {
		line, err = jsonrpc.EncodeResult(msg.ID, result)
	}
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = s.write(ctx, line)
		cancel()
	}
	if err != nil {
		s.log.Debug("could not answer server request", "method", msg.Method, "error", err)
	}
}

// askerFor picks whom a server's own request (legacy era: it names no call)
// goes to: the context of the oldest call in flight on this session whose
// caller can answer method, so a tool that samples while it runs asks the
// client that called it; else the session's own context (the handler's
// fallback). It returns the call's method as Related.
func (s *session) askerFor(method string) (context.Context, string) {
	h := s.cfg.handler
	if h == nil {
		return s.ctx, ""
	}
	// Only calls made for a caller (a face request), not gw's own lists
	// and probes.
	calls := s.callsByAge(func(c *pendingCall) bool {
		_, forCaller := c.ctx.Value(callerKey{}).(Caller)
		return forCaller && c.method != methodListen
	})
	for _, c := range calls { // Supports may take a face's locks: not under s.mu
		if c.ctx.Err() == nil && h.Supports(c.ctx, method) {
			return c.ctx, c.method
		}
	}
	return s.ctx, ""
}

func rawOrNil(params json.RawMessage) any {
	if len(params) == 0 {
		return nil
	}
	return params
}

func truncateBytes(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	return string(b[:n]) + "…"
}

// setLogLevel sends logging/setLevel to a legacy server that offers logging,
// once per level: SetLogLevel and a session becoming ready may both ask.
func (s *session) setLogLevel(ctx context.Context, level string) {
	if s.era != EraLegacy || s.caps.Logging == nil {
		return
	}
	if prev := s.logLevel.Swap(&level); prev != nil && *prev == level {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := s.call(ctx, methodSetLevel, mustJSON(map[string]string{"level": level}), callOptions{}); err != nil {
		s.log.Debug("logging/setLevel failed", "level", level, "error", err)
	}
}
