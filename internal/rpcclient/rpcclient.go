// Package rpcclient is a bare JSON-RPC client of one MCP server over a
// newline-delimited message stream, such as a child process's stdin and
// stdout: it opens the session in the server's era and makes requests.
// Nothing else — no catalog, no progress, no retries; notifications are
// dropped and the server's own requests answered at once (ping with {},
// anything else with -32601). It is the floor gw is measured against: gw
// bench's "direct" path, and the client of the benchmarks in gateway and
// cmd/gw.
//
// A Client is pipelined by default: one reader goroutine hands each reply to
// its caller by id, so any number of goroutines may call at once over the
// one stream. With Options.Serial there is no reader goroutine: a call
// writes its request and reads until its reply on the caller's goroutine,
// one call at a time (the least a client can add to a round trip).
package rpcclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gwmcp/gw/transport/jsonrpc"
)

// Conn is a stream of messages, one JSON-RPC message per call;
// *stdio.Process is one. WriteMessage may be called concurrently;
// ReadMessage by one goroutine at a time; Close unblocks ReadMessage.
type Conn interface {
	WriteMessage(ctx context.Context, msg []byte) error
	ReadMessage() ([]byte, error)
	Close() error
}

// Era is the protocol generation of a session.
type Era string

// The eras; EraAuto asks Open to probe.
const (
	EraAuto   Era = ""
	EraLegacy Era = "legacy" // initialize, then notifications/initialized
	EraModern Era = "modern" // _meta on every request
)

// The protocol versions the client speaks.
const (
	ModernVersion = "2026-07-28"
	LegacyVersion = "2025-11-25"
)

// ErrClosed is returned by calls after the stream ended or Close.
var ErrClosed = errors.New("rpcclient: connection closed")

// Options configure Open. The zero value probes the era and pipelines.
type Options struct {
	// Era forces a session's era; EraAuto (the default) probes with
	// server/discover and falls back to initialize on any other answer than
	// a DiscoverResult, or none within DiscoverTimeout (the stdio
	// transport's rules). EraModern still sends server/discover, and fails
	// if the server does not answer it.
	Era Era
	// ClientName and ClientVersion are the clientInfo; default "gw-bench", "0".
	ClientName, ClientVersion string
	// DiscoverTimeout bounds the wait for the probe's answer; default 5s.
	// A Serial client cannot stop waiting: it waits for any answer.
	DiscoverTimeout time.Duration
	// Serial makes calls on the caller's goroutine, one at a time, with no
	// reader goroutine. A call's ctx then bounds its write only.
	Serial bool
}

type reply struct {
	result json.RawMessage
	err    error
}

// Client is an open session. Its methods are safe for concurrent use.
type Client struct {
	conn    Conn
	serial  bool
	era     Era
	version string
	meta    []byte // modern: `"_meta":{…}` spliced at the start of every request's params
	nextID  atomic.Int64

	mu      sync.Mutex
	pending map[string]chan reply // pipelined: calls awaiting a reply, by id text
	err     error                 // pipelined: why the reader stopped; guarded by mu
	readers sync.WaitGroup        // the reader and the writers of its answers

	serialMu  sync.Mutex // Serial: held for a whole round trip
	closeOnce sync.Once
}

// Open starts a client on conn and opens the session. On error conn is
// closed. The Client owns conn from then on: Close closes it.
func Open(ctx context.Context, conn Conn, o Options) (*Client, error) {
	if o.ClientName == "" {
		o.ClientName = "gw-bench"
	}
	if o.ClientVersion == "" {
		o.ClientVersion = "0"
	}
	if o.DiscoverTimeout <= 0 {
		o.DiscoverTimeout = 5 * time.Second
	}
	c := &Client{conn: conn, serial: o.Serial, pending: map[string]chan reply{}}
	if !c.serial {
		c.readers.Add(1)
		go c.read()
	}
	if err := c.open(ctx, o); err != nil {
		_ = c.Close()
		return nil, err
	}
	return c, nil
}

// Era is the session's era, EraLegacy or EraModern.
func (c *Client) Era() Era { return c.era }

