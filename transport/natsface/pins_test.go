package natsface

import (
	"context"
	"regexp"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestPinKeyToken: every name becomes a valid KV key token, and distinct
// names distinct tokens.
func TestPinKeyToken(t *testing.T) {
	valid := regexp.MustCompile(`^[-/_=A-Za-z0-9]+$`)
	seen := map[string]string{}
	for _, name := range []string{"", "=", "a", "a.b", "a=2Eb", "a b", "ä", "notes__search", "x/y", "*", ">"} {
		tok := PinKeyToken(name)
		if !valid.MatchString(tok) {
			t.Errorf("%q: token %q is not a KV key token", name, tok)
		}
		if prev, dup := seen[tok]; dup {
			t.Errorf("%q and %q share token %q", prev, name, tok)
		}
		seen[tok] = name
	}
	if got := PinKey("a.b", "c"); got != "pin.a=2Eb.c" {
		t.Errorf("PinKey: %q", got)
	}
}

// TestPinsBucket: pins are created once, watched (the bucket's pins, then
// every put), and changes are reported, listed and cleared.
func TestPinsBucket(t *testing.T) {
	s := startServer(t)
	nc := connect(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p, err := OpenPins(ctx, nc, "", 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Create(ctx, "notes", "search", []byte(`{"v":1}`)); err != nil {
		t.Fatal(err)
	}
	if err := p.Create(ctx, "notes", "search", []byte(`{"v":2}`)); err != nil { // exists: no-op
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []string
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	if err := p.Watch(wctx, func(v []byte) { mu.Lock(); got = append(got, string(v)); mu.Unlock() }); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if !slices.Equal(got, []string{`{"v":1}`}) {
		t.Fatalf("initial pins %q", got)
	}
	mu.Unlock()
	if err := p.Put(ctx, "notes", "search", []byte(`{"v":3}`)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the put was not watched")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := p.Report(ctx, "notes", "search", []byte(`{"c":1}`)); err != nil {
		t.Fatal(err)
	}
	if err := p.Report(ctx, "a.b", "c d", []byte(`{"c":2}`)); err != nil {
		t.Fatal(err)
	}
	ch, err := p.Changes(ctx)
	if err != nil || len(ch) != 2 {
		t.Fatalf("changes %q %v", ch, err)
	}
	for _, tool := range []string{"search", "search", "missing"} {
		if err := p.Clear(ctx, "notes", tool); err != nil {
			t.Fatal(err)
		}
	}
	if ch, err := p.Changes(ctx); err != nil || len(ch) != 1 || string(ch[0]) != `{"c":2}` {
		t.Fatalf("changes after clear %q %v", ch, err)
	}
	if pins, err := p.AllPins(ctx); err != nil || len(pins) != 1 || string(pins[0]) != `{"v":3}` {
		t.Fatalf("pins %q %v", pins, err)
	}
	// A new bucket handle on the same server sees the same pins.
	p2, err := OpenPins(ctx, nc, "", 1)
	if err != nil {
		t.Fatal(err)
	}
	if pins, err := p2.AllPins(ctx); err != nil || len(pins) != 1 {
		t.Fatalf("second handle: %q %v", pins, err)
	}
	stop()
}
