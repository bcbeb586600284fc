package main

// The paths of gw bench: how each one is started, called and stopped.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gwmcp/gw/gateway"
	"github.com/gwmcp/gw/gateway/router"
	"github.com/gwmcp/gw/internal/config"
	"github.com/gwmcp/gw/internal/rpcclient"
	"github.com/gwmcp/gw/transport/httpface"
	"github.com/gwmcp/gw/transport/jsonrpc"
	"github.com/gwmcp/gw/transport/mcpface"
	"github.com/gwmcp/gw/transport/natsclient"
	"github.com/gwmcp/gw/transport/natsconn"
	"github.com/gwmcp/gw/transport/natsface"
	"github.com/gwmcp/gw/transport/stdio"
)

// start readies a path: its caller, and how to stop it. One call is made
// and its outcome ignored (the measured runs count errors): it waits for
// what starts lazily, such as gw stdio's servers.
func (b *bench) start(ctx context.Context, path string) (benchCall, func(), error) {
	var call benchCall
	stop := func() {}
	var err error
	if path != "direct" && b.exposed == "" { // every path through gw needs the tool's exposed name
		return nil, nil, b.expErr
	}
	switch path {
	case "direct":
		if b.direct == nil {
			return nil, nil, b.dirErr
		}
		call = rpcCall(b.direct, b.params)
	case "gateway":
		caller := gateway.Caller{ID: b.principal}
		call = func(ctx context.Context) error {
			res, err := b.g.CallTool(gateway.WithCaller(ctx, caller), b.gwArgs, gateway.CallOptions{})
			if err != nil {
				return err
			}
			return toolError(res)
		}
	case "nats":
		call, stop, err = b.startNATS(ctx)
	case "stdio":
		call, stop, err = b.startStdio(ctx)
	case "http":
		call, stop, err = b.startHTTP(ctx)
	}
	if err != nil {
		return nil, nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	_ = call(wctx)
	cancel()
	return call, stop, nil
}

func rpcCall(c *rpcclient.Client, params json.RawMessage) benchCall {
	return func(ctx context.Context) error {
		res, err := c.Call(ctx, "tools/call", params)
		if err != nil {
			return err
		}
		return toolError(res)
	}
}

// startNATS runs the NATS face as gw run wires it, on an embedded server
// that listens on no port, and calls from a connection of its own.
func (b *bench) startNATS(ctx context.Context) (benchCall, func(), error) {
	dir, err := os.MkdirTemp("", "gw-bench-nats-")
	if err != nil {
		return nil, nil, err
	}
	e, err := natsconn.StartEmbedded(ctx, natsconn.EmbeddedOptions{StoreDir: dir, ServerName: "gw-bench", Logger: b.logger})
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, nil, err
	}
	var face *natsface.Face
	stops := []func(){func() { e.Shutdown(); _ = os.RemoveAll(dir) }}
	stop := func() {
		for _, s := range slices.Backward(stops) {
			s()
		}
	}
	fail := func(err error) (benchCall, func(), error) {
		stop()
		return nil, nil, err
	}
	gwConn, err := e.Connect("gw bench")
	if err != nil {
		return fail(err)
	}
	stops = append(stops, func() { gwConn.Close() })
	face, err = natsface.New(gwConn, &faceHandler{g: b.g}, natsface.Options{
		Gateway:       "bench",
		MaxConcurrent: b.cfg.NATS.MaxConcurrent,
		MaxDepth:      b.cfg.Gateway.MaxDepth,
		Methods:       router.Methods(),
		Version:       semver(version),
		Logger:        b.logger,
	})
	if err != nil {
		return fail(err)
	}
	// The endpoints gw run's event bridge would set from the catalog.
	if err := face.SetTools([]string{b.exposed}); err != nil {
		return fail(err)
	}
	if err := face.Start(ctx); err != nil {
		return fail(err)
	}
	stops = append(stops, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = face.Stop(sctx)
	})
	if err := gwConn.Flush(); err != nil {
		return fail(err)
	}
	agent, err := e.Connect("gw bench agent")
	if err != nil {
		return fail(err)
	}
	stops = append(stops, func() { agent.Close() })
	subject := natsface.DefaultPrefix + ".req." + natsface.EncodeToken(b.principal) + ".tools.call." + natsface.EncodeToken(b.exposed)
	js, err := jetstream.New(agent)
	if err != nil {
		return fail(err)
	}
	call := func(ctx context.Context) error {
		msg, err := agent.RequestWithContext(ctx, subject, b.gwArgs)
		if err != nil {
			return err
		}
		if err := natsclient.ReplyError(msg); err != nil {
			return err
		}
		result, err := natsface.FetchClaimCheck(ctx, js, msg) // a result over the payload limit
		if err != nil {
			return err
		}
		return toolError(result)
	}
	return call, stop, nil
}

