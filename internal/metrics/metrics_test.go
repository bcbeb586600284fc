package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/gwmcp/gw/gateway"
	"github.com/gwmcp/gw/transport/jsonrpc"
)

// families gathers m's registry by family name.
func families(t *testing.T, m *Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		out[f.GetName()] = f
	}
	return out
}

func labels(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// TestToolLabelsBounded calls 10,000 distinct tools of two servers, from
// several goroutines: the tool series stop at MaxTools pairs plus one
// "_other" per server, and every call is counted somewhere.
func TestToolLabelsBounded(t *testing.T) {
	const maxTools, calls = 50, 10_000
	m := New(Options{MaxTools: maxTools})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < calls; i += 4 {
				m.Routed(gateway.Routed{Method: "tools/call", Server: fmt.Sprintf("s%d", i%2), Name: fmt.Sprintf("tool-%d", i), Duration: time.Millisecond})
			}
		})
	}
	wg.Wait()
	// A tool counted on its own before the cap keeps its series.
	m.Routed(gateway.Routed{Method: "tools/call", Server: "s0", Name: "tool-0"})

	fams := families(t, m)
	var total float64
	own, other := 0, 0
	for _, s := range fams["gw_tool_calls_total"].GetMetric() {
		total += s.GetCounter().GetValue()
		if labels(s)["tool"] == OtherTool {
			other++
		} else {
			own++
		}
	}
	if total != calls+1 {
		t.Errorf("counted %v calls; want %d", total, calls+1)
	}
	if own != maxTools || other != 2 {
		t.Errorf("%d tool series and %d _other; want %d and 2 (one per server)", own, other, maxTools)
	}
	if n := len(fams["gw_tool_call_duration_seconds"].GetMetric()); n != maxTools+2 {
		t.Errorf("%d duration series; want %d", n, maxTools+2)
	}
	if n := len(*m.tools.cur.Load()); n != maxTools+2 {
		t.Errorf("the lookup table holds %d entries; want %d (folded names are not kept)", n, maxTools+2)
	}
}

// TestOutcomes classifies how requests end, each into its own series.
func TestOutcomes(t *testing.T) {
	m := New(Options{})
	serverErr := &jsonrpc.Error{Code: -32001, Message: "boom"}
	for _, tt := range []struct {
		res  string
		err  error
		want string
	}{
		{`{"content":[]}`, nil, "ok"},
		{`{"content":[{"type":"text","text":"\"isError\":true"}],"isError":false}`, nil, "ok"},
		{`{"content":[],"structuredContent":{"isError":true}}`, nil, "ok"},
		{`{"content":[],"isError":true}`, nil, "tool_error"},
		{`{"content":[],"\u0069sError":true}`, nil, "tool_error"},
		{`{"content":[],"IsError":true}`, nil, "ok"},
		{``, fmt.Errorf("server %q: %w", "s", context.DeadlineExceeded), "timeout"},
		{``, context.Canceled, "canceled"},
		{``, fmt.Errorf("%w: down", gateway.ErrServerDown), "unavailable"},
		{``, fmt.Errorf("call: %w", serverErr), "server_error"},
		{``, &jsonrpc.Error{Code: gateway.CodeDenied}, "denied"},
		{``, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams}, "invalid_params"},
		{``, errors.New("odd"), "error"},
	} {
		if got := outcomeNames[outcomeOf("tools/call", json.RawMessage(tt.res), tt.err)]; got != tt.want {
			t.Errorf("outcome of %s, %v = %s; want %s", tt.res, tt.err, got, tt.want)
		}
	}
	m.Routed(gateway.Routed{Method: "prompts/get", Server: "s", Result: json.RawMessage(`{"isError":true}`)})
	for _, s := range families(t, m)["gw_requests_total"].GetMetric() {
		if l := labels(s); l["method"] != "prompts/get" || l["outcome"] != "ok" {
			t.Errorf("a prompt's isError is not a tool error: %v", l)
		}
	}
}

// TestRecordNoAllocs holds the call path to no allocation once a series
// exists: a tool call, another request, an authorization.
func TestRecordNoAllocs(t *testing.T) {
	m := New(Options{})
	call := gateway.Routed{Method: "tools/call", Server: "s", Name: "echo", Duration: time.Millisecond, Result: json.RawMessage(`{"content":[]}`)}
	read := gateway.Routed{Method: "resources/read", Server: "s", Duration: time.Millisecond}
	az := gateway.Authorized{Server: "s", Tool: "echo", Policy: "sha256:ab", Outcome: gateway.AuthzAllow}
	if n := testing.AllocsPerRun(100, func() {
		m.Routed(call)
		m.Routed(read)
		m.Authorized(az)
	}); n != 0 {
		t.Errorf("%v allocations per recorded call; want 0", n)
	}
}

// BenchmarkRouted is the recorder's cost per tools/call on an existing
// series.
func BenchmarkRouted(b *testing.B) {
	m := New(Options{})
	call := gateway.Routed{Method: "tools/call", Server: "s", Name: "echo", Duration: time.Millisecond, Result: json.RawMessage(`{"content":[{"type":"text","text":"benchmark"}]}`)}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.Routed(call)
		}
	})
}
