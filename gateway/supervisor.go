package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/gwmcp/gw/transport/jsonrpc"
	"github.com/gwmcp/gw/transport/stdio"
)

// State is where a server is in its life.
type State string

// Server states.
const (
	StateStarting   State = "starting"   // spawning, handshaking, discovering
	StateReady      State = "ready"      // serving calls
	StateRestarting State = "restarting" // waiting out a backoff before the next start
	StateDegraded   State = "degraded"   // restarting, but failed DegradedAfter times in a row
	StateStopped    State = "stopped"    // ended and not restarted, or gateway closed
	StateFailed     State = "failed"     // gave up after a failure (restart: never)
)

// ServerStatus describes one server.
type ServerStatus struct {
	Name       string         `json:"name"`
	State      State          `json:"state"`
	Era        string         `json:"era,omitempty"`
	Version    string         `json:"protocolVersion,omitempty"`
	ServerInfo Implementation `json:"serverInfo"`
	Pid        int            `json:"pid,omitempty"`
	Failures   int            `json:"failures"` // consecutive
	Restarts   int            `json:"restarts"`
	LastError  string         `json:"lastError,omitempty"`
	// Skipped counts the malformed entries left out of the server's lists
	// (a tool without a name, say); each is logged.
	Skipped int `json:"skipped,omitempty"`
	// ListError says why the server's latest lists are not in the catalog
	// (the collision policy refused the merge, say): the server runs, but
	// what it lists now is not served. Empty once a merge succeeds.
	ListError string    `json:"listError,omitempty"`
	Since     time.Time `json:"since"`
}

// managed supervises one server: it owns the run goroutine, and while a
// session is up, that session's listener, keepalive and refresher.
type managed struct {
	g    *Gateway
	spec ServerSpec
	log  *slog.Logger

	ctx    context.Context // ends when the gateway closes or the server is removed
	cancel context.CancelFunc
	done   chan struct{} // closed when run returns

	mu       sync.Mutex
	st       ServerStatus
	sess     *session
	ready    chan struct{} // closed when sess is set; replaced when it goes
	dirty    map[Kind]bool
	firstErr error

	firstDone chan struct{}
	firstOnce sync.Once
	kick      chan struct{} // wakes the refresher; buffered 1
	relisting chan struct{} // held while the server is re-listed; buffered 1

	subs        map[string]bool // resource uris a caller subscribed to; kept across restarts
	subsChanged chan struct{}   // wakes the modern listener; buffered 1
}

func newManaged(g *Gateway, spec ServerSpec) *managed {
	ctx, cancel := context.WithCancel(g.ctx)
	return &managed{
		ctx:       ctx,
		cancel:    cancel,
		done:      make(chan struct{}),
		g:         g,
		spec:      spec,
		log:       g.opts.Logger.With("server", spec.Name),
		st:        ServerStatus{Name: spec.Name, State: StateStarting, Since: time.Now()},
		ready:     make(chan struct{}),
		dirty:     map[Kind]bool{},
		firstDone: make(chan struct{}),
		kick:      make(chan struct{}, 1),
		relisting: make(chan struct{}, 1),

		subs:        map[string]bool{},
		subsChanged: make(chan struct{}, 1),
	}
}

// inherit carries over what outlives one spec of a server: the restart
// count, the resource subscriptions to renew.
func (m *managed) inherit(old *managed) {
	st := old.status()
	old.mu.Lock()
	subs := maps.Clone(old.subs)
	old.mu.Unlock()
	m.mu.Lock()
	m.st.Restarts = st.Restarts + 1
	m.subs = subs
	m.mu.Unlock()
}

func (m *managed) status() ServerStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.st
}

// setState records a state change and emits it.
func (m *managed) setState(state State, err error, edit func(*ServerStatus)) {
	m.mu.Lock()
	m.st.State = state
	m.st.Since = time.Now()
	if err != nil {
		m.st.LastError = publicText(err)
	}
	if edit != nil {
		edit(&m.st)
	}
	st := m.st
	// Queued under m.mu, so a server's status events keep their order.
	m.g.events.push(Event{Kind: EventServerStatus, Server: m.spec.Name, Status: &st})
	m.mu.Unlock()
}

