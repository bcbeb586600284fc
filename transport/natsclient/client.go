package natsclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gwmcp/gw/transport/natsface"
)

// DefaultTimeout is the deadline of a request whose ctx has none.
const DefaultTimeout = natsface.DefaultTimeout

// retryBind is the pause between attempts to bind the catalog bucket and the
// event stream while no gateway has created them.
const retryBind = time.Second

// Change names the lists that changed.
type Change uint8

// The lists the union holds.
const (
	ChangeTools Change = 1 << iota
	ChangePrompts
)

// ErrInvalidOptions is wrapped by New's error for options that cannot work.
var ErrInvalidOptions = errors.New("natsclient: invalid options")

// Options configure a Client. Principal is required; the rest have defaults.
type Options struct {
	// Prefix is the first subject tokens, default natsface.DefaultPrefix.
	Prefix string
	// Principal is the caller, the {principal} token of every request
	// subject (encoded with natsface.EncodeToken). Required.
	Principal string
	// CatalogBucket and EventStream name the KV bucket of catalogs and the
	// event stream, default natsface's defaults.
	CatalogBucket string
	EventStream   string
	// Timeout is the deadline of a request whose ctx has none, default
	// DefaultTimeout.
	Timeout time.Duration
	// OnChange, when set, hears which lists of the union changed. It is
	// called from the watching goroutines, never with a lock held, and must
	// not block.
	OnChange func(Change)
	// OnResourceUpdated, when set, hears the uri of every
	// notifications/resources/updated a gateway's server sent. Same rules as
	// OnChange.
	OnResourceUpdated func(uri string)
	// Logger gets the client's logs; nil discards them.
	Logger *slog.Logger
}

// Client serves face requests with the gateways on a NATS cluster. Create it
// with New, then Start; Close ends it. Serve is safe for concurrent use.
type Client struct {
	nc        *nats.Conn
	opts      Options
	log       *slog.Logger
	reqPrefix string // Prefix.req.{principal}.

	ready     chan struct{} // closed once the first view of the fleet is in
	readyOnce sync.Once

	ctx    context.Context // ends the watcher; cancelled by Close
	cancel context.CancelFunc
	done   chan struct{} // closed when the watcher returned

	mu       sync.Mutex
	gateways map[string]*gatewayState
	union    *union
	started  bool
	consume  jetstream.ConsumeContext
	updSub   *nats.Subscription
	js       jetstream.JetStream
	kvLoaded bool // the bucket's initial values are in
	stLoaded bool // the last status of every gateway is in
	complete bool // both were: changes are announced from now on
}

// gatewayState is what the client knows of one gateway.
type gatewayState struct {
	catalog *catalog // nil: no entry in the bucket
	stopped bool     // its last status was "stopped"
}

// New returns a client over nc. It does not start watching: Start does.
func New(nc *nats.Conn, opts Options) (*Client, error) {
	if nc == nil {
		return nil, fmt.Errorf("%w: nil connection", ErrInvalidOptions)
	}
	if opts.Prefix == "" {
		opts.Prefix = natsface.DefaultPrefix
	}
	if opts.CatalogBucket == "" {
		opts.CatalogBucket = natsface.DefaultCatalogBucket
	}
	if opts.EventStream == "" {
		opts.EventStream = natsface.DefaultEventStream
	}
	if opts.Timeout == 0 {
		opts.Timeout = DefaultTimeout
	}
	switch {
	case opts.Principal == "":
		return nil, fmt.Errorf("%w: a principal is required", ErrInvalidOptions)
	case opts.Timeout < 0:
		return nil, fmt.Errorf("%w: negative timeout", ErrInvalidOptions)
	case strings.ContainsAny(opts.Prefix, "*> \t\r\n") || strings.HasPrefix(opts.Prefix, ".") ||
		strings.HasSuffix(opts.Prefix, ".") || strings.Contains(opts.Prefix, ".."):
		return nil, fmt.Errorf("%w: prefix %q is not a literal subject", ErrInvalidOptions, opts.Prefix)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Client{
		nc:        nc,
		opts:      opts,
		log:       log,
		reqPrefix: opts.Prefix + ".req." + natsface.EncodeToken(opts.Principal) + ".",
		ready:     make(chan struct{}),
		ctx:       ctx,
		cancel:    cancel,
		done:      make(chan struct{}),
		gateways:  map[string]*gatewayState{},
		union:     emptyUnion(),
	}, nil
}

// Start starts watching the fleet and returns at once; Serve waits for the
// first complete view (or its ctx) before it answers a list. It subscribes
// to resource updates first, so none is missed once Start returns.
func (c *Client) Start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.started {
		return errors.New("natsclient: already started")
	}
	if c.ctx.Err() != nil {
		return errors.New("natsclient: closed")
	}
	c.started = true
	if c.opts.OnResourceUpdated != nil {
		sub, err := c.nc.Subscribe(c.opts.Prefix+".evt.srv.*.notify."+natsface.NotificationKind("notifications/resources/updated"), c.resourceUpdated)
		if err != nil {
			return fmt.Errorf("natsclient: subscribing to resource updates: %w", err)
		}
		c.updSub = sub
	}
	go c.watch()
	return nil
}