// startStdio runs gw stdio -c FILE (with this run's --set and -v) as a
// child process and opens a session with it.
func (b *bench) startStdio(ctx context.Context) (benchCall, func(), error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, nil, err
	}
	args := []string{"stdio", "-c", b.f.config}
	for _, k := range slices.Sorted(maps.Keys(b.f.set)) {
		args = append(args, "--set", fmt.Sprintf("%s=%v", k, b.f.set[k]))
	}
	if _, ok := b.f.set["pins.file"]; !ok {
		// A timing run neither reads nor adds to the user's pins (its
		// other paths keep them in memory too).
		args = append(args, "--set", "pins.file="+config.PinsFileNone)
	}
	if b.f.verbose {
		args = append(args, "-v")
	}
	p, err := stdio.Start(stdio.Config{Name: "gw stdio", Command: exe, Args: args, Env: selfEnv,
		MaxMessageSize: b.cfg.Gateway.MaxMessageSize, StopGrace: 5 * time.Second, Logger: b.logger})
	if err != nil {
		return nil, nil, err
	}
	octx, cancel := context.WithTimeout(ctx, b.cfg.Gateway.StartTimeout+10*time.Second)
	defer cancel()
	c, err := rpcclient.Open(octx, p, rpcclient.Options{Era: b.clientEra()})
	if err != nil {
		return nil, nil, fmt.Errorf("gw stdio: %w%s", err, lastStderr(p))
	}
	// gw stdio answers once its servers have started.
	if _, err := c.Call(octx, "tools/list", json.RawMessage(`{}`)); err != nil {
		_ = c.Close()
		return nil, nil, fmt.Errorf("gw stdio: tools/list: %w", err)
	}
	return rpcCall(c, b.gwArgs), func() { _ = c.Close() }, nil
}

