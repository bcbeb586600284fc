// Package fleet is a read-only view of every gw gateway on a NATS bus, built
// from what the gateways already publish (docs/SUBJECTS.md): their gateway
// and server status events (the event stream, replayed from its start),
// their catalogs (the catalog bucket), the micro service's $SRV.STATS
// (polled: rates are the deltas between two replies) and the audit events
// (denials). It imports no gateway package: `gw status` and the status
// page of `gw run` show the fleet through it.
//
// # Goroutines
//
// Start starts three goroutines the View owns: the event follower (binds
// the event stream, retrying while no gateway has made it, then runs an
// ordered consumer whose callbacks arrive on nats.go's goroutine), the
// catalog watcher and the stats poller; the audit subscription's callbacks
// arrive on nats.go's goroutine. Close stops them all and waits.
package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/gwmcp/gw/transport/natsface"
)

// DefaultAuditStream is the JetStream stream of audit events.
const DefaultAuditStream = natsface.DefaultAuditStream

// Defaults of Options.
const (
	DefaultInterval = 2 * time.Second
	DefaultDenials  = 50
)

// retryBind is the pause between attempts to bind a stream or bucket no
// gateway has made yet.
const retryBind = time.Second

// ErrInvalidOptions is wrapped by New's error for options that cannot work.
var ErrInvalidOptions = errors.New("fleet: invalid options")

// Options configure a View; the zero value watches mcp.v1.
type Options struct {
	// Prefix is the gateways' subject prefix, default natsface.DefaultPrefix.
	Prefix string
	// EventStream, CatalogBucket and AuditStream name what the gateways
	// publish into; default natsface's and DefaultAuditStream.
	EventStream, CatalogBucket, AuditStream string
	// Interval is how often $SRV.STATS is asked, default DefaultInterval.
	// Rates are over the time between two replies of a gateway.
	Interval time.Duration
	// Denials is how many recent denials are kept, default DefaultDenials.
	Denials int
	// Logger gets the view's logs; nil discards them.
	Logger *slog.Logger
}

// View follows the fleet. Create it with New, Start it, read it with
// Snapshot; Changed says when to read again. Close ends it.
type View struct {
	nc   *nats.Conn
	opts Options
	log  *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	ready     chan struct{}
	readyOnce sync.Once

	mu        sync.Mutex
	started   time.Time
	gateways  map[string]*gatewayView
	changed   chan struct{} // closed at the next change
	eventsIn  bool          // the event stream's backlog is applied
	catalogIn bool          // the bucket's initial values are applied
	rounds    int           // stats polls whose replies had time to come
	polled    []time.Time   // when the last two such polls were sent
	auditIn   bool          // the audit history is replayed (or there is none)
	audit     Audit
	seen      map[uint64]bool // digests of the audit events applied lately
	seenOrder []uint64        // the same, oldest first, to forget the oldest
	consume   jetstream.ConsumeContext
	subs      []*nats.Subscription
}

// gatewayView is what the View knows of one gateway.
type gatewayView struct {
	reported   string
	statusTime time.Time
	policies   map[string]string
	policyTime time.Time // of the latest audit event that named the authorize policy
	order      []string
	servers    map[string]Server
	tools      []string
	byServer   map[string][]string
	version    string
	started    time.Time
	last, prev *sample
}

// New returns a view of the gateways on nc; Start starts it.
func New(nc *nats.Conn, opts Options) (*View, error) {
	if nc == nil {
		return nil, fmt.Errorf("%w: nil connection", ErrInvalidOptions)
	}
	if opts.Prefix == "" {
		opts.Prefix = natsface.DefaultPrefix
	}
	if opts.EventStream == "" {
		opts.EventStream = natsface.DefaultEventStream
	}
	if opts.CatalogBucket == "" {
		opts.CatalogBucket = natsface.DefaultCatalogBucket
	}
	if opts.AuditStream == "" {
		opts.AuditStream = DefaultAuditStream
	}
	if opts.Interval == 0 {
		opts.Interval = DefaultInterval
	}
	if opts.Denials == 0 {
		opts.Denials = DefaultDenials
	}
	if opts.Interval < 0 || opts.Denials < 0 {
		return nil, fmt.Errorf("%w: negative interval or denials", ErrInvalidOptions)
	}
	if !natsface.ValidPrefix(opts.Prefix) {
		return nil, fmt.Errorf("%w: prefix %q is not a literal subject", ErrInvalidOptions, opts.Prefix)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &View{nc: nc, opts: opts, log: log, ctx: ctx, cancel: cancel, ready: make(chan struct{}),
		gateways: map[string]*gatewayView{}, changed: make(chan struct{}), audit: Audit{Recent: []Denial{}},
		seen: map[uint64]bool{}}, nil
}

// Start subscribes to the audit events and starts following the fleet. It
// returns at once; Ready is closed once the first complete view is in.
func (v *View) Start() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.started.IsZero() {
		return errors.New("fleet: already started")
	}
	if v.ctx.Err() != nil {
		return errors.New("fleet: closed")
	}
	v.started = time.Now()
	sub, err := v.nc.Subscribe(v.opts.Prefix+".evt.audit.>", func(m *nats.Msg) { v.applyAudit(m.Data) })
	if err != nil {
		return fmt.Errorf("fleet: subscribing to audit events: %w", err)
	}
	v.subs = append(v.subs, sub)
	v.wg.Add(4)
	go v.followEvents()
	go v.watchCatalogs()
	go v.poll()
	go v.replayAudit()
	return nil
}

