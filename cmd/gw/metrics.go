package main

import (
	"github.com/nats-io/nats.go"

	"github.com/gwmcp/gw/gateway"
	"github.com/gwmcp/gw/gateway/policy"
	"github.com/gwmcp/gw/internal/config"
	"github.com/gwmcp/gw/internal/metrics"
	"github.com/gwmcp/gw/plugins"
	"github.com/gwmcp/gw/transport/natsface"
)

// newRunMetrics is gw run's Prometheus registry, served at /metrics on the
// HTTP listener; nil when metrics.enabled is false or there is no listener
// (http.addr ""). The gateway takes it as its Observer when it is made
// (setObserver); watchRun adds what a scrape reads once the parts exist.
func newRunMetrics(cfg *config.Config, hs *httpServer) *metrics.Metrics {
	if hs == nil || !cfg.Metrics.Enabled {
		return nil
	}
	return metrics.New(metrics.Options{MaxTools: cfg.Metrics.MaxTools})
}

// setObserver makes m the gateway's Observer, unless m is nil (a nil
// *Metrics in the interface would not be a nil Observer).
func setObserver(o *gateway.Options, m *metrics.Metrics) {
	if m != nil {
		o.Observer = m
	}
}

// watchRun gives m its scrape-time sources and serves it on hs, behind the
// face's checks: with http.tokens a scrape needs a bearer token, as /mcp
// does, since the series name every server and tool (Prometheus scrapes
// with `authorization: {credentials_file: …}`); without tokens the
// listener is loopback only. m nil does nothing.
func watchRun(m *metrics.Metrics, hs *httpServer, g *gateway.Gateway, ps *policy.Set, face *natsface.Face, nc *nats.Conn) {
	if m == nil {
		return
	}
	m.Watch(metrics.Sources{
		Servers:  g.ServerStats,
		Catalog:  g.Catalog,
		Policies: func() []metrics.Policy { return policiesInUse(ps) },
		Shed:     map[string]func() int64{"nats": face.Shed, "http": hs.face.Shed},
		NATS: func() metrics.NATSState {
			return metrics.NATSState{Connected: nc.IsConnected(), Reconnects: nc.Stats().Reconnects}
		},
	})
	hs.metrics = hs.face.Guard(m.Handler())
}

// policiesInUse names the module in each of ps's slots now: a hot swap
// shows at the next scrape.
func policiesInUse(ps *policy.Set) []metrics.Policy {
	var out []metrics.Policy
	for _, s := range []struct {
		kind policy.Kind
		slot *plugins.Slot
	}{{policy.Authorize, ps.Authorize}, {policy.Collision, ps.Collision}} {
		if s.slot == nil {
			continue
		}
		if m := s.slot.Current(); m != nil {
			out = append(out, metrics.Policy{Kind: string(s.kind), Module: m.Name(), Digest: m.Digest()})
		}
	}
	return out
}
