// Package metrics is gw's Prometheus instrumentation: a registry of gw's
// own (never the process-wide default) with the Go runtime and process
// collectors, a gateway.Observer that counts and times every routed request
// and authorization decision on the call path, and a collector that reads
// the rest (server states, pending calls, catalog size, policy versions,
// shed requests, the NATS connection) from their owners at scrape time.
//
// The call path costs a map lookup in a copy-on-write table, atomic adds
// and a histogram observation: no lock and no allocation once a series
// exists. Label cardinality is bounded: methods and outcomes are fixed
// sets, servers come from the configuration, and tool names, which come
// from servers, are capped (Options.MaxTools); the excess folds into
// tool="_other". See docs/OBSERVABILITY.md for every series.
package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gwmcp/gw/gateway"
	"github.com/gwmcp/gw/transport/jsonrpc"
)

// DefaultMaxTools is the default cap on distinct (server, tool) label pairs.
const DefaultMaxTools = 500

// Fold labels: the tool of a call past the cap, and of a call to a name no
// server owns (the caller chose it: never a label of its own).
const (
	OtherTool   = "_other"
	UnknownTool = "_unknown"
)

// Options configure a Metrics.
type Options struct {
	// MaxTools caps the distinct (server, tool) pairs of the tool call
	// series; calls to further tools count as tool="_other" of their
	// server. Default DefaultMaxTools.
	MaxTools int
}

// Sources are where a scrape reads the state it reports (Metrics.Watch).
// Every source is optional: a nil one leaves its series out.
type Sources struct {
	// Servers reports every server's state, restarts and pending calls
	// (gateway.Gateway.ServerStats).
	Servers func() []gateway.ServerStats
	// Catalog is the catalog being served (gateway.Gateway.Catalog).
	Catalog func() *gateway.Catalog
	// Policies reports the policy modules in use.
	Policies func() []Policy
	// Shed maps a face's name ("nats", "http") to its count of requests
	// refused as busy.
	Shed map[string]func() int64
	// NATS reports the NATS connection.
	NATS func() NATSState
}

// Policy is a policy module in use.
type Policy struct {
	Kind   string // "authorize", "collision"
	Module string // the configured module's name
	Digest string // plugins.Module.Digest
}

// NATSState is the NATS connection as a scrape sees it.
type NATSState struct {
	Connected  bool
	Reconnects uint64
}

// Metrics is gw's registry and the recorder of its call path. It
// implements gateway.Observer. Create it with New.
type Metrics struct {
	reg      *prometheus.Registry
	maxTools int

	toolCalls    *prometheus.CounterVec   // server, tool, outcome
	toolDuration *prometheus.HistogramVec // server, tool
	requests     *prometheus.CounterVec   // method, server, outcome
	reqDuration  *prometheus.HistogramVec // method, server
	authz        *prometheus.CounterVec   // digest, outcome

	tools  table[*series] // by server, tool; at most maxTools besides the folds
	routed table[*series] // by method, server
	authzs table[prometheus.Counter]
}

// Buckets of the latency histograms, in seconds: from a fast local tool
// (a millisecond) to the default call timeout (60 s).
var Buckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// New returns a registry holding gw's series, the Go runtime's and the
// process's.
func New(o Options) *Metrics {
	if o.MaxTools <= 0 {
		o.MaxTools = DefaultMaxTools
	}
	m := &Metrics{
		reg:      prometheus.NewRegistry(),
		maxTools: o.MaxTools,
		toolCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gw_tool_calls_total",
			Help: `tools/call requests by owning server, the server's own tool name (past metrics.max_tools: "_other"; a name no server owns: server "", "_unknown") and outcome.`,
		}, []string{"server", "tool", "outcome"}),
		toolDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gw_tool_call_duration_seconds",
			Help:    "Time from the gateway taking a tools/call to its answer, authorization included.",
			Buckets: Buckets,
		}, []string{"server", "tool"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gw_requests_total",
			Help: `Requests other than tools/call (prompts/get, resources/read, and the lists gw answers itself, server "") by method, owning server and outcome.`,
		}, []string{"method", "server", "outcome"}),
		reqDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gw_request_duration_seconds",
			Help:    "Time from the gateway taking a request other than tools/call to its answer.",
			Buckets: Buckets,
		}, []string{"method", "server"}),
		authz: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gw_authz_decisions_total",
			Help: `Authorization decisions by the deciding policy module's digest ("" when it did not say) and outcome (allow, deny, error).`,
		}, []string{"digest", "outcome"}),
	}
	m.tools.init()
	m.routed.init()
	m.authzs.init()
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.toolCalls, m.toolDuration, m.requests, m.reqDuration, m.authz,
	)
	return m
}

// Watch adds the series read from s at each scrape. Call it once, before
// the first scrape; the sources may refer to parts made after New (the
// gateway takes the Metrics as its Observer when it is made).
func (m *Metrics) Watch(s Sources) {
	m.reg.MustRegister(newStateCollector(s))
}

// Registry returns the registry, for tests and further collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus text format (or
// OpenMetrics, when the scraper asks).
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{EnableOpenMetrics: true})
}

// Routed implements gateway.Observer.
func (m *Metrics) Routed(r gateway.Routed) {
	o := outcomeOf(r.Method, r.Result, r.Err)
	secs := r.Duration.Seconds()
	if r.Method == "tools/call" {
		s := m.toolSeries(r.Server, r.Name)
		s.counter(o).Inc()
		s.duration.Observe(secs)
		return
	}
	s := m.routedSeries(r.Method, r.Server)
	s.counter(o).Inc()
	s.duration.Observe(secs)
}

