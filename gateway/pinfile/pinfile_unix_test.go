//go:build unix

package pinfile_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/gwmcp/gw/gateway/pinfile"
)

// holdLock takes path's lock on a descriptor of its own, as another process
// would, until the test ends or release is called.
func holdLock(t *testing.T, path string) (release func()) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	release = func() { _ = f.Close() }
	t.Cleanup(release)
	return release
}

// mustWait: a write that must wait for a lock held elsewhere ends with its
// context.
func mustWait(t *testing.T, s *pinfile.Store, what string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := s.Create(ctx, pin("alpha", "x", "sha256:x")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("%s: Create while the lock is held: %v; want it to wait", what, err)
	}
}

// TestLockFileReplaced: a Store whose lock file was removed while it held
// it open (a user tidying the directory) locks the file now at the path, as
// every other process does, and not the removed one, which would exclude
// none of them.
func TestLockFileReplaced(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pins.json")
	s := open(t, path)
	if err := s.Create(context.Background(), pin("alpha", "search", "sha256:1")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path + ".lock"); err != nil {
		t.Fatal(err)
	}
	release := holdLock(t, path+".lock") // another process's new lock file
	mustWait(t, s, "lock file removed")
	release()
	if err := s.Create(context.Background(), pin("alpha", "echo", "sha256:2")); err != nil {
		t.Fatal(err)
	}
	if pins, err := s.Pins(); err != nil || len(pins) != 2 {
		t.Fatalf("pins %v %v", pins, err)
	}
}

// TestDeferLock: with DeferLock, Open and reads make no directory and no
// lock file; the first write makes them.
func TestDeferLock(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	path := filepath.Join(dir, "pins.json")
	s, err := pinfile.Open(path, pinfile.Options{DeferLock: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if pins, err := s.Pins(); err != nil || len(pins) != 0 {
		t.Fatalf("pins %v %v", pins, err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("directory after a read-only use: %v", err)
	}
	if err := s.Create(context.Background(), pin("alpha", "search", "sha256:1")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + ".lock"); err != nil {
		t.Fatalf("no lock file after a write: %v", err)
	}

	// An existing file: reading it makes no lock file either.
	other := filepath.Join(t.TempDir(), "pins.json")
	if err := os.WriteFile(other, []byte(`{"version":1,"pins":[],"changes":[]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	s2, err := pinfile.Open(other, pinfile.Options{DeferLock: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if _, err := s2.Changes(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(other + ".lock"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("lock file after a read-only use: %v", err)
	}
}
