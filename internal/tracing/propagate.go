package tracing

import (
	"context"
	"encoding/json"
	"slices"
	"strings"

	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/gwmcp/gw/internal/jsonscan"
	"github.com/gwmcp/gw/transport/jsonrpc"
)

// DefaultPropagator is what OTEL_PROPAGATORS means when unset: W3C trace
// context and W3C baggage.
func DefaultPropagator() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
}

// Extract returns the span context and baggage that p reads from c; the
// span context is not valid when c carries none, or a malformed one.
// Nothing of the caller's context is inherited: the router decides which
// carrier parents a span.
func Extract(p propagation.TextMapPropagator, c propagation.TextMapCarrier) (trace.SpanContext, baggage.Baggage) {
	ctx := p.Extract(context.Background(), c)
	return trace.SpanContextFromContext(ctx), baggage.FromContext(ctx)
}

// Headers is a read-only TextMapCarrier of a transport's headers: NATS
// message headers or HTTP request headers, as a face received them.
// Header names are case-insensitive in both, but NATS keeps the case a
// sender wrote (an instrumentation that treats NATS headers as HTTP headers
// writes Traceparent, one that does not, traceparent), so a key is looked
// up as asked, then canonical, then in any case. It is a ValuesGetter too:
// W3C baggage may come in several header lines, and the baggage propagator
// reads them all.
type Headers map[string][]string

// Get returns the first value of key.
func (h Headers) Get(key string) string {
	if v := h.Values(key); len(v) > 0 {
		return v[0]
	}
	return ""
}

// Values returns every value of key, looked up as Get looks it up: as
// asked, then in Go's canonical spelling, then in any case. Lookups
// allocate nothing: the canonical spelling is compared, not built, so there
// is no table of the propagator's fields to keep (the carrier is a bare
// conversion of the face's map); the scan skips names of another length.
func (h Headers) Values(key string) []string {
	if v := h[key]; len(v) > 0 {
		return v
	}
	var folded []string
	for k, v := range h {
		if len(v) == 0 || len(k) != len(key) || !strings.EqualFold(k, key) {
			continue
		}
		if isCanonical(k) {
			return v
		}
		folded = v
	}
	return folded
}

// isCanonical reports whether k is in Go's canonical header spelling
// (textproto.CanonicalMIMEHeaderKey): upper case at the start and after
// each hyphen, lower case elsewhere. Of two names equal but for case, only
// one is canonical.
func isCanonical(k string) bool {
	upper := true
	for i := 0; i < len(k); i++ {
		c := k[i]
		if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
			return false
		}
		upper = c == '-'
	}
	return true
}

// Set does nothing: gw never writes into the headers it received.
func (Headers) Set(string, string) {}

// Keys returns the header names.
func (h Headers) Keys() []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	return keys
}

// Meta is a read-only TextMapCarrier of a request's params._meta, the MCP
// carrier. JSON keys are case-sensitive and gw reads every key exactly, so
// a propagator's keys are matched as it spells them (traceparent, b3,
// x-b3-traceid, uber-trace-id, X-Amzn-Trace-Id, ot-tracer-traceid …);
// values are JSON strings. Keys that are not valid _meta names (MetaKey)
// are never read.
type Meta struct{ meta json.RawMessage }

// MetaOf returns the carrier of params._meta; an empty one when params has
// no _meta object, or more than one.
func MetaOf(params json.RawMessage) Meta {
	start, end, n := jsonscan.Member(params, "_meta")
	if n != 1 {
		return Meta{}
	}
	return Meta{params[start:end]}
}

// Get returns the string value of key, "" when absent or not a string.
func (m Meta) Get(key string) string {
	if m.meta == nil || !MetaKey(key) {
		return ""
	}
	s, _ := jsonrpc.StringMember(m.meta, key)
	return s
}

// Set does nothing: _meta is written by the gateway, in the pass that
// edits it anyway (MetaWriter).
func (Meta) Set(string, string) {}

// Keys returns the _meta keys that are valid names (the ottrace propagator
// looks for its baggage keys, ot-baggage-{key}, by prefix).
func (m Meta) Keys() []string {
	sc, ok := jsonscan.Object(m.meta)
	if !ok {
		return nil
	}
	var keys []string
	for {
		k, plain, _, _, ok := sc.Next()
		if !ok {
			return keys
		}
		if text, ok := jsonscan.KeyText(k, plain); ok && MetaKey(text) {
			keys = append(keys, text)
		}
	}
}

