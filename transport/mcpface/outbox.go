package mcpface

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"

	"github.com/gwmcp/gw/transport/jsonrpc"
)

// Outbox tracks the requests a face sends its client on behalf of servers
// (sampling, elicitation, roots): ids "gw-1", "gw-2", … and one pending
// response each. Every binding of the protocol (a stream, an HTTP session)
// keeps one. Its methods are safe for concurrent use; the zero value is
// ready.
type Outbox struct {
	mu      sync.Mutex
	next    int64
	pending map[string]chan *jsonrpc.Message
	closed  bool
}

// Ask sends method with params to the client, writing the request line with
// send, and waits for the client's response, ctx, or Close (then closedErr).
// When ctx ends first the client is sent notifications/cancelled through
// send too. A JSON-RPC error from the client comes back as *jsonrpc.Error.
func (o *Outbox) Ask(ctx context.Context, method string, params json.RawMessage, send func(line []byte) error, closedErr error) (json.RawMessage, error) {
	ch := make(chan *jsonrpc.Message, 1)
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return nil, closedErr
	}
	if o.pending == nil {
		o.pending = map[string]chan *jsonrpc.Message{}
	}
	o.next++
	id := jsonrpc.StringID("gw-" + strconv.FormatInt(o.next, 10))
	o.pending[id.String()] = ch
	o.mu.Unlock()
	retire := func() {
		o.mu.Lock()
		delete(o.pending, id.String())
		o.mu.Unlock()
	}
	line, err := jsonrpc.EncodeRequest(id, method, params)
	if err == nil {
		err = send(line)
	}
	if err != nil {
		retire()
		return nil, err
	}
	select {
	case msg, ok := <-ch:
		if !ok {
			return nil, closedErr
		}
		if msg.Error != nil {
			return nil, msg.Error
		}
		return msg.Result, nil
	case <-ctx.Done():
		retire()
		if note, err := jsonrpc.EncodeNotification(NotifCancelled, map[string]any{"requestId": id, "reason": ctx.Err().Error()}); err == nil {
			_ = send(note)
		}
		return nil, ctx.Err()
	}
}

// Deliver hands the client's response to the Ask waiting for it and reports
// whether one was.
func (o *Outbox) Deliver(msg *jsonrpc.Message) bool {
	o.mu.Lock()
	ch := o.pending[msg.ID.String()]
	delete(o.pending, msg.ID.String())
	o.mu.Unlock()
	if ch == nil {
		return false
	}
	ch <- msg // buffered 1, and retired: never blocks
	return true
}

// Close fails every waiting Ask and refuses new ones.
func (o *Outbox) Close() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.closed = true
	for id, ch := range o.pending {
		delete(o.pending, id)
		close(ch)
	}
}
