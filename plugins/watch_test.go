package plugins

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestWatch(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.wasm")
	write := func(content string, mtime time.Time) {
		t.Helper()
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(tmp, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	base := time.Now().Add(-time.Hour)
	write("v1", base)

	got := make(chan string, 10)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Watch(ctx, path, 5*time.Millisecond, func(b []byte) { got <- string(b) })
	}()
	expect := func(want string) {
		t.Helper()
		select {
		case s := <-got:
			if s != want {
				t.Fatalf("reload(%q), want %q", s, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no reload, want %q", want)
		}
	}
	quiet := func() {
		t.Helper()
		select {
		case s := <-got:
			t.Fatalf("unexpected reload(%q)", s)
		case <-time.After(50 * time.Millisecond):
		}
	}

	quiet() // the content at start is the baseline
	write("v2", base.Add(time.Second))
	expect("v2")
	write("v2", base.Add(2*time.Second)) // touched, same content
	quiet()
	write("v3", base.Add(2*time.Second)) // same size and mtime, but another file: noticed
	expect("v3")
	if err := os.WriteFile(path, []byte("v4"), 0o644); err != nil { // in place, same size...
		t.Fatal(err)
	}
	os.Chtimes(path, base.Add(2*time.Second), base.Add(2*time.Second)) // ...and mtime: unnoticed
	quiet()
	write("v4!", base.Add(2*time.Second)) // same mtime, new size: noticed
	expect("v4!")
	os.Remove(path) // missing: skipped
	quiet()
	write("v4!", base.Add(3*time.Second)) // back with the same content
	quiet()
	write("v5", base.Add(4*time.Second))
	expect("v5")

	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Watch did not return after cancel")
	}
}

func TestWatchMissingAtStart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "later.wasm")
	got := make(chan string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go Watch(ctx, path, 5*time.Millisecond, func(b []byte) { got <- string(b) })
	time.Sleep(20 * time.Millisecond)
	if err := os.WriteFile(path, []byte("first"), 0o644); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-got:
		if s != "first" {
			t.Fatalf("reload(%q)", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a file appearing was not reported")
	}
}
