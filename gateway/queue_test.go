package gateway

import (
	"slices"
	"sync"
	"testing"
	"testing/synctest"
)

// recorder is a deliver func that records what it was given and, while
// hold is set, blocks each delivery until release.
type recorder struct {
	mu      sync.Mutex
	got     []int
	hold    chan struct{}
	entered chan int
}

func (r *recorder) deliver(v int) {
	if r.hold != nil {
		r.entered <- v
		<-r.hold
	}
	r.mu.Lock()
	r.got = append(r.got, v)
	r.mu.Unlock()
}

func (r *recorder) delivered() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// TestQueueOrder: items are delivered in push order, including those pushed
// after the goroutine went idle (a wake-up each time), and nothing after
// close.
func TestQueueOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &recorder{}
		q := newQueue(0, r.deliver)
		q.start()
		q.start() // once only: a second goroutine would deliver twice
		var want []int
		for i := range 100 {
			q.push(i)
			want = append(want, i)
			if i%10 == 0 {
				synctest.Wait() // run goes idle and must be woken again
				if got := r.delivered(); !slices.Equal(got, want) {
					t.Fatalf("after push %d: delivered %v, want %v", i, got, want)
				}
			}
		}
		q.close()
		if got := r.delivered(); !slices.Equal(got, want) {
			t.Fatalf("close returned with %v delivered, want %v", got, want)
		}
		q.push(-1)
		q.close() // idempotent
		synctest.Wait()
		if got := r.delivered(); len(got) != len(want) {
			t.Fatalf("a push after close was delivered: %v", got[len(want):])
		}
	})
}

// TestQueueBeforeStart: pushes before start wait for it; a queue closed
// before it started drops them, does not block, and never starts.
func TestQueueBeforeStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &recorder{}
		q := newQueue(0, r.deliver)
		q.push(1)
		q.push(2)
		synctest.Wait()
		if got := r.delivered(); len(got) != 0 {
			t.Fatalf("delivered %v before start", got)
		}
		q.start()
		q.close()
		if got := r.delivered(); !slices.Equal(got, []int{1, 2}) {
			t.Fatalf("delivered %v, want [1 2]", got)
		}

		r = &recorder{}
		q = newQueue(0, r.deliver)
		q.push(1)
		q.close()
		q.close()
		select {
		case <-q.done:
		default:
			t.Fatal("done is open after closing a queue that never started")
		}
		q.start()
		q.push(2)
		synctest.Wait()
		if got := r.delivered(); len(got) != 0 {
			t.Fatalf("a queue closed before start delivered %v", got)
		}
	})
}

// TestQueueBound: a push never waits on a blocked deliver; pushOrDrop
// refuses once limit items wait and counts what it refused, while push still
// takes its item; close waits for the queue to drain.
func TestQueueBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &recorder{hold: make(chan struct{}), entered: make(chan int, 16)}
		q := newQueue(3, r.deliver)
		q.start()
		q.push(0)
		<-r.entered // run holds item 0: the queue is empty again
		for i := 1; i <= 3; i++ {
			if n := q.pushOrDrop(i); n != 0 {
				t.Fatalf("pushOrDrop %d dropped it (%d) below the limit", i, n)
			}
		}
		for i, want := range []int{1, 2} {
			if n := q.pushOrDrop(10 + i); n != want {
				t.Fatalf("pushOrDrop at the limit returned %d, want %d", n, want)
			}
		}
		q.push(4) // push ignores the limit
		closed := make(chan struct{})
		go func() {
			q.close()
			close(closed)
		}()
		synctest.Wait()
		select {
		case <-closed:
			t.Fatal("close returned before the queue drained")
		default:
		}
		if n := q.pushOrDrop(5); n != 0 {
			t.Fatalf("pushOrDrop after close returned %d; want 0 (refused, not dropped)", n)
		}
		close(r.hold)
		<-closed
		if got, want := r.delivered(), []int{0, 1, 2, 3, 4}; !slices.Equal(got, want) {
			t.Fatalf("delivered %v, want %v", got, want)
		}
	})
}
