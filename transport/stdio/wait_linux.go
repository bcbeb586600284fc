//go:build linux

package stdio

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// waitExitedNoReap blocks until the process pid, a child not yet reaped, has exited, without
// reaping it (waitid with WNOWAIT). While the zombie exists its pid, which is also the id of its
// process group, cannot be reused, so the group can still be signalled safely. It reports false
// if waiting failed; the caller then reaps first and signals the group after, accepting a small
// pid-reuse race.
//
// It waits on a pidfd through Go's poller, which holds no thread while the child runs: a thousand
// idle servers cost no thread each. Where pidfds cannot be polled (a kernel before 5.4, a seccomp
// profile that refuses pidfd_open) it blocks in waitid, on a thread of its own for as long.
func waitExitedNoReap(pid int) bool {
	if pollExited(pid) == nil {
		return true
	}
	var info unix.Siginfo
	for {
		switch err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil); err {
		case nil:
			return true
		case unix.EINTR:
		default:
			return false
		}
	}
}

// errNotPollable: the pidfd could not join the poller.
var errNotPollable = errors.New("pidfd not pollable")

// pollExited waits for pid to exit on a pidfd in Go's poller. An error means it could not wait
// that way, and the caller should wait another.
func pollExited(pid int) error {
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), "pidfd") // non-blocking: Go's poller watches it
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	// The poller wakes Read when the child has exited (the pidfd turns readable); waitid, which
	// does not reap with WNOWAIT, is the answer each time Read asks.
	var waitErr error
	err = rc.Read(func(fd uintptr) bool {
		var info unix.Siginfo
		for {
			waitErr = unix.Waitid(unix.P_PIDFD, int(fd), &info, unix.WEXITED|unix.WNOWAIT|unix.WNOHANG, nil)
			if waitErr != unix.EINTR {
				break
			}
		}
		running := waitErr == nil && info.Signo == 0 // WNOHANG leaves info zero while it runs
		return !running
	})
	switch {
	case err != nil:
		return errNotPollable
	case waitErr != nil:
		return waitErr // P_PIDFD came a release after pidfd_open (5.4, 5.3)
	}
	return nil
}
