// Package pinfile keeps tool-definition pins in a JSON file: the
// gateway.PinStore of gw stdio, and of any gateway without NATS, so pins
// outlive the process (a desktop app restarts gw stdio often) and several
// processes on one machine share them.
//
// Every write is a read-modify-write of the whole file under an advisory
// lock (flock on a ".lock" file beside it, where the platform has flock):
// the file is read again under the lock, the write applied to what it holds
// now, and the result written to a temporary file in the same directory,
// synced and renamed over the file. Two processes therefore never lose each
// other's pins, and a reader (which takes no lock) sees either the old file
// or the new one, never a part. A file that cannot be read or decoded is
// never written over: Open and Watch report it, writes fail, and the file
// stays as it is for its owner to look at.
//
// A Store notices writes made by others (another gw, `gw pin accept`) by
// polling the file's identity (inode, size, modification time), every
// second by default: no file-notification dependency, and cheap enough for
// a file that changes a few times a day.
package pinfile

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gwmcp/gw/gateway"
)

// ErrCorrupt marks a pin file that is not one: it is left as it is.
var ErrCorrupt = errors.New("pinfile: not a pin file")

// ErrUnsafe marks a pin file, lock file or directory that another user
// could write or replace (as OpenSSH's StrictModes): its pins cannot be
// trusted, so it is neither read nor written.
var ErrUnsafe = errors.New("pinfile: unsafe")

// fileVersion is the format written; a file of a later version is refused
// rather than written over with what this gw understands of it.
const fileVersion = 1

// DefaultPoll is how often a watching Store checks the file.
const DefaultPoll = time.Second

// maxSize bounds the file read, so that a file gw did not write cannot take
// the process's memory; a pin, its definition included, is a few KB, so
// this is room for over ten thousand tools.
const maxSize = 64 << 20

// Options adjust a Store.
type Options struct {
	// Poll is how often Watch checks the file for others' writes; 0 is
	// DefaultPoll.
	Poll time.Duration
	// Logger receives a warning when the file changes into something that
	// cannot be read; nil discards.
	Logger *slog.Logger
	// DeferLock leaves the directory and the lock file alone until the
	// first write, which makes them: for a command that may only read (gw
	// tools --changed), which then needs no writable directory. A
	// long-running writer (gw stdio) leaves it false, so a lock that cannot
	// be made or taken fails at Open, naming the lock file, and not at its
	// first write.
	DeferLock bool
}

// Store is a gateway.PinStore (and gateway.PinBatcher) in one file. Its
// methods may be called concurrently; Close stops its watchers.
type Store struct {
	path     string
	lockPath string
	poll     time.Duration
	log      *slog.Logger

	wmu sync.Mutex // one write of this Store at a time: flock does not exclude the Store's own goroutines
	// lock is the lock file, opened at the first write (or by Open) and
	// kept open; nil before, or once found removed or replaced. Guarded by wmu.
	lock *os.File

	mu     sync.Mutex
	closed bool
	kicks  map[int]chan struct{} // one per watcher: check the file now
	nextID int
	stop   chan struct{}
	wg     sync.WaitGroup // the watchers' goroutines
}

var _ gateway.PinBatcher = (*Store)(nil)

