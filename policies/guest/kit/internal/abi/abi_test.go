package abi

import (
	"errors"
	"testing"
	"unsafe"
)

func TestAllocAndInput(t *testing.T) {
	in = nil
	if Alloc(-1) != 0 || Alloc(MaxInput+1) != 0 {
		t.Fatal("absurd sizes must return 0")
	}
	p := Alloc(0)
	if p == 0 || len(in) < 1 {
		t.Fatal("Alloc(0) must return a usable pointer")
	}
	if Alloc(100) != p {
		t.Fatal("a small request must reuse the buffer")
	}
	q := Alloc(1 << 20)
	if q == 0 || len(in) < 1<<20 {
		t.Fatal("Alloc must grow the buffer")
	}
	copy(in, "hello")
	b, ok := Input(uint32(q), 5)
	if uintptr(uint32(q)) == q && (!ok || string(b) != "hello") {
		t.Fatalf("Input = %q, %v", b, ok)
	}
	if _, ok := Input(uint32(q)+1, 5); ok {
		t.Fatal("Input must refuse a pointer outside the buffer")
	}
	if _, ok := Input(uint32(q), 1<<21); ok {
		t.Fatal("Input must refuse a length past the buffer")
	}
	if b, ok := Input(12345, 0); !ok || len(b) != 0 {
		t.Fatal("an empty input needs no buffer")
	}
}

func TestPack(t *testing.T) {
	if pack(0x1234, 5) != 0x1234_0000_0005 {
		t.Fatal("pack")
	}
	if Emit(nil) != 0 {
		t.Fatal("Emit(nil) must be 0")
	}
	b := []byte("xyz")
	if r := Emit(b); uint32(r) != 3 || uintptr(r>>32) != uintptr(unsafe.Pointer(&b[0]))&0xffffffff {
		t.Fatalf("Emit = %x", r)
	}
	if &Buf()[:1][0] != &b[0] {
		t.Fatal("Buf must reuse the last output")
	}
}

func TestInit(t *testing.T) {
	defer func() { initFunc = nil }()
	initFunc = nil
	for _, cfg := range []string{"", "{}", " { \n} ", "null"} {
		if got := string(Init([]byte(cfg), nil)); got != `{"ok":true}` {
			t.Errorf("no handler, %q: %s", cfg, got)
		}
	}
	for _, cfg := range []string{`{"a":1}`, "[]", "{"} {
		if got := string(Init([]byte(cfg), nil)); got != `{"error":"this policy takes no config"}` {
			t.Errorf("no handler, %q: %s", cfg, got)
		}
	}
	SetInit(func(c []byte) error {
		if string(c) == "bad" {
			return errors.New(`bad "config"`)
		}
		if string(c) == "panic" {
			panic(errors.New("boom"))
		}
		return nil
	})
	if got := string(Init([]byte("bad"), nil)); got != `{"error":"bad \"config\""}` {
		t.Errorf("error: %s", got)
	}
	if got := string(Init([]byte("panic"), nil)); got != `{"error":"policy panicked in init: boom"}` {
		t.Errorf("panic: %s", got)
	}
	if got := string(Init([]byte("{}"), nil)); got != `{"ok":true}` {
		t.Errorf("ok: %s", got)
	}
	defer func() {
		if recover() == nil {
			t.Error("a second SetInit must panic")
		}
	}()
	SetInit(func([]byte) error { return nil })
}
