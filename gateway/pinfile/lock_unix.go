//go:build unix

package pinfile

import (
	"context"
	"errors"
	"os"
	"syscall"
	"time"
)

// flock is syscall.Flock; a test stands in a file system without flock.
var flock = syscall.Flock

// openNoFollow keeps the lock file from being a symbolic link someone
// planted to have gw create or lock a file elsewhere.
const openNoFollow = syscall.O_NOFOLLOW

// lockFile takes f's exclusive advisory lock, waiting (by polling, so ctx
// can end the wait) while another process or Store holds it. Writes hold
// it for milliseconds.
func lockFile(ctx context.Context, f *os.File) error {
	wait := time.Millisecond
	for {
		err := flockNB(f)
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return err
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(wait):
		}
		wait = min(2*wait, 50*time.Millisecond)
	}
}

// tryLock takes f's lock and releases it, without waiting: nil when the lock
// works, held by another or not.
func tryLock(f *os.File) error {
	err := flockNB(f)
	switch {
	case err == nil:
		unlockFile(f)
		return nil
	case errors.Is(err, syscall.EWOULDBLOCK):
		return nil
	}
	return err
}

// flockNB tries f's exclusive lock once, without waiting (EINTR retried).
func flockNB(f *os.File) error {
	for {
		err := flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

func unlockFile(f *os.File) { _ = flock(int(f.Fd()), syscall.LOCK_UN) }

// linked reports whether a file still has a name: a lock file removed while
// open has none, and its lock excludes no one who opens the path now.
func linked(fi os.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return !ok || st.Nlink > 0
}
