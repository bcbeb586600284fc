package workers

import (
	"sync"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"
)

func TestPoolReusesWorkers(t *testing.T) {
	defer goleak.VerifyNone(t)
	var ran atomic.Int64
	done := make(chan struct{})
	p := New(4, func(int) { ran.Add(1); done <- struct{}{} })
	for range 100 { // one at a time: the worker that ran the last one takes the next
		p.Go(1)
		<-done
	}
	p.Close()
	if ran.Load() != 100 {
		t.Fatalf("ran %d tasks, want 100", ran.Load())
	}
	// A worker that finished may not be parked yet when the next task comes: a second one then
	// starts. More than two would mean workers are not reused.
	if n := p.Workers(); n > 2 {
		t.Errorf("%d workers for tasks that ran one at a time", n)
	}
}

func TestPoolBoundsWorkers(t *testing.T) {
	defer goleak.VerifyNone(t)
	const max = 3
	var running, peak atomic.Int64
	release := make(chan struct{})
	p := New(max, func(int) {
		n := running.Add(1)
		for {
			old := peak.Load()
			if n <= old || peak.CompareAndSwap(old, n) {
				break
			}
		}
		<-release
		running.Add(-1)
	})
	var wg sync.WaitGroup
	for range 10 { // more tasks than workers: the rest wait for a worker
		wg.Add(1)
		go func() { defer wg.Done(); p.Go(1) }()
	}
	for range 10 {
		release <- struct{}{}
	}
	wg.Wait()
	p.Close()
	if peak.Load() > max || p.Workers() > max {
		t.Errorf("peak %d running, %d workers; want at most %d", peak.Load(), p.Workers(), max)
	}
}