// Version is the protocol version of the session.
func (c *Client) Version() string { return c.version }

func (c *Client) open(ctx context.Context, o Options) error {
	info, _ := json.Marshal(map[string]string{"name": o.ClientName, "version": o.ClientVersion})
	meta := []byte(`"_meta":{"io.modelcontextprotocol/protocolVersion":"` + ModernVersion +
		`","io.modelcontextprotocol/clientInfo":` + string(info) +
		`,"io.modelcontextprotocol/clientCapabilities":{}}`)
	if o.Era == EraLegacy {
		return c.initialize(ctx, info)
	}
	pctx, cancel := ctx, context.CancelFunc(func() {})
	if o.Era == EraAuto && !c.serial {
		pctx, cancel = context.WithTimeout(ctx, o.DiscoverTimeout)
	}
	res, err := c.call(pctx, "server/discover", nil, meta, false)
	cancel()
	var rpcErr *jsonrpc.Error
	switch {
	case err == nil:
		var dr struct {
			SupportedVersions []string `json:"supportedVersions"`
		}
		if json.Unmarshal(res, &dr) != nil || dr.SupportedVersions == nil {
			break // not a DiscoverResult: a legacy server answering anything
		}
		if !slices.Contains(dr.SupportedVersions, ModernVersion) {
			return fmt.Errorf("rpcclient: the server supports %v; this client speaks %s and %s", dr.SupportedVersions, ModernVersion, LegacyVersion)
		}
		c.era, c.version, c.meta = EraModern, ModernVersion, meta
		return nil
	case errors.As(err, &rpcErr) && rpcErr.Code == jsonrpc.CodeUnsupportedProtocolVersion:
		return fmt.Errorf("rpcclient: server/discover: %w", err)
	case ctx.Err() != nil, errors.Is(err, ErrClosed):
		return fmt.Errorf("rpcclient: server/discover: %w", err)
	}
	if o.Era == EraModern {
		return fmt.Errorf("rpcclient: server/discover: not a modern server (%v)", err)
	}
	return c.initialize(ctx, info)
}

func (c *Client) initialize(ctx context.Context, info []byte) error {
	res, err := c.call(ctx, "initialize", []byte(`{"protocolVersion":"`+LegacyVersion+`","capabilities":{},"clientInfo":`+string(info)+`}`), nil, false)
	if err != nil {
		return fmt.Errorf("rpcclient: initialize: %w", err)
	}
	var ir struct {
		ProtocolVersion string `json:"protocolVersion"`
	}
	_ = json.Unmarshal(res, &ir)
	c.era, c.version = EraLegacy, ir.ProtocolVersion
	return c.conn.WriteMessage(ctx, []byte(`{"jsonrpc":"2.0","method":"notifications/initialized"}`))
}

// Call sends a request and returns its result, or the server's error as a
// *jsonrpc.Error. params is a JSON object (or nil) without _meta: in the
// modern era the session's _meta is spliced into it. When ctx ends before
// the reply, a pipelined client forgets the call and sends
// notifications/cancelled.
func (c *Client) Call(ctx context.Context, method string, params json.RawMessage) (json.RawMessage, error) {
	return c.call(ctx, method, params, c.meta, true)
}

// request is the line of request id: params with meta spliced in first.
func request(id, method string, params json.RawMessage, meta []byte) []byte {
	p := bytes.TrimSpace(params)
	line := make([]byte, 0, 48+len(id)+len(method)+len(p)+len(meta))
	line = append(line, `{"jsonrpc":"2.0","id":`...)
	line = append(line, id...)
	line = append(line, `,"method":`...)
	line = jsonrpc.AppendString(line, method)
	switch {
	case meta == nil && len(p) == 0:
	case meta == nil:
		line = append(append(line, `,"params":`...), p...)
	case len(p) < 2 || p[0] != '{' || len(bytes.TrimSpace(p[1:len(p)-1])) == 0:
		line = append(append(append(line, `,"params":{`...), meta...), '}')
	default:
		line = append(append(append(line, `,"params":{`...), meta...), ',')
		line = append(line, p[1:]...)
	}
	return append(line, '}')
}

