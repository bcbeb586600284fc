package gateway

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gwmcp/gw/transport/jsonrpc"
)

// Tool-definition pinning (rug-pull protection). The first time gw sees a
// tool it records a digest of the definition the model reads (trust on first
// use); a later definition that differs is a change, held back from the
// catalog (PinHold) or only reported (PinWarn) until it is accepted (a new
// pin, written by `gw pin accept` to the store) or a collision policy lets it
// through. Digests are computed when a server's tools are listed, never on
// the call path.

// PinMode says what gw does with a tool whose definition changed.
type PinMode string

// Pinning modes.
const (
	PinHold PinMode = "hold" // a changed tool is held back and its calls refused (the default)
	PinWarn PinMode = "warn" // a changed tool is served with its new definition, and reported
	PinOff  PinMode = "off"  // no pins are recorded or checked
)

// PinState is a tool's definition compared with its pin, as policies see it.
type PinState string

// Pin states.
const (
	PinNew     PinState = "new"     // first seen: pinned as it is now
	PinPinned  PinState = "pinned"  // the definition matches its pin
	PinChanged PinState = "changed" // the definition differs from its pin
)

// PinFields are the members of a tool's definition that a pin covers: what
// the model reads. Others (icons, _meta) do not change what a tool means to
// the model and are not pinned.
var PinFields = []string{"name", "title", "description", "inputSchema", "outputSchema", "annotations"}

// Pin is the accepted definition of one server's tool.
type Pin struct {
	Server string `json:"server"`
	Tool   string `json:"tool"` // the server's own name
	// Digest is "sha256:" and the hex SHA-256 of the canonical definition.
	Digest string `json:"digest"`
	// Fields maps each PinFields member the definition has to the digest of
	// its canonical value, so a change can name what changed.
	Fields map[string]string `json:"fields"`
	// Definition is the canonical definition: the PinFields members, object
	// keys sorted, no insignificant whitespace.
	Definition json.RawMessage `json:"definition,omitempty"`
	// Time is when the pin was recorded.
	Time time.Time `json:"time"`
	// By says who recorded it: "first-seen" or "accepted".
	By string `json:"by,omitempty"`
}

// ToolChange is a tool whose definition differs from its pin.
type ToolChange struct {
	Server string `json:"server"`
	Tool   string `json:"tool"`
	Name   string `json:"name"` // the exposed name
	// Fields are the PinFields members added, removed or changed.
	Fields  []string `json:"fields"`
	Pinned  Pin      `json:"pinned"`
	Current Pin      `json:"current"`
	// Held is true when the tool is held back (PinHold, no policy allowed
	// it); false when it is served anyway (PinWarn, or allowed by policy).
	Held bool `json:"held"`
	// AllowedBy is "policy" when the collision policy let it through.
	AllowedBy string `json:"allowedBy,omitempty"`
}

// PinStore keeps pins where a gw restart finds them and where several
// gateways share them by server name (the NATS KV in gw run, a file in gw
// stdio: gateway/pinfile; see NewMemoryPinStore). Methods may be called
// concurrently.
type PinStore interface {
	// Watch delivers every pin the store holds to fn and returns once it
	// has; then, until ctx ends, it keeps delivering pins as they are put
	// (by any gateway or by `gw pin accept`), from a goroutine of its own.
	Watch(ctx context.Context, fn func(Pin)) error
	// Create records a pin unless the store holds one for its server and
	// tool: then the stored one stands (Watch delivers it) and Create
	// returns nil.
	Create(ctx context.Context, p Pin) error
	// Report records a change for `gw tools --changed`; Clear removes the
	// report once the tool is no longer changed.
	Report(ctx context.Context, c ToolChange) error
	Clear(ctx context.Context, server, tool string) error
}

// PinBatcher is a PinStore that takes several writes as one: the pin
// writer hands it every write queued since its last turn, so a store that
// rewrites a whole file (a thousand tools first seen at a start) writes it
// once, not once per pin. Batch calls fn with a PinStore that records the
// writes, then makes them, in order.
type PinBatcher interface {
	PinStore
	Batch(ctx context.Context, fn func(PinStore) error) error
}

