package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/gwmcp/gw/gateway"
	"github.com/gwmcp/gw/gateway/router"
	"github.com/gwmcp/gw/transport/jsonrpc"
	"github.com/gwmcp/gw/transport/natsconn"
	"github.com/gwmcp/gw/transport/natsface"
)

// stormNATSHandler is gw run's NATS handler, noting when it takes a call
// and when it answers it.
type stormNATSHandler struct {
	ledger *stormLedger
	h      natsface.Handler
}

func (s stormNATSHandler) Serve(ctx context.Context, req *natsface.Request) (json.RawMessage, error) {
	id := s.ledger.take(req.Params)
	defer s.ledger.finish(id)
	return s.h.Serve(ctx, req)
}

// TestStormNATS storms the NATS face, wired as gw run wires it, over the
// embedded NATS server: stormCalls tools/call requests published at once on
// one connection, each with its own reply subject (so a second answer is
// seen, not swallowed by a request mux) and its own Mcp-Deadline (up to
// 8 s: taking a burst is slow under the race detector), to the
// slow tools of four servers, legacy and modern (one in ten streaming, to a
// tool that sends progress first: every progress frame must come before the
// result frame, none after the final one), while servers are killed with
// SIGKILL.
func TestStormNATS(t *testing.T) {
	skipStorm(t)
	ctx := context.Background()
	mark := fmt.Sprintf("nats-%d", time.Now().UnixNano())
	e, err := natsconn.StartEmbedded(ctx, natsconn.EmbeddedOptions{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Shutdown()
	gwConn, err := e.Connect("gw storm")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = gwConn.Drain() }()

	ledger := newStormLedger(stormPlan(stormCalls, 8*time.Second, true, false), false)
	h := &faceHandler{}
	face, err := natsface.New(gwConn, stormNATSHandler{ledger, h}, natsface.Options{
		Gateway:       "storm",
		MaxConcurrent: 2 * stormCalls,
		Methods:       router.Methods(),
		Logger:        discardLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := face.Start(ctx); err != nil {
		t.Fatal(err)
	}
	events := newEventBridge(face, discardLogger())
	defer events.close()
	defer func() {
		stopCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := face.Stop(stopCtx); err != nil {
			t.Errorf("face stop: %v", err)
		}
	}()
	h.g = stormGateway(t, mark, func(o *gateway.Options) { o.Events = events })

	agent, err := e.Connect("storm agent")
	if err != nil {
		t.Fatal(err)
	}
	defer agent.Close()
	callOK := func(tool string) bool {
		msg, err := agent.Request("mcp.v1.req.storm.tools.call."+tool, []byte(`{"name":"`+tool+`","arguments":{"text":"x"}}`), 5*time.Second)
		return err == nil && toolText(msg.Data) == "x"
	}
	ready := func(what string) {
		stormReady(t, h.g, mark, what, callOK)
	}
	ready("ready")

	const inbox = "_INBOX.storm."
	sub, err := agent.Subscribe(inbox+"*", func(m *nats.Msg) {
		at := time.Now()
		id, err := strconv.Atoi(strings.TrimPrefix(m.Subject, inbox))
		if err != nil {
			ledger.problem("a reply on %s", m.Subject)
			return
		}
		if ledger.calls[id].progress { // a streaming call: frames
			var fr natsface.Frame
			if err := json.Unmarshal(m.Data, &fr); err != nil || fr.Type != m.Header.Get(natsface.HeaderFrame) {
				ledger.problem("call %d: a frame %q with header %q", id, m.Data, m.Header.Get(natsface.HeaderFrame))
				return
			}
			switch fr.Type {
			case natsface.FrameProgress:
				var p struct {
					Token string `json:"progressToken"`
				}
				_ = json.Unmarshal(fr.Params, &p)
				ledger.progressFor(p.Token)
			case natsface.FrameResult:
				ledger.answer(id, at, toolText(fr.Result), "")
			case natsface.FrameError:
				ledger.answer(id, at, "", fr.Error.Message)
			default:
				ledger.problem("call %d: a %q frame", id, fr.Type)
			}
			return
		}
		if m.Header.Get(micro.ErrorCodeHeader) == "" {
			ledger.answer(id, at, toolText(m.Data), "")
			return
		}
		var e jsonrpc.Error
		if err := json.Unmarshal(m.Data, &e); err != nil || e.Message == "" {
			ledger.answer(id, at, "", fmt.Sprintf("an error reply that is no JSON-RPC error: %s", m.Data))
			return
		}
		ledger.answer(id, at, "", e.Message)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		t.Fatal(err)
	}
	if err := agent.Flush(); err != nil {
		t.Fatal(err)
	}
	before := settledLeaks(t, nil)

	start := time.Now()
	killed := stormKiller(mark, ledger.done)
	header := func(c stormCall) nats.Header {
		h := nats.Header{natsface.HeaderDeadline: []string{time.Now().Add(c.timeout).Format(time.RFC3339Nano)}}
		if c.progress {
			h.Set(natsface.HeaderStream, "1")
		}
		return h
	}
	for _, c := range ledger.calls {
		ledger.send(c.id)
		err := agent.PublishMsg(&nats.Msg{
			Subject: "mcp.v1.req.storm.tools.call." + c.tool(),
			Reply:   inbox + strconv.Itoa(c.id),
			Header:  header(c),
			Data:    []byte(c.params("")),
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := agent.Flush(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d calls published in %v", stormCalls, time.Since(start).Round(time.Millisecond))
	ledger.wait(t, time.Minute)
	t.Logf("%d servers killed; every call answered after %v", <-killed, time.Since(start).Round(time.Millisecond))

	ready("again after the storm")
	checkLeaks(t, before, settledLeaks(t, &before))
}
