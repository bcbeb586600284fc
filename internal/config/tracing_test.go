package config

import (
	"errors"
	"strings"
	"testing"
)

// TestTracingKeys: the tracing section decodes, and each bad value is
// refused naming its key.
func TestTracingKeys(t *testing.T) {
	const servers = "servers:\n  notes:\n    command: go\n"
	cfg := mustParse(t, servers+"tracing:\n  endpoint: http://collector:4318\n  protocol: grpc\n  sampler: parentbased_traceidratio\n  sampler_arg: 0.25\n  propagators: b3multi, tracecontext\n", "yaml")
	want := Tracing{Endpoint: "http://collector:4318", Protocol: "grpc", Sampler: "parentbased_traceidratio", SamplerArg: 0.25, Propagators: "b3multi, tracecontext"}
	if cfg.Tracing != want {
		t.Errorf("Tracing = %+v, want %+v", cfg.Tracing, want)
	}
	for _, tt := range []struct{ body, key string }{
		{"endpoint: collector:4318", "tracing.endpoint"},
		{"endpoint: ftp://collector", "tracing.endpoint"},
		{"protocol: http/json", "tracing.protocol"},
		{"sampler: sometimes", "tracing.sampler"},
		{"sampler_arg: 1.5", "tracing.sampler_arg"},
		{"propagators: tracecontext,zipkin", "tracing.propagators"},
	} {
		_, err := Parse([]byte(servers+"tracing:\n  "+tt.body+"\n"), "yaml")
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.key) {
			t.Errorf("%s: error %v, want one naming %s", tt.body, err, tt.key)
		}
	}
}

// TestTracingSamplerArgFromEnv: a number key takes a GW_ variable's text.
func TestTracingSamplerArgFromEnv(t *testing.T) {
	file := writeFile(t, t.TempDir(), "gw.yaml", "servers:\n  notes:\n    command: go\n")
	cfg, err := Load(Options{File: file, Environ: []string{"GW_TRACING__SAMPLER_ARG=0.5", "GW_TRACING__ENDPOINT=http://collector:4318"}})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Tracing.SamplerArg != 0.5 || cfg.Tracing.Endpoint != "http://collector:4318" {
		t.Errorf("Tracing = %+v", cfg.Tracing)
	}
	if _, err := Load(Options{File: file, Environ: []string{"GW_TRACING__SAMPLER_ARG=half"}}); err == nil {
		t.Error("sampler_arg \"half\" was accepted")
	}
}