// Ready is closed once the view is complete: the event stream's backlog,
// the bucket's catalogs and the audit history applied (or found not to
// exist yet), and two stats polls answered, so that rates are known.
func (v *View) Ready() <-chan struct{} { return v.ready }

// Changed returns a channel closed at the next change of the view.
func (v *View) Changed() <-chan struct{} {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.changed
}

// Close stops following and waits for the View's goroutines. It is
// idempotent and does not close the connection.
func (v *View) Close() {
	v.cancel()
	v.mu.Lock()
	cons, subs := v.consume, v.subs
	v.consume, v.subs = nil, nil
	v.mu.Unlock()
	if cons != nil {
		cons.Stop()
	}
	for _, s := range subs {
		_ = s.Unsubscribe()
	}
	v.wg.Wait()
}

// changedLocked ends a change: it wakes those waiting on Changed and
// checks whether the view is complete. mu is held.
func (v *View) changedLocked() {
	close(v.changed)
	v.changed = make(chan struct{})
	if v.eventsIn && v.catalogIn && v.auditIn && v.rounds >= 2 {
		v.readyOnce.Do(func() { close(v.ready) })
	}
}

func (v *View) update(f func()) {
	v.mu.Lock()
	defer v.mu.Unlock()
	f()
	v.changedLocked()
}

func (v *View) gatewayLocked(name string) *gatewayView {
	g := v.gateways[name]
	if g == nil {
		g = &gatewayView{servers: map[string]Server{}}
		v.gateways[name] = g
	}
	return g
}

// sleep waits d or until Close; false on Close.
func (v *View) sleep(d time.Duration) bool { return pause(v.ctx, nil, d) }

// followEvents binds the event stream and applies every gateway and server
// status in it, from the start (24 h, 100 per subject), then live.
func (v *View) followEvents() {
	defer v.wg.Done()
	js, err := jetstream.New(v.nc)
	if err != nil {
		v.log.Error("jetstream", "error", err)
		return
	}
	var st jetstream.Stream
	for {
		if st, err = js.Stream(v.ctx, v.opts.EventStream); err == nil {
			break
		}
		v.update(func() { v.eventsIn = true }) // no gateway yet: an empty fleet
		if !v.sleep(retryBind) {
			return
		}
	}
	cons, err := st.OrderedConsumer(v.ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{v.opts.Prefix + ".evt.gw.*.status", v.opts.Prefix + ".evt.srv.*.status"},
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	})
	if err != nil {
		if v.ctx.Err() == nil {
			v.log.Warn("cannot follow the event stream", "stream", v.opts.EventStream, "error", err)
		}
		v.update(func() { v.eventsIn = true })
		return
	}
	if info := cons.CachedInfo(); info == nil || info.NumPending == 0 {
		v.update(func() { v.eventsIn = true })
	}
	cc, err := cons.Consume(v.applyEvent)
	if err != nil {
		v.log.Warn("cannot follow the event stream", "stream", v.opts.EventStream, "error", err)
		v.update(func() { v.eventsIn = true })
		return
	}
	v.mu.Lock()
	if v.ctx.Err() != nil { // Close ran meanwhile and found nothing to stop
		v.mu.Unlock()
		cc.Stop()
		return
	}
	v.consume = cc
	v.mu.Unlock()
}