// Ready is closed once the client has its first complete view of the fleet:
// the bucket's entries and every gateway's last status (or, while no gateway
// has created the bucket, an empty fleet).
func (c *Client) Ready() <-chan struct{} { return c.ready }

// Close stops watching and waits for the watcher to return. It is
// idempotent. It does not close the connection.
func (c *Client) Close() {
	c.cancel()
	c.mu.Lock()
	started := c.started
	c.started = true // a Start after Close does nothing
	cons, sub := c.consume, c.updSub
	c.consume, c.updSub = nil, nil
	c.mu.Unlock()
	if cons != nil {
		cons.Stop()
	}
	if sub != nil {
		_ = sub.Unsubscribe()
	}
	if started {
		<-c.done
	}
}

func (c *Client) markReady() { c.readyOnce.Do(func() { close(c.ready) }) }

// watch binds the bucket and the event stream, then follows the bucket
// until Close.
func (c *Client) watch() {
	defer close(c.done)
	ctx := c.ctx
	js, err := jetstream.New(c.nc)
	if err != nil {
		c.log.Error("jetstream", "error", err)
		c.markReady()
		return
	}
	var kv jetstream.KeyValue
	waiting := false
	for {
		kv, err = js.KeyValue(ctx, c.opts.CatalogBucket)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return
		}
		if !waiting {
			c.log.Info("no gateway has published a catalog yet; waiting", "bucket", c.opts.CatalogBucket, "error", err)
			waiting = true
		}
		// An empty fleet, for now; what comes later is announced.
		c.mu.Lock()
		c.complete = true
		c.mu.Unlock()
		c.markReady()
		select {
		case <-time.After(retryBind):
		case <-ctx.Done():
			return
		}
	}
	c.mu.Lock()
	c.js = js
	c.mu.Unlock()
	if err := c.followStatus(ctx, js); err != nil {
		if ctx.Err() != nil {
			return
		}
		// Without the events, gateways leave the union only when their
		// entry is deleted.
		c.log.Warn("cannot follow gateway status events; stopped gateways stay listed", "stream", c.opts.EventStream, "error", err)
		c.mu.Lock()
		c.stLoaded = true
		c.mu.Unlock()
	}
	w, err := kv.Watch(ctx, natsface.GatewayCatalogKeyPrefix+"*")
	if err != nil {
		if ctx.Err() == nil {
			c.log.Error("cannot watch the catalog bucket", "bucket", c.opts.CatalogBucket, "error", err)
		}
		c.markReady()
		return
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			c.applyEntry(ctx, kv, e)
		}
	}
}

// followStatus starts the ordered consumer of gateway status events.
func (c *Client) followStatus(ctx context.Context, js jetstream.JetStream) error {
	st, err := js.Stream(ctx, c.opts.EventStream)
	if err != nil {
		return err
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{c.opts.Prefix + ".evt.gw.*.status"},
		DeliverPolicy:  jetstream.DeliverLastPerSubjectPolicy,
	})
	if err != nil {
		return err
	}
	pending := uint64(0)
	if info := cons.CachedInfo(); info != nil {
		pending = info.NumPending
	}
	if pending == 0 {
		c.mu.Lock()
		c.stLoaded = true
		c.mu.Unlock()
	}
	cc, err := cons.Consume(c.applyStatus)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ctx.Err() != nil { // Close ran meanwhile and found nothing to stop
		cc.Stop()
		return c.ctx.Err()
	}
	c.consume = cc
	return nil
}

