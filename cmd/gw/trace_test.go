package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/contrib/propagators/autoprop"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/gwmcp/gw/gateway"
	"github.com/gwmcp/gw/gateway/router"
	"github.com/gwmcp/gw/internal/config"
	"github.com/gwmcp/gw/internal/mcptest"
	"github.com/gwmcp/gw/transport/httpface"
	"github.com/gwmcp/gw/transport/jsonrpc"
	"github.com/gwmcp/gw/transport/mcpface"
	"github.com/gwmcp/gw/transport/natsface"
)

// The caller's trace: an agent's span, as its W3C traceparent.
const (
	agentTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	agentSpan  = "00f067aa0ba902b7"
	agentTP    = "00-" + agentTrace + "-" + agentSpan + "-01"
	agentTS    = "rojo=00f067aa0ba902b7"
)

// denyTool is an authorizer that refuses one exposed tool name.
type denyTool string

func (d denyTool) Authorize(_ context.Context, req gateway.AuthzRequest) (gateway.Decision, error) {
	return gateway.Decision{Allow: req.Name != string(d), Reason: "denied by the test"}, nil
}

// tracedStack is a NATS stack whose gateway traces into memory.
func tracedStack(t *testing.T, era string) (*stack, *tracetest.InMemoryExporter) {
	t.Helper()
	return tracedStackWith(t, era, "", nil)
}

// tracedStackWith is tracedStack with an LLM-host subject (a legacy server
// is offered sampling only with one) and a propagator (nil: the default).
func tracedStackWith(t *testing.T, era, llmSubject string, prop propagation.TextMapPropagator) (*stack, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp), sdktrace.WithSampler(sdktrace.AlwaysSample()))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	s := startStackWith(t, llmSubject, gateway.Options{
		Servers:        []gateway.ServerSpec{mcptestServer("s", era)},
		Authorizer:     denyTool("s__never"),
		TracerProvider: tp,
		Propagator:     prop,
	})
	s.waitTool(t, "s__echo")
	exp.Reset()
	return s, exp
}