// applyEvent takes one status event: a gateway's (its servers, in order,
// replace what was known) or a server's (the gateway is in Mcp-Gateway).
func (v *View) applyEvent(msg jetstream.Msg) {
	last := false
	if md, err := msg.Metadata(); err == nil && md.NumPending == 0 {
		last = true
	}
	subj := strings.TrimPrefix(msg.Subject(), v.opts.Prefix+".evt.")
	v.update(func() {
		if last {
			v.eventsIn = true
		}
		switch {
		case strings.HasPrefix(subj, "gw."):
			name := strings.TrimSuffix(strings.TrimPrefix(subj, "gw."), ".status")
			st, ok := decodeGatewayStatus(msg.Data())
			if !ok || name == "" {
				return
			}
			g := v.gatewayLocked(name)
			g.reported, g.statusTime, g.policies = st.state, st.time, st.policies
			g.order = g.order[:0]
			g.servers = map[string]Server{}
			for _, s := range st.servers {
				g.order = append(g.order, s.Name)
				g.servers[s.Name] = s
			}
		case strings.HasPrefix(subj, "srv."):
			name := msg.Headers().Get(natsface.HeaderGateway)
			s, ok := decodeServer(msg.Data())
			if !ok || name == "" {
				return
			}
			g := v.gatewayLocked(name)
			if _, known := g.servers[s.Name]; !known {
				g.order = append(g.order, s.Name)
			}
			g.servers[s.Name] = s
		}
	})
}

// watchCatalogs follows every gateway's catalog entry (gw.{gw}).
func (v *View) watchCatalogs() {
	defer v.wg.Done()
	js, err := jetstream.New(v.nc)
	if err != nil {
		v.log.Error("jetstream", "error", err)
		return
	}
	var kv jetstream.KeyValue
	for {
		if kv, err = js.KeyValue(v.ctx, v.opts.CatalogBucket); err == nil {
			break
		}
		v.update(func() { v.catalogIn = true })
		if !v.sleep(retryBind) {
			return
		}
	}
	w, err := kv.Watch(v.ctx, natsface.GatewayCatalogKeyPrefix+"*")
	if err != nil {
		if v.ctx.Err() == nil {
			v.log.Warn("cannot watch the catalog bucket", "bucket", v.opts.CatalogBucket, "error", err)
		}
		v.update(func() { v.catalogIn = true })
		return
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-v.ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e == nil {
				v.update(func() { v.catalogIn = true })
				continue
			}
			v.applyCatalog(kv, e)
		}
	}
}

func (v *View) applyCatalog(kv jetstream.KeyValue, e jetstream.KeyValueEntry) {
	name := strings.TrimPrefix(e.Key(), natsface.GatewayCatalogKeyPrefix)
	var tools []string
	var byServer map[string][]string
	if e.Operation() == jetstream.KeyValuePut {
		raw, err := natsface.ReadCatalog(v.ctx, kv, e.Value())
		if err == nil {
			tools, byServer, err = catalogTools(raw)
		}
		if err != nil {
			v.log.Warn("a gateway's catalog entry cannot be read; ignored", "gateway", name, "error", err)
			return
		}
	}
	v.update(func() {
		g := v.gatewayLocked(name)
		g.tools, g.byServer = tools, byServer
	})
}

// poll asks $SRV.STATS of every gw service every Interval; the replies
// are applied as they arrive. A poll counts as a round once half an
// interval (at most 1 s) passed for the replies to come.
func (v *View) poll() {
	defer v.wg.Done()
	inbox := v.nc.NewRespInbox()
	sub, err := v.nc.Subscribe(inbox, v.applyStats)
	if err != nil {
		v.log.Error("cannot subscribe to stats replies", "error", err)
		v.update(func() { v.rounds = 2 })
		return
	}
	defer func() { _ = sub.Unsubscribe() }()
	wait := min(v.opts.Interval/2, time.Second)
	subject := micro.APIPrefix + ".STATS." + natsface.ServiceName
	for {
		sent := time.Now()
		if err := v.nc.PublishRequest(subject, inbox, nil); err != nil {
			v.log.Debug("stats request", "error", err)
		}
		if !v.sleep(wait) {
			return
		}
		v.update(func() {
			v.rounds++
			v.polled = append(v.polled, sent)
			if len(v.polled) > 2 {
				v.polled = v.polled[1:]
			}
		})
		if !v.sleep(v.opts.Interval - wait) {
			return
		}
	}
}

// applyStats takes one gateway's $SRV.STATS reply.
func (v *View) applyStats(msg *nats.Msg) {
	var st micro.Stats
	if err := json.Unmarshal(msg.Data, &st); err != nil || st.Metadata["prefix"] != v.opts.Prefix {
		return
	}
	name := st.Metadata["gateway"]
	if name == "" {
		return
	}
	s := newSample(&st, time.Now())
	v.update(func() {
		g := v.gatewayLocked(name)
		g.version, g.started = st.Version, st.Started
		g.prev, g.last = g.last, s
	})
}

