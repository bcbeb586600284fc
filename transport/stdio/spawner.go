//go:build unix

package stdio

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// A spawner is a goroutine that starts children, locked to its OS thread. The parent-death
// signal fires when the thread that started a child ends (see "Containment" in the package
// comment), and Go ends a locked thread only when its goroutine returns: a spawner returns only
// once every child it started has been reaped, so no child outlives its thread while gw runs.
// A few threads serve every child, rather than one thread per child, created at its start.
type spawner struct {
	mu   sync.Mutex
	reqs chan spawnRequest // to the running spawner goroutine; nil when none runs
	live int               // starts under way and started children not yet reaped
}

type spawnRequest struct {
	start func() error // runs on the spawner's thread
	done  chan<- error
}

// spawners are the process's spawners: threads are per process, like the children they start.
// Go lets forks from different threads overlap, and starting a child is mostly the kernel's
// work in the child until its exec, so a start queues behind at most a few others: one spawner
// per CPU, up to 8.
var spawners = sync.OnceValue(func() []spawner {
	return make([]spawner, min(max(runtime.GOMAXPROCS(0), 2), 8))
})

// nextSpawner spreads starts over the spawners in turn.
var nextSpawner atomic.Uint64

// spawn runs start on one of the spawners' threads and returns that spawner, to be released
// once the child start started has been reaped, or start's error.
func spawn(start func() error) (*spawner, error) {
	all := spawners()
	s := &all[nextSpawner.Add(1)%uint64(len(all))]
	if err := s.do(start); err != nil {
		return nil, err
	}
	return s, nil
}

// do runs start on the spawner's thread and returns its error. When start succeeded, a child is
// running and the caller calls release once it has reaped it; when it failed, do has released.
func (s *spawner) do(start func() error) error {
	s.mu.Lock()
	s.live++
	if s.reqs == nil {
		s.reqs = make(chan spawnRequest)
		go serveSpawns(s.reqs)
	}
	reqs := s.reqs
	s.mu.Unlock()

	done := make(chan error, 1)
	reqs <- spawnRequest{start: start, done: done}
	err := <-done
	if err != nil {
		s.release()
	}
	return err
}

// release says that a child do started has been reaped. The last release stops the spawner
// goroutine, and its thread with it: nothing is left that the thread's end could signal.
func (s *spawner) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.live--
	if s.live == 0 {
		close(s.reqs)
		s.reqs = nil
	}
}

// serveSpawns is the spawner goroutine. It never unlocks its thread, so the thread ends with it.
func serveSpawns(reqs <-chan spawnRequest) {
	runtime.LockOSThread()
	for r := range reqs {
		r.done <- r.start()
	}
}