// natsCall sends a tools/call with the given headers (name, value pairs)
// and returns the reply's body.
func natsCall(t *testing.T, nc *nats.Conn, tool, params string, headers ...string) []byte {
	t.Helper()
	msg := nats.NewMsg("mcp.v1.req.alice.tools.call." + tool)
	for i := 0; i+1 < len(headers); i += 2 {
		msg.Header.Set(headers[i], headers[i+1])
	}
	msg.Data = []byte(params)
	reply, err := nc.RequestMsg(msg, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return reply.Data
}

// echoedMeta returns the _meta an echo_meta call's server received.
func echoedMeta(t *testing.T, body []byte) map[string]string {
	t.Helper()
	var res struct {
		StructuredContent struct {
			Meta map[string]any `json:"meta"`
		} `json:"structuredContent"`
	}
	if err := json.Unmarshal(body, &res); err != nil || res.StructuredContent.Meta == nil {
		t.Fatalf("not an echo_meta result: %s", body)
	}
	out := map[string]string{}
	for k, v := range res.StructuredContent.Meta {
		if s, ok := v.(string); ok {
			out[k] = s
		}
	}
	return out
}

// spanNamed returns the one ended span called name.
func spanNamed(t *testing.T, spans tracetest.SpanStubs, name string) tracetest.SpanStub {
	t.Helper()
	var found []tracetest.SpanStub
	for _, s := range spans {
		if s.Name == name {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		var names []string
		for _, s := range spans {
			names = append(names, s.Name)
		}
		t.Fatalf("%d spans named %q among %q", len(found), name, names)
	}
	return found[0]
}

// wantAttrs checks that span has each attribute with its value.
func wantAttrs(t *testing.T, span tracetest.SpanStub, want map[string]string) {
	t.Helper()
	got := map[attribute.Key]attribute.Value{}
	for _, kv := range span.Attributes {
		got[kv.Key] = kv.Value
	}
	for k, v := range want {
		if g, ok := got[attribute.Key(k)]; !ok || g.Emit() != v {
			t.Errorf("span %q: %s = %q (present %v), want %q", span.Name, k, g.Emit(), ok, v)
		}
	}
}

// attr returns one attribute of span, "" when absent.
func attr(span tracetest.SpanStub, key string) string {
	for _, kv := range span.Attributes {
		if string(kv.Key) == key {
			return kv.Value.Emit()
		}
	}
	return ""
}

// TestTraceNATSToServer: an agent on NATS sends a tools/call with a W3C
// traceparent header; gw's spans (the request's server span, the
// authorization and the upstream round trip) join the agent's trace, and
// the server receives the upstream span's traceparent (and the agent's
// tracestate) in _meta: one trace from agent to server, in both eras.
func TestTraceNATSToServer(t *testing.T) {
	for _, era := range []string{"legacy", "modern"} {
		t.Run(era, func(t *testing.T) {
			s, exp := tracedStack(t, era)
			subject := "mcp.v1.req.alice.tools.call.s__echo_meta"
			meta := echoedMeta(t, natsCall(t, s.agent, "s__echo_meta", `{"name":"s__echo_meta","arguments":{}}`,
				"traceparent", agentTP, "tracestate", agentTS))

			spans := exp.GetSpans()
			if len(spans) != 3 {
				t.Fatalf("%d spans, want 3 (request, authorize, upstream): %v", len(spans), spans)
			}
			srv := spanNamed(t, spans, "tools/call s__echo_meta")
			authz := spanNamed(t, spans, "authorize s__echo_meta")
			up := spanNamed(t, spans, "tools/call echo_meta")
			for _, sp := range spans {
				if got := sp.SpanContext.TraceID().String(); got != agentTrace {
					t.Errorf("span %q is in trace %s, not the agent's %s", sp.Name, got, agentTrace)
				}
			}
			if srv.Parent.SpanID().String() != agentSpan || !srv.Parent.IsRemote() || srv.SpanKind != trace.SpanKindServer {
				t.Errorf("request span: parent %s remote %v kind %v; want the agent's span %s, remote, server", srv.Parent.SpanID(), srv.Parent.IsRemote(), srv.SpanKind, agentSpan)
			}
			if authz.Parent.SpanID() != srv.SpanContext.SpanID() || up.Parent.SpanID() != srv.SpanContext.SpanID() {
				t.Errorf("authorize (parent %s) and upstream (parent %s) are not children of the request span %s", authz.Parent.SpanID(), up.Parent.SpanID(), srv.SpanContext.SpanID())
			}
			if up.SpanKind != trace.SpanKindClient || authz.SpanKind != trace.SpanKindInternal {
				t.Errorf("kinds: upstream %v, authorize %v", up.SpanKind, authz.SpanKind)
			}
			wantAttrs(t, srv, map[string]string{
				"mcp.method.name": "tools/call", "gen_ai.tool.name": "s__echo_meta", "gen_ai.operation.name": "execute_tool",
				"messaging.system": "nats", "messaging.destination.name": subject, "enduser.id": "alice",
			})
			version := mcptest.LegacyVersion
			if era == "modern" {
				version = mcptest.ModernVersion
			}
			wantAttrs(t, up, map[string]string{
				"mcp.method.name": "tools/call", "gen_ai.tool.name": "echo_meta", "gw.server": "s",
				"network.transport": "pipe", "mcp.protocol.version": version,
			})
			if attr(up, "jsonrpc.request.id") == "" {
				t.Error("upstream span has no jsonrpc.request.id")
			}
			wantAttrs(t, authz, map[string]string{"gw.authz.decision": "allow", "gen_ai.tool.name": "s__echo_meta", "gw.server": "s"})
			for _, sp := range spans {
				if sp.Status.Code == codes.Error {
					t.Errorf("span %q has status %v", sp.Name, sp.Status)
				}
			}

			want := fmt.Sprintf("00-%s-%s-01", agentTrace, up.SpanContext.SpanID())
			if meta["traceparent"] != want || meta["tracestate"] != agentTS {
				t.Errorf("the server received traceparent %q tracestate %q, want %q %q", meta["traceparent"], meta["tracestate"], want, agentTS)
			}
		})
	}
}

// TestTraceOutcomes: a denied call and a tool error are recorded as the
// conventions ask (error.type, rpc.response.status_code, status Error); a
// denied call never reaches the server, so it has no upstream span.
func TestTraceOutcomes(t *testing.T) {
	s, exp := tracedStack(t, "legacy")

	natsCall(t, s.agent, "s__never", `{"name":"s__never","arguments":{}}`, "traceparent", agentTP)
	spans := exp.GetSpans()
	if len(spans) != 2 {
		t.Fatalf("denied: %d spans, want 2 (request, authorize): %v", len(spans), spans)
	}
	code := fmt.Sprint(gateway.CodeDenied)
	for _, name := range []string{"tools/call s__never", "authorize s__never"} {
		sp := spanNamed(t, spans, name)
		wantAttrs(t, sp, map[string]string{"error.type": code, "rpc.response.status_code": code})
		if sp.Status.Code != codes.Error || !strings.Contains(sp.Status.Description, "denied by the test") {
			t.Errorf("span %q: status %v", name, sp.Status)
		}
	}
	wantAttrs(t, spanNamed(t, spans, "authorize s__never"), map[string]string{"gw.authz.decision": "deny"})

	exp.Reset()
	natsCall(t, s.agent, "s__is_error", `{"name":"s__is_error","arguments":{}}`)
	spans = exp.GetSpans()
	for _, name := range []string{"tools/call s__is_error", "tools/call is_error"} {
		sp := spanNamed(t, spans, name)
		wantAttrs(t, sp, map[string]string{"error.type": "tool_error"})
		if sp.Status.Code != codes.Error {
			t.Errorf("span %q: status %v", name, sp.Status)
		}
	}
	// No traceparent anywhere: a trace of gw's own.
	if srv := spanNamed(t, spans, "tools/call s__is_error"); srv.Parent.IsValid() {
		t.Errorf("a request without trace context has parent %v", srv.Parent)
	}
}

// TestTraceMetaCarrier: a traceparent in params._meta (the MCP carrier) is
// the request span's parent, and the transport's own (the NATS header) is
// linked to it, as the conventions ask; the server gets gw's upstream span
// in place of the caller's _meta traceparent.
func TestTraceMetaCarrier(t *testing.T) {
	s, exp := tracedStack(t, "modern")
	const metaTrace, metaSpan = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
	params := `{"name":"s__echo_meta","arguments":{},"_meta":{"traceparent":"00-` + metaTrace + `-` + metaSpan + `-01","custom":"kept"}}`
	meta := echoedMeta(t, natsCall(t, s.agent, "s__echo_meta", params, "traceparent", agentTP))

	spans := exp.GetSpans()
	srv := spanNamed(t, spans, "tools/call s__echo_meta")
	up := spanNamed(t, spans, "tools/call echo_meta")
	if srv.Parent.TraceID().String() != metaTrace || srv.Parent.SpanID().String() != metaSpan {
		t.Errorf("request span's parent is %s/%s, want the _meta's %s/%s", srv.Parent.TraceID(), srv.Parent.SpanID(), metaTrace, metaSpan)
	}
	if len(srv.Links) != 1 || srv.Links[0].SpanContext.SpanID().String() != agentSpan {
		t.Errorf("request span's links %v, want one to the NATS header's span %s", srv.Links, agentSpan)
	}
	if want := fmt.Sprintf("00-%s-%s-01", metaTrace, up.SpanContext.SpanID()); meta["traceparent"] != want {
		t.Errorf("the server received traceparent %q, want %q", meta["traceparent"], want)
	}
	if _, ok := meta["tracestate"]; ok {
		t.Errorf("the server received a tracestate nobody sent: %q", meta["tracestate"])
	}
	if meta["custom"] != "kept" {
		t.Errorf("the caller's own _meta entry was lost: %v", meta)
	}
}

// TestTraceHTTPFace: the Streamable HTTP face takes the trace context of
// the request's headers, and its span names the request's JSON-RPC id and,
// in the legacy era, the MCP session.
func TestTraceHTTPFace(t *testing.T) {
	s, exp := tracedStack(t, "legacy")
	srv := httptest.NewServer(httpface.New(router.New(s.g), httpface.Options{}))
	t.Cleanup(srv.Close)
	const modernMeta = `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}`
	for _, tt := range []struct {
		era, version, meta string
		headers            []string
	}{
		{"modern", "2026-07-28", "," + modernMeta, []string{"Mcp-Protocol-Version", "2026-07-28", "Mcp-Method", "tools/call", "Mcp-Name", "s__echo_meta"}},
		{"legacy", "2025-11-25", "", nil},
	} {
		t.Run(tt.era, func(t *testing.T) {
			exp.Reset()
			session := ""
			headers := append([]string{"traceparent", agentTP}, tt.headers...)
			if tt.era == "legacy" {
				_, h := httpPost(t, srv.URL+"/mcp", `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`)
				if session = h.Get("Mcp-Session-Id"); session == "" {
					t.Fatal("initialize opened no session")
				}
				headers = append(headers, "Mcp-Session-Id", session)
				httpPost(t, srv.URL+"/mcp", `{"jsonrpc":"2.0","method":"notifications/initialized"}`, "Mcp-Session-Id", session)
				exp.Reset()
			}
			body, _ := httpPost(t, srv.URL+"/mcp", `{"jsonrpc":"2.0","id":"req-7","method":"tools/call","params":{"name":"s__echo_meta","arguments":{}`+tt.meta+`}}`, headers...)
			var msg struct {
				Result json.RawMessage `json:"result"`
			}
			if err := json.Unmarshal(body, &msg); err != nil {
				t.Fatalf("%v: %s", err, body)
			}
			meta := echoedMeta(t, msg.Result)

			spans := exp.GetSpans()
			sp := spanNamed(t, spans, "tools/call s__echo_meta")
			up := spanNamed(t, spans, "tools/call echo_meta")
			if sp.Parent.SpanID().String() != agentSpan || sp.Parent.TraceID().String() != agentTrace {
				t.Errorf("request span's parent %v, want the traceparent header's", sp.Parent)
			}
			want := map[string]string{
				"jsonrpc.request.id": "req-7", "network.protocol.name": "http", "network.transport": "tcp",
				"mcp.protocol.version": tt.version, "enduser.id": httpface.DefaultAnonymous,
			}
			if session != "" {
				want["mcp.session.id"] = session
			}
			wantAttrs(t, sp, want)
			if want := fmt.Sprintf("00-%s-%s-01", agentTrace, up.SpanContext.SpanID()); meta["traceparent"] != want {
				t.Errorf("the server received traceparent %q, want %q", meta["traceparent"], want)
			}
		})
	}
}

// httpPost posts a JSON-RPC message to the Streamable HTTP face with the
// headers given (name, value pairs) and returns the JSON-RPC message of
// the answer (the data of its one event, when it came as an event stream)
// and the response headers.
func httpPost(t *testing.T, url, body string, headers ...string) ([]byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode >= 300 {
		t.Fatalf("%s: status %d: %v %s", body, resp.StatusCode, err, out)
	}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		for line := range strings.SplitSeq(string(out), "\n") {
			if data, ok := strings.CutPrefix(line, "data: "); ok {
				return []byte(data), resp.Header
			}
		}
	}
	return out, resp.Header
}

// TestTraceStdioFace: on the stdio face (gw stdio) the MCP carrier,
// params._meta, is the only one; the request span names the JSON-RPC id
// and the pipe transport.
func TestTraceStdioFace(t *testing.T) {
	s, exp := tracedStack(t, "legacy")
	f := mcpface.New(router.New(s.g), mcpface.Options{Principal: "local"})
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- f.Serve(ctx, inR, outW) }()
	t.Cleanup(func() {
		cancel()
		_ = inW.Close()
		<-served
	})

	line := `{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"s__echo_meta","arguments":{},` +
		`"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"traceparent":"` + agentTP + `"}}}` + "\n"
	if _, err := io.WriteString(inW, line); err != nil {
		t.Fatal(err)
	}
	var msg struct {
		Result json.RawMessage `json:"result"`
	}
	if err := json.NewDecoder(outR).Decode(&msg); err != nil {
		t.Fatal(err)
	}
	meta := echoedMeta(t, msg.Result)

	spans := exp.GetSpans()
	sp := spanNamed(t, spans, "tools/call s__echo_meta")
	up := spanNamed(t, spans, "tools/call echo_meta")
	if sp.Parent.SpanID().String() != agentSpan || sp.Parent.TraceID().String() != agentTrace {
		t.Errorf("request span's parent %v, want the _meta traceparent's", sp.Parent)
	}
	wantAttrs(t, sp, map[string]string{"jsonrpc.request.id": "42", "network.transport": "pipe", "enduser.id": "local", "mcp.protocol.version": "2026-07-28"})
	if want := fmt.Sprintf("00-%s-%s-01", agentTrace, up.SpanContext.SpanID()); meta["traceparent"] != want {
		t.Errorf("the server received traceparent %q, want %q", meta["traceparent"], want)
	}
}

