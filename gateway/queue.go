package gateway

import "sync"

// queue hands items to deliver on a goroutine of its own, from start to
// close, in the order they were pushed: one at a time, or (newBatchQueue)
// everything queued since the last delivery at once. A push never waits
// on deliver, so it may be made under the caller's locks, and deliver runs
// with none of them held. Items pushed before start wait for it; items pushed
// after close are refused. close waits until what was queued has been
// delivered; a queue closed before it started delivers nothing.
//
// The queue grows without bound for push; pushOrDrop refuses its item once
// limit items wait, so a flood of what may be lost cannot grow memory while
// what must not be lost still gets in.
type queue[T any] struct {
	deliver func([]T)
	limit   int // pushOrDrop refuses once this many items wait

	mu      sync.Mutex
	items   []T
	dropped int // items pushOrDrop refused
	started bool
	closed  bool
	wake    chan struct{} // buffered 1: a push or close since run last looked
	done    chan struct{} // closed once nothing more will be delivered
}

func newQueue[T any](limit int, deliver func(T)) *queue[T] {
	return newBatchQueue(limit, func(batch []T) {
		for _, v := range batch {
			deliver(v)
		}
	})
}

// newBatchQueue is a queue whose deliver takes every item queued since its
// last call, never an empty batch.
func newBatchQueue[T any](limit int, deliver func([]T)) *queue[T] {
	return &queue[T]{deliver: deliver, limit: limit, wake: make(chan struct{}, 1), done: make(chan struct{})}
}

// start launches the delivering goroutine, once; not after close.
func (q *queue[T]) start() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.started && !q.closed {
		q.started = true
		go q.run()
	}
}

// push queues v unless the queue is closed.
func (q *queue[T]) push(v T) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	q.items = append(q.items, v)
	q.mu.Unlock()
	q.signal()
}

// pushOrDrop queues v unless the queue is closed or limit items wait. When it
// drops v it returns how many items it has dropped so far (for the caller to
// log), else 0.
func (q *queue[T]) pushOrDrop(v T) (dropped int) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return 0
	}
	if len(q.items) >= q.limit {
		q.dropped++
		n := q.dropped
		q.mu.Unlock()
		return n
	}
	q.items = append(q.items, v)
	q.mu.Unlock()
	q.signal()
	return 0
}

func (q *queue[T]) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// run delivers until close, and then what was queued before it.
func (q *queue[T]) run() {
	defer close(q.done)
	for {
		q.mu.Lock()
		batch, closed := q.items, q.closed
		q.items = nil
		q.mu.Unlock()
		if len(batch) > 0 {
			q.deliver(batch)
		}
		if closed && len(batch) == 0 {
			return
		}
		if len(batch) == 0 {
			<-q.wake
		}
	}
}

// close refuses further items and waits until those already queued have been
// delivered. If the queue never started, it drops them and returns at once.
// It may be called more than once.
func (q *queue[T]) close() {
	q.mu.Lock()
	wasClosed, started := q.closed, q.started
	q.closed = true
	if !started {
		q.items = nil
	}
	q.mu.Unlock()
	if !started {
		if !wasClosed {
			close(q.done)
		}
		return
	}
	q.signal()
	<-q.done
}