// DefaultPath is the per-user pin file: $XDG_STATE_HOME/gw/pins.json, else
// ~/.local/state/gw/pins.json. There is no fallback to a shared directory
// such as /tmp: another user could plant pins there.
func DefaultPath() (string, error) {
	if d := os.Getenv("XDG_STATE_HOME"); filepath.IsAbs(d) { // the spec ignores relative ones
		return filepath.Join(d, "gw", "pins.json"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("pinfile: no state directory for the pin file: %w", err)
	}
	return filepath.Join(home, ".local", "state", "gw", "pins.json"), nil
}

// Open opens the pin file at path, creating its directory (mode 0700) but
// not the file, which the first write creates. Symbolic links in path are
// resolved once, here: Path and every read and write use the file they
// point to. It reads the file once, so a file that cannot be read or
// decoded is an error here, at start; and, unless o.DeferLock, it takes and
// releases the lock once, so a lock that cannot be taken (a file system
// without flock) is one too. A directory, file or lock file another user
// could write is refused (ErrUnsafe).
func Open(path string, o Options) (*Store, error) {
	if !o.DeferLock {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("pinfile: %w", err)
		}
	}
	path, err := resolve(path)
	if err != nil {
		return nil, err
	}
	if err := checkDir(filepath.Dir(path)); err != nil {
		return nil, err
	}
	if fi, err := os.Lstat(path + ".lock"); err == nil {
		if err := checkFile(path+".lock", fi); err != nil {
			return nil, err
		}
	}
	if _, _, err := read(path); err != nil {
		return nil, err
	}
	if o.Poll <= 0 {
		o.Poll = DefaultPoll
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Store{path: path, lockPath: path + ".lock", poll: o.Poll, log: o.Logger, kicks: map[int]chan struct{}{}, stop: make(chan struct{})}
	if !o.DeferLock {
		if err := s.checkLock(); err != nil {
			_ = s.Close()
			return nil, err
		}
	}
	return s, nil
}

// checkLock opens the lock file and takes and releases its lock without
// waiting (held by another process, it works).
func (s *Store) checkLock() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.openLockLocked(); err != nil {
		return err
	}
	if err := tryLock(s.lock); err != nil {
		return fmt.Errorf("pinfile: lock %s: %w (pins.file must be on a file system with flock, such as a local one)", s.lockPath, err)
	}
	return nil
}

// openLockLocked opens the lock file, creating it and its directory. s.wmu
// is held.
func (s *Store) openLockLocked() error {
	if err := os.MkdirAll(filepath.Dir(s.lockPath), 0o700); err != nil {
		return fmt.Errorf("pinfile: %w", err)
	}
	f, err := os.OpenFile(s.lockPath, os.O_RDWR|os.O_CREATE|openNoFollow, 0o600)
	if err != nil {
		return fmt.Errorf("pinfile: lock file: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return fmt.Errorf("pinfile: lock file: %w", err)
	}
	// Checked on what was opened: another user may have made it since Open.
	if err := checkFile(s.lockPath, fi); err != nil {
		_ = f.Close()
		return err
	}
	s.lock = f
	return nil
}

// resolve is path, absolute, with its symbolic links resolved: a write
// renames a new file over the file a link points to, not over the link,
// and a link and its target share one lock file. A file not made yet is
// resolved through its nearest existing directory; a link to nothing is
// refused, as the first write would replace the link.
func resolve(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("pinfile: %w", err)
	}
	r, err := filepath.EvalSymlinks(abs)
	if err == nil {
		return r, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("pinfile: %w", err)
	}
	if fi, lerr := os.Lstat(abs); lerr == nil && fi.Mode()&os.ModeSymlink != 0 {
		return "", fmt.Errorf("pinfile: %s is a symbolic link to nothing (%w): make its target, or set pins.file to the target", path, err)
	}
	rest := filepath.Base(abs)
	for dir := filepath.Dir(abs); ; dir = filepath.Dir(dir) {
		r, err := filepath.EvalSymlinks(dir)
		if err == nil {
			return filepath.Join(r, rest), nil
		}
		if !errors.Is(err, os.ErrNotExist) || dir == filepath.Dir(dir) {
			return "", fmt.Errorf("pinfile: %w", err)
		}
		rest = filepath.Join(filepath.Base(dir), rest)
	}
}

// lockLocked takes the lock for a write. s.wmu is held. The lock is flock
// on a descriptor, so once it is taken the file locked must still be the
// one at lockPath: one removed (or replaced) while this Store held it open
// excludes no one who opens the path now, so it is closed and the lock
// taken again on the file there.
func (s *Store) lockLocked(ctx context.Context) error {
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("pinfile: lock %s: %w", s.lockPath, err)
		}
		if s.lock == nil {
			if err := s.openLockLocked(); err != nil {
				return err
			}
		}
		if err := lockFile(ctx, s.lock); err != nil {
			return fmt.Errorf("pinfile: lock %s: %w", s.lockPath, err)
		}
		held, err := s.lock.Stat()
		if err != nil {
			unlockFile(s.lock)
			return fmt.Errorf("pinfile: lock file: %w", err)
		}
		cur, err := os.Stat(s.lockPath)
		if err == nil && os.SameFile(held, cur) && linked(held) {
			return nil
		}
		unlockFile(s.lock)
		_ = s.lock.Close()
		s.lock = nil
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("pinfile: lock file: %w", err)
		}
	}
}

