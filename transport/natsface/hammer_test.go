package natsface

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// TestHammer runs many concurrent callers (plain and streaming) against two gateways while one
// of them churns its tool set and then stops with calls in flight. Every request must get exactly
// one well-formed answer (a result, a 503, or no responders when no gateway hosts the tool),
// and no streaming call may see a frame after its final one.
func TestHammer(t *testing.T) {
	s := startServer(t)
	g1, g2 := newFakeGateway("gw1"), newFakeGateway("gw2")
	f1 := startFaceNoCleanup(t, connect(t, s), g1, Options{Gateway: "gw1", MaxConcurrent: 8}, "echo", "sleep", "progress")
	startFace(t, connect(t, s), g2, Options{Gateway: "gw2", MaxConcurrent: 8}, "echo", "progress")

	cl := connect(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	var wg sync.WaitGroup
	var results, busy, noResp atomic.Int64

	// SetTools churn on gw1: "sleep" comes and goes.
	wg.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			tools := []string{"echo", "progress"}
			if i%2 == 0 {
				tools = append(tools, "sleep")
			}
			if err := f1.SetTools(tools); err != nil && !errors.Is(err, ErrStopped) {
				t.Errorf("set tools: %v", err)
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
	for w := range 12 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				tool := []string{"echo", "sleep", "progress"}[(w+i)%3]
				args := map[string]any{"ms": 5, "text": fmt.Sprint(w, i)}
				if w%4 == 0 {
					if err := hammerStream(cl, tool, args); err != nil {
						t.Error(err)
						return
					}
					results.Add(1)
					continue
				}
				msg, err := requestErr(cl, callSubject("alice", tool), callBody(tool, args), nil, 5*time.Second)
				switch {
				case errors.Is(err, nats.ErrNoResponders):
					noResp.Add(1)
				case err != nil:
					t.Errorf("%s: %v", tool, err)
					return
				default:
					e := replyError(t, msg)
					switch {
					case e == nil:
						results.Add(1)
					case e.Code == CodeUnavailable:
						busy.Add(1)
					default:
						t.Errorf("%s: unexpected error %v", tool, e)
						return
					}
				}
			}
		})
	}
	time.Sleep(time.Second)
	stopCtx, stopCancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer stopCancel()
	if err := f1.Stop(stopCtx); err != nil {
		t.Errorf("stop under load: %v", err)
	}
	wg.Wait()
	t.Logf("results %d, busy %d, no responders %d; gw1 ran %d, gw2 ran %d",
		results.Load(), busy.Load(), noResp.Load(), g1.total(), g2.total())
	if results.Load() == 0 || g1.total() == 0 || g2.total() == 0 {
		t.Error("the hammer did not hit both gateways")
	}
}

// hammerStream makes one streaming call and checks its frames: progress or input first, exactly
// one final frame, nothing after it.
func hammerStream(nc *nats.Conn, tool string, args map[string]any) error {
	inbox := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return err
	}
	defer sub.Unsubscribe()
	err = nc.PublishMsg(&nats.Msg{Subject: callSubject("alice", tool), Reply: inbox,
		Data: []byte(callBody(tool, args)), Header: nats.Header{HeaderStream: {"1"}}})
	if err != nil {
		return err
	}
	for {
		msg, err := sub.NextMsg(5 * time.Second)
		if errors.Is(err, nats.ErrNoResponders) || err == nil && msg.Header.Get("Status") == "503" {
			return nil // no gateway hosts the tool right now
		}
		if err != nil {
			return fmt.Errorf("stream %s: %w", tool, err)
		}
		switch typ := msg.Header.Get(HeaderFrame); typ {
		case FrameProgress:
		case FrameResult, FrameError:
			if typ == FrameError {
				var f Frame
				if jerr := json.Unmarshal(msg.Data, &f); jerr != nil || f.Error == nil || f.Error.Code != CodeUnavailable {
					return fmt.Errorf("stream %s: error frame %s", tool, msg.Data)
				}
			}
			if extra, err := sub.NextMsg(50 * time.Millisecond); err == nil {
				return fmt.Errorf("stream %s: frame after the final one: %s", tool, extra.Data)
			}
			return nil
		default:
			return fmt.Errorf("stream %s: unexpected frame %q: %s", tool, typ, msg.Data)
		}
	}
}
