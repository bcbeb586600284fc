package tracing

import (
	"context"
	"encoding/json"
	"slices"
	"testing"

	"go.opentelemetry.io/contrib/propagators/b3"
	"go.opentelemetry.io/contrib/propagators/ot"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

const (
	tp       = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	tpTrace  = "4bf92f3577b34da6a3ce929d0e0e4736"
	b3Single = tpTrace + "-00f067aa0ba902b7-1"
)

// TestMetaCarrier: params._meta is read by exact key, with any propagator.
func TestMetaCarrier(t *testing.T) {
	prop := DefaultPropagator()
	for _, tt := range []struct {
		params     string
		valid      bool
		state, bag string
	}{
		{`{"_meta":{"traceparent":"` + tp + `","tracestate":"a=b","baggage":"k=v"}}`, true, "a=b", "k=v"},
		{`{"name":"x","_meta":{"Traceparent":"` + tp + `"}}`, false, "", ""}, // exact keys only
		{`{"_meta":{"traceparent":"00-zz-yy-01"}}`, false, "", ""},           // malformed
		{`{"traceparent":"` + tp + `"}`, false, "", ""},                      // not in _meta
		{`{"_meta":{"traceparent":7}}`, false, "", ""},
		{`{"_meta":{"traceparent":"` + tp + `"},"_meta":{}}`, false, "", ""}, // _meta twice
		{``, false, "", ""},
	} {
		sc, bag := Extract(prop, MetaOf(json.RawMessage(tt.params)))
		if sc.IsValid() != tt.valid || (tt.valid && (!sc.IsRemote() || sc.TraceState().Get("a") != "b")) {
			t.Errorf("%s: span context %v", tt.params, sc)
		}
		if got := bag.Member("k").Value(); got != tt.bag[min(2, len(tt.bag)):] {
			t.Errorf("%s: baggage %v", tt.params, bag)
		}
	}
	m := MetaOf(json.RawMessage(`{"_meta":{"b3":"` + b3Single + `","ot-baggage-a":"1","bad key":"x","io.modelcontextprotocol/protocolVersion":"v"}}`))
	if keys := m.Keys(); !slices.Equal(keys, []string{"b3", "ot-baggage-a"}) {
		t.Errorf("Keys = %q, want the valid names only", keys)
	}
	if sc, _ := Extract(b3.New(), m); sc.TraceID().String() != tpTrace {
		t.Errorf("b3 from _meta: %v", sc)
	}
	if m.Get("bad key") != "" {
		t.Error("an invalid _meta name was read")
	}
}

// TestHeadersCarrier: header names in any case; the exact one first.
func TestHeadersCarrier(t *testing.T) {
	for _, tt := range []struct {
		h    Headers
		want string
	}{
		{nil, ""},
		{Headers{"x-b3-traceid": {"a"}}, "a"},
		{Headers{"X-B3-Traceid": {"b"}}, "b"}, // Go's canonical spelling
		{Headers{"X-B3-TraceId": {"c"}}, "c"}, // B3's own
		{Headers{"x-b3-traceid": {"a"}, "X-B3-Traceid": {"b"}}, "a"},
		{Headers{"x-b3-traceid": {}}, ""},
	} {
		if got := tt.h.Get("x-b3-traceid"); got != tt.want {
			t.Errorf("%v: %q, want %q", tt.h, got, tt.want)
		}
	}
}

// TestHeadersValues: every value of a header, found as Get finds it, so
// the baggage propagator reads each of several baggage lines (W3C allows
// them); the canonical spelling wins over another case; no lookup
// allocates.
func TestHeadersValues(t *testing.T) {
	for _, tt := range []struct {
		h    Headers
		want []string
	}{
		{nil, nil},
		{Headers{"baggage": {"a=1", "b=2"}}, []string{"a=1", "b=2"}},
		{Headers{"Baggage": {"a=1", "b=2"}}, []string{"a=1", "b=2"}},
		{Headers{"BAGGAGE": {"a=1"}}, []string{"a=1"}},
		{Headers{"baggage": {"a=1"}, "Baggage": {"b=2"}}, []string{"a=1"}},
		{Headers{"BAGGAGE": {"x=1"}, "Baggage": {"b=2"}, "BaGgAgE": {"y=1"}}, []string{"b=2"}},
		{Headers{"baggages": {"a=1"}}, nil},
	} {
		if got := tt.h.Values("baggage"); !slices.Equal(got, tt.want) {
			t.Errorf("%v: Values %q, want %q", tt.h, got, tt.want)
		}
	}
	h := Headers{"Baggage": {"a=1", "b=2"}, "Traceparent": {tp}}
	if _, bag := Extract(DefaultPropagator(), h); bag.Member("a").Value() != "1" || bag.Member("b").Value() != "2" {
		t.Errorf("baggage of two header lines: %v", bag)
	}
	if n := testing.AllocsPerRun(100, func() { _ = h.Get("traceparent"); _ = h.Get("tracestate") }); n != 0 {
		t.Errorf("Get allocates %v times", n)
	}
}

func TestMetaKey(t *testing.T) {
	for key, want := range map[string]bool{
		"traceparent": true, "b3": true, "x-b3-traceid": true, "X-Amzn-Trace-Id": true, "uber-trace-id": true,
		"ot-baggage-a.b_c": true, "": false, "-a": false, "a-": false, "ot-baggage-a*b": false, "a b": false,
		"io.modelcontextprotocol/x": false, "é": false,
	} {
		if MetaKey(key) != want {
			t.Errorf("MetaKey(%q) = %v", key, !want)
		}
	}
}

// TestMetaWriter: what a propagator writes becomes _meta entries, every
// key it owns for a span context set or removed, baggage keys only set
// (never removed), keys _meta cannot hold dropped; none writes nothing,
// and neither does any without a valid span context.
func TestMetaWriter(t *testing.T) {
	sc, _ := Extract(propagation.TraceContext{}, propagation.MapCarrier{"traceparent": tp, "tracestate": "a=b"})
	ctx := trace.ContextWithRemoteSpanContext(context.Background(), sc)
	bag, _ := baggage.Parse("k=v,bad*key=x")
	withBag := baggage.ContextWithBaggage(ctx, bag)
	one, _ := baggage.Parse("k=v")
	withOne := baggage.ContextWithBaggage(ctx, one)
	noState := trace.ContextWithRemoteSpanContext(context.Background(), sc.WithTraceState(trace.TraceState{}))
	for _, tt := range []struct {
		name string
		p    propagation.TextMapPropagator
		ctx  context.Context
		want []Entry
	}{
		// One member: a baggage's members come out in map order.
		{"default", DefaultPropagator(), withOne, []Entry{{"baggage", "k=v"}, {"traceparent", tp}, {"tracestate", "a=b"}}},
		// No baggage in ctx: the caller's is left as it is.
		{"default, no baggage", DefaultPropagator(), ctx, []Entry{{"traceparent", tp}, {"tracestate", "a=b"}}},
		// A span context without tracestate: the caller's is stale.
		{"default, no tracestate", DefaultPropagator(), noState, []Entry{{"traceparent", tp}, {"tracestate", ""}}},
		// No valid span context: nothing of the caller's is touched.
		{"default, no span", DefaultPropagator(), baggage.ContextWithBaggage(context.Background(), bag), nil},
		{"tracecontext, no span", propagation.TraceContext{}, context.Background(), nil},
		{"b3", b3.New(), ctx, []Entry{{"b3", b3Single}}},
		{"b3multi", b3.New(b3.WithInjectEncoding(b3.B3MultipleHeader)), ctx, []Entry{{"x-b3-flags", ""}, {"x-b3-sampled", "1"}, {"x-b3-spanid", "00f067aa0ba902b7"}, {"x-b3-traceid", tpTrace}}},
		{"ottrace, no baggage", ot.OT{}, ctx, []Entry{{"ot-tracer-sampled", "true"}, {"ot-tracer-spanid", "00f067aa0ba902b7"}, {"ot-tracer-traceid", tpTrace[16:]}}},
		{"ottrace", ot.OT{}, withBag, []Entry{{"ot-baggage-k", "v"}, {"ot-tracer-sampled", "true"}, {"ot-tracer-spanid", "00f067aa0ba902b7"}, {"ot-tracer-traceid", tpTrace[16:]}}},
		{"none", propagation.NewCompositeTextMapPropagator(), withBag, nil},
	} {
		got := NewMetaWriter(tt.p).Entries(tt.ctx)
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}