// session returns the live session, waiting within ctx for a server that is
// starting or restarting. A degraded, failed or stopped server fails fast.
func (m *managed) session(ctx context.Context) (*session, error) {
	for {
		m.mu.Lock()
		s, ready, st := m.sess, m.ready, m.st
		m.mu.Unlock()
		if s != nil && s.cause() == nil {
			return s, nil
		}
		switch st.State {
		case StateDegraded, StateFailed, StateStopped:
			return nil, fmt.Errorf("%w: server %q is %s: %s", ErrServerDown, m.spec.Name, st.State, st.LastError)
		}
		select {
		case <-ready:
		case <-ctx.Done():
			why := "starting"
			if st.LastError != "" {
				why = fmt.Sprintf("%s after: %s", st.State, st.LastError)
			}
			return nil, fmt.Errorf("%w: server %q is %s: %w", ErrServerDown, m.spec.Name, why, ctx.Err())
		case <-m.ctx.Done():
			if m.g.ctx.Err() != nil {
				return nil, ErrClosed
			}
			return nil, fmt.Errorf("%w: server %q was removed", ErrServerDown, m.spec.Name)
		}
	}
}

// run is the supervision loop: start, serve until the session ends, then
// restart per policy with capped exponential backoff and jitter.
func (m *managed) run() {
	defer close(m.done)
	ctx := m.ctx
	failures := 0
	for attempt := 0; ; attempt++ {
		uptime, clean, err := m.runOnce(ctx, attempt)
		// firstDone is signalled after the state below is set, so Start's
		// caller sees where a failed server went.
		signalFirst := func() { m.firstOnce.Do(func() { m.firstErr = err; close(m.firstDone) }) }
		if ctx.Err() != nil {
			signalFirst()
			m.setState(StateStopped, nil, func(s *ServerStatus) { s.Pid = 0 })
			return
		}
		if uptime >= m.g.opts.StableAfter {
			failures = 0
		}
		failures++
		if err != nil {
			m.log.Error("server ended", "error", err, "failures", failures)
		}
		giveUp := m.spec.Restart == RestartNever || (m.spec.Restart == RestartOnFailure && clean)
		if giveUp {
			state := StateStopped
			if !clean {
				state = StateFailed
			}
			m.g.setInventory(m.spec.Name, nil)
			m.setState(state, err, func(s *ServerStatus) { s.Failures = failures; s.Pid = 0 })
			signalFirst()
			<-ctx.Done()
			return
		}
		state := StateRestarting
		if failures >= m.g.opts.DegradedAfter {
			state = StateDegraded
		}
		m.setState(state, err, func(s *ServerStatus) { s.Failures = failures; s.Pid = 0 })
		signalFirst()
		select {
		case <-time.After(backoff(m.g.opts.InitialBackoff, m.g.opts.MaxBackoff, failures)):
		case <-ctx.Done():
			m.setState(StateStopped, nil, nil)
			return
		}
	}
}

// backoff is initial·2^(n-1) capped at max, with equal jitter so restarts of
// many servers spread out and never exceed the cap.
func backoff(initial, maxDelay time.Duration, n int) time.Duration {
	d := initial
	for i := 1; i < n && d < maxDelay; i++ {
		d *= 2
	}
	d = min(d, maxDelay)
	half := d / 2
	return half + time.Duration(rand.Int64N(int64(half)+1))
}

// errKeepaliveMissed ends a session whose server stopped answering.
// Why gw itself ended a session. Such an end is a failure, whatever the
// child's exit status, and the status names the reason, not the signal.
var (
	errKeepaliveMissed = errors.New("no answer to keepalive ping")
	errRequestFlood    = errors.New("the server sent requests without waiting for the answers")
	errStreamBroken    = errors.New("the stream to the server broke")
)

func endedByGateway(cause error) bool {
	return errors.Is(cause, errKeepaliveMissed) || errors.Is(cause, errRequestFlood) || errors.Is(cause, errStreamBroken)
}