// Authorized implements gateway.Observer.
func (m *Metrics) Authorized(a gateway.Authorized) {
	k := key{a.Policy, string(a.Outcome)}
	c, ok := m.authzs.get(k)
	if !ok {
		c = m.authzs.add(k, func(k key) (key, prometheus.Counter) { return k, m.authz.WithLabelValues(k[0], k[1]) })
	}
	c.Inc()
}

// toolSeries returns the series of a tool: its own while fewer than
// maxTools pairs have one, else its server's "_other".
func (m *Metrics) toolSeries(server, tool string) *series {
	if tool == "" {
		server, tool = "", UnknownTool
	}
	k := key{server, tool}
	if s, ok := m.tools.get(k); ok {
		return s
	}
	if m.tools.capped.Load() >= int64(m.maxTools) {
		// Full: skip the lock for a tool that will fold anyway.
		if s, ok := m.tools.get(key{server, OtherTool}); ok {
			return s
		}
	}
	return m.tools.add(k, func(k key) (key, *series) {
		if k[1] != OtherTool && k[1] != UnknownTool {
			if m.tools.capped.Load() >= int64(m.maxTools) {
				k[1] = OtherTool
				if s, ok := m.tools.get(k); ok {
					return k, s
				}
			} else {
				m.tools.capped.Add(1)
			}
		}
		return k, newSeries(m.toolCalls, m.toolDuration, k)
	})
}

func (m *Metrics) routedSeries(method, server string) *series {
	k := key{method, server}
	if s, ok := m.routed.get(k); ok {
		return s
	}
	return m.routed.add(k, func(k key) (key, *series) { return k, newSeries(m.requests, m.reqDuration, k) })
}

// key is a series' first two label values.
type key [2]string

// table maps label values to what records them, read without a lock: a
// copy-on-write map, since series are added rarely (once each) and read on
// every call.
type table[V any] struct {
	cur atomic.Pointer[map[key]V]
	mu  sync.Mutex // serialises add
	// capped counts the entries that count against a cap (toolSeries':
	// not the folds); changed with mu held.
	capped atomic.Int64
}

func (t *table[V]) init() { t.cur.Store(&map[key]V{}) }

func (t *table[V]) get(k key) (V, bool) {
	v, ok := (*t.cur.Load())[k]
	return v, ok
}

// add returns the value at k, made by mk when there is none. mk may
// choose another key (a fold) and return the value already there.
func (t *table[V]) add(k key, mk func(key) (key, V)) V {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := *t.cur.Load()
	if v, ok := old[k]; ok {
		return v
	}
	at, v := mk(k)
	if _, ok := old[at]; ok {
		return v
	}
	// Only the key mk chose is stored: a folded tool is found again by
	// toolSeries' check of the cap, so the table stays bounded too.
	next := make(map[key]V, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[at] = v
	t.cur.Store(&next)
	return v
}

// series records one (server, tool) or (method, server): its duration
// histogram and a counter per outcome, each made on first use so that only
// outcomes that happened are exported.
type series struct {
	vec      *prometheus.CounterVec
	labels   key
	duration prometheus.Observer
	counters [numOutcomes]atomic.Pointer[prometheus.Counter]
}

func newSeries(vec *prometheus.CounterVec, hist *prometheus.HistogramVec, k key) *series {
	return &series{vec: vec, labels: k, duration: hist.WithLabelValues(k[0], k[1])}
}

func (s *series) counter(o outcome) prometheus.Counter {
	if c := s.counters[o].Load(); c != nil {
		return *c
	}
	c := s.vec.WithLabelValues(s.labels[0], s.labels[1], outcomeNames[o])
	s.counters[o].CompareAndSwap(nil, &c) // a racing twin got the same Counter from the vec
	return c
}

// outcome is how a request ended; a fixed set, so a bounded label.
type outcome int

const (
	outcomeOK             outcome = iota
	outcomeToolError              // a tools/call result with isError true
	outcomeDenied                 // refused by the authorizer, or a changed tool held back (-31403)
	outcomeInvalidParams          // -32602: unknown names among them
	outcomeTimeout                // no answer by the deadline
	outcomeCanceled               // the caller went away
	outcomeUnavailable            // the server is down, restarting or its connection closed
	outcomeMethodNotFound         // -32601
	outcomeInternalError          // -32603
	outcomeServerError            // another JSON-RPC error a server answered with
	outcomeError                  // anything else
	numOutcomes
)

var outcomeNames = [numOutcomes]string{
	"ok", "tool_error", "denied", "invalid_params", "timeout", "canceled", "unavailable",
	"method_not_found", "internal_error", "server_error", "error",
}

// outcomeOf classifies a request's end.
func outcomeOf(method string, res json.RawMessage, err error) outcome {
	if err == nil {
		if method == "tools/call" && jsonrpc.IsToolError(res) {
			return outcomeToolError
		}
		return outcomeOK
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return outcomeTimeout
	case errors.Is(err, context.Canceled):
		return outcomeCanceled
	case errors.Is(err, gateway.ErrServerDown), errors.Is(err, gateway.ErrSessionClosed), errors.Is(err, gateway.ErrClosed):
		return outcomeUnavailable
	}
	var e *jsonrpc.Error
	if !errors.As(err, &e) {
		return outcomeError
	}
	switch e.Code {
	case gateway.CodeDenied:
		return outcomeDenied
	case jsonrpc.CodeInvalidParams:
		return outcomeInvalidParams
	case jsonrpc.CodeMethodNotFound:
		return outcomeMethodNotFound
	case jsonrpc.CodeInternalError:
		return outcomeInternalError
	}
	return outcomeServerError
}