// TestTracePropagators: OTEL_PROPAGATORS (or tracing.propagators) chooses
// the format of every carrier. With b3, an agent's B3 headers on NATS (the
// single header, or the multi headers in B3's own spelling) parent gw's
// spans, and the server gets gw's upstream span as b3 in _meta, and no W3C
// entry; so does b3 in a caller's _meta, and B3 headers on the HTTP face
// (b3multi: the server gets the multi keys); with none, gw reads and writes
// no trace context: its spans start a trace of their own, and the caller's
// _meta reaches the server untouched.
func TestTracePropagators(t *testing.T) {
	propagator := func(t *testing.T, env string) propagation.TextMapPropagator {
		p, err := planTracing(config.Tracing{Endpoint: "http://collector:4318"}, func(k string) string {
			if k == envPropagators {
				return env
			}
			return ""
		})
		if err != nil {
			t.Fatal(err)
		}
		prop, err := autoprop.TextMapPropagator(p.propagators...)
		if err != nil {
			t.Fatal(err)
		}
		return prop
	}
	for _, tt := range []struct {
		name    string
		headers []string
	}{
		{"b3 single", []string{"b3", agentTrace + "-" + agentSpan + "-1"}},
		{"b3 multi", []string{"X-B3-TraceId", agentTrace, "X-B3-SpanId", agentSpan, "X-B3-Sampled", "1"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, exp := tracedStackWith(t, "modern", "", propagator(t, "b3"))
			msg := nats.NewMsg("mcp.v1.req.alice.tools.call.s__echo_meta")
			for i := 0; i+1 < len(tt.headers); i += 2 {
				msg.Header[tt.headers[i]] = []string{tt.headers[i+1]} // as written: NATS keeps the case
			}
			msg.Data = []byte(`{"name":"s__echo_meta","arguments":{}}`)
			reply, err := s.agent.RequestMsg(msg, 20*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			meta := echoedMeta(t, reply.Data)

			spans := exp.GetSpans()
			for _, sp := range spans {
				if got := sp.SpanContext.TraceID().String(); got != agentTrace {
					t.Errorf("span %q is in trace %s, not the agent's %s", sp.Name, got, agentTrace)
				}
			}
			if srv := spanNamed(t, spans, "tools/call s__echo_meta"); srv.Parent.SpanID().String() != agentSpan {
				t.Errorf("request span's parent %v, want the agent's B3 span %s", srv.Parent, agentSpan)
			}
			up := spanNamed(t, spans, "tools/call echo_meta")
			if want := agentTrace + "-" + up.SpanContext.SpanID().String() + "-1"; meta["b3"] != want {
				t.Errorf("the server received b3 %q, want %q (_meta %v)", meta["b3"], want, meta)
			}
			for _, key := range []string{"traceparent", "tracestate", "baggage"} {
				if v, ok := meta[key]; ok {
					t.Errorf("the server received %s %q from a b3-only gateway", key, v)
				}
			}
		})
	}
	// The other carriers: B3 in a caller's _meta (NATS, no headers), and
	// B3 headers on the Streamable HTTP face.
	b3Trace := func(t *testing.T, exp *tracetest.InMemoryExporter, meta map[string]string, parentSpan string) {
		t.Helper()
		spans := exp.GetSpans()
		if srv := spanNamed(t, spans, "tools/call s__echo_meta"); srv.Parent.TraceID().String() != agentTrace || srv.Parent.SpanID().String() != parentSpan {
			t.Errorf("request span's parent %v, want %s/%s", srv.Parent, agentTrace, parentSpan)
		}
		up := spanNamed(t, spans, "tools/call echo_meta")
		if want := agentTrace + "-" + up.SpanContext.SpanID().String() + "-1"; meta["b3"] != want {
			t.Errorf("the server received b3 %q, want %q (_meta %v)", meta["b3"], want, meta)
		}
	}
	t.Run("b3 in _meta", func(t *testing.T) {
		s, exp := tracedStackWith(t, "legacy", "", propagator(t, "b3"))
		const metaSpan = "b7ad6b7169203331"
		b3Trace(t, exp, echoedMeta(t, natsCall(t, s.agent, "s__echo_meta",
			`{"name":"s__echo_meta","arguments":{},"_meta":{"b3":"`+agentTrace+`-`+metaSpan+`-1"}}`)), metaSpan)
	})
	t.Run("b3 over HTTP", func(t *testing.T) {
		s, exp := tracedStackWith(t, "modern", "", propagator(t, "b3multi"))
		srv := httptest.NewServer(httpface.New(router.New(s.g), httpface.Options{}))
		t.Cleanup(srv.Close)
		body, _ := httpPost(t, srv.URL+"/mcp", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"s__echo_meta","arguments":{},`+
			`"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}`,
			"Mcp-Protocol-Version", "2026-07-28", "Mcp-Method", "tools/call", "Mcp-Name", "s__echo_meta",
			"X-B3-TraceId", agentTrace, "X-B3-SpanId", agentSpan, "X-B3-Sampled", "1")
		var msg struct {
			Result json.RawMessage `json:"result"`
		}
		if err := json.Unmarshal(body, &msg); err != nil {
			t.Fatalf("%v: %s", err, body)
		}
		meta := echoedMeta(t, msg.Result)
		up := spanNamed(t, exp.GetSpans(), "tools/call echo_meta")
		// b3multi writes the multi keys, the sampled flag as "1".
		if meta["x-b3-traceid"] != agentTrace || meta["x-b3-spanid"] != up.SpanContext.SpanID().String() || meta["x-b3-sampled"] != "1" {
			t.Errorf("the server received _meta %v, want gw's upstream span %s as b3multi", meta, up.SpanContext.SpanID())
		}
		if srv := spanNamed(t, exp.GetSpans(), "tools/call s__echo_meta"); srv.Parent.SpanID().String() != agentSpan {
			t.Errorf("request span's parent %v, want the B3 headers' %s", srv.Parent, agentSpan)
		}
	})
	t.Run("none", func(t *testing.T) {
		s, exp := tracedStackWith(t, "legacy", "", propagator(t, "none"))
		const metaTP = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
		meta := echoedMeta(t, natsCall(t, s.agent, "s__echo_meta", `{"name":"s__echo_meta","arguments":{},"_meta":{"traceparent":"`+metaTP+`"}}`,
			"traceparent", agentTP, "b3", agentTrace+"-"+agentSpan+"-1"))
		spans := exp.GetSpans()
		srv := spanNamed(t, spans, "tools/call s__echo_meta")
		if srv.Parent.IsValid() || len(srv.Links) != 0 {
			t.Errorf("request span has parent %v, links %v; want neither with propagators none", srv.Parent, srv.Links)
		}
		if got := srv.SpanContext.TraceID().String(); got == agentTrace || got == "0af7651916cd43dd8448eb211c80319c" {
			t.Errorf("request span joined the caller's trace %s", got)
		}
		if meta["traceparent"] != metaTP || len(meta) != 1 {
			t.Errorf("the server received _meta %v, want the caller's own, untouched", meta)
		}
	})
}

// TestTraceServerToClient: a server's sampling request raised during a call
// travels server → gw → agent (a streaming agent on NATS answers it) in a
// span of its own, the child of the call's upstream span, named after the
// method with the server as an attribute; the agent gets that span's
// context in the request's _meta; an agent's JSON-RPC error sets the
// span's error status. Both eras: a modern server's input request, a
// legacy server's own JSON-RPC request.
func TestTraceServerToClient(t *testing.T) {
	for _, era := range []string{"legacy", "modern"} {
		t.Run(era, func(t *testing.T) {
			s, exp := tracedStackWith(t, era, "llm.nobody", nil)
			for _, answer := range []string{
				`{"result":{"role":"assistant","content":{"type":"text","text":"Paris"},"model":"agent-model"}}`,
				`{"error":{"code":-32603,"message":"the agent has no LLM"}}`,
			} {
				exp.Reset()
				asked := streamCall(t, s, "s__sample", `{"name":"s__sample","arguments":{"prompt":"capital of France?"}}`, answer)
				if len(asked) != 1 {
					t.Fatalf("the agent was asked %d times, want once", len(asked))
				}
				spans := exp.GetSpans()
				up := spanNamed(t, spans, "tools/call sample")
				sp := spanNamed(t, spans, gateway.MethodSampling)
				if sp.Parent.SpanID() != up.SpanContext.SpanID() || sp.SpanContext.TraceID().String() != agentTrace {
					t.Errorf("sampling span's parent %v, want the upstream span %s in the agent's trace", sp.Parent, up.SpanContext.SpanID())
				}
				if sp.SpanKind != trace.SpanKindServer {
					t.Errorf("sampling span's kind %v", sp.SpanKind)
				}
				wantAttrs(t, sp, map[string]string{"mcp.method.name": gateway.MethodSampling, "gw.server": "s"})
				want := fmt.Sprintf("00-%s-%s-01", agentTrace, sp.SpanContext.SpanID())
				if got, _ := jsonrpc.StringMember(jsonrpc.Member(asked[0], "_meta"), "traceparent"); got != want {
					t.Errorf("the agent was asked with traceparent %q, want the sampling span's %q (params %s)", got, want, asked[0])
				}
				if strings.Contains(answer, "error") {
					wantAttrs(t, sp, map[string]string{"rpc.response.status_code": "-32603", "error.type": "-32603"})
					if sp.Status.Code != codes.Error {
						t.Errorf("sampling span's status %v after the agent's error", sp.Status)
					}
				} else if sp.Status.Code == codes.Error {
					t.Errorf("sampling span's status %v", sp.Status)
				}
			}
		})
	}
}

// TestTraceProgressEvents: progress a server sends during a call becomes
// events on the call's upstream span, not spans of their own.
func TestTraceProgressEvents(t *testing.T) {
	for _, era := range []string{"legacy", "modern"} {
		t.Run(era, func(t *testing.T) {
			s, exp := tracedStack(t, era)
			streamCall(t, s, "s__notify", `{"name":"s__notify","arguments":{"n":3}}`, "")
			spans := exp.GetSpans()
			if len(spans) != 3 {
				t.Fatalf("%d spans, want 3 (request, authorize, upstream): %v", len(spans), spans)
			}
			up := spanNamed(t, spans, "tools/call notify")
			var got []string
			for _, ev := range up.Events {
				if ev.Name != "notifications/progress" {
					continue
				}
				attrs := map[string]string{}
				for _, kv := range ev.Attributes {
					attrs[string(kv.Key)] = kv.Value.Emit()
				}
				got = append(got, attrs["gw.progress.value"]+"/"+attrs["gw.progress.total"]+" "+attrs["gw.progress.message"])
			}
			if want := []string{"1/3 step 1 of 3", "2/3 step 2 of 3", "3/3 step 3 of 3"}; !slices.Equal(got, want) {
				t.Errorf("progress events %q, want %q", got, want)
			}
		})
	}
}

// streamCall makes a streaming tools/call over NATS with the agent's
// traceparent, answers every input frame with answer, and returns the
// params of the input requests it was asked.
func streamCall(t *testing.T, s *stack, tool, params, answer string) []json.RawMessage {
	t.Helper()
	inbox := nats.NewInbox()
	frames, err := s.agent.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	defer frames.Unsubscribe()
	req := nats.NewMsg("mcp.v1.req.alice.tools.call." + tool)
	req.Reply = inbox
	req.Header.Set(natsface.HeaderStream, "1")
	req.Header.Set("traceparent", agentTP)
	req.Data = []byte(params)
	if err := s.agent.PublishMsg(req); err != nil {
		t.Fatal(err)
	}
	var asked []json.RawMessage
	for {
		f := nextFrame(t, frames)
		switch f.Type {
		case "input":
			asked = append(asked, f.Params)
			if _, err := s.agent.Request("mcp.v1.req.alice.at."+f.Gateway+".input."+f.ID, []byte(answer), 5*time.Second); err != nil {
				t.Fatal(err)
			}
		case "result", "error":
			return asked
		}
	}
}
