package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gwmcp/gw/gateway/router"
	"github.com/gwmcp/gw/transport/httpface"
	"github.com/gwmcp/gw/transport/mcpface"
)

// stormHTTPCalls is the HTTP storm's size. Each call in flight over
// HTTP/1.1 holds a connection, a descriptor at each end, and the client and
// server of both ends run in this process under the race detector: 10,000 at
// once take several times as long as on the other faces (half a minute on
// two loaded cores), and starve the goroutines whose lateness is measured.
const stormHTTPCalls = 1_000

// stormModernMeta is what a modern request's _meta declares.
var stormModernMeta = fmt.Sprintf(`"io.modelcontextprotocol/protocolVersion":%q,"io.modelcontextprotocol/clientCapabilities":{},`, mcpface.ModernVersion)

// TestStormHTTP storms the Streamable HTTP face (gw run's, on a loopback
// listener): stormHTTPCalls modern tools/call POSTs at once, each on its own
// connection, to the slow tools of four servers, legacy and modern (the
// client goes away from one in twenty), while servers are killed with
// SIGKILL.
func TestStormHTTP(t *testing.T) {
	skipStorm(t)
	mark := fmt.Sprintf("http-%d", time.Now().UnixNano())
	ledger := newStormLedger(stormPlan(stormHTTPCalls, 5*time.Second, false, true), true)
	g := stormGateway(t, mark, nil)
	f := httpface.New(stormFaceHandler{ledger, router.New(g)}, httpface.Options{
		MaxInFlight: 2 * stormCalls,
		Logger:      discardLogger(),
	})
	srv := httptest.NewServer(f)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := f.Shutdown(ctx); err != nil {
			t.Errorf("face shutdown: %v", err)
		}
		srv.Close()
	}()
	transport := &http.Transport{MaxIdleConnsPerHost: stormHTTPCalls}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: time.Minute}

	// post sends a tools/call; it returns the result's text or the error's
	// message.
	post := func(ctx context.Context, tool string, params string) (text, errMsg string) {
		body := fmt.Sprintf(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":%s}`, params)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+httpface.Endpoint, strings.NewReader(body))
		if err != nil {
			return "", err.Error()
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Mcp-Protocol-Version", mcpface.ModernVersion)
		req.Header.Set("Mcp-Method", "tools/call")
		req.Header.Set("Mcp-Name", tool)
		resp, err := client.Do(req)
		if err != nil {
			return "", "client: " + err.Error()
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return "", "client: " + err.Error()
		}
		var msg struct {
			Result json.RawMessage `json:"result"`
			Error  *struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		switch {
		case resp.Header.Get("Content-Type") != "application/json" || json.Unmarshal(b, &msg) != nil:
			return "", fmt.Sprintf("HTTP %d %s: %.200s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
		case msg.Error != nil:
			return "", fmt.Sprintf("HTTP %d: %s", resp.StatusCode, msg.Error.Message)
		}
		return toolText(msg.Result), ""
	}
	ready := func(what string) {
		stormReady(t, g, mark, what, func(tool string) bool {
			text, _ := post(context.Background(), tool, fmt.Sprintf(`{"name":%q,"arguments":{"text":"x"},"_meta":{%s}}`, tool, strings.TrimSuffix(stormModernMeta, ",")))
			return text == "x"
		})
		transport.CloseIdleConnections()
	}
	ready("ready")
	before := settledLeaks(t, nil)

	start := time.Now()
	killed := stormKiller(mark, ledger.done)
	var wg sync.WaitGroup
	for _, c := range ledger.calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			if c.cancel > 0 { // the client goes away
				var cancel context.CancelFunc
				ctx, cancel = context.WithCancel(ctx)
				defer time.AfterFunc(c.cancel, cancel).Stop()
			}
			ledger.send(c.id)
			text, errMsg := post(ctx, c.tool(), c.params(stormModernMeta))
			if c.cancel > 0 && ctx.Err() != nil && errMsg != "" {
				return // no answer: the client cancelled
			}
			ledger.answer(c.id, time.Now(), text, errMsg)
		}()
	}
	ledger.wait(t, time.Minute)
	wg.Wait()
	t.Logf("%d servers killed; every call answered after %v", <-killed, time.Since(start).Round(time.Millisecond))

	ready("again after the storm")
	checkLeaks(t, before, settledLeaks(t, &before))
}
