//go:build unix

package stdio

import (
	"errors"
	"io"
	"os"
	"testing"
	"time"
)

// TestPipeReaderOrphan checks that orphan wakes a blocked Read and that data written before or
// after it is still delivered while a writer keeps the pipe open.
func TestPipeReaderOrphan(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	pr, err := newPipeReader(r)
	if err != nil {
		t.Fatal(err)
	}

	type result struct {
		n   int
		err error
	}
	blocked := make(chan result, 1)
	go func() {
		n, err := pr.Read(make([]byte, 10))
		blocked <- result{n, err}
	}()
	time.Sleep(50 * time.Millisecond) // let the Read block; the test holds either way
	if _, err := w.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	res := <-blocked
	if res.n != 5 || res.err != nil {
		t.Fatalf("blocking Read = (%d, %v), want (5, nil)", res.n, res.err)
	}

	// A Read blocked on an empty pipe whose writer stays open returns io.EOF once orphaned.
	go func() {
		n, err := pr.Read(make([]byte, 10))
		blocked <- result{n, err}
	}()
	time.Sleep(50 * time.Millisecond)
	pr.orphan()
	select {
	case res := <-blocked:
		if res.n != 0 || res.err != io.EOF {
			t.Fatalf("Read across orphan = (%d, %v), want (0, io.EOF)", res.n, res.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read still blocked after orphan")
	}

	// w is still open: reads return what is buffered, then io.EOF instead of blocking.
	if _, err := w.Write([]byte("buffered")); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(pr)
	if err != nil || string(got) != "buffered" {
		t.Fatalf("ReadAll after orphan = (%q, %v), want \"buffered\"", got, err)
	}
	select {
	case <-pr.eof:
	default:
		t.Fatal("eof not signalled")
	}

	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := pr.Read(make([]byte, 1)); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Read after Close = %v, want os.ErrClosed", err)
	}
}
