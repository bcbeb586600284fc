// Package workers runs tasks on goroutines that it keeps between tasks.
//
// A request served on a goroutine of its own starts on a small stack and grows it, copying it
// frame by frame, as the call path deepens: on every request (a tenth of the NATS face's CPU at
// 16 callers). A worker parked between tasks keeps the stack it grew, and handing it a task costs
// what starting a goroutine does: one wake-up.
package workers

import (
	"sync"
	"sync/atomic"
)

// Pool runs its function on each task given to Go, on an idle worker or a new one. Workers wait
// for the next task until Close. The caller bounds how many tasks run at once (the faces admit a
// bounded number of requests); the pool holds at most max workers, so once that many exist a task
// waits for one to come free, which a bounded caller makes brief: a worker past its task is on its
// way back.
type Pool[T any] struct {
	run  func(T)
	max  int64
	n    atomic.Int64
	work chan T
	quit chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

// New returns a pool of at most size workers (at least 1) that run run.
func New[T any](size int, run func(T)) *Pool[T] {
	return &Pool[T]{run: run, max: int64(max(size, 1)), work: make(chan T), quit: make(chan struct{})}
}

// Go runs run(t) on a worker. It must not be called once Close has begun.
func (p *Pool[T]) Go(t T) {
	select {
	case p.work <- t: // an idle worker took it
		return
	default:
	}
	if p.n.Add(1) <= p.max {
		p.wg.Add(1)
		go p.worker(t)
		return
	}
	p.n.Add(-1)
	p.work <- t
}

func (p *Pool[T]) worker(t T) {
	defer p.wg.Done()
	for {
		p.run(t)
		select {
		case t = <-p.work:
		case <-p.quit:
			return
		}
	}
}

// Workers is how many workers exist, idle or busy.
func (p *Pool[T]) Workers() int { return int(p.n.Load()) }

// Close ends the workers once they finish their tasks, and waits for them.
func (p *Pool[T]) Close() {
	p.once.Do(func() { close(p.quit) })
	p.wg.Wait()
}
