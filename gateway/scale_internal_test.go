package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gwmcp/gw/transport/jsonrpc"
)

// catalogCounter counts catalog events.
type catalogCounter struct {
	mu sync.Mutex
	n  int
}

func (c *catalogCounter) HandleEvent(e Event) {
	if e.Kind == EventCatalogChanged {
		c.mu.Lock()
		c.n++
		c.mu.Unlock()
	}
}

// oneTool is an inventory of one tool.
func oneTool(name string) *inventory {
	raw := json.RawMessage(fmt.Sprintf(`{"name":%q,"inputSchema":{"type":"object"}}`, name))
	return &inventory{lists: map[Kind]listing{KindTools: {items: []Item{{Key: name, Raw: raw}}}}}
}

// refuseResolver refuses any merge that holds a tool named "poison".
type refuseResolver struct{ PrefixResolver }

func (r refuseResolver) Resolve(kind Kind, servers []ServerItems) (Resolution, error) {
	for _, s := range servers {
		for _, it := range s.Items {
			if it.Key == "poison" {
				return Resolution{}, errors.New("poison")
			}
		}
	}
	return r.PrefixResolver.Resolve(kind, servers)
}

// queueEdits holds g.mu while n goroutines each set the lists of server
// s<i> (a tool "poison" for the indices in poison, else "echo"), and
// releases it once all n are queued. It returns each one's error.
func queueEdits(t *testing.T, g *Gateway, n int, poison map[int]bool) []error {
	t.Helper()
	errs := make([]error, n)
	var wg sync.WaitGroup
	g.mu.Lock()
	for i := range n {
		tool := "echo"
		if poison[i] {
			tool = "poison"
		}
		wg.Go(func() { errs[i] = g.setInventory(fmt.Sprintf("s%d", i), oneTool(tool)) })
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		g.editMu.Lock()
		queued := len(g.edits)
		g.editMu.Unlock()
		if queued == n {
			break
		}
		if time.Now().After(deadline) {
			g.mu.Unlock()
			t.Fatalf("%d of %d edits queued", queued, n)
		}
	}
	g.mu.Unlock()
	wg.Wait()
	return errs
}

func newIdleGateway(t *testing.T, n int, r Resolver, sink EventSink) *Gateway {
	t.Helper()
	var specs []ServerSpec
	for i := range n {
		specs = append(specs, ServerSpec{Name: fmt.Sprintf("s%d", i), Command: "true"})
	}
	g, err := New(Options{Servers: specs, Resolver: r, Events: sink, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close() })
	return g
}

// TestEditsShareARebuild: 100 servers' lists that arrive while a rebuild
// runs are merged by one rebuild, not one each (the O(n²) start of 1,000
// servers), and each caller returns with its lists in the catalog.
func TestEditsShareARebuild(t *testing.T) {
	sink := &catalogCounter{}
	g := newIdleGateway(t, 100, nil, sink)
	for i, err := range queueEdits(t, g, 100, nil) {
		if err != nil {
			t.Errorf("s%d: %v", i, err)
		}
	}
	if n := len(g.Catalog().Tools); n != 100 {
		t.Fatalf("%d tools in the catalog, want 100", n)
	}
	if err := g.FlushEvents(context.Background()); err != nil {
		t.Fatal(err)
	}
	if sink.n != 1 {
		t.Errorf("%d catalogs stored for 100 edits queued together, want 1", sink.n)
	}
}

// slowResolver is the prefix resolver, taking d for every merge: a catalog
// of many thousands of tools.
type slowResolver struct {
	PrefixResolver
	d time.Duration
}

func (r slowResolver) Resolve(kind Kind, servers []ServerItems) (Resolution, error) {
	time.Sleep(r.d)
	return r.PrefixResolver.Resolve(kind, servers)
}