// processInfo is what a stdio child adds to a Conn.
type processInfo interface {
	Pid() int
	ExitError() error
	StderrTail() []string
	Done() <-chan struct{}
}

// runOnce starts the server and serves until its session ends. It reports
// how long the session was up, whether the process exited cleanly (status
// 0) and why it ended.
func (m *managed) runOnce(ctx context.Context, attempt int) (time.Duration, bool, error) {
	m.setState(StateStarting, nil, func(s *ServerStatus) {
		if attempt > 0 {
			s.Restarts++
		}
	})
	span := m.g.startSpan(ctx, m.spec.Name, attempt)
	sctx, cancel := context.WithTimeout(ctx, m.g.opts.StartTimeout)
	conn, err := m.g.dial(sctx, m.spec)
	if err != nil {
		cancel()
		endStartSpan(span, nil, 0, err)
		return 0, false, err
	}
	s := newSession(m.spec.Name, conn, m.g.scfg, m.log)
	helpers, stopHelpers := context.WithCancel(ctx)
	defer stopHelpers()
	var wg sync.WaitGroup
	spawn := func(f func(context.Context, *session)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(helpers, s)
		}()
	}
	fail := func(err error) (time.Duration, bool, error) {
		cancel()
		stopHelpers()
		// A child that died during the handshake: its exit status and
		// stderr say more than the handshake error.
		if p, ok := conn.(processInfo); ok {
			wait := time.Duration(0)
			if errors.Is(err, ErrSessionClosed) {
				wait = time.Second // EOF usually means exit: give the reaper a moment
			}
			timer := time.NewTimer(wait)
			select {
			case <-p.Done():
				if exit := p.ExitError(); exit != nil {
					err = fmt.Errorf("server %q: exited during start: %v", m.spec.Name, exit)
				}
			case <-timer.C:
			}
			timer.Stop()
		}
		_ = s.close()
		wg.Wait()
		err = withStderr(err, conn)
		endStartSpan(span, nil, 0, err)
		return 0, false, err
	}
	if err := s.open(sctx); err != nil {
		return fail(err)
	}
	// Subscribe before listing, so no change between the two is missed.
	if s.era == EraModern {
		spawn(m.listen)
		select {
		case <-s.acked:
		case <-time.After(m.g.opts.DiscoverTimeout):
			m.log.Warn("subscriptions/listen not acknowledged; list changes may be missed")
		case <-sctx.Done():
		}
	}
	inv, err := s.fetchInventory(sctx)
	if err != nil {
		return fail(fmt.Errorf("server %q: discovery: %w", m.spec.Name, err))
	}
	m.resubscribeLegacy(sctx, s)
	cancel()
	m.log.Info("server ready", "era", s.era, "protocolVersion", s.version, "serverInfo", s.serverInfo.Name,
		"tools", len(inv.lists[KindTools].items))
	up := time.Now()
	listErr := m.g.setInventory(m.spec.Name, inv)
	m.setState(StateReady, nil, func(st *ServerStatus) {
		st.Era, st.Version, st.ServerInfo, st.LastError = s.era.String(), s.version, s.serverInfo, ""
		st.Skipped = inv.skipped()
		st.ListError = listErrorText(listErr)
		if p, ok := conn.(processInfo); ok {
			st.Pid = p.Pid()
		}
		// Under m.mu with the state, so that a call served by s never
		// finds the server still "starting" in its status.
		m.sess = s
		close(m.ready)
	})
	endStartSpan(span, s, len(inv.lists[KindTools].items), nil)
	m.firstOnce.Do(func() { close(m.firstDone) })
	spawn(m.keepalive)
	spawn(m.refresher)
	if level := m.g.logLevel.Load(); level != nil {
		spawn(func(ctx context.Context, s *session) { s.setLogLevel(ctx, *level) })
	}
	select {
	case <-s.done():
	case <-ctx.Done():
	}
	m.mu.Lock()
	m.sess = nil
	m.ready = make(chan struct{})
	m.mu.Unlock()
	cause := s.cause()
	stopHelpers()
	_ = s.close()
	wg.Wait()
	uptime := time.Since(up)
	if ctx.Err() != nil {
		return uptime, true, nil
	}
	clean := false
	err = fmt.Errorf("server %q: %w", m.spec.Name, cause)
	if endedByGateway(cause) {
		return uptime, false, err
	}
	if p, ok := conn.(processInfo); ok {
		<-p.Done()
		if exit := p.ExitError(); exit != nil {
			err = fmt.Errorf("server %q: exited: %v", m.spec.Name, exit)
		} else {
			clean = true
			err = fmt.Errorf("server %q: exited with status 0", m.spec.Name)
		}
	}
	return uptime, clean, withStderr(err, conn)
}