// applyEntry takes one update of the bucket: a gateway's catalog, its
// deletion, or (nil) the end of the initial values.
func (c *Client) applyEntry(ctx context.Context, kv jetstream.KeyValue, e jetstream.KeyValueEntry) {
	if e == nil {
		c.update(func() { c.kvLoaded = true })
		return
	}
	name := strings.TrimPrefix(e.Key(), natsface.GatewayCatalogKeyPrefix)
	var cat *catalog
	if e.Operation() == jetstream.KeyValuePut {
		raw, err := natsface.ReadCatalog(ctx, kv, e.Value()) // a large one is in parts
		if err == nil {
			cat, err = decodeCatalog(raw)
		}
		if err != nil {
			c.log.Warn("a gateway's catalog entry cannot be read; ignored", "gateway", name, "error", err)
			return
		}
	}
	c.update(func() {
		g := c.gatewayLocked(name)
		g.catalog = cat
		if cat != nil && c.kvLoaded {
			// A gateway writes its catalog when it starts: one that
			// stopped is back.
			g.stopped = false
		}
	})
}

// applyStatus takes one gateway status event.
func (c *Client) applyStatus(msg jetstream.Msg) {
	subj := strings.TrimPrefix(msg.Subject(), c.opts.Prefix+".evt.gw.")
	name := strings.TrimSuffix(subj, ".status")
	var st struct {
		State string `json:"state"`
	}
	if err := json.Unmarshal(msg.Data(), &st); err != nil {
		c.log.Debug("a gateway status that is not JSON; ignored", "subject", msg.Subject())
	}
	last := false
	if md, err := msg.Metadata(); err == nil && md.NumPending == 0 {
		last = true
	}
	c.update(func() {
		if name != "" && st.State != "" {
			c.gatewayLocked(name).stopped = st.State == "stopped"
		}
		if last {
			c.stLoaded = true
		}
	})
}

// resourceUpdated passes a server's resources/updated on.
func (c *Client) resourceUpdated(msg *nats.Msg) {
	var p struct {
		URI string `json:"uri"`
	}
	if json.Unmarshal(msg.Data, &p) == nil && p.URI != "" {
		c.opts.OnResourceUpdated(p.URI)
	}
}

// gatewayLocked returns name's state, creating it.
func (c *Client) gatewayLocked(name string) *gatewayState {
	g := c.gateways[name]
	if g == nil {
		g = &gatewayState{}
		c.gateways[name] = g
	}
	return g
}

// update runs change under mu, rebuilds the union, and tells OnChange which
// lists changed. Up to and including the first complete view nothing is
// announced: Serve has listed nothing before it.
func (c *Client) update(change func()) {
	c.mu.Lock()
	change()
	next := buildUnion(c.gateways)
	prev := c.union
	c.union = next
	announce := c.complete
	c.complete = c.complete || c.kvLoaded && c.stLoaded
	complete := c.complete
	c.mu.Unlock()
	if complete {
		c.markReady()
	}
	if !announce {
		return
	}
	var k Change
	if !bytes.Equal(prev.toolsList, next.toolsList) {
		k |= ChangeTools
	}
	if !bytes.Equal(prev.promptsList, next.promptsList) {
		k |= ChangePrompts
	}
	if k != 0 && c.opts.OnChange != nil {
		c.opts.OnChange(k)
	}
}

// snapshot returns the union as it is now.
func (c *Client) snapshot() *union {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.union
}

// Gateways returns the names of the gateways in the union, sorted.
func (c *Client) Gateways() []string { return slices.Clone(c.snapshot().gateways) }

// jetStream returns the JetStream handle once bound (for claim checks).
func (c *Client) jetStream() (jetstream.JetStream, error) {
	c.mu.Lock()
	js := c.js
	c.mu.Unlock()
	if js != nil {
		return js, nil
	}
	return jetstream.New(c.nc)
}
