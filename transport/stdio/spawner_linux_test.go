//go:build linux

package stdio

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// threads is the number of this process's OS threads.
func threads(t *testing.T) int {
	t.Helper()
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := bytes.Cut(status, []byte("\nThreads:\t"))
	line, _, _ := bytes.Cut(rest, []byte("\n"))
	n, err := strconv.Atoi(string(line))
	if err != nil {
		t.Fatalf("no thread count in /proc/self/status: %v", err)
	}
	return n
}

// TestServersCostNoThread starts 100 servers at once: they share the spawners' threads, and their
// waiters wait on the poller, so the process gains a handful of threads, not one per server.
// Once every server is closed the spawners and their threads are gone.
func TestServersCostNoThread(t *testing.T) {
	const n = 100
	before := threads(t)
	procs := make([]*Process, n)
	var wg sync.WaitGroup
	for i := range procs {
		wg.Go(func() {
			p, err := Start(Config{Name: fmt.Sprintf("cat%d", i), Command: "cat", Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Error(err)
				return
			}
			procs[i] = p
		})
	}
	wg.Wait()
	during := threads(t)
	for _, p := range procs {
		if p != nil {
			wg.Go(func() { _ = p.Close() })
		}
	}
	wg.Wait()
	t.Logf("%d threads before, %d with %d servers running", before, during, n)
	if during-before >= n/4 {
		t.Errorf("%d threads before starting %d servers, %d with them running", before, n, during)
	}
	for i := range spawners() {
		s := &spawners()[i]
		s.mu.Lock()
		live, running := s.live, s.reqs != nil
		s.mu.Unlock()
		if live != 0 || running {
			t.Errorf("after every server closed, spawner %d: %d children counted live, running %v", i, live, running)
		}
	}
}

// TestPollExitedLeavesTheZombie waits for a child on its pidfd: the wait returns once the child
// has exited, and the child is still there to reap (its pid cannot be reused yet).
func TestPollExitedLeavesTheZombie(t *testing.T) {
	cmd := exec.Command("sh", "-c", "sleep 0.2; exit 3")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if err := pollExited(cmd.Process.Pid); err != nil {
		t.Fatalf("pollExited: %v", err)
	}
	var info unix.Siginfo
	if err := unix.Waitid(unix.P_PID, cmd.Process.Pid, &info, unix.WEXITED|unix.WNOWAIT|unix.WNOHANG, nil); err != nil || info.Signo == 0 {
		t.Errorf("after pollExited the child is not a zombie to reap (err %v, signo %d)", err, info.Signo)
	}
	if err := cmd.Wait(); cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 3 {
		t.Errorf("Wait = %v, want exit status 3", err)
	}
}
