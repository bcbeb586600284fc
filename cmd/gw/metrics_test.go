package main

import (
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape is one read of /metrics, parsed.
type scrape map[string]*dto.MetricFamily

func getMetrics(t *testing.T, url, token string) (scrape, int) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, resp.StatusCode
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics is not Prometheus text: %v", err)
	}
	return fams, resp.StatusCode
}

// value is the value of the series of name whose labels include want
// ("k=v" pairs); the sum when several match, -1 when none does.
func (s scrape) value(name string, want ...string) float64 {
	f, ok := s[name]
	if !ok {
		return -1
	}
	sum, found := 0.0, false
next:
	for _, m := range f.GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		for _, kv := range want {
			k, v, _ := strings.Cut(kv, "=")
			if got[k] != v {
				continue next
			}
		}
		found = true
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Histogram != nil:
			sum += float64(m.GetHistogram().GetSampleCount())
		}
	}
	if !found {
		return -1
	}
	return sum
}

// tools lists the tool label values of a family's series of server.
func (s scrape) tools(name, server string) []string {
	var out []string
	for _, m := range s[name].GetMetric() {
		var srv, tool string
		for _, l := range m.GetLabel() {
			switch l.GetName() {
			case "server":
				srv = l.GetValue()
			case "tool":
				tool = l.GetValue()
			}
		}
		if srv == server {
			out = append(out, tool)
		}
	}
	return out
}

// metricsRun starts `gw run` (reloadHead: server alpha) with its HTTP
// listener on a free port, httpKeys added to the http section and edit
// (if not nil) applied to the file; it returns once the listener answers,
// with the /metrics URL. The run stops with the test.
func metricsRun(t *testing.T, name, httpKeys string, edit func(string) string) (*reloadRun, string) {
	t.Helper()
	head, port := reloadHead(t, name)
	httpPort := freePort(t)
	head = withHTTPAddr(head, httpPort, httpKeys)
	if edit != nil {
		head = edit(head)
	}
	r := startHTTPRun(t, head, port, httpPort)
	return r, fmt.Sprintf("http://127.0.0.1:%d/metrics", httpPort)
}

