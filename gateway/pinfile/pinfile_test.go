package pinfile_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gwmcp/gw/gateway"
	"github.com/gwmcp/gw/gateway/pinfile"
)

func open(t *testing.T, path string) *pinfile.Store {
	t.Helper()
	s, err := pinfile.Open(path, pinfile.Options{Poll: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func pin(server, tool, digest string) gateway.Pin {
	return gateway.Pin{Server: server, Tool: tool, Digest: digest, Fields: map[string]string{"name": digest}, Time: time.Now().UTC(), By: "first-seen"}
}

func change(server, tool, pinned, current string) gateway.ToolChange {
	return gateway.ToolChange{Server: server, Tool: tool, Name: server + "__" + tool, Fields: []string{"description"},
		Pinned: pin(server, tool, pinned), Current: pin(server, tool, current), Held: true}
}

// TestPinsOutliveTheStore: pins and reports written by one Store are what
// the next one on the file reads; Create leaves a stored pin alone; the file
// is the user's own (0600) and no temporary file is left behind.
func TestPinsOutliveTheStore(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state", "gw", "pins.json")
	s := open(t, path)
	if err := s.Create(ctx, pin("alpha", "search", "sha256:1")); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(ctx, pin("alpha", "search", "sha256:2")); err != nil {
		t.Fatal(err)
	}
	if err := s.Report(ctx, change("alpha", "search", "sha256:1", "sha256:2")); err != nil {
		t.Fatal(err)
	}
	if err := s.Report(ctx, change("beta", "x", "sha256:3", "sha256:4")); err != nil {
		t.Fatal(err)
	}
	if err := s.Clear(ctx, "beta", "x"); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()

	s = open(t, path)
	pins, err := s.Pins()
	if err != nil || len(pins) != 1 || pins[0].Digest != "sha256:1" {
		t.Fatalf("pins %+v, %v; want alpha/search's first pin", pins, err)
	}
	changes, err := s.Changes()
	if err != nil || len(changes) != 1 || changes[0].Server != "alpha" {
		t.Fatalf("changes %+v, %v; want alpha/search's", changes, err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("pin file: %v %v; want mode 0600", fi, err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	for _, e := range entries {
		if e.Name() != "pins.json" && e.Name() != "pins.json.lock" {
			t.Errorf("left in the directory: %s", e.Name())
		}
	}
}

// TestCorruptFileKept: a file that is not a pin file is an error at Open
// naming the file, and a Store whose file turns corrupt refuses to write
// over it: the file stays as it was.
func TestCorruptFileKept(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"garbage":   "{not json",
		"unknown":   `{"version":1,"pins":[],"changes":[],"extra":1}`,
		"version":   `{"version":2,"pins":[],"changes":[]}`,
		"no digest": `{"version":1,"pins":[{"server":"a","tool":"b"}],"changes":[]}`,
		"trailing":  `{"version":1,"pins":[],"changes":[]} {}`,
	} {
		path := filepath.Join(dir, name+".json")
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := pinfile.Open(path, pinfile.Options{})
		if !errors.Is(err, pinfile.ErrCorrupt) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: Open: %v; want ErrCorrupt naming the file", name, err)
		}
	}

	path := filepath.Join(dir, "pins.json")
	s := open(t, path)
	if err := s.Create(context.Background(), pin("alpha", "search", "sha256:1")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("{half"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(context.Background(), pin("alpha", "echo", "sha256:2")); !errors.Is(err, pinfile.ErrCorrupt) {
		t.Fatalf("Create over a corrupt file: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "{half" {
		t.Fatalf("the corrupt file was written over: %q", b)
	}
	if err := s.Watch(context.Background(), func(gateway.Pin) {}); !errors.Is(err, pinfile.ErrCorrupt) {
		t.Fatalf("Watch of a corrupt file: %v", err)
	}
}

// TestTwoStoresKeepEachOthersPins: two Stores on one file (two gw
// processes: separate lock descriptors, as across processes) writing at the
// same time lose none of each other's pins or reports.
func TestTwoStoresKeepEachOthersPins(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pins.json")
	stores := []*pinfile.Store{open(t, path), open(t, path)}
	const n = 40
	var wg sync.WaitGroup
	for i, s := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range n {
				server := fmt.Sprintf("s%d", i)
				var err error
				if j%2 == 0 {
					err = s.Create(context.Background(), pin(server, fmt.Sprint(j), "sha256:x"))
				} else {
					err = s.Batch(context.Background(), func(b gateway.PinStore) error {
						_ = b.Create(context.Background(), pin(server, fmt.Sprint(j), "sha256:x"))
						return b.Report(context.Background(), change(server, fmt.Sprint(j), "sha256:x", "sha256:y"))
					})
				}
				if err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	pins, err := stores[0].Pins()
	if err != nil || len(pins) != 2*n {
		t.Fatalf("%d pins, %v; want %d", len(pins), err, 2*n)
	}
	changes, err := stores[1].Changes()
	if err != nil || len(changes) != n {
		t.Fatalf("%d changes, %v; want %d", len(changes), err, n)
	}
}

// TestWatchSeesOthersWrites: a watching Store delivers the file's pins at
// once, then what another writes: a first pin, and an accepted change (as
// gw pin accept writes it), which also removes the report.
func TestWatchSeesOthersWrites(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	path := filepath.Join(t.TempDir(), "pins.json")
	other := open(t, path)
	if err := other.Create(ctx, pin("alpha", "search", "sha256:1")); err != nil {
		t.Fatal(err)
	}
	got := make(chan gateway.Pin, 16)
	s := open(t, path)
	if err := s.Watch(ctx, func(p gateway.Pin) { got <- p }); err != nil {
		t.Fatal(err)
	}
	if p := <-got; p.Digest != "sha256:1" {
		t.Fatalf("loaded %+v", p)
	}
	if err := other.Create(ctx, pin("alpha", "echo", "sha256:2")); err != nil {
		t.Fatal(err)
	}
	if p := next(t, got); p.Tool != "echo" {
		t.Fatalf("delivered %+v; want alpha/echo", p)
	}
	if err := other.Report(ctx, change("alpha", "search", "sha256:1", "sha256:3")); err != nil {
		t.Fatal(err)
	}
	accepted, err := other.Accept(ctx, func(c gateway.ToolChange) bool { return c.Server == "alpha" })
	if err != nil || len(accepted) != 1 {
		t.Fatalf("Accept: %v %v", accepted, err)
	}
	if p := next(t, got); p.Tool != "search" || p.Digest != "sha256:3" || p.By != "accepted" {
		t.Fatalf("delivered %+v; want the accepted alpha/search", p)
	}
	if changes, err := s.Changes(); err != nil || len(changes) != 0 {
		t.Fatalf("changes after the accept: %v %v", changes, err)
	}
	// The watcher stops with its context, and Close waits for it.
	cancel()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func next(t *testing.T, ch <-chan gateway.Pin) gateway.Pin {
	t.Helper()
	select {
	case p := <-ch:
		return p
	case <-time.After(10 * time.Second):
		t.Fatal("no pin delivered")
		return gateway.Pin{}
	}
}

// TestDefaultPath: the pin file is per user, under XDG_STATE_HOME when it
// is absolute, else under ~/.local/state.
func TestDefaultPath(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", "/xdg")
	if p, err := pinfile.DefaultPath(); err != nil || p != "/xdg/gw/pins.json" {
		t.Fatalf("DefaultPath %q %v", p, err)
	}
	t.Setenv("XDG_STATE_HOME", "relative")
	t.Setenv("HOME", "/home/ada")
	if p, err := pinfile.DefaultPath(); err != nil || p != "/home/ada/.local/state/gw/pins.json" {
		t.Fatalf("DefaultPath %q %v", p, err)
	}
}

// TestOversizedFileRefused: a file past the size a pin file may have is
// refused unread, naming the file and its size.
func TestOversizedFileRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pins.json")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	const size = 64<<20 + 1
	if err := f.Truncate(size); err != nil { // sparse: nothing written
		t.Fatal(err)
	}
	_ = f.Close()
	_, err = pinfile.Open(path, pinfile.Options{})
	if !errors.Is(err, pinfile.ErrCorrupt) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), fmt.Sprint(size)) {
		t.Fatalf("Open of a %d-byte file: %v; want ErrCorrupt naming the file and size", size, err)
	}
}

// TestStaleTempRemoved: a write removes the temporary files of writes
// killed before their rename, once they are a minute old, and leaves a
// younger one (which may be a live write where there is no flock).
func TestStaleTempRemoved(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "pins.json")
	old, fresh := filepath.Join(dir, ".pins.json.tmp-111"), filepath.Join(dir, ".pins.json.tmp-222")
	for _, f := range []string{old, fresh} {
		if err := os.WriteFile(f, []byte("{"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	past := time.Now().Add(-2 * time.Minute)
	if err := os.Chtimes(old, past, past); err != nil {
		t.Fatal(err)
	}
	s := open(t, path)
	if err := s.Create(context.Background(), pin("alpha", "search", "sha256:1")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(old); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale temporary file after a write: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("young temporary file removed: %v", err)
	}
}