// MetaKey reports whether key is a _meta name a propagator may use: the
// MCP rule for a name without prefix (alphanumerics at both ends; hyphens,
// underscores, dots and alphanumerics between). No propagator writes a
// prefix ("…/"); refusing one keeps gw out of the prefixes MCP reserves.
// Every such key is also JSON text that needs no escaping.
func MetaKey(key string) bool {
	if key == "" || !alnum(key[0]) || !alnum(key[len(key)-1]) {
		return false
	}
	for i := 1; i < len(key)-1; i++ {
		if c := key[i]; !alnum(c) && c != '-' && c != '_' && c != '.' {
			return false
		}
	}
	return true
}

func alnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// Entry is one _meta entry of trace context; an empty Value removes the
// key from the caller's _meta (only ever a key of the span context, never
// one of baggage).
type Entry struct{ Key, Value string }

// MetaWriter writes a context's trace context as _meta entries with one
// propagator. Make it once: what the propagator writes is learnt then.
type MetaWriter struct {
	p propagation.TextMapPropagator
	// owned are the valid _meta names the propagator writes a span
	// context into (its fields, less those of baggage), once each,
	// sorted: an Entries without one of them removes the caller's.
	owned []string
}

// NewMetaWriter returns the MetaWriter of p. The keys p owns for a span
// context are its fields and whatever it writes for a valid span context
// (with a tracestate) and no baggage; the keys it writes only when there is
// baggage too (W3C's baggage, ottrace's ot-baggage-{key}) are baggage keys,
// never owned: a caller's baggage is replaced only by baggage, never
// removed.
func NewMetaWriter(p propagation.TextMapPropagator) *MetaWriter {
	state, _ := trace.ParseTraceState("gw=1")
	span := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1}, SpanID: trace.SpanID{1}, TraceFlags: trace.FlagsSampled, TraceState: state,
	}))
	member, _ := baggage.NewMemberRaw("gw", "1")
	bag, _ := baggage.New(member)
	var bare, withBag entries
	p.Inject(span, &bare)
	p.Inject(baggage.ContextWithBaggage(span, bag), &withBag)
	w := &MetaWriter{p: p}
	for _, f := range slices.Concat(p.Fields(), bare.Keys()) { // not append: Fields may be the propagator's own
		if MetaKey(f) && !slices.Contains(w.owned, f) && (bare.has(f) || !withBag.has(f)) {
			w.owned = append(w.owned, f)
		}
	}
	// A composite's fields come in map order: sorted, the entries (and
	// the _meta a server gets) are the same from call to call.
	slices.Sort(w.owned)
	return w
}

// Entries returns the _meta entries of ctx's trace context, in key order:
// each key the propagator owns for a span context with the value it wrote,
// or "" to remove the caller's own (stale once gw's span is the parent,
// such as a tracestate when gw's span has none), and the other keys it
// wrote (baggage, ottrace's ot-baggage-{key}) with their values: a caller's
// baggage is replaced when ctx has baggage, else left as it is. Keys that
// are not valid _meta names are dropped (MetaKey): a baggage key can be any
// HTTP token. nil when ctx has no valid span context (the caller's _meta
// then goes on untouched: there is no span of gw's to be the parent), or
// when the propagator writes nothing (none).
func (w *MetaWriter) Entries(ctx context.Context) []Entry {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return nil
	}
	var c entries
	w.p.Inject(ctx, &c)
	out := make([]Entry, 0, len(w.owned)+len(c))
	for _, f := range w.owned {
		out = append(out, Entry{Key: f, Value: c.Get(f)})
	}
	for _, e := range c {
		if e.Value != "" && MetaKey(e.Key) && !slices.Contains(w.owned, e.Key) {
			out = append(out, e)
		}
	}
	if len(out) == 0 {
		return nil
	}
	slices.SortFunc(out, func(a, b Entry) int { return strings.Compare(a.Key, b.Key) })
	return out
}

// entries is the TextMapCarrier Inject writes into: a few keys, so a slice.
type entries []Entry

func (c entries) Get(key string) string {
	for _, e := range c {
		if e.Key == key {
			return e.Value
		}
	}
	return ""
}

func (c *entries) Set(key, value string) {
	for i, e := range *c {
		if e.Key == key {
			(*c)[i].Value = value
			return
		}
	}
	*c = append(*c, Entry{key, value})
}

func (c entries) has(key string) bool {
	return slices.ContainsFunc(c, func(e Entry) bool { return e.Key == key })
}

func (c entries) Keys() []string {
	keys := make([]string, len(c))
	for i, e := range c {
		keys[i] = e.Key
	}
	return keys
}