// TestMetricsScrape runs `gw run` with an authorize policy and a server of
// many tools, makes known calls over NATS, and reads them back from
// /metrics on the HTTP listener: counts and latencies per tool (the tools
// past metrics.max_tools folded into "_other"), a denied call in the authz
// series under the policy's digest, the policy in use, a call in flight as
// pending then timed out, the lists, the catalog, the NATS connection; then
// a killed server shows up in restarts and comes back ready.
func TestMetricsScrape(t *testing.T) {
	var extra []string
	for i := 1; i <= 8; i++ {
		extra = append(extra, fmt.Sprintf("t%d", i))
	}
	r, url := metricsRun(t, "metrics", "", func(head string) string {
		head = strings.Replace(head, "policies:\n", "metrics: {max_tools: 3}\npolicies:\n  authorize: {module: allowlist, config: {rules: [{callers: [\"alice\"], tools: [\"alpha__echo\", \"alpha__t*\", \"alpha__never\"]}]}}\n", 1)
		return strings.Replace(head, `env: {MCPTEST_SERVER: "1"}`, fmt.Sprintf(`env: {MCPTEST_SERVER: "1", MCPTEST_TOOLS: "%s"}`+"\n    call_timeout: 1s", strings.Join(extra, ",")), 1)
	})
	r.eventually("alpha ready on /metrics", func() bool {
		s, _ := getMetrics(t, url, "")
		return s.value("gw_server_state", "server=alpha", "state=ready") == 1
	})
	before, _ := getMetrics(t, url, "")
	if v := before.value("gw_tool_calls_total"); v != -1 {
		t.Fatalf("tool calls counted before any call: %v", v)
	}

	call := func(tool string) string {
		t.Helper()
		msg, err := r.nc.Request("mcp.v1.req.alice.tools.call."+tool, []byte(`{"name":"`+tool+`","arguments":{"text":"x"}}`), 5*time.Second)
		if err != nil {
			t.Fatalf("%s: %v", tool, err)
		}
		return string(msg.Data)
	}
	for range 3 {
		if got := call("alpha__echo"); !strings.Contains(got, `"x"`) {
			t.Fatalf("alpha__echo: %s", got)
		}
	}
	if got := call("alpha__is_error"); !strings.Contains(got, "-31403") {
		t.Fatalf("alpha__is_error not denied: %s", got)
	}
	for _, tool := range extra {
		call("alpha__" + tool)
	}
	// An unknown tool has no subject of its own; at.{gw} routes it.
	if msg, err := r.nc.Request("mcp.v1.req.alice.at.metrics.tools.call.nobody__such_tool", []byte(`{"name":"nobody__such_tool","arguments":{}}`), 5*time.Second); err != nil || !strings.Contains(string(msg.Data), "-32602") {
		t.Fatalf("unknown tool: %v", err)
	}
	if _, err := r.nc.Request("mcp.v1.req.alice.tools.list", []byte(`{}`), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	// A call the server never answers: pending while in flight, then
	// timed out by the server's call_timeout (1s).
	never := make(chan error, 1)
	go func() {
		_, err := r.nc.Request("mcp.v1.req.alice.tools.call.alpha__never", []byte(`{"name":"alpha__never","arguments":{}}`), 10*time.Second)
		never <- err
	}()
	r.eventually("a pending call", func() bool {
		s, _ := getMetrics(t, url, "")
		return s.value("gw_server_pending_requests", "server=alpha") == 1
	})
	if err := <-never; err != nil {
		t.Fatal(err)
	}

	s, _ := getMetrics(t, url, "")
	digest := digestOf(t, "allowlist")
	for _, tt := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"gw_tool_calls_total", []string{"server=alpha", "tool=echo", "outcome=ok"}, 3},
		{"gw_tool_call_duration_seconds", []string{"server=alpha", "tool=echo"}, 3},
		{"gw_tool_calls_total", []string{"server=alpha", "tool=is_error", "outcome=denied"}, 1},
		{"gw_tool_calls_total", []string{"server=alpha", "tool=t1", "outcome=ok"}, 1},
		// Past max_tools (echo, is_error, t1): t2 … t8 and never.
		{"gw_tool_calls_total", []string{"server=alpha", "tool=_other"}, 8},
		{"gw_tool_calls_total", []string{"server=alpha", "tool=_other", "outcome=timeout"}, 1},
		{"gw_tool_calls_total", []string{"server=", "tool=_unknown", "outcome=invalid_params"}, 1},
		{"gw_authz_decisions_total", []string{"digest=" + digest, "outcome=deny"}, 1},
		{"gw_authz_decisions_total", []string{"digest=" + digest, "outcome=allow"}, 3 + 8 + 1},
		{"gw_policy_info", []string{"kind=authorize", "module=allowlist", "digest=" + digest}, 1},
		{"gw_requests_total", []string{"method=tools/list", "server=", "outcome=ok"}, 1},
		{"gw_server_pending_requests", []string{"server=alpha"}, 0},
		{"gw_nats_connected", nil, 1},
		{"gw_shed_requests_total", []string{"face=nats"}, 0},
		{"gw_shed_requests_total", []string{"face=http"}, 0},
		{"gw_server_restarts_total", []string{"server=alpha"}, 0},
		{"go_goroutines", nil, s.value("go_goroutines")},
	} {
		if got := s.value(tt.name, tt.labels...); got != tt.want || got < 0 {
			t.Errorf("%s%v = %v; want %v", tt.name, tt.labels, got, tt.want)
		}
	}
	if got := s.tools("gw_tool_calls_total", "alpha"); len(got) > 3+1+1 { // own, _other, and outcomes of them
		t.Errorf("alpha's tool series: %v", got)
	}
	distinct := map[string]bool{}
	for _, tool := range s.tools("gw_tool_call_duration_seconds", "alpha") {
		distinct[tool] = true
	}
	if len(distinct) != 4 || !distinct["_other"] {
		t.Errorf("alpha's tools in the latency series: %v; want 3 and _other", distinct)
	}
	if got, want := s.value("gw_catalog_items", "kind=tools"), before.value("gw_catalog_items", "kind=tools"); got != want || got < 9 {
		t.Errorf("catalog tools %v (before %v); want at least the 8 extra and echo", got, want)
	}

	// Killed, the server restarts: counted, and ready again.
	pid := int(r.server("alpha").Pid)
	if pid == 0 {
		t.Fatal("no pid for alpha")
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	r.eventually("alpha restarted", func() bool {
		s, _ := getMetrics(t, url, "")
		return s.value("gw_server_restarts_total", "server=alpha") == 1 && s.value("gw_server_state", "server=alpha", "state=ready") == 1
	})
	s, _ = getMetrics(t, url, "")
	if got := s.value("gw_server_state", "server=alpha"); got != 1 {
		t.Errorf("alpha is in %v states at once", got)
	}
}

// TestMetricsBearer: with http.tokens, /metrics wants a token as /mcp
// does; with metrics.enabled false it is not served.
func TestMetricsBearer(t *testing.T) {
	t.Setenv("GWTEST_PROM_TOKEN", "prom-secret-token")
	_, url := metricsRun(t, "metrics-auth", `, tokens: {prometheus: {token_env: GWTEST_PROM_TOKEN}}`, nil)
	if _, code := getMetrics(t, url, ""); code != http.StatusUnauthorized {
		t.Errorf("no token: %d; want 401", code)
	}
	if _, code := getMetrics(t, url, "wrong"); code != http.StatusUnauthorized {
		t.Errorf("a wrong token: %d; want 401", code)
	}
	if s, code := getMetrics(t, url, "prom-secret-token"); code != http.StatusOK || s.value("gw_nats_connected") != 1 {
		t.Errorf("with the token: %d", code)
	}
}

// TestMetricsOff: metrics.enabled false serves no /metrics (the MCP face
// answers the path as any other: 404).
func TestMetricsOff(t *testing.T) {
	_, url := metricsRun(t, "metrics-off", "", func(head string) string {
		return strings.Replace(head, "policies:\n", "metrics: {enabled: false}\npolicies:\n", 1)
	})
	if _, code := getMetrics(t, url, ""); code != http.StatusNotFound {
		t.Errorf("/metrics with metrics off: %d; want 404", code)
	}
}
