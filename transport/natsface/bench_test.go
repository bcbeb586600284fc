package natsface

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// BenchmarkToolsCall measures a tools/call round trip over NATS (embedded server, in-process
// connections, trivial handler), one caller at a time and with parallel callers.
func BenchmarkToolsCall(b *testing.B) {
	s := startServer(b)
	result := json.RawMessage(`{"content":[{"type":"text","text":"ok"}]}`)
	h := HandlerFunc(func(context.Context, *Request) (json.RawMessage, error) { return result, nil })
	startFace(b, connect(b, s), h, Options{MaxConcurrent: 1024}, "echo")
	cl := connect(b, s)
	subject := callSubject("alice", "echo")
	body := []byte(callBody("echo", map[string]any{"text": "hi"}))

	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			msg, err := cl.Request(subject, body, 5*time.Second)
			if err != nil || msg.Header.Get("Nats-Service-Error-Code") != "" {
				b.Fatal(err, string(msg.Data))
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				msg, err := cl.RequestMsg(&nats.Msg{Subject: subject, Data: body}, 5*time.Second)
				if err != nil || msg.Header.Get("Nats-Service-Error-Code") != "" {
					b.Error(err)
					return
				}
			}
		})
	})
}
