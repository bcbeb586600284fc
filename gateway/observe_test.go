package gateway_test

import (
	"context"
	"errors"
	"testing"

	"github.com/gwmcp/gw/gateway"
	"github.com/gwmcp/gw/internal/mcptest"
	"github.com/gwmcp/gw/internal/metrics"
)

// TestObserverSeesRequests runs gw run's recorder as the Observer of a
// gateway over a real server: a served call, a held (changed) tool's
// refused call under its own server, an unknown name under no server, a
// list; ServerStats reports the server ready with nothing pending.
func TestObserverSeesRequests(t *testing.T) {
	store := gateway.NewMemoryPinStore()
	m := metrics.New(metrics.Options{})
	g := start(t, gateway.Options{Servers: []gateway.ServerSpec{server(t, "alpha", mcptest.Options{Tools: []string{"search"}})}, Pins: store, Observer: m})
	waitPins(t, store, func(p []gateway.Pin) bool { _, ok := pinOf(p, "alpha", "search"); return ok })
	mustCall(t, g, "alpha__search", map[string]any{"text": "before"})
	rugPull(t, g, "changed")
	waitFor(t, "search held back", func() bool { return len(g.Catalog().Held) == 1 })
	if _, err := call(context.Background(), g, "alpha__search", map[string]any{"text": "after"}); !errors.Is(err, gateway.ErrToolChanged) {
		t.Fatalf("held tool: %v", err)
	}
	if _, err := call(context.Background(), g, "nobody__nothing", nil); !errors.Is(err, gateway.ErrUnknownTool) {
		t.Fatalf("unknown tool: %v", err)
	}
	g.ListTools(context.Background())

	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range fams {
		if f.GetName() != "gw_tool_calls_total" && f.GetName() != "gw_requests_total" {
			continue
		}
		for _, s := range f.GetMetric() {
			k := f.GetName() // labels come sorted by name
			for _, l := range s.GetLabel() {
				k += " " + l.GetName() + "=" + l.GetValue()
			}
			got[k] = s.GetCounter().GetValue()
		}
	}
	for k, want := range map[string]float64{
		"gw_tool_calls_total outcome=ok server=alpha tool=search":          1,
		"gw_tool_calls_total outcome=ok server=alpha tool=describe_tool":   1,
		"gw_tool_calls_total outcome=denied server=alpha tool=search":      1,
		"gw_tool_calls_total outcome=invalid_params server= tool=_unknown": 1,
		"gw_requests_total method=tools/list outcome=ok server=":           1,
	} {
		if got[k] != want {
			t.Errorf("%s = %v; want %v (all: %v)", k, got[k], want, got)
		}
	}
	st := g.ServerStats()
	if len(st) != 1 || st[0].Name != "alpha" || st[0].State != gateway.StateReady || st[0].Pending != 0 {
		t.Errorf("ServerStats = %+v", st)
	}
}