// Errors of pinning.
var (
	// ErrToolChanged marks a call refused because the tool's definition
	// changed since it was pinned and the change is held back.
	ErrToolChanged = errors.New("gw: tool definition changed since it was pinned")
	// ErrPinStore marks a pin store that could not be read at Start.
	ErrPinStore = errors.New("gw: pin store")
)

// toolDef is a tool's definition as pinning reads it, computed at list time.
type toolDef struct {
	digest    string
	fields    map[string]string
	canonical json.RawMessage
}

// newToolDef digests the PinFields members of a tool object.
func newToolDef(fields map[string]json.RawMessage) *toolDef {
	d := &toolDef{fields: make(map[string]string, len(PinFields))}
	// The canonical object of the fields, written as canonicalJSON would
	// write it: keys sorted, each value already canonical. (Encoding the
	// fields and canonicalizing them again cost half the digest of a
	// 13,000-tool start.)
	canon := []byte{'{'}
	for _, k := range pinFieldsSorted {
		raw, ok := fields[k]
		if !ok {
			continue
		}
		c := canonicalJSON(raw)
		d.fields[k] = digestOf(c)
		if len(canon) > 1 {
			canon = append(canon, ',')
		}
		canon = append(append(append(append(canon, '"'), k...), '"', ':'), c...)
	}
	d.canonical = append(canon, '}')
	d.digest = digestOf(d.canonical)
	return d
}

