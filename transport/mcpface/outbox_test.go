package mcpface

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gwmcp/gw/transport/jsonrpc"
)

func TestOutbox(t *testing.T) {
	var o Outbox
	var mu sync.Mutex
	var sent []string
	send := func(line []byte) error {
		mu.Lock()
		sent = append(sent, string(line))
		mu.Unlock()
		return nil
	}
	errGone := errors.New("gone")

	// Answered.
	done := make(chan error, 1)
	go func() {
		res, err := o.Ask(context.Background(), "roots/list", nil, send, errGone)
		if err == nil && string(res) != `{"roots":[]}` {
			err = errors.New("result " + string(res))
		}
		done <- err
	}()
	waitSent := func(n int) string {
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			mu.Lock()
			if len(sent) >= n {
				defer mu.Unlock()
				return sent[n-1]
			}
			mu.Unlock()
		}
		t.Fatalf("nothing sent")
		return ""
	}
	if line := waitSent(1); !strings.Contains(line, `"id":"gw-1"`) {
		t.Fatalf("request %s", line)
	}
	if o.Deliver(&jsonrpc.Message{ID: jsonrpc.StringID("gw-9")}) {
		t.Error("delivered a response nobody waits for")
	}
	if !o.Deliver(&jsonrpc.Message{ID: jsonrpc.StringID("gw-1"), Result: []byte(`{"roots":[]}`)}) {
		t.Fatal("the response found no Ask")
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// Given up: the client is told.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := o.Ask(ctx, "roots/list", nil, send, errGone); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Ask past its deadline: %v", err)
	}
	if line := waitSent(3); !strings.Contains(line, NotifCancelled) || !strings.Contains(line, `"gw-2"`) {
		t.Fatalf("after the deadline: %s", line)
	}

	// Closed: the waiting Ask fails, and so does the next.
	go func() {
		_, err := o.Ask(context.Background(), "roots/list", nil, send, errGone)
		done <- err
	}()
	waitSent(4)
	o.Close()
	if err := <-done; !errors.Is(err, errGone) {
		t.Fatalf("waiting Ask after Close: %v", err)
	}
	if _, err := o.Ask(context.Background(), "roots/list", nil, send, errGone); !errors.Is(err, errGone) {
		t.Fatalf("Ask after Close: %v", err)
	}
}