// TestSlowRebuildsArePaced: during a start, after a rebuild that took long,
// edits that arrive one by one within as long again wait for each other and
// share one rebuild; without the pause the first would rebuild at once and
// the rest after it. Outside a start nothing waits.
func TestSlowRebuildsArePaced(t *testing.T) {
	const slow = 200 * time.Millisecond
	sink := &catalogCounter{}
	g := newIdleGateway(t, 11, slowResolver{d: slow}, sink)
	pause := func() time.Duration {
		g.mu.Lock()
		defer g.mu.Unlock()
		return time.Until(g.nextRebuild)
	}
	if err := g.setInventory("s0", oneTool("echo")); err != nil {
		t.Fatal(err)
	}
	if p := pause(); p > 0 {
		t.Fatalf("outside a start, a slow rebuild made the next edit wait %v", p)
	}
	g.starting.Store(true) // as Start does until every server is up
	if err := g.setInventory("s0", oneTool("echo2")); err != nil {
		t.Fatal(err)
	}
	if pause() <= 0 {
		t.Fatalf("a rebuild of at least %v set no pause", slow)
	}
	if err := g.FlushEvents(context.Background()); err != nil {
		t.Fatal(err)
	}
	before := sink.n
	var wg sync.WaitGroup
	for i := 1; i <= 10; i++ {
		wg.Go(func() {
			if err := g.setInventory(fmt.Sprintf("s%d", i), oneTool("echo")); err != nil {
				t.Errorf("s%d: %v", i, err)
			}
		})
		time.Sleep(time.Millisecond)
	}
	wg.Wait()
	if err := g.FlushEvents(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(g.Catalog().Tools); n != 11 {
		t.Errorf("%d tools in the catalog, want 11", n)
	}
	if got := sink.n - before; got != 1 {
		t.Errorf("10 edits arriving within the pause: %d catalogs stored, want 1", got)
	}
}

// TestRefusedEditInABatch: when the resolver refuses a batch, each edit is
// tried alone: only the refused server's lists stay out and only its caller
// gets the error.
func TestRefusedEditInABatch(t *testing.T) {
	g := newIdleGateway(t, 50, refuseResolver{}, nil)
	errs := queueEdits(t, g, 50, map[int]bool{7: true, 30: true})
	for i, err := range errs {
		if refused := i == 7 || i == 30; refused != (err != nil) {
			t.Errorf("s%d: error %v", i, err)
		}
	}
	c := g.Catalog()
	if n := len(c.Tools); n != 48 {
		t.Errorf("%d tools in the catalog, want 48", n)
	}
	if _, ok := c.Tool("s6__echo"); !ok {
		t.Error("s6__echo is missing")
	}
	g.mu.Lock()
	_, kept := g.inventory["s7"]
	g.mu.Unlock()
	if kept {
		t.Error("the refused lists of s7 were kept")
	}
}

// TestNoteQueue: FIFO, bounded at notificationQueueSize, drained before
// close is reported, its backing array bounded by a steady flow and
// dropped once a burst drains.
func TestNoteQueue(t *testing.T) {
	q := noteQueue{wake: make(chan struct{}, 1)}
	msg := func(i int) *jsonrpc.Message { return &jsonrpc.Message{Method: strconv.Itoa(i)} }
	for i := range notificationQueueSize {
		if !q.push(msg(i)) {
			t.Fatalf("push %d refused", i)
		}
	}
	if q.push(msg(-1)) {
		t.Fatal("a full queue took one more")
	}
	// A steady flow: one in, one out, many times the bound.
	next := notificationQueueSize
	for i := range 10 * notificationQueueSize {
		m, ok := q.pop()
		if !ok || m.Method != strconv.Itoa(i) {
			t.Fatalf("pop %d: %v %v", i, m, ok)
		}
		if !q.push(msg(next)) {
			t.Fatalf("push %d refused", next)
		}
		next++
	}
	if c := cap(q.items); c > 4*notificationQueueSize {
		t.Fatalf("a steady flow grew the queue to %d", c)
	}
	q.close()
	for i := 10 * notificationQueueSize; i < next; i++ {
		if m, ok := q.pop(); !ok || m.Method != strconv.Itoa(i) {
			t.Fatalf("pop %d after close: %v %v", i, m, ok)
		}
	}
	if _, ok := q.pop(); ok {
		t.Fatal("pop after close and drain reported a message")
	}
	if q.items != nil {
		t.Errorf("a drained burst keeps %d slots", cap(q.items))
	}
}
