package gateway

import (
	"context"
	"log/slog"
	"sync"
)

// eventQueue hands events to the EventSink on a goroutine of its own, in the
// order they were queued. Emitters never wait on the sink and the sink runs
// with no gateway lock held, so it may call back into the gateway
// (ListTools, Servers, even a call that waits for a server to come up).
// Events are pushed under the lock that orders them. After close, events are
// refused: nothing reaches a sink once its gateway is closed (a policy swap
// during shutdown, say). HandleEvent should return quickly: server
// notifications beyond maxQueuedEvents waiting are dropped and counted (a
// server flooding notifications must not grow gw's memory); catalog and
// status events are never dropped. Audit records share the notifications'
// bound: a sink that cannot keep up with the calls must not grow gw's memory
// either.
type eventQueue struct {
	sink    EventSink
	log     *slog.Logger
	dropped int // guarded by mu

	mu     sync.Mutex
	queue  []Event
	closed bool
	wake   chan struct{} // buffered 1
	done   chan struct{} // closed when run returns
}

// maxQueuedEvents bounds the server notifications waiting for the sink.
const maxQueuedEvents = 1 << 16

func newEventQueue(sink EventSink, log *slog.Logger) *eventQueue {
	q := &eventQueue{sink: sink, log: log, wake: make(chan struct{}, 1), done: make(chan struct{})}
	if sink == nil {
		close(q.done)
		return q
	}
	go q.run()
	return q
}

// push queues e. It is cheap and may be called with gateway locks held.
func (q *eventQueue) push(e Event) {
	if q.sink == nil {
		return
	}
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	if (e.Kind == EventServerNotification || e.Kind == EventAudit) && len(q.queue) >= maxQueuedEvents {
		q.dropped++
		if n := q.dropped; n&(n-1) == 0 { // log at 1, 2, 4, 8…
			q.log.Warn("event queue full; dropping server notifications and audit records", "server", e.Server, "method", e.Method, "dropped", n)
		}
		q.mu.Unlock()
		return
	}
	q.queue = append(q.queue, e)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// run delivers until close, and then what was queued before it.
func (q *eventQueue) run() {
	defer close(q.done)
	for {
		q.mu.Lock()
		batch, closed := q.queue, q.closed
		q.queue = nil
		q.mu.Unlock()
		for _, e := range batch {
			if e.flushed != nil {
				close(e.flushed)
				continue
			}
			q.sink.HandleEvent(e)
		}
		if closed && len(batch) == 0 {
			return
		}
		if len(batch) == 0 {
			<-q.wake
		}
	}
}

// flush waits until the events pushed before it have been delivered.
func (q *eventQueue) flush(ctx context.Context) error {
	if q.sink == nil {
		return nil
	}
	marker := make(chan struct{})
	q.push(Event{flushed: marker})
	select {
	case <-marker:
		return nil
	case <-q.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// close refuses further events and waits until those already queued have
// been delivered.
func (q *eventQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	<-q.done
}