// withStderr appends the child's last stderr line, which usually says why,
// for operators only: see operatorError.
func withStderr(err error, conn Conn) error {
	p, ok := conn.(processInfo)
	if !ok {
		return err
	}
	tail := p.StderrTail()
	if len(tail) == 0 {
		return err
	}
	last := strings.TrimSpace(tail[len(tail)-1])
	if last == "" || strings.Contains(err.Error(), last) {
		return err
	}
	if len(last) > 200 {
		last = last[:200] + "…"
	}
	return &operatorError{err: err, full: fmt.Sprintf("%v (stderr: %s)", err, last)}
}

// operatorError carries what a server printed (its stderr, stdout that was
// not MCP) beside an error. That text is the server's own and may hold
// anything, secrets included, so it goes only where operators look: gw's log
// and Start's error. Callers and the published status (events, servers.list,
// call errors) get publicText, without it.
type operatorError struct {
	err  error  // the error without the server's output
	full string // with it
}

func (e *operatorError) Error() string { return e.full }
func (e *operatorError) Unwrap() error { return e.err }

// publicText is err's message without the server output that an
// operatorError inside it adds.
func publicText(err error) string {
	text := err.Error()
	var oe *operatorError
	if errors.As(err, &oe) {
		text = strings.Replace(text, oe.full, oe.err.Error(), 1)
	}
	return text
}

// dial opens a server's connection: a stdio child unless Options.Dial says
// otherwise.
func (g *Gateway) dial(ctx context.Context, spec ServerSpec) (Conn, error) {
	if g.opts.Dial != nil {
		return g.opts.Dial(ctx, spec)
	}
	p, err := stdio.Start(stdio.Config{
		Name:           spec.Name,
		Command:        spec.Command,
		Args:           spec.Args,
		Env:            spec.Env,
		Dir:            spec.Dir,
		MaxMessageSize: g.opts.MaxMessageSize,
		StopGrace:      g.opts.StopGrace,
		Logger:         g.log, // stdio names the server itself
		Redact:         secretRedactor(spec.Env),
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// keepalive pings the server every PingInterval (server/discover in the
// modern era, which has no ping) and kills a server that leaves PingMisses
// pings in a row unanswered, so the supervisor restarts it. Each ping has
// one interval to be answered; one answer, even an error, resets the count,
// so a server that is merely busy now and then is left alone.
func (m *managed) keepalive(ctx context.Context, s *session) {
	every := m.g.opts.PingInterval
	if every <= 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	missed := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, every)
		var err error
		if s.era == EraModern {
			_, err = s.request(pctx, methodDiscover, nil, callOptions{})
		} else {
			_, err = s.call(pctx, methodPing, nil, callOptions{})
		}
		cancel()
		var rpcErr *jsonrpc.Error
		if err == nil || errors.As(err, &rpcErr) || ctx.Err() != nil || errors.Is(err, ErrSessionClosed) {
			missed = 0 // an error reply still proves the server is alive
			continue
		}
		if missed++; missed < m.g.opts.PingMisses {
			m.log.Warn("server did not answer a keepalive ping", "missed", missed, "limit", m.g.opts.PingMisses, "error", err)
			continue
		}
		m.log.Error("server did not answer keepalive pings; restarting it", "missed", missed, "error", err)
		s.shutdown(fmt.Errorf("%w: %w", ErrSessionClosed, errKeepaliveMissed))
		_ = s.conn.Close()
		return
	}
}

// invalidate marks lists changed and wakes the refresher; bursts coalesce.
func (m *managed) invalidate(s *session, kinds ...Kind) {
	m.mu.Lock()
	for _, k := range kinds {
		if s.offers(k) {
			m.dirty[k] = true
		}
	}
	m.mu.Unlock()
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// refresher re-lists what invalidate marked, one burst at a time.
func (m *managed) refresher(ctx context.Context, s *session) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.kick:
		}
		m.mu.Lock()
		var kinds []Kind
		for k := range m.dirty {
			kinds = append(kinds, k)
		}
		clear(m.dirty)
		m.mu.Unlock()
		rctx, cancel := context.WithTimeout(ctx, m.g.opts.StartTimeout)
		if m.lockRelist(rctx) {
			m.relist(rctx, s, kinds)
			m.unlockRelist()
		}
		cancel()
	}
}

