package gateway_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/gwmcp/gw/gateway"
	"github.com/gwmcp/gw/internal/mcptest"
)

// TestTraceCallNotes: the log messages and progress a legacy server sends
// while a call that takes them is in flight become events on the call's
// upstream span (in the order they came, before it ends), with their
// level and logger, or progress, total and message; no span of their own.
func TestTraceCallNotes(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	g := start(t, gateway.Options{TracerProvider: tp, Servers: []gateway.ServerSpec{server(t, "s", mcptest.Options{})}})
	g.SetLogLevel(context.Background(), "debug")
	exp.Reset()
	noop := func(json.RawMessage) {}
	if _, err := g.CallTool(context.Background(), params("s__notify", map[string]any{"n": 2}), gateway.CallOptions{Log: noop, Progress: noop}); err != nil {
		t.Fatal(err)
	}
	spans := exp.GetSpans()
	if len(spans) != 1 || spans[0].Name != "tools/call notify" {
		t.Fatalf("spans %v, want the upstream span alone", spans)
	}
	var got []string
	for _, ev := range spans[0].Events {
		line := ev.Name
		for _, kv := range ev.Attributes {
			line += " " + string(kv.Key) + "=" + kv.Value.Emit()
		}
		got = append(got, line)
	}
	want := []string{
		"notifications/message gw.log.level=info gw.log.logger=mcptest",
		"notifications/progress gw.progress.value=1 gw.progress.total=2 gw.progress.message=step 1 of 2",
		"notifications/message gw.log.level=info gw.log.logger=mcptest",
		"notifications/progress gw.progress.value=2 gw.progress.total=2 gw.progress.message=step 2 of 2",
	}
	if len(got) != len(want) {
		t.Fatalf("events %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("event %d: %q, want %q", i, got[i], want[i])
		}
	}
}

// TestTraceServerStart: each start of a server is a trace of its own, one
// span from the spawn to the lists in the catalog, with the era, version
// and tool count; a start that fails has the error.
func TestTraceServerStart(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	_, err := startErr(t, gateway.Options{TracerProvider: tp, Servers: []gateway.ServerSpec{
		server(t, "s", mcptest.Options{}),
		{Name: "gone", Command: "gw-no-such-command"},
	}})
	if err == nil {
		t.Fatal("Start with a server that cannot start: no error")
	}
	byName := map[string]sdktrace.ReadOnlySpan{}
	for _, sp := range exp.GetSpans().Snapshots() {
		if _, seen := byName[sp.Name()]; !seen { // the first attempt
			byName[sp.Name()] = sp
		}
	}
	ok := byName["start s"]
	if ok == nil {
		t.Fatalf("no span for s's start among %v", exp.GetSpans())
	}
	attrs := map[string]string{}
	for _, kv := range ok.Attributes() {
		attrs[string(kv.Key)] = kv.Value.Emit()
	}
	if ok.Parent().IsValid() || ok.Status().Code == codes.Error || attrs["gw.server"] != "s" || attrs["gw.server.attempt"] != "0" ||
		attrs["gw.server.era"] == "" || attrs["mcp.protocol.version"] == "" || attrs["gw.server.tools"] == "" || attrs["gw.server.tools"] == "0" {
		t.Errorf("s's start span: parent %v, status %v, attributes %v", ok.Parent(), ok.Status(), attrs)
	}
	bad := byName["start gone"]
	if bad == nil || bad.Status().Code != codes.Error || !strings.Contains(bad.Status().Description, "gw-no-such-command") {
		t.Errorf("gone's start span: %+v", bad)
	}
}

// TestTraceMetaKept: what gw has no context of its own for, it leaves in
// the caller's _meta. A direct caller of the Gateway API (gw call) has no
// baggage in its context: the baggage in its _meta reaches the server, next
// to gw's traceparent. A provider whose spans have no valid context (a
// noop one) gives gw nothing to be the parent: the caller's traceparent
// and tracestate reach the server as they were.
func TestTraceMetaKept(t *testing.T) {
	const callerTP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for _, tt := range []struct {
		name string
		tp   trace.TracerProvider
		want func(meta map[string]any) bool
	}{
		{"sdk", sdktrace.NewTracerProvider(), func(meta map[string]any) bool {
			tp, _ := meta["traceparent"].(string)
			return tp != "" && tp != callerTP && meta["tracestate"] == nil && meta["baggage"] == "k=v"
		}},
		{"noop", noop.NewTracerProvider(), func(meta map[string]any) bool {
			return meta["traceparent"] == callerTP && meta["tracestate"] == "a=b" && meta["baggage"] == "k=v"
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g := start(t, gateway.Options{TracerProvider: tt.tp, Servers: []gateway.ServerSpec{server(t, "s", mcptest.Options{})}})
			p := json.RawMessage(`{"name":"s__echo_meta","_meta":{"traceparent":"` + callerTP + `","tracestate":"a=b","baggage":"k=v","x":1}}`)
			res, err := g.CallTool(context.Background(), p, gateway.CallOptions{})
			if err != nil {
				t.Fatal(err)
			}
			var out struct {
				StructuredContent struct {
					Meta map[string]any `json:"meta"`
				} `json:"structuredContent"`
			}
			if err := json.Unmarshal(res, &out); err != nil {
				t.Fatal(err)
			}
			if meta := out.StructuredContent.Meta; !tt.want(meta) || meta["x"] != 1.0 {
				t.Errorf("the server's _meta: %v", meta)
			}
		})
	}
}

// TestTraceRelist: the re-listing a server's list_changed sets off is a
// span of its own, naming the server and the lists.
func TestTraceRelist(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	rec := newRecorder()
	g := start(t, gateway.Options{TracerProvider: tp, Events: rec, Servers: []gateway.ServerSpec{server(t, "s", mcptest.Options{})}})
	mustCall(t, g, "s__add_tool", map[string]any{"name": "fresh"})
	rec.waitFor(t, "catalog with s__fresh", catalogWith("s__fresh"))
	// The span ends just after the catalog is stored: wait for it.
	var relist sdktrace.ReadOnlySpan
	for deadline := time.Now().Add(10 * time.Second); relist == nil && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		for _, sp := range exp.GetSpans().Snapshots() {
			if sp.Name() == "relist s" {
				relist = sp
			}
		}
	}
	if relist == nil {
		t.Fatalf("no relist span among %v", exp.GetSpans())
	}
	attrs := map[string]string{}
	for _, kv := range relist.Attributes() {
		attrs[string(kv.Key)] = kv.Value.Emit()
	}
	if relist.Status().Code == codes.Error || attrs["gw.server"] != "s" || !strings.Contains(attrs["gw.lists"], "tools") {
		t.Errorf("relist span: status %v, attributes %v", relist.Status(), attrs)
	}
}
