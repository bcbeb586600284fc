package rpcclient_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/gwmcp/gw/internal/importcheck"
	"github.com/gwmcp/gw/internal/mcptest"
	"github.com/gwmcp/gw/internal/rpcclient"
	"github.com/gwmcp/gw/transport/jsonrpc"
)

func TestImports(t *testing.T) {
	importcheck.Only(t, "github.com/gwmcp/gw/transport/jsonrpc")
}

// pipeConn is a Conn to an in-process mcptest server.
type pipeConn struct {
	mu   sync.Mutex
	w    *io.PipeWriter
	r    *bufio.Reader
	rc   *io.PipeReader
	done chan struct{}
}

func (p *pipeConn) WriteMessage(_ context.Context, msg []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, err := p.w.Write(append(msg[:len(msg):len(msg)], '\n'))
	return err
}

func (p *pipeConn) ReadMessage() ([]byte, error) {
	line, err := p.r.ReadBytes('\n')
	if err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(line, []byte("\n")), nil
}

func (p *pipeConn) Close() error {
	_ = p.w.Close()
	_ = p.rc.Close()
	<-p.done
	return nil
}

func serve(t *testing.T, o mcptest.Options) *pipeConn {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	p := &pipeConn{w: inW, r: bufio.NewReader(outR), rc: outR, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		_ = mcptest.Serve(inR, outW, o)
	}()
	return p
}

func open(t *testing.T, o mcptest.Options, co rpcclient.Options) *rpcclient.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := rpcclient.Open(ctx, serve(t, o), co)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func echo(t *testing.T, c *rpcclient.Client, text string) {
	t.Helper()
	params, _ := json.Marshal(map[string]any{"name": "echo", "arguments": map[string]string{"text": text}})
	res, err := c.Call(context.Background(), "tools/call", params)
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		StructuredContent struct{ Text string } `json:"structuredContent"`
	}
	if err := json.Unmarshal(res, &r); err != nil || r.StructuredContent.Text != text {
		t.Fatalf("echo %q: %v %s", text, err, res)
	}
}

func TestEras(t *testing.T) {
	for _, tt := range []struct {
		server mcptest.Era
		force  rpcclient.Era
		want   rpcclient.Era
	}{
		{mcptest.EraLegacy, rpcclient.EraAuto, rpcclient.EraLegacy},
		{mcptest.EraModern, rpcclient.EraAuto, rpcclient.EraModern},
		{mcptest.EraDual, rpcclient.EraAuto, rpcclient.EraModern},
		{mcptest.EraDual, rpcclient.EraLegacy, rpcclient.EraLegacy},
		{mcptest.EraModern, rpcclient.EraModern, rpcclient.EraModern},
	} {
		for _, serial := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/%s/serial=%v", tt.server, tt.force, serial), func(t *testing.T) {
				c := open(t, mcptest.Options{Era: tt.server}, rpcclient.Options{Era: tt.force, Serial: serial})
				if c.Era() != tt.want {
					t.Fatalf("era %s, want %s", c.Era(), tt.want)
				}
				echo(t, c, "hello")
				echo(t, c, "again")
			})
		}
	}
}

// A legacy server's refusal of a forced modern session is an error.
func TestModernRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if c, err := rpcclient.Open(ctx, serve(t, mcptest.Options{}), rpcclient.Options{Era: rpcclient.EraModern}); err == nil {
		_ = c.Close()
		t.Fatal("a legacy server opened as modern")
	}
}

func TestPipelined(t *testing.T) {
	c := open(t, mcptest.Options{Era: mcptest.EraModern}, rpcclient.Options{})
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 10 {
				echo(t, c, fmt.Sprintf("%d-%d", i, j))
			}
		}()
	}
	wg.Wait()
}

func TestErrorsAndCancel(t *testing.T) {
	c := open(t, mcptest.Options{}, rpcclient.Options{})
	_, err := c.Call(context.Background(), "tools/call", json.RawMessage(`{"name":"error_tool","arguments":{}}`))
	var rpcErr *jsonrpc.Error
	if !errors.As(err, &rpcErr) || rpcErr.Code != jsonrpc.CodeInternalError {
		t.Fatalf("error_tool: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := c.Call(ctx, "tools/call", json.RawMessage(`{"name":"never","arguments":{}}`)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("never: %v", err)
	}
	echo(t, c, "still there")
	_ = c.Close()
	if _, err := c.Call(context.Background(), "tools/list", nil); !errors.Is(err, rpcclient.ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}