// replayAudit applies the latest audit events, once: from the audit
// stream, else from the event stream (an older gw's P.evt.> held them);
// the live ones come on the subscription Start made (an event seen both
// ways counts once).
func (v *View) replayAudit() {
	defer v.wg.Done()
	defer v.update(func() { v.auditIn = true })
	js, err := jetstream.New(v.nc)
	if err != nil {
		return
	}
	st, err := js.Stream(v.ctx, v.opts.AuditStream)
	if err != nil {
		if st, err = js.Stream(v.ctx, v.opts.EventStream); err != nil {
			return // no stream (yet): the live events are all there is
		}
	}
	last := st.CachedInfo().State.LastSeq
	if last == 0 {
		return
	}
	// The denials kept are among the latest events; 20 per denial kept is
	// enough when most decisions allow.
	back := uint64(max(20*v.opts.Denials, 100))
	start := uint64(1)
	if last > back {
		start = last - back + 1
	}
	cons, err := st.OrderedConsumer(v.ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{v.opts.Prefix + ".evt.audit.>"},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    start,
	})
	if err != nil {
		return
	}
	for v.ctx.Err() == nil {
		batch, err := cons.FetchNoWait(100)
		if err != nil {
			return
		}
		n, done := 0, false
		for m := range batch.Messages() { // to the end: the batch's goroutine ends with it
			n++
			if done {
				continue
			}
			v.applyAudit(m.Data())
			if md, err := m.Metadata(); err == nil && (md.Sequence.Stream >= last || md.NumPending == 0) {
				done = true
			}
		}
		if n == 0 || done {
			return
		}
	}
}

// applyAudit takes one audit event: counted, and kept when it is a denial.
func (v *View) applyAudit(data []byte) {
	e, ok := decodeAudit(data)
	if !ok {
		return
	}
	h := fnv.New64a()
	_, _ = h.Write(data)
	sum := h.Sum64()
	v.update(func() {
		if v.seen[sum] {
			return
		}
		// An event comes at most twice (replayed and live) within a short
		// time: the last few thousand are enough to know.
		v.seen[sum] = true
		v.seenOrder = append(v.seenOrder, sum)
		if len(v.seenOrder) > 4*max(20*v.opts.Denials, 100) {
			half := len(v.seenOrder) / 2
			for _, old := range v.seenOrder[:half] {
				delete(v.seen, old)
			}
			v.seenOrder = slices.Delete(v.seenOrder, 0, half)
		}
		v.audit.Events++
		// A decision names the authorize module that made it: one hot-swapped
		// since the gateway's status is the one in use now.
		if g := v.gateways[e.Gateway]; g != nil && e.Policy != "" && e.Time.After(g.statusTime) && e.Time.After(g.policyTime) {
			if g.policies == nil { // the map is the view's own: decoded for it, cloned out by Snapshot
				g.policies = map[string]string{}
			}
			g.policies["authorize"], g.policyTime = e.Policy, e.Time
		}
		if e.decision != "deny" {
			return
		}
		v.audit.Denials++
		recent := append(v.audit.Recent, e.Denial)
		slices.SortStableFunc(recent, func(a, b Denial) int { return b.Time.Compare(a.Time) })
		if len(recent) > v.opts.Denials {
			recent = recent[:v.opts.Denials]
		}
		v.audit.Recent = recent
	})
}

// Snapshot returns the fleet as it is now.
func (v *View) Snapshot() Snapshot {
	now := time.Now()
	v.mu.Lock()
	defer v.mu.Unlock()
	out := Snapshot{Time: now.UTC(), Prefix: v.opts.Prefix, Gateways: []Gateway{}, Audit: v.audit}
	out.Audit.Recent = slices.Clone(v.audit.Recent)
	for _, name := range slices.Sorted(maps.Keys(v.gateways)) {
		g := v.gateways[name]
		gw := Gateway{Name: name, State: g.reported, Reported: g.reported, StatusTime: g.statusTime,
			Version: g.version, Started: g.started, Policies: maps.Clone(g.policies),
			Servers: []Server{}, Tools: len(g.tools)}
		if g.last != nil {
			gw.LastSeen = g.last.at
			gw.Calls, gw.Endpoints = gatewayRates(g.last, g.prev)
		}
		// Two polls in a row unanswered: from the first view on, a gateway
		// that was killed or cut off is not shown as it last said.
		if g.reported != "stopped" && len(v.polled) == 2 && gw.LastSeen.Before(v.polled[0]) {
			gw.State = "unreachable"
		}
		for _, sname := range g.order {
			s := g.servers[sname]
			s.Tools = slices.Sorted(slices.Values(g.byServer[sname]))
			if s.Tools == nil {
				s.Tools = []string{}
			}
			gw.Servers = append(gw.Servers, s)
		}
		// A catalog without toolsByServer (an older gateway): its tools
		// are listed under a server with no name.
		if g.byServer == nil && len(g.tools) > 0 {
			gw.Servers = append(gw.Servers, Server{Tools: slices.Sorted(slices.Values(g.tools))})
		}
		out.Gateways = append(out.Gateways, gw)
	}
	return out
}
