package natsface

import (
	"testing"

	"github.com/nats-io/nats.go"
)

// TestHeaderEither: both spellings of the W3C headers are read, lowercase
// first, without an allocation (the face reads them on every request,
// traced or not).
func TestHeaderEither(t *testing.T) {
	for _, tt := range []struct {
		h    nats.Header
		want string
	}{
		{nil, ""},
		{nats.Header{"traceparent": {"a"}}, "a"},
		{nats.Header{"Traceparent": {"b"}}, "b"},
		{nats.Header{"traceparent": {"a"}, "Traceparent": {"b"}}, "a"},
		{nats.Header{"TRACEPARENT": {"c"}}, ""},
	} {
		if got := headerEither(tt.h, "traceparent", "Traceparent"); got != tt.want {
			t.Errorf("%v: %q, want %q", tt.h, got, tt.want)
		}
	}
	h := nats.Header{"traceparent": {"00-x"}, "Tracestate": {"a=b"}}
	if n := testing.AllocsPerRun(100, func() {
		_ = headerEither(h, "traceparent", "Traceparent")
		_ = headerEither(h, "tracestate", "Tracestate")
	}); n != 0 {
		t.Errorf("headerEither allocates %v times", n)
	}
}