// pinFieldsSorted is PinFields in the order canonical JSON writes keys
// (plain ASCII names: nothing to escape).
var pinFieldsSorted = func() []string {
	s := slices.Clone(PinFields)
	slices.Sort(s)
	return s
}()

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// canonicalJSON re-encodes valid JSON with object keys sorted, no
// insignificant whitespace, numbers as written and strings as encoding/json
// writes them (without HTML escaping). Invalid JSON is kept as it is.
func canonicalJSON(raw []byte) json.RawMessage {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return raw
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return raw
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// pin returns the pin that would record d for server's tool.
func (d *toolDef) pin(server, tool, by string) Pin {
	return Pin{Server: server, Tool: tool, Digest: d.digest, Fields: maps.Clone(d.fields), Definition: d.canonical, Time: time.Now().UTC(), By: by}
}

// changedFields names the members whose digests differ between two pins.
func changedFields(old, cur map[string]string) []string {
	var out []string
	for _, k := range PinFields {
		if old[k] != cur[k] {
			out = append(out, k)
		}
	}
	return out
}

// pinTable is the gateway's view of the pins: what the store holds, plus the
// first-seen pins on their way to it. Guarded by Gateway.mu.
type pinTable struct {
	mode PinMode
	pins map[ItemKey]Pin
	// reported holds the changes already reported, by the current digest
	// reported, so each change is logged and announced once.
	reported map[ItemKey]string
}

// state compares a tool's definition with its pin.
func (t *pinTable) state(server string, it Item) PinState {
	if t == nil || it.def == nil { // nil: pinning is off
		return ""
	}
	p, ok := t.pins[ItemKey{server, it.Key}]
	switch {
	case !ok:
		return PinNew
	case p.Digest == it.def.digest:
		return PinPinned
	}
	return PinChanged
}

// pinOp is one write to the store, done by the pin writer in order.
type pinOp func(ctx context.Context, s PinStore) error

// pinWriter writes to the store on a goroutine of its own (from Start to
// Close), in order, so the catalog lock is never held over the store's I/O.
// Writes queued before start wait for it; close writes what is queued and
// stops (or, never started, drops it).
//
// A write that fails is tried again, with those queued after it, until it
// is made or the writer closes: a first-seen pin that never reaches the
// store would be lost for good, and the next start would trust whatever
// definition the tool has then. Trying again is safe: Create only creates,
// and the writes keep their order. The table keeps what it holds meanwhile.
type pinWriter struct {
	*queue[pinOp]
	store PinStore
	log   *slog.Logger
	// retryMin doubling to retryMax is the wait between attempts.
	retryMin, retryMax time.Duration
	stop               chan struct{} // closed by close: no more waiting to retry
	stopOnce           sync.Once
}

func newPinWriter(store PinStore, log *slog.Logger) *pinWriter {
	w := &pinWriter{store: store, log: log, retryMin: time.Second, retryMax: 30 * time.Second, stop: make(chan struct{})}
	w.queue = newBatchQueue(0, w.deliver)
	return w
}

// close stops waiting to retry, makes one last attempt of what failed, writes
// what is queued, and stops. It may be called more than once.
func (w *pinWriter) close() {
	w.stopOnce.Do(func() { close(w.stop) })
	w.queue.close()
}

// deliver makes a batch's writes, in order, trying the failed ones (and
// those after them) again after retryMin, doubling to retryMax, until they
// are made or the writer closes. Writes queued meanwhile wait their turn.
func (w *pinWriter) deliver(batch []pinOp) {
	wait := w.retryMin
	for attempt := 1; ; attempt++ {
		rest, err := w.write(batch)
		if err == nil {
			if attempt > 1 {
				w.log.Info("pin store writes made after failing", "writes", len(batch), "attempts", attempt)
			}
			return
		}
		batch = rest
		select {
		case <-w.stop:
			w.log.Error("pin store writes not made: gw is closing; their tools will be pinned anew as first seen", "writes", len(batch), "attempts", attempt, "error", err)
			return
		default:
		}
		if attempt == 1 {
			w.log.Error("pin store write failed; retrying", "writes", len(batch), "error", err)
		} else {
			w.log.Debug("pin store write failed again", "writes", len(batch), "attempts", attempt, "retry_in", wait, "error", err)
		}
		t := time.NewTimer(wait)
		select {
		case <-w.stop: // one last attempt
		case <-t.C:
		}
		t.Stop()
		wait = min(2*wait, w.retryMax)
	}
}

// write makes a batch's writes, as one when the store takes batches. On an
// error it returns the writes not made, in order.
func (w *pinWriter) write(batch []pinOp) ([]pinOp, error) {
	if b, ok := w.store.(PinBatcher); ok {
		if err := writeBatch(b, batch); err != nil {
			return batch, err
		}
		return nil, nil
	}
	for i, op := range batch {
		ctx, cancel := context.WithTimeout(context.Background(), pinWriteTimeout)
		err := op(ctx, w.store)
		cancel()
		if err != nil {
			return batch[i:], err
		}
	}
	return nil, nil
}

// writeBatch makes a batch's writes as one.
func writeBatch(b PinBatcher, batch []pinOp) error {
	ctx, cancel := context.WithTimeout(context.Background(), pinWriteTimeout)
	defer cancel()
	return b.Batch(ctx, func(s PinStore) error {
		var errs []error
		for _, op := range batch {
			errs = append(errs, op(ctx, s))
		}
		return errors.Join(errs...)
	})
}

// pinWriteTimeout bounds one write to the store.
const pinWriteTimeout = 10 * time.Second

// watchPins loads the store's pins into the table and follows the store's
// changes (an accept, another gateway's first pin) from then on.
func (g *Gateway) watchPins(ctx context.Context) error {
	if g.pinw == nil {
		return nil
	}
	g.pinw.start()
	// The watch lives as long as the gateway (g.ctx); loading the pins is
	// bounded by Start's ctx. The goroutine ends when Watch returns: at
	// once after the load, or when Close cancels g.ctx.
	loaded := make(chan error, 1)
	g.setMu.Lock() // as launch: no Add once Close has begun to Wait
	if g.ctx.Err() != nil {
		g.setMu.Unlock()
		return ErrClosed
	}
	g.wg.Add(1)
	g.setMu.Unlock()
	go func() {
		defer g.wg.Done()
		loaded <- g.pinw.store.Watch(g.ctx, g.applyPin)
	}()
	select {
	case err := <-loaded:
		if err != nil {
			return fmt.Errorf("%w: %w", ErrPinStore, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: pins not loaded: %w", ErrPinStore, ctx.Err())
	}
}

// applyPin takes a pin from the store; when it changes the state of a tool
// some server lists, the catalog is rebuilt.
func (g *Gateway) applyPin(p Pin) {
	g.mu.Lock()
	defer g.mu.Unlock()
	key := ItemKey{p.Server, p.Tool}
	if old, ok := g.pins.pins[key]; ok && old.Digest == p.Digest {
		return
	}
	g.pins.pins[key] = p
	inv := g.inventory[p.Server]
	if inv == nil || !slices.ContainsFunc(inv.lists[KindTools].items, func(it Item) bool { return it.Key == p.Tool }) {
		return
	}
	if p.By == "accepted" {
		g.log.Info("tool definition accepted", "server", p.Server, "tool", p.Tool, "digest", p.Digest)
	}
	if err := g.rebuildLocked(); err != nil {
		g.log.Error("catalog rebuild after a pin change refused; keeping the last good catalog", "server", p.Server, "tool", p.Tool, "error", err)
	}
}

// notePinsLocked records what a new catalog found: first-seen tools are
// pinned (in the table at once, in the store by the writer), new changes
// are logged, announced and reported, and reports of changes that are gone
// are cleared. g.mu is held.
func (g *Gateway) notePinsLocked(c *Catalog) {
	if g.pinw == nil {
		return
	}
	// Only listed tools can be new: a held one differs from its pin. A new
	// one has a definition (state says PinNew only then).
	for i := range c.Tools {
		e := &c.Tools[i]
		if e.Item.Pin != PinNew {
			continue
		}
		p := e.Item.def.pin(e.Server, e.Original, "first-seen")
		g.pins.pins[ItemKey{e.Server, e.Original}] = p
		g.pinw.push(func(ctx context.Context, s PinStore) error { return s.Create(ctx, p) })
	}
	seen := map[ItemKey]bool{}
	for _, ch := range c.Changes {
		key := ItemKey{ch.Server, ch.Tool}
		seen[key] = true
		if g.pins.reported[key] == ch.Current.Digest {
			continue
		}
		g.pins.reported[key] = ch.Current.Digest
		g.log.Warn("tool definition changed since it was pinned", "server", ch.Server, "tool", ch.Tool, "name", ch.Name,
			"fields", ch.Fields, "pinned", ch.Pinned.Digest, "current", ch.Current.Digest, "held", ch.Held,
			"accept", "gw pin accept "+ch.Server+"/"+ch.Tool)
		ch := ch
		g.events.push(Event{Kind: EventToolChanged, Server: ch.Server, Change: &ch})
		g.pinw.push(func(ctx context.Context, s PinStore) error { return s.Report(ctx, ch) })
	}
	for key := range g.pins.reported {
		if !seen[key] {
			delete(g.pins.reported, key)
			g.pinw.push(func(ctx context.Context, s PinStore) error { return s.Clear(ctx, key.Server, key.Name) })
		}
	}
}

// Changes returns the tools whose definitions differ from their pins, by
// server and tool.
func (g *Gateway) Changes() []ToolChange {
	return slices.Clone(g.Catalog().Changes)
}

// heldError is the refusal of a call to a held-back tool.
func heldError(e *Entry, ch *ToolChange) error {
	err := fmt.Errorf("%w: tool %q (server %q, tool %q): %s changed; held back until accepted: gw pin accept %s/%s",
		ErrToolChanged, e.Name, e.Server, e.Original, strings.Join(ch.Fields, ", "), e.Server, e.Original)
	data := mustJSON(map[string]any{"server": e.Server, "tool": e.Original, "fields": ch.Fields, "pinned": ch.Pinned.Digest, "current": ch.Current.Digest})
	return &codedError{err: err, rpc: &jsonrpc.Error{Code: CodeDenied, Message: err.Error(), Data: data}}
}

// MemoryPinStore is a PinStore in memory: for tests and for gateways
// that keep pins only as long as the process (gateway/pinfile keeps them
// in a file). Accept pins a reported
// change, as `gw pin accept` does in the NATS store.
type MemoryPinStore struct {
	mu       sync.Mutex
	pins     map[ItemKey]Pin
	changes  map[ItemKey]ToolChange
	watchers map[int]func(Pin)
	nextID   int
}

// NewMemoryPinStore returns an empty MemoryPinStore.
func NewMemoryPinStore() *MemoryPinStore {
	return &MemoryPinStore{pins: map[ItemKey]Pin{}, changes: map[ItemKey]ToolChange{}, watchers: map[int]func(Pin){}}
}

// Watch implements PinStore. Later pins are delivered on the goroutine that
// puts them.
func (s *MemoryPinStore) Watch(ctx context.Context, fn func(Pin)) error {
	s.mu.Lock()
	pins := slices.Collect(maps.Values(s.pins))
	id := s.nextID
	s.nextID++
	s.watchers[id] = fn
	s.mu.Unlock()
	for _, p := range pins {
		fn(p)
	}
	context.AfterFunc(ctx, func() {
		s.mu.Lock()
		delete(s.watchers, id)
		s.mu.Unlock()
	})
	return nil
}

// Create implements PinStore.
func (s *MemoryPinStore) Create(_ context.Context, p Pin) error {
	s.mu.Lock()
	_, ok := s.pins[ItemKey{p.Server, p.Tool}]
	s.mu.Unlock()
	if !ok {
		s.Put(p)
	}
	return nil
}

// Put replaces a pin and delivers it to the watchers.
func (s *MemoryPinStore) Put(p Pin) {
	s.mu.Lock()
	s.pins[ItemKey{p.Server, p.Tool}] = p
	watchers := slices.Collect(maps.Values(s.watchers))
	s.mu.Unlock()
	for _, fn := range watchers {
		fn(p)
	}
}

// Report implements PinStore.
func (s *MemoryPinStore) Report(_ context.Context, c ToolChange) error {
	s.mu.Lock()
	s.changes[ItemKey{c.Server, c.Tool}] = c
	s.mu.Unlock()
	return nil
}

// Clear implements PinStore.
func (s *MemoryPinStore) Clear(_ context.Context, server, tool string) error {
	s.mu.Lock()
	delete(s.changes, ItemKey{server, tool})
	s.mu.Unlock()
	return nil
}

// Pins returns the pins held, by server and tool.
func (s *MemoryPinStore) Pins() []Pin {
	s.mu.Lock()
	defer s.mu.Unlock()
	return sortedByKey(s.pins)
}

// Changes returns the changes reported, by server and tool.
func (s *MemoryPinStore) Changes() []ToolChange {
	s.mu.Lock()
	defer s.mu.Unlock()
	return sortedByKey(s.changes)
}

// sortedByKey is m's values in the order of their keys, by server then name.
func sortedByKey[V any](m map[ItemKey]V) []V {
	out := make([]V, 0, len(m))
	for _, k := range slices.SortedFunc(maps.Keys(m), func(a, b ItemKey) int {
		return cmp.Or(cmp.Compare(a.Server, b.Server), cmp.Compare(a.Name, b.Name))
	}) {
		out = append(out, m[k])
	}
	return out
}

// Accept pins a reported change's current definition, as `gw pin accept`;
// false when no change of server's tool is reported.
func (s *MemoryPinStore) Accept(server, tool string) bool {
	s.mu.Lock()
	c, ok := s.changes[ItemKey{server, tool}]
	delete(s.changes, ItemKey{server, tool})
	s.mu.Unlock()
	if !ok {
		return false
	}
	s.Put(AcceptedPin(c))
	return true
}

// AcceptedPin is the pin that accepts a change: its current definition.
func AcceptedPin(c ToolChange) Pin {
	p := c.Current
	p.Server, p.Tool = c.Server, c.Tool
	p.By, p.Time = "accepted", time.Now().UTC()
	return p
}
