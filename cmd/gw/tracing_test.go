package main

import (
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/gwmcp/gw/internal/config"
)

// TestPlanTracing: tracing is on exactly when an OTLP endpoint is
// configured (or OTEL_TRACES_EXPORTER=otlp), off when OTEL_SDK_DISABLED or
// OTEL_TRACES_EXPORTER=none say so; the OTEL_ variables win over the keys.
func TestPlanTracing(t *testing.T) {
	keys := config.Tracing{Endpoint: "http://keys:4318", Protocol: "grpc", Sampler: "always_off"}
	for _, tt := range []struct {
		name     string
		keys     config.Tracing
		env      map[string]string
		on       bool
		protocol string
		endpoint string
		sampler  bool
		props    string
		err      string
	}{
		{name: "nothing configured"},
		{name: "keys", keys: keys, on: true, protocol: "grpc", endpoint: "http://keys:4318", sampler: true},
		{name: "env endpoint", env: map[string]string{envEndpoint: "http://env:4318"}, on: true, protocol: "http/protobuf"},
		{name: "env traces endpoint", env: map[string]string{envTracesEndpoint: "http://env:4318/v1/traces"}, on: true, protocol: "http/protobuf"},
		{name: "exporter otlp", env: map[string]string{envTracesExporter: "otlp"}, on: true, protocol: "http/protobuf"},
		{name: "env wins over keys", keys: keys, env: map[string]string{envEndpoint: "http://env:4317", envProtocol: "http/protobuf", envSampler: "always_on"}, on: true, protocol: "http/protobuf"},
		{name: "traces protocol wins", env: map[string]string{envEndpoint: "http://env:4317", envProtocol: "http/protobuf", envTracesProtocol: "grpc"}, on: true, protocol: "grpc"},
		{name: "sdk disabled", keys: keys, env: map[string]string{envSDKDisabled: "true", envEndpoint: "http://env:4318"}},
		{name: "exporter none", keys: keys, env: map[string]string{envTracesExporter: "none"}},
		{name: "exporter console", env: map[string]string{envTracesExporter: "console"}, err: "otlp only"},
		{name: "http/json", env: map[string]string{envEndpoint: "http://env:4318", envProtocol: "http/json"}, err: "http/protobuf or grpc"},
		{name: "propagators key", keys: config.Tracing{Endpoint: "http://keys:4318", Propagators: "b3, tracecontext,b3"}, on: true, protocol: "http/protobuf", endpoint: "http://keys:4318", props: "b3,tracecontext"},
		{name: "propagators env wins", keys: config.Tracing{Endpoint: "http://keys:4318", Propagators: "b3"}, env: map[string]string{envPropagators: "none"}, on: true, protocol: "http/protobuf", endpoint: "http://keys:4318", props: "none"},
		// An empty list is no list: the key's, else the default.
		{name: "propagators env empty list", keys: config.Tracing{Endpoint: "http://keys:4318", Propagators: "b3"}, env: map[string]string{envPropagators: " , "}, on: true, protocol: "http/protobuf", endpoint: "http://keys:4318", props: "b3"},
		{name: "propagators empty lists", keys: config.Tracing{Endpoint: "http://keys:4318", Propagators: ","}, env: map[string]string{envPropagators: ","}, on: true, protocol: "http/protobuf", endpoint: "http://keys:4318", props: "tracecontext,baggage"},
		{name: "propagators unknown", env: map[string]string{envEndpoint: "http://env:4318", envPropagators: "tracecontext,zipkin"}, err: `unknown propagator "zipkin"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := planTracing(tt.keys, func(k string) string { return tt.env[k] })
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one saying %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.on != tt.on || p.protocol != tt.protocol || p.endpoint != tt.endpoint || (p.sampler != nil) != tt.sampler {
				t.Errorf("plan %+v, want on %v protocol %q endpoint %q sampler %v", p, tt.on, tt.protocol, tt.endpoint, tt.sampler)
			}
			if tt.props == "" && tt.on {
				tt.props = "tracecontext,baggage" // OTEL_PROPAGATORS' default
			}
			if got := strings.Join(p.propagators, ","); tt.on && got != tt.props {
				t.Errorf("propagators %q, want %q", got, tt.props)
			}
		})
	}
}

// otlpSink is an OTLP/HTTP trace receiver: what a collector would get.
type otlpSink struct {
	mu    sync.Mutex
	spans map[string]string // span name → trace id
	attrs map[string]string // resource attributes
}

func (s *otlpSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var req coltracepb.ExportTraceServiceRequest
	if r.URL.Path != "/v1/traces" || proto.Unmarshal(body, &req) != nil {
		http.Error(w, "not an OTLP trace export", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rs := range req.ResourceSpans {
		for _, kv := range rs.GetResource().GetAttributes() {
			s.attrs[kv.Key] = kv.GetValue().GetStringValue()
		}
		for _, ss := range rs.ScopeSpans {
			for _, sp := range ss.Spans {
				s.spans[sp.Name] = hex.EncodeToString(sp.TraceId)
			}
		}
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(nil)
}

// TestTraceOTLPExport: `gw run` with the standard OTEL_ variables exports
// its spans over OTLP/HTTP, under the service name they give, and flushes
// them when it stops (the batch delay is far longer than the test).
func TestTraceOTLPExport(t *testing.T) {
	sink := &otlpSink{spans: map[string]string{}, attrs: map[string]string{}}
	srv := httptest.NewServer(sink)
	t.Cleanup(srv.Close)
	t.Setenv(envEndpoint, srv.URL)
	t.Setenv("OTEL_SERVICE_NAME", "gw-under-test")
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "600000")

	head, port := reloadHead(t, "traced")
	r := startReloadRun(t, head, port)
	r.eventually("alpha", func() bool { return r.callOK("alpha__echo") })
	msg := nats.NewMsg("mcp.v1.req.alice.tools.call.alpha__echo")
	msg.Header.Set("traceparent", agentTP)
	msg.Data = []byte(`{"name":"alpha__echo","arguments":{"text":"traced"}}`)
	if _, err := r.nc.RequestMsg(msg, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	r.stop()

	sink.mu.Lock()
	defer sink.mu.Unlock()
	for _, name := range []string{"tools/call alpha__echo", "tools/call echo"} {
		if got := sink.spans[name]; got != agentTrace {
			t.Errorf("span %q exported in trace %q, want %q (exported: %v)", name, got, agentTrace, sink.spans)
		}
	}
	if got := sink.attrs["service.name"]; got != "gw-under-test" {
		t.Errorf("service.name %q, want OTEL_SERVICE_NAME's", got)
	}
}
