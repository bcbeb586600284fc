// Package workers runs tasks on goroutines that it keeps between tasks.
//
// A request served on a goroutine of its own starts on a small stack and grows it, copying it
// frame by frame, as the call path deepens: on every request (a tenth of the NATS face's CPU at
// 16 callers). A worker parked between tasks keeps the stack it grew, and handing it a task costs
// what starting a goroutine does: one wake-up. The worker that finished last takes the next task
// (last in, first out), so that under light load one warm goroutine serves every call, and the
// workers a burst left idle end after IdleTime.
package workers

import (
	"sync"
	"time"
)

// IdleTime is how long a worker waits for a task before it ends.
const IdleTime = 2 * time.Second

// Pool runs its function on each task given to Go, on an idle worker or a new one. The caller
// bounds how many tasks run at once (the faces admit a bounded number of requests); the pool
// keeps at most max workers, and should a task find them all busy (a worker past its task is on
// its way back), it runs on a goroutine of its own that ends with it.
type Pool[T any] struct {
	run      func(T)
	max      int
	idleTime time.Duration

	mu       sync.Mutex
	idle     []idleWorker[T] // the last to finish on top
	n        int             // workers kept
	trimming bool            // the trimmer runs
	closed   bool
	quit     chan struct{} // closed by Close: the trimmer returns
	wg       sync.WaitGroup
}

type idleWorker[T any] struct {
	in    chan T // buffered: Go never waits for the worker
	since time.Time
}

// New returns a pool of at most size workers (at least 1) that run run.
func New[T any](size int, run func(T)) *Pool[T] {
	return &Pool[T]{run: run, max: max(size, 1), idleTime: IdleTime, quit: make(chan struct{})}
}

// Go runs run(t) on a worker. It never blocks. It must not be called once Close has begun.
func (p *Pool[T]) Go(t T) {
	p.mu.Lock()
	if k := len(p.idle); k > 0 {
		in := p.idle[k-1].in
		p.idle = p.idle[:k-1]
		p.mu.Unlock()
		in <- t
		return
	}
	keep := p.n < p.max
	if keep {
		p.n++
	}
	p.wg.Add(1)
	p.mu.Unlock()
	if keep {
		go p.worker(make(chan T, 1), t)
		return
	}
	go func() {
		defer p.wg.Done()
		p.run(t)
	}()
}

func (p *Pool[T]) worker(in chan T, t T) {
	defer p.wg.Done()
	for {
		p.run(t)
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return
		}
		p.idle = append(p.idle, idleWorker[T]{in: in, since: time.Now()})
		if !p.trimming {
			p.trimming = true
			p.wg.Add(1)
			go p.trim()
		}
		p.mu.Unlock()
		var ok bool
		if t, ok = <-in; !ok { // trimmed, or closed
			return
		}
	}
}

// trim ends the workers idle for longer than idleTime, the longest idle first, while any is
// idle; it returns when none is, or at Close.
func (p *Pool[T]) trim() {
	defer p.wg.Done()
	tick := time.NewTicker(p.idleTime / 2)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
		case <-p.quit:
			return
		}
		p.mu.Lock()
		cut, now := 0, time.Now()
		for cut < len(p.idle) && now.Sub(p.idle[cut].since) >= p.idleTime {
			close(p.idle[cut].in)
			cut++
		}
		p.idle = append(p.idle[:0], p.idle[cut:]...)
		p.n -= cut
		done := len(p.idle) == 0
		if done {
			p.trimming = false
		}
		p.mu.Unlock()
		if done {
			return
		}
	}
}

// Workers is how many workers the pool keeps, idle or busy.
func (p *Pool[T]) Workers() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

// Close ends the idle workers, and the busy ones once they finish their tasks, and waits for them.
func (p *Pool[T]) Close() {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		for _, w := range p.idle {
			close(w.in)
		}
		p.idle = nil
		close(p.quit)
	}
	p.mu.Unlock()
	p.wg.Wait()
}
