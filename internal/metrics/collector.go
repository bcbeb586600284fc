package metrics

import (
	"maps"
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gwmcp/gw/gateway"
)

// serverStates are the states of gw_server_state, every one exported per
// server (1 for the current, 0 for the others): the state-set idiom, so
// that `gw_server_state{state="ready"} == 0` finds a server that is not
// ready without knowing which state it is in.
var serverStates = []gateway.State{
	gateway.StateStarting, gateway.StateReady, gateway.StateRestarting,
	gateway.StateDegraded, gateway.StateStopped, gateway.StateFailed,
}

// stateCollector reads, at scrape time, what their owners already keep:
// nothing is counted on the call path for these.
type stateCollector struct {
	o Sources

	state, restarts, pending   *prometheus.Desc
	catalog, policy, shed      *prometheus.Desc
	natsConnected, natsReconns *prometheus.Desc
}

func newStateCollector(o Sources) *stateCollector {
	return &stateCollector{
		o: o,
		state: prometheus.NewDesc("gw_server_state",
			"Server state: 1 for the state the server is in, 0 for the others.", []string{"server", "state"}, nil),
		restarts: prometheus.NewDesc("gw_server_restarts_total",
			"Times the server was started again after its first start (or restarted by a config reload).", []string{"server"}, nil),
		pending: prometheus.NewDesc("gw_server_pending_requests",
			"Requests sent to the server and not yet answered.", []string{"server"}, nil),
		catalog: prometheus.NewDesc("gw_catalog_items",
			"Items in the catalog being served, by kind (tools, prompts, resources, resource_templates, held_tools).", []string{"kind"}, nil),
		policy: prometheus.NewDesc("gw_policy_info",
			"The policy module in use per kind, with its digest (SHA-256 of the .wasm); always 1.", []string{"kind", "module", "digest"}, nil),
		shed: prometheus.NewDesc("gw_shed_requests_total",
			`Requests a face refused as busy, without running them (face "nats": nats.max_concurrent; "http": in-flight, session and stream limits).`, []string{"face"}, nil),
		natsConnected: prometheus.NewDesc("gw_nats_connected",
			"1 while the NATS connection is up, else 0.", nil, nil),
		natsReconns: prometheus.NewDesc("gw_nats_reconnects_total",
			"Times the NATS connection reconnected.", nil, nil),
	}
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.state, c.restarts, c.pending, c.catalog, c.policy, c.shed, c.natsConnected, c.natsReconns} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	if c.o.Servers != nil {
		for _, s := range c.o.Servers() {
			for _, st := range serverStates {
				ch <- prometheus.MustNewConstMetric(c.state, prometheus.GaugeValue, boolValue(s.State == st), s.Name, string(st))
			}
			ch <- prometheus.MustNewConstMetric(c.restarts, prometheus.CounterValue, float64(s.Restarts), s.Name)
			ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(s.Pending), s.Name)
		}
	}
	if c.o.Catalog != nil {
		if cat := c.o.Catalog(); cat != nil {
			for kind, n := range map[string]int{
				"tools": len(cat.Tools), "prompts": len(cat.Prompts), "resources": len(cat.Resources),
				"resource_templates": len(cat.Templates), "held_tools": len(cat.Held),
			} {
				ch <- prometheus.MustNewConstMetric(c.catalog, prometheus.GaugeValue, float64(n), kind)
			}
		}
	}
	if c.o.Policies != nil {
		for _, p := range c.o.Policies() {
			ch <- prometheus.MustNewConstMetric(c.policy, prometheus.GaugeValue, 1, p.Kind, p.Module, p.Digest)
		}
	}
	for _, face := range slices.Sorted(maps.Keys(c.o.Shed)) {
		ch <- prometheus.MustNewConstMetric(c.shed, prometheus.CounterValue, float64(c.o.Shed[face]()), face)
	}
	if c.o.NATS != nil {
		st := c.o.NATS()
		ch <- prometheus.MustNewConstMetric(c.natsConnected, prometheus.GaugeValue, boolValue(st.Connected))
		ch <- prometheus.MustNewConstMetric(c.natsReconns, prometheus.CounterValue, float64(st.Reconnects))
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
