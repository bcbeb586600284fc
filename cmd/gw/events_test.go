package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gwmcp/gw/gateway"
	"github.com/gwmcp/gw/internal/mcptest"
	"github.com/gwmcp/gw/transport/natsface"
)

// eventsRun is a `gw run` with three modern mcptest servers whose lists
// carry ttlMs 0, so every tools.list re-lists all three: the case where each
// list used to publish three identical catalogs.
type eventsRun struct {
	t      *testing.T
	gw     string
	nc     *nats.Conn
	js     jetstream.JetStream
	stderr *mcptest.SyncBuffer
}

func startEventsRun(t *testing.T, gw string) *eventsRun {
	t.Helper()
	port := freePort(t)
	server := func(name string) string {
		return fmt.Sprintf("  %s:\n    command: EXE\n    env: {MCPTEST_SERVER: \"1\", MCPTEST_ERA: modern, MCPTEST_TTL_MS: \"0\"}\n", name)
	}
	cfg := writeConfig(t, "gw.yaml", runHead(t, gw, port)+"servers:\n"+server("alpha")+server("beta")+server("gamma"))

	ctx, cancel := context.WithCancel(context.Background())
	r := &eventsRun{t: t, gw: gw, stderr: &mcptest.SyncBuffer{}}
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"run", "-c", cfg}, &bytes.Buffer{}, r.stderr) }()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("gw run exited %d\n%s", code, r.stderr.String())
			}
		case <-time.After(30 * time.Second):
			t.Error("gw run did not stop")
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		var err error
		if r.nc, err = nats.Connect(fmt.Sprintf("nats://127.0.0.1:%d", port)); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("embedded NATS never came up: %v\n%s", err, r.stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Cleanup(r.nc.Close)
	var err error
	if r.js, err = jetstream.New(r.nc); err != nil {
		t.Fatal(err)
	}
	return r
}

// events replays the event stream from its start and returns the events on
// filter, in order, until stop returns true for one (which is included).
func (r *eventsRun) events(filter string, stop func(jetstream.Msg) bool) []jetstream.Msg {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var stream jetstream.Stream
	for {
		var err error
		if stream, err = r.js.Stream(ctx, "MCP_EVENTS"); err == nil {
			break
		}
		if ctx.Err() != nil {
			r.t.Fatalf("event stream: %v\n%s", err, r.stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}})
	if err != nil {
		r.t.Fatal(err)
	}
	var out []jetstream.Msg
	for {
		m, err := cons.Next(jetstream.FetchMaxWait(30 * time.Second))
		if err != nil {
			r.t.Fatalf("after %d events on %s: %v\n%s", len(out), filter, err, r.stderr.String())
		}
		out = append(out, m)
		if stop(m) {
			return out
		}
	}
}

// call calls a tool over NATS and fails the test unless it succeeds.
func (r *eventsRun) call(tool string, args string) {
	r.t.Helper()
	msg, err := r.nc.Request("mcp.v1.req.alice.tools.call."+tool, []byte(`{"name":"`+tool+`","arguments":`+args+`}`), 10*time.Second)
	if err != nil || msg.Header.Get("Nats-Service-Error-Code") != "" {
		r.t.Fatalf("call %s: %v %s\n%s", tool, err, msgData(msg), r.stderr.String())
	}
}

// list sends n tools.list requests one after the other.
func (r *eventsRun) list(n int) {
	r.t.Helper()
	for range n {
		msg, err := r.nc.Request("mcp.v1.req.alice.tools.list", []byte(`{}`), 10*time.Second)
		if err != nil || !strings.Contains(string(msg.Data), `"alpha__echo"`) {
			r.t.Fatalf("tools.list: %v %s", err, msgData(msg))
		}
	}
}

func msgData(m *nats.Msg) string {
	if m == nil {
		return ""
	}
	return string(m.Data)
}

// catalogTools returns the exposed tool names of a catalog event.
func catalogTools(t *testing.T, data []byte) []string {
	t.Helper()
	var c struct {
		Tools []struct {
			Name string `json:"name"`
		} `json:"tools"`
	}
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatalf("catalog %q: %v", data, err)
	}
	var names []string
	for _, tool := range c.Tools {
		names = append(names, tool.Name)
	}
	return names
}

// hasTools reports whether a catalog event lists every one of names.
func hasTools(t *testing.T, m jetstream.Msg, names ...string) bool {
	tools := catalogTools(t, m.Data())
	for _, n := range names {
		if !slices.Contains(tools, n) {
			return false
		}
	}
	return true
}

