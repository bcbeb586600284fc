package config

import (
	"net/url"
	"slices"
	"strings"
)

// TracingProtocols are the OTLP protocols gw exports traces with.
var TracingProtocols = []string{"http/protobuf", "grpc"}

// TracingSamplers are the samplers tracing.sampler names, as
// OTEL_TRACES_SAMPLER does.
var TracingSamplers = []string{"always_on", "always_off", "traceidratio", "parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio"}

// TracingPropagators are the names tracing.propagators (and
// OTEL_PROPAGATORS) take, as the OpenTelemetry specification lists them;
// none turns propagation off.
var TracingPropagators = []string{"tracecontext", "baggage", "b3", "b3multi", "jaeger", "xray", "ottrace", "none"}

// validateTracing checks the tracing section.
func (c *Config) validateTracing(bad func(key, format string, args ...any)) {
	t := c.Tracing
	if t.Endpoint != "" {
		u, err := url.Parse(t.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("tracing.endpoint", "tracing.endpoint %s must be an http:// or https:// URL, such as \"http://localhost:4318\"", quoteShort(t.Endpoint))
		}
	}
	if t.Protocol != "" && !slices.Contains(TracingProtocols, t.Protocol) {
		bad("tracing.protocol", "tracing.protocol %s is not one of %s", quoteShort(t.Protocol), strings.Join(TracingProtocols, ", "))
	}
	if t.Sampler != "" && !slices.Contains(TracingSamplers, t.Sampler) {
		bad("tracing.sampler", "tracing.sampler %s is not one of %s", quoteShort(t.Sampler), strings.Join(TracingSamplers, ", "))
	}
	for name := range strings.SplitSeq(t.Propagators, ",") {
		if name = strings.TrimSpace(name); name != "" && !slices.Contains(TracingPropagators, name) {
			bad("tracing.propagators", "tracing.propagators: %s is not one of %s", quoteShort(name), strings.Join(TracingPropagators, ", "))
		}
	}
	if t.SamplerArg < 0 || t.SamplerArg > 1 {
		bad("tracing.sampler_arg", "tracing.sampler_arg must be 0..1, got %v", t.SamplerArg)
	}
}