// lockRelist waits, within ctx, until no other re-list of the server runs.
// One at a time, so an older list is never applied after a newer one.
func (m *managed) lockRelist(ctx context.Context) bool {
	select {
	case m.relisting <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

func (m *managed) unlockRelist() { <-m.relisting }

// refresh re-lists kinds now, on the live session if there is one.
func (m *managed) refresh(ctx context.Context, kinds ...Kind) {
	m.mu.Lock()
	s := m.sess
	m.mu.Unlock()
	if s == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	m.relist(ctx, s, kinds)
}

func (m *managed) relist(ctx context.Context, s *session, kinds []Kind) {
	span := m.g.relistSpan(ctx, m.spec.Name, kinds)
	var failed []error
	defer func() { endRelistSpan(span, errors.Join(failed...)) }()
	lists := map[Kind]listing{}
	for _, k := range kinds {
		l, err := s.listAll(ctx, k)
		if err != nil {
			m.log.Warn("re-listing failed; keeping the previous list", "kind", k, "error", err)
			failed = append(failed, fmt.Errorf("%s: %w", k, err))
			continue
		}
		lists[k] = l
	}
	if len(lists) > 0 {
		m.g.updateLists(m.spec.Name, s, lists)
	}
}

// updateLists replaces some of a server's lists, if s is still its session.
func (g *Gateway) updateLists(server string, s *session, lists map[Kind]listing) {
	m := g.server(server)
	if m == nil {
		return
	}
	m.mu.Lock()
	current := m.sess == s
	m.mu.Unlock()
	if !current {
		return
	}
	var skipped int
	err := g.mutateInventory(server, func(old *inventory) *inventory {
		inv := &inventory{lists: map[Kind]listing{}}
		if old != nil {
			for k, l := range old.lists {
				inv.lists[k] = l
			}
		}
		for k, l := range lists {
			inv.lists[k] = l
		}
		skipped = inv.skipped()
		return inv
	})
	m.mu.Lock()
	m.st.Skipped = skipped
	if text := listErrorText(err); text != m.st.ListError {
		m.st.ListError = text
		st := m.st
		m.g.events.push(Event{Kind: EventServerStatus, Server: server, Status: &st})
	}
	m.mu.Unlock()
}

// listErrorText is ServerStatus.ListError for a merge's error.
func listErrorText(err error) string {
	if err == nil {
		return ""
	}
	return "lists not merged, the catalog keeps the last good ones: " + err.Error()
}

// minSecretLen is the shortest env value treated as a secret: shorter ones
// ("1", "true", "info") are settings, and hiding them would garble logs.
const minSecretLen = 8

// secretRedactor hides the values of a server's env (API keys, tokens) in
// what gw copies from the server's stderr into logs, status and events.
func secretRedactor(env map[string]string) func(string) string {
	var pairs []string
	for _, v := range env {
		if len(v) >= minSecretLen {
			pairs = append(pairs, v, "[redacted]")
		}
	}
	if len(pairs) == 0 {
		return nil
	}
	r := strings.NewReplacer(pairs...)
	return r.Replace
}