// TestCatalogPublishedOnlyWhenChanged lists tools many times over NATS while
// every server's lists are always stale (so each list re-lists all three):
// no catalog.changed event and no KV write follow unless the catalog's
// content changed, and each change of a server's tools gives exactly one.
func TestCatalogPublishedOnlyWhenChanged(t *testing.T) {
	r := startEventsRun(t, "cat-gw")
	const subject = "mcp.v1.evt.catalog.changed"
	all := []string{"alpha__echo", "beta__echo", "gamma__echo"}
	r.events(subject, func(m jetstream.Msg) bool { return hasTools(t, m, all...) })

	// Each step ends with a change whose event is awaited: events go out in
	// order, so anything the lists before it caused is in the stream before
	// it.
	r.list(10)
	r.call("alpha__add_tool", `{"name":"fresh"}`)
	r.events(subject, func(m jetstream.Msg) bool { return hasTools(t, m, "alpha__fresh") })
	r.list(10)
	r.call("alpha__remove_tool", `{"name":"fresh"}`)
	r.list(10)
	r.call("beta__add_tool", `{"name":"late"}`)
	evts := r.events(subject, func(m jetstream.Msg) bool { return hasTools(t, m, "beta__late") })

	first := slices.IndexFunc(evts, func(m jetstream.Msg) bool { return hasTools(t, m, all...) })
	var got []string
	repeats := 0
	for i, m := range evts {
		if i > 0 && bytes.Equal(m.Data(), evts[i-1].Data()) {
			repeats++
		}
		if i >= first {
			tools := catalogTools(t, m.Data())
			got = append(got, fmt.Sprintf("fresh=%v late=%v", slices.Contains(tools, "alpha__fresh"), slices.Contains(tools, "beta__late")))
		}
	}
	if repeats > 0 {
		t.Errorf("%d of %d catalog events repeat the one before", repeats, len(evts))
	}
	want := []string{"fresh=false late=false", "fresh=true late=false", "fresh=false late=false", "fresh=false late=true"}
	if !slices.Equal(got, want) {
		t.Errorf("catalog events from the first complete one on:\n got %q\nwant %q", got, want)
	}

	// Every catalog event is two KV writes (gw.{gw} and catalog), and no
	// other write happened.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kvs, err := r.js.Stream(ctx, "KV_mcp-catalog")
	if err != nil {
		t.Fatal(err)
	}
	info, err := kvs.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.LastSeq != uint64(2*len(evts)) {
		t.Errorf("catalog bucket has had %d writes for %d catalog events", info.State.LastSeq, len(evts))
	}
}

// TestReadyAfterInitialCatalog checks that the gateway's "ready" event
// follows the catalog of the initial start, so that an agent reacting to it
// finds every tool in the catalog and callable.
func TestReadyAfterInitialCatalog(t *testing.T) {
	r := startEventsRun(t, "ready-gw")
	isReady := func(m jetstream.Msg) bool {
		var st struct{ State string }
		return m.Subject() == "mcp.v1.evt.gw.ready-gw.status" && json.Unmarshal(m.Data(), &st) == nil && st.State == "ready"
	}
	evts := r.events("mcp.v1.evt.>", isReady)
	var last jetstream.Msg
	for _, m := range evts {
		if m.Subject() == "mcp.v1.evt.catalog.changed" {
			last = m
		}
	}
	all := []string{"alpha__echo", "beta__echo", "gamma__echo"}
	if last == nil || !hasTools(t, last, all...) {
		t.Fatalf("the last catalog before ready lacks some of %v", all)
	}
	// Right after ready, each tool is callable (its endpoint is up).
	r.call("gamma__add_tool", `{"name":"after"}`)
	evts = r.events("mcp.v1.evt.>", func(m jetstream.Msg) bool {
		return m.Subject() == "mcp.v1.evt.catalog.changed" && hasTools(t, m, "gamma__after")
	})
	ready := slices.IndexFunc(evts, isReady)
	for _, m := range evts[ready+1 : len(evts)-1] {
		if m.Subject() == "mcp.v1.evt.catalog.changed" {
			t.Errorf("a catalog.changed between ready and the next change: %s", m.Data())
		}
	}
}

