package loglimit

import (
	"testing"
	"time"
)

func TestBurstThenRate(t *testing.T) {
	clock := time.Unix(1000, 0)
	l := New(10, 5)
	allow := func() (bool, int64) { return l.TakeAt(clock, 1) }

	for i := range 5 {
		if ok, _ := allow(); !ok {
			t.Fatalf("line %d of the burst held back", i)
		}
	}
	for range 7 {
		if ok, _ := allow(); ok {
			t.Fatal("line past the burst let through at once")
		}
	}
	clock = clock.Add(100 * time.Millisecond) // one token at 10/s
	ok, suppressed := allow()
	if !ok || suppressed != 7 {
		t.Fatalf("after 100ms: ok=%v suppressed=%d, want true 7", ok, suppressed)
	}
	if ok, _ := allow(); ok {
		t.Fatal("second line in the same instant let through")
	}
	if n := l.Flush(); n != 1 {
		t.Fatalf("Flush = %d, want 1", n)
	}
	if n := l.Flush(); n != 0 {
		t.Fatalf("second Flush = %d, want 0", n)
	}

	clock = clock.Add(time.Hour) // refills to the burst, not beyond
	for i := range 5 {
		if ok, _ := allow(); !ok {
			t.Fatalf("line %d after an idle hour held back", i)
		}
	}
	if ok, _ := allow(); ok {
		t.Fatal("idle time refilled past the burst")
	}
}

// TestCost: a line may cost more than one token (a budget in bytes).
func TestCost(t *testing.T) {
	clock := time.Unix(1000, 0)
	l := New(100, 250)
	if ok, _ := l.TakeAt(clock, 200); !ok {
		t.Fatal("200 of a burst of 250 held back")
	}
	if ok, _ := l.TakeAt(clock, 100); ok {
		t.Fatal("100 more let through with 50 left")
	}
	if ok, n := l.TakeAt(clock.Add(time.Second), 100); !ok || n != 1 {
		t.Fatalf("after a second: %v, %d suppressed; want true, 1", ok, n)
	}
}
