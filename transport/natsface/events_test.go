package natsface

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestEvents publishes every kind of event: a wildcard subscriber gets them live, a late
// subscriber replays them from the stream, and a KV watcher sees the catalog.
func TestEvents(t *testing.T) {
	s := startServer(t)
	f := startFace(t, connect(t, s), newFakeGateway("gw1"), Options{})
	cl := connect(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	live, js, kv := eventsAndBucket(ctx, t, cl, "mcp.v1.evt.>")
	watcher, err := kv.Watch(ctx, "gw.*", jetstream.UpdatesOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer watcher.Stop()

	catalog := json.RawMessage(`{"tools":[{"name":"notes__search"}]}`)
	if err := f.PublishCatalog(ctx, catalog); err != nil {
		t.Fatal(err)
	}
	if err := f.PublishServerStatus(ctx, "notes.v2", json.RawMessage(`{"state":"ready"}`)); err != nil {
		t.Fatal(err)
	}
	if err := f.PublishNotification(ctx, "notes.v2", NotificationKind("notifications/resources/updated"), json.RawMessage(`{"uri":"file:///a"}`)); err != nil {
		t.Fatal(err)
	}
	if err := f.PublishGatewayStatus(ctx, json.RawMessage(`{"state":"serving"}`)); err != nil {
		t.Fatal(err)
	}
	want := []struct{ subject, data string }{
		{"mcp.v1.evt.catalog.changed", string(catalog)},
		{"mcp.v1.evt.srv.notes~2Ev2.status", `{"state":"ready"}`},
		{"mcp.v1.evt.srv.notes~2Ev2.notify.resources_updated", `{"uri":"file:///a"}`},
		{"mcp.v1.evt.gw.gw1.status", `{"state":"serving"}`},
	}
	check := func(who string, msg *nats.Msg, i int) {
		t.Helper()
		if msg.Subject != want[i].subject || string(msg.Data) != want[i].data || msg.Header.Get(HeaderGateway) != "gw1" {
			t.Errorf("%s event %d: %s %s %v", who, i, msg.Subject, msg.Data, msg.Header)
		}
		if i == 1 && msg.Header.Get(HeaderServer) != "notes.v2" {
			t.Errorf("%s: Mcp-Server header %v", who, msg.Header)
		}
	}
	for i := range want {
		msg, err := live.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("live event %d: %v", i, err)
		}
		check("live", msg, i)
	}

	// A late subscriber replays the stream.
	cons, err := js.OrderedConsumer(ctx, "MCP_EVENTS", jetstream.OrderedConsumerConfig{FilterSubjects: []string{"mcp.v1.evt.>"}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		m, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatalf("replayed event %d: %v", i, err)
		}
		check("late", &nats.Msg{Subject: m.Subject(), Data: m.Data(), Header: m.Headers()}, i)
	}
	stream, err := js.Stream(ctx, "MCP_EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	cfg := stream.CachedInfo().Config
	if cfg.MaxAge != 24*time.Hour || cfg.MaxMsgsPerSubject != 100 || cfg.Storage != jetstream.FileStorage {
		t.Errorf("stream config %+v", cfg)
	}

	// KV: the watcher sees the gateway's catalog; both keys hold it.
	select {
	case e := <-watcher.Updates():
		if e == nil || e.Key() != "gw.gw1" || string(e.Value()) != string(catalog) {
			t.Errorf("watch: %v", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no KV update")
	}
	for _, key := range []string{"catalog", "gw.gw1"} {
		e, err := kv.Get(ctx, key)
		if err != nil || string(e.Value()) != string(catalog) {
			t.Errorf("kv %s: %v", key, err)
		}
	}
	updated := json.RawMessage(`{"tools":[]}`)
	if err := f.PublishCatalog(ctx, updated); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-watcher.Updates():
		if e == nil || string(e.Value()) != string(updated) {
			t.Errorf("watch update: %v", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no KV update")
	}
	if err := f.PublishCatalog(ctx, json.RawMessage(`{`)); err == nil {
		t.Error("invalid catalog accepted")
	}
}

func TestNotificationKind(t *testing.T) {
	for method, want := range map[string]string{
		"notifications/resources/updated":      "resources_updated",
		"notifications/message":                "message",
		"notifications/tools/list_changed":     "tools_list_changed",
		"notifications/prompts/list_changed":   "prompts_list_changed",
		"notifications/resources/list_changed": "resources_list_changed",
		"notifications/progress":               "progress",
		"custom/x.y":                           "custom_x~2Ey",
	} {
		if got := NotificationKind(method); got != want {
			t.Errorf("%s: %q, want %q", method, got, want)
		}
	}
}

// TestPublishCatalogOnlyWhenChanged publishes catalogs against a real server: repeats of the last
// published bytes, one after the other or at once from many goroutines, write nothing and publish
// no event; a change (back to an older catalog too) gives exactly one event and one write per key;
// a publish that failed is not mistaken for one that went out.
func TestPublishCatalogOnlyWhenChanged(t *testing.T) {
	s := startServer(t)
	f := startFace(t, connect(t, s), newFakeGateway("gw1"), Options{})
	js, err := jetstream.New(connect(t, s))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// counts returns the catalog events in the stream and the writes to the catalog bucket so far.
	counts := func() (events, writes uint64) {
		t.Helper()
		for name, n := range map[string]*uint64{"MCP_EVENTS": &events, "KV_mcp-catalog": &writes} {
			st, err := js.Stream(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			info, err := st.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			*n = info.State.LastSeq
		}
		return events, writes
	}
	publish := func(ctx context.Context, catalog string) error {
		return f.PublishCatalog(ctx, json.RawMessage(catalog))
	}
	step := func(what, catalog string, times int, wantEvents, wantWrites uint64) {
		t.Helper()
		for range times {
			if err := publish(ctx, catalog); err != nil {
				t.Fatalf("%s: %v", what, err)
			}
		}
		if e, w := counts(); e != wantEvents || w != wantWrites {
			t.Errorf("%s: %d events and %d bucket writes, want %d and %d", what, e, w, wantEvents, wantWrites)
		}
	}
	a, b := `{"tools":[{"name":"a"}]}`, `{"tools":[{"name":"b"}]}`
	step("first catalog, ten times", a, 10, 1, 2)
	step("a change, ten times", b, 10, 2, 4)
	step("back to the first", a, 1, 3, 6)

	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5 {
				if err := publish(ctx, b); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	step("the same change from 8 goroutines at once", b, 0, 4, 8)

	failed, stop := context.WithCancel(ctx)
	stop()
	if err := publish(failed, a); err == nil {
		t.Fatal("publish with a cancelled ctx succeeded")
	}
	step("the catalog whose publish failed", a, 1, 5, 10)
	step("and again", a, 3, 5, 10)
	if e, err := js.KeyValue(ctx, "mcp-catalog"); err != nil {
		t.Fatal(err)
	} else if v, err := e.Get(ctx, "gw.gw1"); err != nil || string(v.Value()) != a {
		t.Errorf("gw.gw1 holds %v (%v), want %s", v, err, a)
	}
}

// TestLargeCatalogInParts: a catalog larger than one message is stored in
// parts, the bucket values and the event carry its manifest, and ReadCatalog
// gives it back whole; a smaller catalog after it is stored whole and the
// parts it no longer needs go. (A catalog over 1 MiB, 15,000 tools, was
// never published: one server froze the published catalog for all.)
func TestLargeCatalogInParts(t *testing.T) {
	s := startServer(t)
	f := startFace(t, connect(t, s), newFakeGateway("gw1"), Options{catalogPartSize: 1000})
	cl := connect(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	live, _, kv := eventsAndBucket(ctx, t, cl, "mcp.v1.evt.catalog.changed")
	catalog := func(tools int) json.RawMessage {
		var b strings.Builder
		b.WriteString(`{"tools":[`)
		for i := range tools {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"name":"tool-%04d","description":"a tool of a large catalog"}`, i)
		}
		b.WriteString(`]}`)
		return json.RawMessage(b.String())
	}
	read := func(key string) json.RawMessage {
		t.Helper()
		e, err := kv.Get(ctx, key)
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		got, err := ReadCatalog(ctx, kv, e.Value())
		if err != nil {
			t.Fatalf("ReadCatalog(%s): %v", key, err)
		}
		return got
	}
	parts := func() int {
		n := 0
		for i := range 100 {
			if _, err := kv.Get(ctx, CatalogPartKeyPrefix+"gw1."+fmt.Sprint(i)); err == nil {
				n++
			}
		}
		return n
	}

	big := catalog(200) // about 13 KB: 14 parts of 1,000 bytes
	if err := f.PublishCatalog(ctx, big); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"gw.gw1", "catalog"} {
		if e, _ := kv.Get(ctx, key); e == nil || !strings.HasPrefix(string(e.Value()), `{"chunked":{"gateway":"gw1","digest":"sha256:`) {
			t.Fatalf("%s holds no manifest: %v", key, e)
		}
		if got := read(key); !bytes.Equal(got, big) {
			t.Fatalf("%s reads back %d bytes, want the %d published", key, len(got), len(big))
		}
	}
	msg, err := live.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ReadCatalog(ctx, kv, msg.Data); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("the event's manifest reads back %d bytes (%v)", len(got), err)
	}
	if n, want := parts(), (len(big)+999)/1000; n != want {
		t.Fatalf("%d parts in the bucket, want %d", n, want)
	}

	small := catalog(3)
	if err := f.PublishCatalog(ctx, small); err != nil {
		t.Fatal(err)
	}
	if got := read("gw.gw1"); !bytes.Equal(got, small) {
		t.Fatalf("after a small catalog, gw.gw1 reads %s", got)
	}
	if n := parts(); n != 0 {
		t.Fatalf("%d parts left after a catalog that fits whole", n)
	}
	// A manifest whose parts were overwritten by another catalog fails its
	// digest, then reads the gateway's current value.
	if err := f.PublishCatalog(ctx, big); err != nil {
		t.Fatal(err)
	}
	e, _ := kv.Get(ctx, "gw.gw1")
	stale := e.Value()
	bigger := catalog(300)
	if err := f.PublishCatalog(ctx, bigger); err != nil {
		t.Fatal(err)
	}
	if got, err := ReadCatalog(ctx, kv, stale); err != nil || !bytes.Equal(got, bigger) {
		t.Fatalf("a stale manifest read %d bytes (%v), want the current catalog", len(got), err)
	}
}

// eventsAndBucket subscribes cl to the events on subject and opens
// JetStream and the catalog bucket.
func eventsAndBucket(ctx context.Context, t *testing.T, cl *nats.Conn, subject string) (*nats.Subscription, jetstream.JetStream, jetstream.KeyValue) {
	t.Helper()
	live, err := cl.SubscribeSync(subject)
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(cl)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, "mcp-catalog")
	if err != nil {
		t.Fatal(err)
	}
	return live, js, kv
}
