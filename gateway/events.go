package gateway

import (
	"context"
	"log/slog"
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
	sink EventSink
	log  *slog.Logger
	q    *queue[Event]
}

// maxQueuedEvents bounds the server notifications waiting for the sink.
const maxQueuedEvents = 1 << 16

func newEventQueue(sink EventSink, log *slog.Logger) *eventQueue {
	q := &eventQueue{sink: sink, log: log}
	q.q = newQueue(maxQueuedEvents, func(e Event) {
		if e.flushed != nil {
			close(e.flushed)
			return
		}
		sink.HandleEvent(e)
	})
	if sink != nil {
		q.q.start()
	}
	return q
}

// push queues e. It is cheap and may be called with gateway locks held.
func (q *eventQueue) push(e Event) {
	if q.sink == nil {
		return
	}
	if e.Kind != EventServerNotification && e.Kind != EventAudit {
		q.q.push(e)
		return
	}
	if n := q.q.pushOrDrop(e); n > 0 && n&(n-1) == 0 { // log at 1, 2, 4, 8…
		q.log.Warn("event queue full; dropping server notifications and audit records", "server", e.Server, "method", e.Method, "dropped", n)
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
	case <-q.q.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// close refuses further events and waits until those already queued have
// been delivered.
func (q *eventQueue) close() { q.q.close() }