// startHTTP serves the Streamable HTTP face over the gateway on a free
// loopback port, as gw run does (every caller is the local user here), and
// calls it on keep-alive connections in the server's era: legacy in one
// session (initialize, then every caller's POSTs with its id), modern with
// stateless POSTs and their headers.
func (b *bench) startHTTP(ctx context.Context) (benchCall, func(), error) {
	lr := lazyRouter{g: func() *gateway.Gateway { return b.g }}
	hf := httpface.New(lr, httpface.Options{
		Info:        mcpface.Implementation{Name: "gw", Version: version},
		Anonymous:   b.principal,
		MaxBodySize: int64(b.cfg.Gateway.MaxMessageSize),
		MaxDepth:    b.cfg.Gateway.MaxDepth,
		Logger:      b.logger,
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	srv := &http.Server{Handler: hf, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(ln)
	}()
	conns := slices.Max(b.plan.concurrency)
	tr := &http.Transport{MaxIdleConns: conns, MaxIdleConnsPerHost: conns, DisableCompression: true}
	client := &http.Client{Transport: tr}
	stop := func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hf.Shutdown(sctx)
		_ = srv.Shutdown(sctx)
		<-served
		tr.CloseIdleConnections()
	}
	url := "http://" + ln.Addr().String() + httpface.Endpoint
	post := func(ctx context.Context, body []byte, hdr http.Header) (*jsonrpc.Message, http.Header, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return nil, nil, err
		}
		req.Header = hdr.Clone()
		resp, err := client.Do(req)
		if err != nil {
			return nil, nil, err
		}
		out, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, nil, err
		}
		if resp.StatusCode == http.StatusAccepted && len(out) == 0 {
			return nil, resp.Header, nil // a notification's answer
		}
		if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
			out = lastSSEData(out)
		}
		m, derr := jsonrpc.Decode(out)
		switch {
		case derr == nil && m.Error != nil:
			return nil, nil, m.Error
		case resp.StatusCode/100 != 2 || derr != nil:
			return nil, nil, fmt.Errorf("HTTP %d: %s", resp.StatusCode, oneLine(string(out), 200))
		}
		return m, resp.Header, nil
	}
	hdr := http.Header{
		"Content-Type": {"application/json"},
		"Accept":       {"application/json, text/event-stream"},
	}
	var params string // of the tools/call
	if b.clientEra() == rpcclient.EraLegacy {
		// One session for every caller, as one client with many requests
		// in flight.
		init := []byte(`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"` + rpcclient.LegacyVersion +
			`","capabilities":{},"clientInfo":{"name":"gw-bench","version":"0"}}}`)
		_, h, err := post(ctx, init, hdr)
		if err != nil {
			stop()
			return nil, nil, fmt.Errorf("initialize: %w", err)
		}
		hdr.Set("Mcp-Session-Id", h.Get("Mcp-Session-Id"))
		hdr.Set("Mcp-Protocol-Version", rpcclient.LegacyVersion)
		if _, _, err := post(ctx, []byte(`{"jsonrpc":"2.0","method":"notifications/initialized"}`), hdr); err != nil {
			stop()
			return nil, nil, fmt.Errorf("notifications/initialized: %w", err)
		}
		params = string(b.gwArgs)
	} else {
		params = `{` + modernMeta + `,` + string(b.gwArgs[1:])
		hdr.Set("Mcp-Protocol-Version", rpcclient.ModernVersion)
		hdr.Set("Mcp-Method", "tools/call")
		hdr.Set("Mcp-Name", b.exposed)
		for name, value := range httpface.ParamHeaderValues(b.args(), lr.ParamHeaders(b.exposed)) {
			hdr.Set("Mcp-Param-"+name, value)
		}
	}
	var ids atomic.Int64 // a legacy session's requests in flight need distinct ids
	call := func(ctx context.Context) error {
		body := make([]byte, 0, 64+len(params))
		body = append(body, `{"jsonrpc":"2.0","id":`...)
		body = strconv.AppendInt(body, ids.Add(1), 10)
		body = append(append(append(body, `,"method":"tools/call","params":`...), params...), '}')
		m, _, err := post(ctx, body, hdr)
		if err != nil {
			return err
		}
		return toolError(m.Result)
	}
	return call, stop, nil
}

// modernMeta is the _meta of gw bench's modern requests over HTTP.
const modernMeta = `"_meta":{"io.modelcontextprotocol/protocolVersion":"` + rpcclient.ModernVersion +
	`","io.modelcontextprotocol/clientInfo":{"name":"gw-bench","version":"0"},"io.modelcontextprotocol/clientCapabilities":{}}`

// clientEra is the era gw's stdio and HTTP faces are called in: the
// server's own, so that each path compares like with like (a legacy
// server's clients are legacy ones); modern when it is unknown.
func (b *bench) clientEra() rpcclient.Era {
	if b.era == string(rpcclient.EraLegacy) {
		return rpcclient.EraLegacy
	}
	return rpcclient.EraModern
}

// lastSSEData is the data of the last event of an SSE body: the response.
func lastSSEData(body []byte) []byte {
	var last []byte
	for _, line := range bytes.Split(body, []byte("\n")) {
		if d, ok := bytes.CutPrefix(bytes.TrimRight(line, "\r"), []byte("data:")); ok {
			last = bytes.TrimSpace(d)
		}
	}
	return last
}

// toolError reports a CallToolResult with isError true as an error
// carrying its first text.
func toolError(res json.RawMessage) error {
	if !jsonrpc.IsToolError(res) {
		return nil
	}
	var r struct {
		Content []struct {
			Text string `json:"text"`
		} `json:"content"`
	}
	_ = json.Unmarshal(res, &r)
	text := "(no text)"
	if len(r.Content) > 0 {
		text = r.Content[0].Text
	}
	return fmt.Errorf("isError result: %s", oneLine(text, 200))
}
