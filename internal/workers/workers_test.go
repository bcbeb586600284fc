package workers

import (
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

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

// The worker that finished last takes the next task: under light load one warm goroutine serves.
func TestPoolLastInFirstOut(t *testing.T) {
	defer goleak.VerifyNone(t)
	type task struct {
		hold chan struct{}
		id   chan int64
	}
	p := New(4, func(tk task) {
		<-tk.hold
		tk.id <- goid()
	})
	defer p.Close()
	// Three at once make three workers; they finish in the order 0, 1, 2.
	tasks := make([]task, 3)
	for i := range tasks {
		tasks[i] = task{hold: make(chan struct{}), id: make(chan int64, 1)}
		p.Go(tasks[i])
	}
	ids := make([]int64, 3)
	for i, tk := range tasks {
		close(tk.hold)
		ids[i] = <-tk.id
		for p.idleCount() != i+1 { // parked
			runtime.Gosched()
		}
	}
	tk := task{hold: make(chan struct{}), id: make(chan int64, 1)}
	close(tk.hold)
	p.Go(tk)
	if got := <-tk.id; got != ids[2] {
		t.Errorf("the next task ran on worker %d; want %d, the last to finish (workers %v)", got, ids[2], ids)
	}
}

func (p *Pool[T]) idleCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle)
}

// goid is the id of the goroutine it runs on, read from runtime.Stack's header
// ("goroutine 18 [running]:"): which worker ran a task.
func goid() int64 {
	var buf [64]byte
	n := runtime.Stack(buf[:], false)
	f := strings.Fields(string(buf[:n]))
	id, _ := strconv.ParseInt(f[1], 10, 64)
	return id
}

func TestPoolBoundsWorkers(t *testing.T) {
	defer goleak.VerifyNone(t)
	const max = 3
	var running atomic.Int64
	release := make(chan struct{})
	p := New(max, func(int) {
		running.Add(1)
		<-release
	})
	for range 10 { // more at once than the pool keeps: none waits, the extra ones end with their task
		p.Go(1)
	}
	for running.Load() != 10 {
		runtime.Gosched()
	}
	if n := p.Workers(); n != max {
		t.Errorf("%d workers kept; want %d", n, max)
	}
	close(release)
	p.Close()
}

// Workers a burst left idle end after the idle time; the pool starts new ones for later tasks.
func TestPoolTrimsIdleWorkers(t *testing.T) {
	defer goleak.VerifyNone(t)
	p := New(8, func(release chan struct{}) { <-release })
	p.idleTime = 50 * time.Millisecond
	defer p.Close()
	burst := make(chan struct{})
	for range 8 {
		p.Go(burst)
	}
	close(burst)
	for p.Workers() != 0 {
		time.Sleep(10 * time.Millisecond)
	}
	after := make(chan struct{})
	close(after)
	p.Go(after)
	for p.Workers() != 0 { // the new one ends too, and with it the trimmer
		time.Sleep(10 * time.Millisecond)
	}
}