// Path is the file's path.
func (s *Store) Path() string { return s.path }

// Close stops the watchers, waits for them and releases the lock file. It
// is idempotent.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.stop)
	s.mu.Unlock()
	s.wg.Wait()
	s.wmu.Lock() // no write holds the lock file
	defer s.wmu.Unlock()
	if s.lock == nil {
		return nil
	}
	err := s.lock.Close()
	s.lock = nil
	return err
}

// key names a server's tool.
type key struct{ server, tool string }

// content is the file's content, by server and tool.
type content struct {
	pins    map[key]gateway.Pin
	changes map[key]gateway.ToolChange
}

// fileJSON is the file's layout.
type fileJSON struct {
	Version int                  `json:"version"`
	Pins    []gateway.Pin        `json:"pins"`
	Changes []gateway.ToolChange `json:"changes"`
}

// read reads and decodes the file; a missing or empty file holds nothing.
// The FileInfo is the file read (nil when there is none).
func read(path string) (*content, os.FileInfo, error) {
	c := &content{pins: map[key]gateway.Pin{}, changes: map[key]gateway.ToolChange{}}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return c, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("pinfile: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("pinfile: %w", err)
	}
	// Checked on every read, of the file read: in a sticky shared directory
	// another user may make the file after Open.
	if err := checkFile(path, fi); err != nil {
		return nil, nil, err
	}
	if fi.Size() > maxSize {
		return nil, nil, fmt.Errorf("%w: %s is %d bytes, more than the %d a pin file may hold", ErrCorrupt, path, fi.Size(), maxSize)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxSize+1)) // growing while read
	if err != nil {
		return nil, nil, fmt.Errorf("pinfile: %w", err)
	}
	if len(data) > maxSize {
		return nil, nil, fmt.Errorf("%w: %s is more than the %d bytes a pin file may hold", ErrCorrupt, path, maxSize)
	}
	if err := c.decode(data); err != nil {
		return nil, nil, fmt.Errorf("%w: %s: %w (gw leaves it as it is: repair it, or move it away to pin every tool anew as first seen)", ErrCorrupt, path, err)
	}
	return c, fi, nil
}

func (c *content) decode(data []byte) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil // touched, never written
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f fileJSON
	if err := dec.Decode(&f); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("data after the pin file's object")
	}
	if f.Version != fileVersion {
		return fmt.Errorf("version %d, want %d", f.Version, fileVersion)
	}
	for i, p := range f.Pins {
		if p.Server == "" || p.Tool == "" || p.Digest == "" {
			return fmt.Errorf("pins[%d]: server, tool and digest are required", i)
		}
		c.pins[key{p.Server, p.Tool}] = p
	}
	for i, ch := range f.Changes {
		if ch.Server == "" || ch.Tool == "" || ch.Current.Digest == "" {
			return fmt.Errorf("changes[%d]: server, tool and current.digest are required", i)
		}
		c.changes[key{ch.Server, ch.Tool}] = ch
	}
	return nil
}

func (c *content) encode() []byte {
	f := fileJSON{Version: fileVersion, Pins: sorted(c.pins), Changes: sorted(c.changes)}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		panic(fmt.Sprintf("pinfile: marshal: %v", err)) // pins and changes always marshal
	}
	return append(b, '\n')
}

// sorted is m's values in the order of their keys, by server then tool.
func sorted[V any](m map[key]V) []V {
	out := make([]V, 0, len(m))
	for _, k := range slices.SortedFunc(maps.Keys(m), func(a, b key) int {
		return cmp.Or(cmp.Compare(a.server, b.server), cmp.Compare(a.tool, b.tool))
	}) {
		out = append(out, m[k])
	}
	return out
}

// update applies edit to the file's current content under the lock and
// writes the result when edit reports a change. edit runs once, on the
// content read under the lock. A file that cannot be read is not written.
func (s *Store) update(ctx context.Context, edit func(c *content) bool) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.lockLocked(ctx); err != nil {
		return err
	}
	defer unlockFile(s.lock)
	removeStaleTemps(s.path)
	c, _, err := read(s.path)
	if err != nil {
		return err
	}
	if !edit(c) {
		return nil
	}
	if err := writeAtomic(s.path, c.encode()); err != nil {
		return err
	}
	s.kick()
	return nil
}

