//go:build unix

package pinfile_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gwmcp/gw/gateway"
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

// TestSymlinkedFile: a pins.file that is a symbolic link stays one: writes
// replace the file it points to, which the link and the target share with
// one lock file. A link to nothing is refused.
func TestSymlinkedFile(t *testing.T) {
	real, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(real, "pins.json")
	link := filepath.Join(t.TempDir(), "pins.json")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if _, err := pinfile.Open(link, pinfile.Options{}); err == nil || !strings.Contains(err.Error(), link) {
		t.Fatalf("Open of a link to nothing: %v; want an error naming it", err)
	}
	if err := os.WriteFile(target, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s := open(t, link)
	if s.Path() != target {
		t.Fatalf("Path %q; want the target %q", s.Path(), target)
	}
	if err := s.Create(context.Background(), pin("alpha", "search", "sha256:1")); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the link after a write: %v %v; want it kept", fi, err)
	}
	if b, err := os.ReadFile(target); err != nil || !strings.Contains(string(b), "sha256:1") {
		t.Fatalf("target after a write: %v %s", err, b)
	}
	holdLock(t, target+".lock") // a Store on the target writing
	mustWait(t, s, "link's Store while the target's lock is held")

	// A link to the directory, the file not made yet: resolved through it.
	dirLink := filepath.Join(t.TempDir(), "state")
	if err := os.Symlink(real, dirLink); err != nil {
		t.Fatal(err)
	}
	if s := open(t, filepath.Join(dirLink, "new.json")); s.Path() != filepath.Join(real, "new.json") {
		t.Fatalf("Path %q through a directory link", s.Path())
	}
}

// chown makes path another user's (65534, nobody); it needs root.
func chown(t *testing.T, path string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("chown to another user needs root")
	}
	if err := os.Chown(path, 65534, 65534); err != nil {
		t.Fatal(err)
	}
}

func chmod(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func wantUnsafe(t *testing.T, what, path string, err error) {
	t.Helper()
	if !errors.Is(err, pinfile.ErrUnsafe) || !strings.Contains(err.Error(), path) {
		t.Fatalf("%s: %v; want ErrUnsafe naming %s", what, err, path)
	}
}

// TestUnsafeRefused: as OpenSSH's StrictModes, a directory another user
// could replace the file in, and a pin or lock file that is not the user's
// or that others may write, are refused, naming the path. A sticky shared
// directory (such as /tmp) is accepted, and there a file another user makes
// under the pin file's name after Open is refused on read.
func TestUnsafeRefused(t *testing.T) {
	dir := t.TempDir()
	chmod(t, dir, 0o777)
	_, err := pinfile.Open(filepath.Join(dir, "pins.json"), pinfile.Options{})
	wantUnsafe(t, "world-writable directory", dir, err)

	dir = t.TempDir()
	path := filepath.Join(dir, "pins.json")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	chmod(t, path, 0o620)
	_, err = pinfile.Open(path, pinfile.Options{})
	wantUnsafe(t, "group-writable file", path, err)

	// Sticky and world-writable: accepted, the files made being ours.
	dir = t.TempDir()
	chmod(t, dir, os.ModeSticky|0o777)
	path = filepath.Join(dir, "pins.json")
	s := open(t, path)
	if err := s.Create(context.Background(), pin("alpha", "search", "sha256:1")); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	chmod(t, path, 0o666)
	_, err = pinfile.Open(path, pinfile.Options{})
	wantUnsafe(t, "world-writable file", path, err)
	chmod(t, path, 0o600)
	chown(t, path)
	_, err = pinfile.Open(path, pinfile.Options{})
	wantUnsafe(t, "another user's file", path, err)
	if err := os.Chown(path, 0, 0); err != nil {
		t.Fatal(err)
	}
	chown(t, path+".lock")
	_, err = pinfile.Open(path, pinfile.Options{DeferLock: true})
	wantUnsafe(t, "another user's lock file", path+".lock", err)

	// Made by another user after Open: refused when read or locked.
	dir = t.TempDir()
	chmod(t, dir, os.ModeSticky|0o777)
	path = filepath.Join(dir, "pins.json")
	s = open(t, path)
	if err := os.WriteFile(path, []byte(`{"version":1,"pins":[{"server":"a","tool":"b","digest":"sha256:evil"}],"changes":[]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	chown(t, path)
	_, err = s.Pins()
	wantUnsafe(t, "a file planted after Open", path, err)
	s2, err := pinfile.Open(filepath.Join(dir, "other.json"), pinfile.Options{DeferLock: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if err := os.WriteFile(filepath.Join(dir, "other.json.lock"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	chown(t, filepath.Join(dir, "other.json.lock"))
	err = s2.Create(context.Background(), pin("a", "b", "sha256:1"))
	wantUnsafe(t, "a lock file planted after Open", filepath.Join(dir, "other.json.lock"), err)

	// A directory of another user's.
	dir = t.TempDir()
	chown(t, dir)
	_, err = pinfile.Open(filepath.Join(dir, "pins.json"), pinfile.Options{})
	wantUnsafe(t, "another user's directory", dir, err)
}

// countWarnings is a slog handler that counts warnings.
type countWarnings struct{ n atomic.Int32 }

func (h *countWarnings) Enabled(context.Context, slog.Level) bool { return true }
func (h *countWarnings) Handle(_ context.Context, r slog.Record) error {
	if r.Level == slog.LevelWarn {
		h.n.Add(1)
	}
	return nil
}
func (h *countWarnings) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countWarnings) WithGroup(string) slog.Handler      { return h }

// TestUnreachableFileWarnedOnce: a pin file that turns unreachable (even
// Stat fails: here a symbolic link loop) is logged once, not at every poll,
// whether there was a file before or none; and once more after a good read.
func TestUnreachableFileWarnedOnce(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "pins.json")
	h := &countWarnings{}
	s, err := pinfile.Open(path, pinfile.Options{Poll: 5 * time.Millisecond, Logger: slog.New(h)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got := make(chan gateway.Pin, 16)
	if err := s.Watch(context.Background(), func(p gateway.Pin) { got <- p }); err != nil {
		t.Fatal(err)
	}
	loop := func() { // path becomes a link to itself, at once
		t.Helper()
		tmp := filepath.Join(dir, "loop")
		if err := os.Symlink(path, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	warnings := func(want int32) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for h.n.Load() < want && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(200 * time.Millisecond) // 40 polls more
		if n := h.n.Load(); n != want {
			t.Fatalf("%d warnings; want %d", n, want)
		}
	}
	loop() // no file before
	warnings(1)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(context.Background(), pin("alpha", "search", "sha256:1")); err != nil {
		t.Fatal(err)
	}
	if p := next(t, got); p.Tool != "search" { // the new file was read
		t.Fatalf("delivered %+v", p)
	}
	loop() // a file before
	warnings(2)
}
