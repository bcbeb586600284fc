package natsface

import "github.com/nats-io/nats.go"

// headerEither returns the first value of key in h, else of alt: NATS headers
// are case-sensitive, and W3C trace context is written both lowercase (as on
// the wire of HTTP/2) and in Go's canonical HTTP spelling. Map lookups only:
// nothing is allocated.
func headerEither(h nats.Header, key, alt string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	if v := h[alt]; len(v) > 0 {
		return v[0]
	}
	return ""
}