// staleTemp is the age past which a temporary file is taken for the
// leftover of a write killed between creating it and renaming it. Every
// write makes its file under the lock, so one older than the lock's hold
// (milliseconds) is already stale; the margin is for where there is no flock.
const staleTemp = time.Minute

// removeStaleTemps removes the leftovers of killed writes (writeAtomic's
// temporary files), which nothing else would. Called under the lock.
func removeStaleTemps(path string) {
	dir, prefix := filepath.Dir(path), "."+filepath.Base(path)+".tmp-"
	entries, err := os.ReadDir(dir)
	if err != nil {
		return // the write reports what is wrong with the directory
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), prefix) || !e.Type().IsRegular() {
			continue
		}
		if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > staleTemp {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// writeAtomic replaces path with data: a temporary file in the same
// directory, synced, renamed over path, and the directory synced, so a
// crash leaves the old file or the new one.
func writeAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*") // mode 0600
	if err != nil {
		return fmt.Errorf("pinfile: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return fmt.Errorf("pinfile: write: %w", err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("pinfile: sync: %w", err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("pinfile: write: %w", err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("pinfile: %w", err)
	}
	// The rename lasts once the directory is synced; where a directory
	// cannot be synced (some platforms), the rename is still atomic.
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

// Create implements gateway.PinStore: the pin is written unless the file
// holds one for its server's tool, which then stands (Watch delivers it).
func (s *Store) Create(ctx context.Context, p gateway.Pin) error {
	return s.update(ctx, func(c *content) bool { return c.create(p) })
}

// Report implements gateway.PinStore.
func (s *Store) Report(ctx context.Context, ch gateway.ToolChange) error {
	return s.update(ctx, func(c *content) bool { return c.report(ch) })
}

// Clear implements gateway.PinStore.
func (s *Store) Clear(ctx context.Context, server, tool string) error {
	return s.update(ctx, func(c *content) bool { return c.clear(server, tool) })
}

func (c *content) create(p gateway.Pin) bool {
	k := key{p.Server, p.Tool}
	if _, ok := c.pins[k]; ok {
		return false
	}
	c.pins[k] = p
	return true
}

func (c *content) report(ch gateway.ToolChange) bool {
	c.changes[key{ch.Server, ch.Tool}] = ch
	return true
}

func (c *content) clear(server, tool string) bool {
	k := key{server, tool}
	if _, ok := c.changes[k]; !ok {
		return false
	}
	delete(c.changes, k)
	return true
}

// Batch implements gateway.PinBatcher: the writes fn makes are applied
// together, in order, in one write of the file.
func (s *Store) Batch(ctx context.Context, fn func(gateway.PinStore) error) error {
	var r recorder
	fnErr := fn(&r)
	if len(r.edits) == 0 {
		return fnErr
	}
	err := s.update(ctx, func(c *content) bool {
		changed := false
		for _, e := range r.edits {
			changed = e(c) || changed
		}
		return changed
	})
	return errors.Join(fnErr, err)
}

// recorder is the PinStore a Batch hands out: it records writes.
type recorder struct{ edits []func(*content) bool }

func (r *recorder) Watch(context.Context, func(gateway.Pin)) error {
	return errors.New("pinfile: Watch inside a Batch")
}

func (r *recorder) Create(_ context.Context, p gateway.Pin) error {
	r.edits = append(r.edits, func(c *content) bool { return c.create(p) })
	return nil
}

func (r *recorder) Report(_ context.Context, ch gateway.ToolChange) error {
	r.edits = append(r.edits, func(c *content) bool { return c.report(ch) })
	return nil
}

func (r *recorder) Clear(_ context.Context, server, tool string) error {
	r.edits = append(r.edits, func(c *content) bool { return c.clear(server, tool) })
	return nil
}

// Accept pins the current definition of every reported change that match
// selects (gw pin accept) and removes those reports, in one write; it
// returns the changes accepted. Running gateways watching the file serve
// the tools once they next check it.
func (s *Store) Accept(ctx context.Context, match func(gateway.ToolChange) bool) ([]gateway.ToolChange, error) {
	var accepted []gateway.ToolChange
	err := s.update(ctx, func(c *content) bool {
		for _, ch := range sorted(c.changes) {
			if !match(ch) {
				continue
			}
			c.pins[key{ch.Server, ch.Tool}] = gateway.AcceptedPin(ch)
			delete(c.changes, key{ch.Server, ch.Tool})
			accepted = append(accepted, ch)
		}
		return len(accepted) > 0
	})
	if err != nil {
		return nil, err
	}
	return accepted, nil
}

// Changes returns the reported changes, by server and tool.
func (s *Store) Changes() ([]gateway.ToolChange, error) {
	c, _, err := read(s.path)
	if err != nil {
		return nil, err
	}
	return sorted(c.changes), nil
}

// Pins returns the pins, by server and tool.
func (s *Store) Pins() ([]gateway.Pin, error) {
	c, _, err := read(s.path)
	if err != nil {
		return nil, err
	}
	return sorted(c.pins), nil
}

// Watch implements gateway.PinStore: it delivers the file's pins and
// returns; then a goroutine of the Store's checks the file every Poll (and
// after each of this Store's writes) and delivers each pin that differs from
// what it delivered before, until ctx ends or the Store closes. A file that
// turns unreadable meanwhile is logged once and skipped: the pins delivered
// stand.
func (s *Store) Watch(ctx context.Context, fn func(gateway.Pin)) error {
	c, fi, err := read(s.path)
	if err != nil {
		return err
	}
	seen := make(map[key]string, len(c.pins))
	for _, p := range sorted(c.pins) {
		seen[key{p.Server, p.Tool}] = p.Digest
		fn(p)
	}
	kick := make(chan struct{}, 1)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errors.New("pinfile: store closed")
	}
	id := s.nextID
	s.nextID++
	s.kicks[id] = kick
	s.wg.Add(1)
	s.mu.Unlock()
	w := &watcher{s: s, fn: fn, seen: seen, last: fi}
	go func() {
		defer s.wg.Done()
		defer func() {
			s.mu.Lock()
			delete(s.kicks, id)
			s.mu.Unlock()
		}()
		t := time.NewTicker(s.poll)
		defer t.Stop()
		for {
			select {
			case <-t.C:
			case <-kick:
			case <-ctx.Done():
				return
			case <-s.stop:
				return
			}
			w.check()
		}
	}()
	return nil
}

// kick has every watcher check the file now.
func (s *Store) kick() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range s.kicks {
		select {
		case k <- struct{}{}:
		default:
		}
	}
}