// TestEventBridgeQueue drives the bridge's queue directly against a real
// face: a catalog that finds the queue full is kept (the newest one) and goes
// out before the queued events, other events are dropped and counted, flush
// waits for what came before it, an unchanged catalog is not published
// again, close publishes what is waiting, and nothing blocks or panics
// after close.
func TestEventBridgeQueue(t *testing.T) {
	ctx := context.Background()
	nc, face := startBareFace(t, "q")
	sub, err := nc.SubscribeSync("mcp.v1.evt.>")
	if err != nil {
		t.Fatal(err)
	}
	next := func() string {
		t.Helper()
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(m.Subject, ".status") {
			var st gateway.ServerStatus
			_ = json.Unmarshal(m.Data, &st)
			return "status " + st.Name
		}
		return "catalog " + strings.Join(catalogTools(t, m.Data), ",")
	}
	quiet := func() {
		t.Helper()
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
		if m, err := sub.NextMsg(200 * time.Millisecond); err == nil {
			t.Errorf("unexpected event %s %s", m.Subject, m.Data)
		}
	}
	catalog := func(tools ...string) gateway.Event {
		c := &gateway.Catalog{}
		for _, n := range tools {
			c.Tools = append(c.Tools, gateway.Entry{Name: n, JSON: json.RawMessage(`{"name":"` + n + `"}`)})
		}
		return gateway.Event{Kind: gateway.EventCatalogChanged, Catalog: c}
	}
	status := func(name string) gateway.Event {
		return gateway.Event{Kind: gateway.EventServerStatus, Server: name, Status: &gateway.ServerStatus{Name: name, State: gateway.StateReady}}
	}

	// Catalogs waiting behind one marker coalesce into the newest, which
	// goes out where the first was queued.
	b := makeEventBridge(face, discardLogger(), 4)
	b.HandleEvent(status("s0"))
	for i := range 100 {
		b.HandleEvent(catalog("a", fmt.Sprint(i)))
	}
	b.HandleEvent(status("s1"))
	go b.run()
	b.flush(ctx)
	for _, want := range []string{"status s0", "catalog a,99", "status s1"} {
		if got := next(); got != want {
			t.Errorf("event %q, want %q", got, want)
		}
	}
	quiet()
	b.close()

	b = makeEventBridge(face, discardLogger(), 2)
	b.HandleEvent(status("s1"))
	b.HandleEvent(status("s2"))
	b.HandleEvent(catalog("a")) // no room for its marker
	b.HandleEvent(catalog("b")) // replaces it
	b.HandleEvent(status("s3")) // dropped
	go b.run()
	if !b.flush(ctx) {
		t.Fatal("flush failed")
	}
	for _, want := range []string{"catalog b", "status s1", "status s2"} {
		if got := next(); got != want {
			t.Errorf("event %q, want %q", got, want)
		}
	}
	quiet()
	if b.dropped != 1 {
		t.Errorf("%d events dropped, want 1", b.dropped)
	}

	// An unchanged catalog is not published again.
	b.HandleEvent(catalog("b"))
	b.flush(ctx)
	quiet()

	b.HandleEvent(status("s4"))
	b.HandleEvent(catalog("c"))
	b.close()
	for _, want := range []string{"status s4", "catalog c"} {
		if got := next(); got != want {
			t.Errorf("event %q, want %q", got, want)
		}
	}
	b.close()
	b.HandleEvent(catalog("d"))
	if b.flush(ctx) {
		t.Error("flush after close reported success")
	}
	quiet()
}

// TestEventBridgeRetriesCatalog: a catalog that could not be stored (here
// the bucket is gone; in a fleet, this side of a partition has no quorum)
// is tried again until it is, so the bucket heals without another change.
// A newer catalog that fails too replaces it, and its own retry is the one
// waited for.
func TestEventBridgeRetriesCatalog(t *testing.T) {
	ctx := context.Background()
	nc, face := startBareFace(t, "r")
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteKeyValue(ctx, natsface.DefaultCatalogBucket); err != nil {
		t.Fatal(err)
	}

	b := newEventBridge(face, discardLogger())
	t.Cleanup(b.close)
	for _, tool := range []string{"a", "b"} {
		b.HandleEvent(gateway.Event{Kind: gateway.EventCatalogChanged, Catalog: &gateway.Catalog{
			Tools: []gateway.Entry{{Name: tool, JSON: json.RawMessage(`{"name":"` + tool + `"}`)}}}})
		b.flush(ctx) // the first try failed: there is no bucket
	}

	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: natsface.DefaultCatalogBucket})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(catalogRetry + 5*time.Second)
	for {
		entry, err := kv.Get(ctx, natsface.GatewayCatalogKeyPrefix+"r")
		if err == nil {
			if got := catalogTools(t, entry.Value()); !slices.Equal(got, []string{"b"}) {
				t.Errorf("bucket holds %v", got)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the catalog was not tried again: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startBareFace starts an embedded NATS server and a started NATS face on
// it, named gw, whose handler answers nothing: for tests of the event
// bridge, which only publish.
func startBareFace(t *testing.T, gw string) (*nats.Conn, *natsface.Face) {
	t.Helper()
	ctx := context.Background()
	_, nc := embeddedNATS(t)
	face, err := natsface.New(nc, natsface.HandlerFunc(func(context.Context, *natsface.Request) (json.RawMessage, error) {
		return nil, nil
	}), natsface.Options{Gateway: gw, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := face.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = face.Stop(context.Background()) })
	return nc, face
}