func (c *Client) call(ctx context.Context, method string, params json.RawMessage, meta []byte, cancelNotice bool) (json.RawMessage, error) {
	id := strconv.FormatInt(c.nextID.Add(1), 10)
	line := request(id, method, params, meta)
	if c.serial {
		return c.roundTrip(ctx, id, line)
	}
	ch := make(chan reply, 1)
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return nil, c.err
	}
	c.pending[id] = ch
	c.mu.Unlock()
	if err := c.conn.WriteMessage(ctx, line); err != nil {
		c.retire(id)
		return nil, err
	}
	select {
	case r := <-ch:
		return r.result, r.err
	case <-ctx.Done():
		if !c.retire(id) { // the reply came first
			r := <-ch
			return r.result, r.err
		}
		if cancelNotice {
			nctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_ = c.conn.WriteMessage(nctx, []byte(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":`+id+`}}`))
			cancel()
		}
		return nil, ctx.Err()
	}
}

// retire forgets a pending call; false if it was not pending (answered).
func (c *Client) retire(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.pending[id]
	delete(c.pending, id)
	return ok
}

// roundTrip is a Serial call: write, then read until the reply.
func (c *Client) roundTrip(ctx context.Context, id string, line []byte) (json.RawMessage, error) {
	c.serialMu.Lock()
	defer c.serialMu.Unlock()
	if err := c.conn.WriteMessage(ctx, line); err != nil {
		return nil, err
	}
	for {
		msg, err := c.conn.ReadMessage()
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrClosed, err)
		}
		m, err := jsonrpc.Decode(msg)
		if err != nil {
			continue
		}
		switch m.Kind() {
		case jsonrpc.KindRequest:
			_ = c.conn.WriteMessage(ctx, answer(m))
		case jsonrpc.KindResponse:
			if m.ID.String() == id {
				return result(m)
			}
		}
	}
}

// read is the pipelined client's reader: replies to their callers,
// requests answered, notifications dropped. When the stream ends every
// pending call fails.
func (c *Client) read() {
	defer c.readers.Done()
	for {
		msg, err := c.conn.ReadMessage()
		if err != nil {
			c.mu.Lock()
			c.err = fmt.Errorf("%w: %w", ErrClosed, err)
			for id, ch := range c.pending {
				ch <- reply{err: c.err}
				delete(c.pending, id)
			}
			c.mu.Unlock()
			return
		}
		m, err := jsonrpc.Decode(msg)
		if err != nil {
			continue
		}
		switch m.Kind() {
		case jsonrpc.KindRequest:
			// Not from the reader: a server that stopped reading its
			// input while it writes would block it.
			c.readers.Add(1)
			go func() {
				defer c.readers.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = c.conn.WriteMessage(ctx, answer(m))
			}()
		case jsonrpc.KindResponse:
			id := m.ID.String()
			c.mu.Lock()
			ch, ok := c.pending[id]
			delete(c.pending, id)
			c.mu.Unlock()
			if ok {
				res, err := result(m)
				ch <- reply{result: res, err: err}
			}
		}
	}
}

// answer is the reply to a server's request: {} to ping, else -32601.
func answer(m *jsonrpc.Message) []byte {
	var line []byte
	if m.Method == "ping" {
		line, _ = jsonrpc.EncodeResult(m.ID, json.RawMessage(`{}`))
	} else {
		line, _ = jsonrpc.EncodeError(m.ID, jsonrpc.NewError(jsonrpc.CodeMethodNotFound, "rpcclient: %s is not supported", m.Method))
	}
	return line
}

func result(m *jsonrpc.Message) (json.RawMessage, error) {
	if m.Error != nil {
		return nil, m.Error
	}
	return m.Result, nil
}

// Close closes the stream and waits for the reader. Calls in flight fail
// with ErrClosed.
func (c *Client) Close() error {
	var err error
	c.closeOnce.Do(func() {
		err = c.conn.Close()
		c.readers.Wait()
	})
	return err
}
