package main

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/contrib/propagators/autoprop"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/gwmcp/gw/internal/config"
)

// The OpenTelemetry environment variables gw decides on itself; the SDK and
// its OTLP exporters read the rest (headers, timeouts, certificates,
// compression, batching, OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES).
const (
	envSDKDisabled    = "OTEL_SDK_DISABLED"
	envTracesExporter = "OTEL_TRACES_EXPORTER"
	envEndpoint       = "OTEL_EXPORTER_OTLP_ENDPOINT"
	envTracesEndpoint = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
	envProtocol       = "OTEL_EXPORTER_OTLP_PROTOCOL"
	envTracesProtocol = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
	envSampler        = "OTEL_TRACES_SAMPLER"
	envPropagators    = "OTEL_PROPAGATORS"
)

// tracingPlan is what the configuration and the environment ask of tracing.
type tracingPlan struct {
	on       bool
	protocol string // http/protobuf or grpc
	endpoint string // tracing.endpoint, used when no OTEL_ variable names one
	sampler  sdktrace.Sampler
	// propagators are the names of the propagators of every carrier
	// (OTEL_PROPAGATORS, else tracing.propagators; tracecontext,baggage by
	// default), each once, in order.
	propagators []string
}

// planTracing decides whether traces are exported, and how: on when an OTLP
// endpoint is configured (tracing.endpoint or the OTEL_ variables) or
// OTEL_TRACES_EXPORTER is otlp; off when OTEL_SDK_DISABLED is true or
// OTEL_TRACES_EXPORTER is none, whatever else is set. The OTEL_ variables
// win over the tracing keys, as in every OpenTelemetry SDK.
func planTracing(tc config.Tracing, getenv func(string) string) (tracingPlan, error) {
	var p tracingPlan
	if disabled, _ := strconv.ParseBool(strings.TrimSpace(getenv(envSDKDisabled))); disabled {
		return p, nil
	}
	exporter := strings.TrimSpace(getenv(envTracesExporter))
	switch exporter {
	case "", "otlp":
	case "none":
		return p, nil
	default:
		return p, fmt.Errorf("%s=%s: gw exports traces with otlp only (or none)", envTracesExporter, exporter)
	}
	envEndpointSet := getenv(envEndpoint) != "" || getenv(envTracesEndpoint) != ""
	p.on = exporter == "otlp" || envEndpointSet || tc.Endpoint != ""
	if !p.on {
		return p, nil
	}
	if !envEndpointSet {
		p.endpoint = tc.Endpoint
	}
	p.protocol = firstNonEmpty(getenv(envTracesProtocol), getenv(envProtocol), tc.Protocol, "http/protobuf")
	switch p.protocol {
	case "http/protobuf", "grpc":
	default:
		return p, fmt.Errorf("OTLP protocol %q: gw exports traces with http/protobuf or grpc", p.protocol)
	}
	if tc.Sampler != "" && getenv(envSampler) == "" {
		p.sampler = sampler(tc.Sampler, tc.SamplerArg)
	}
	// A list with no name in it ("", ",") is unset, as the specification
	// asks of an empty value: the key's list then, else the default.
	for _, src := range [...]struct{ from, names string }{
		{envPropagators, getenv(envPropagators)},
		{"tracing.propagators", tc.Propagators},
		{"", "tracecontext,baggage"},
	} {
		for name := range strings.SplitSeq(src.names, ",") {
			name = strings.TrimSpace(name)
			switch {
			case name == "" || slices.Contains(p.propagators, name):
			case !slices.Contains(config.TracingPropagators, name):
				return p, fmt.Errorf("%s=%s: unknown propagator %q (gw knows %s)", src.from, strings.TrimSpace(src.names), name, strings.Join(config.TracingPropagators, ", "))
			default:
				p.propagators = append(p.propagators, name)
			}
		}
		if len(p.propagators) > 0 {
			break
		}
	}
	return p, nil
}

// sampler is the sampler name (a value of OTEL_TRACES_SAMPLER, validated by
// config) stands for.
func sampler(name string, ratio float64) sdktrace.Sampler {
	switch name {
	case "always_on":
		return sdktrace.AlwaysSample()
	case "always_off":
		return sdktrace.NeverSample()
	case "traceidratio":
		return sdktrace.TraceIDRatioBased(ratio)
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample())
	case "parentbased_traceidratio":
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))
	default: // parentbased_always_on, the SDK's default
		return sdktrace.ParentBased(sdktrace.AlwaysSample())
	}
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v = strings.TrimSpace(v); v != "" {
			return v
		}
	}
	return ""
}

// newTracing returns the tracer provider that exports gw's spans over OTLP,
// or nil when tracing is off (the gateway then creates no spans at all);
// the propagator of every carrier gw reads and writes trace context in;
// and stop, which flushes what is buffered and shuts the exporter down.
// The exporter connects lazily: a collector that is down costs dropped
// spans, logged, never a failed start.
func newTracing(ctx context.Context, tc config.Tracing, getenv func(string) string, logger *slog.Logger) (trace.TracerProvider, propagation.TextMapPropagator, func(), error) {
	p, err := planTracing(tc, getenv)
	if err != nil || !p.on {
		return nil, nil, func() {}, err
	}
	// Made from the names planTracing checked, not from the process's
	// environment (autoprop.NewTextMapPropagator): tracing.propagators is
	// honoured too, and an unknown name was refused rather than ignored.
	prop, err := autoprop.TextMapPropagator(p.propagators...)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("tracing: propagators: %w", err)
	}
	// The SDK reports export failures through this process-wide handler;
	// gw's log is the place for them.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { logger.Warn("tracing", "error", err) }))
	var exp sdktrace.SpanExporter
	if p.protocol == "grpc" {
		var opts []otlptracegrpc.Option
		if p.endpoint != "" {
			opts = append(opts, otlptracegrpc.WithEndpointURL(p.endpoint))
		}
		exp, err = otlptracegrpc.New(ctx, opts...)
	} else {
		var opts []otlptracehttp.Option
		if p.endpoint != "" {
			opts = append(opts, otlptracehttp.WithEndpointURL(p.endpoint))
		}
		exp, err = otlptracehttp.New(ctx, opts...)
	}
	if err != nil {
		return nil, nil, nil, fmt.Errorf("tracing: OTLP exporter: %w", err)
	}
	// service.name is gw unless OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES
	// say otherwise: later detectors win.
	res, err := resource.New(ctx,
		resource.WithTelemetrySDK(),
		resource.WithAttributes(attribute.String("service.name", "gw"), attribute.String("service.version", version)),
		resource.WithFromEnv(),
	)
	if err != nil {
		logger.Warn("tracing: resource attributes", "error", err) // partial resources are still usable
	}
	opts := []sdktrace.TracerProviderOption{sdktrace.WithBatcher(exp), sdktrace.WithResource(res)}
	if p.sampler != nil {
		opts = append(opts, sdktrace.WithSampler(p.sampler))
	}
	tp := sdktrace.NewTracerProvider(opts...)
	logger.Info("tracing on", "protocol", p.protocol, "propagators", strings.Join(p.propagators, ","))
	stop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := tp.Shutdown(ctx); err != nil {
			logger.Warn("tracing: flushing spans at exit", "error", err)
		}
	}
	return tp, prop, stop, nil
}