// watcher is one Watch's view of the file.
type watcher struct {
	s    *Store
	fn   func(gateway.Pin)
	seen map[key]string // digest delivered, by server and tool
	last os.FileInfo    // the file last read; nil: none
	// warned: an unreadable file was logged since the last good read; bad
	// is its FileInfo (nil when even Stat failed), so another unreadable
	// file is logged once more, and a path that stays unreachable is not
	// logged at every poll.
	warned bool
	bad    os.FileInfo
}

// check reads the file when it is not the one last read, and delivers the
// pins that changed.
func (w *watcher) check() {
	fi, err := os.Stat(w.s.path)
	if err != nil {
		fi = nil // gone, or unreachable: read tells which
	}
	// An unreachable path is read (and fails) even when no file was
	// before: it is not "still absent".
	if sameFile(fi, w.last) && (err == nil || errors.Is(err, os.ErrNotExist)) {
		return
	}
	c, fi, err := read(w.s.path)
	if err != nil {
		if cur, _ := os.Stat(w.s.path); !w.warned || !sameFile(cur, w.bad) {
			w.warned, w.bad = true, cur
			w.s.log.Warn("pin file unreadable; keeping the pins already loaded", "file", w.s.path, "error", err)
		}
		return
	}
	w.last, w.warned, w.bad = fi, false, nil
	for _, p := range sorted(c.pins) {
		k := key{p.Server, p.Tool}
		if w.seen[k] == p.Digest {
			continue
		}
		w.seen[k] = p.Digest
		w.fn(p)
	}
}

// sameFile: both absent, or the same file with the same size and time.
// Every write renames a new file in, so the identity alone tells a write
// by gw; size and time catch an editor writing in place.
func sameFile(a, b os.FileInfo) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}
