package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestToolDigest: the digest covers what the model reads, whatever the
// layout: key order and whitespace do not change it, a word of the
// description or schema does, and members outside PinFields do not.
func TestToolDigest(t *testing.T) {
	digest := func(raw string) *toolDef {
		t.Helper()
		fields, err := objectFields([]byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		return newToolDef(fields)
	}
	base := digest(`{"name":"search","description":"Find notes","inputSchema":{"type":"object","properties":{"q":{"type":"string"}}}}`)
	same := []string{
		`{"inputSchema":{"properties":{"q":{"type":"string"}},"type":"object"},"description":"Find notes","name":"search"}`,
		"{ \"name\" : \"search\",\n \"description\": \"Find notes\", \"inputSchema\": {\"type\": \"object\", \"properties\": {\"q\": {\"type\": \"string\"}}}}",
		`{"name":"search","description":"Find notes","inputSchema":{"type":"object","properties":{"q":{"type":"string"}}},"icons":[{"src":"x.png"}],"_meta":{"a":1}}`,
	}
	for _, raw := range same {
		if d := digest(raw); d.digest != base.digest {
			t.Errorf("%s: digest changed", raw)
		}
	}
	for raw, fields := range map[string][]string{
		`{"name":"search","description":"Find notes.","inputSchema":{"type":"object","properties":{"q":{"type":"string"}}}}`:                                 {"description"},
		`{"name":"search","description":"Find notes","inputSchema":{"type":"object","properties":{"q":{"type":"integer"}}}}`:                                 {"inputSchema"},
		`{"name":"search","description":"Find notes","inputSchema":{"type":"object","properties":{"q":{"type":"string"}}},"annotations":{}}`:                 {"annotations"},
		`{"name":"search","title":"Search","inputSchema":{"type":"object","properties":{"q":{"type":"string"}}}}`:                                            {"title", "description"},
		`{"name":"search","description":"Find notes","inputSchema":{"type":"object","properties":{"q":{"type":"string"}}},"outputSchema":{"type":"object"}}`: {"outputSchema"},
	} {
		d := digest(raw)
		if d.digest == base.digest {
			t.Errorf("%s: digest unchanged", raw)
		}
		if got := changedFields(base.fields, d.fields); !slices.Equal(got, fields) {
			t.Errorf("%s: changed fields %v, want %v", raw, got, fields)
		}
	}
	if string(base.canonical) != `{"description":"Find notes","inputSchema":{"properties":{"q":{"type":"string"}},"type":"object"},"name":"search"}` {
		t.Errorf("canonical %s", base.canonical)
	}
	if d := digest(`{"name":"a","description":"<b>&"}`); string(d.canonical) != `{"description":"<b>&","name":"a"}` {
		t.Errorf("canonical escapes HTML: %s", d.canonical)
	}
}

// TestToolDefCanonicalUnchanged: the canonical definition (and so every
// digest in a pin store) is what it was when it was made by encoding the
// canonical fields and canonicalizing the object again.
func TestToolDefCanonicalUnchanged(t *testing.T) {
	for _, raw := range []string{
		`{"name":"search"}`,
		`{"name":"x","title":"T","description":"a <b> & \u2028 \"q\" é \ud83d\ude00","inputSchema":{"type":"object","properties":{"n":{"type":"number","maximum":1e3,"minimum":-0.50}},"required":["n"]},"outputSchema":{"type":"object"},"annotations":{"readOnlyHint":true,"destructiveHint":false},"_meta":{"z":1},"icons":[]}`,
		"{ \"description\" : \"tabs\\tand\\nlines\",\n \"name\": \"y\", \"annotations\": null }",
		`{"inputSchema":{"b":[1,2,{"d":null,"c":"\u00e9"}],"a":{}},"name":"z"}`,
	} {
		fields, err := objectFields([]byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		def := map[string]json.RawMessage{}
		for _, k := range PinFields {
			if v, ok := fields[k]; ok {
				def[k] = canonicalJSON(v)
			}
		}
		want := canonicalJSON(mustJSON(def))
		if got := newToolDef(fields).canonical; string(got) != string(want) {
			t.Errorf("%s:\ngot  %s\nwant %s", raw, got, want)
		}
	}
}

func BenchmarkToolDef(b *testing.B) {
	fields, err := objectFields([]byte(`{"name":"tool01","description":"Tool 1 of t0001: answers with its name.","inputSchema":{"type":"object","properties":{"n":{"type":"integer"}}}}`))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		newToolDef(fields)
	}
}

// flakyPins is a PinStore whose first fails writes fail; it records the
// writes made, in order.
type flakyPins struct {
	mu    sync.Mutex
	fails int
	made  []string
}

func (s *flakyPins) write(what string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fails > 0 {
		s.fails--
		return errors.New("disk full")
	}
	s.made = append(s.made, what)
	return nil
}

func (s *flakyPins) Watch(context.Context, func(Pin)) error { return nil }
func (s *flakyPins) Create(_ context.Context, p Pin) error {
	return s.write("create " + p.Tool)
}
func (s *flakyPins) Report(_ context.Context, c ToolChange) error {
	return s.write("report " + c.Tool)
}
func (s *flakyPins) Clear(_ context.Context, _, tool string) error {
	return s.write("clear " + tool)
}

func (s *flakyPins) writes() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.made)
}

// flakyBatcher is a flakyPins that takes batches: a batch fails or is
// made whole, as the pin file's.
type flakyBatcher struct{ flakyPins }

func (s *flakyBatcher) Batch(ctx context.Context, fn func(PinStore) error) error {
	rec := &flakyPins{}
	if err := fn(rec); err != nil {
		return err
	}
	if err := s.write("batch"); err != nil {
		return err
	}
	s.mu.Lock()
	s.made = append(s.made[:len(s.made)-1], rec.made...)
	s.mu.Unlock()
	return nil
}

// TestPinWriterRetries: writes the store fails are tried again, in order
// with those queued after them, until the store takes them; pins are not
// lost to a store that failed for a while. On close, writes still failing
// are given up at once rather than waited for.
func TestPinWriterRetries(t *testing.T) {
	ops := func(w *pinWriter, tools ...string) {
		for _, tool := range tools {
			w.push(func(ctx context.Context, s PinStore) error { return s.Create(ctx, Pin{Server: "a", Tool: tool}) })
		}
		w.push(func(ctx context.Context, s PinStore) error { return s.Report(ctx, ToolChange{Server: "a", Tool: "x"}) })
		w.push(func(ctx context.Context, s PinStore) error { return s.Clear(ctx, "a", "x") })
	}
	want := []string{"create p1", "create p2", "report x", "clear x", "create p3"}
	for name, store := range map[string]interface {
		PinStore
		writes() []string
	}{
		"one at a time": &flakyPins{fails: 3},
		"batches":       &flakyBatcher{flakyPins{fails: 3}},
	} {
		t.Run(name, func(t *testing.T) {
			w := newPinWriter(store, slog.New(slog.DiscardHandler))
			w.retryMin, w.retryMax = time.Millisecond, 4*time.Millisecond
			ops(w, "p1", "p2")
			w.start()
			w.push(func(ctx context.Context, s PinStore) error { return s.Create(ctx, Pin{Server: "a", Tool: "p3"}) })
			deadline := time.Now().Add(10 * time.Second)
			for len(store.writes()) < len(want) && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			w.close()
			if got := store.writes(); !slices.Equal(got, want) {
				t.Fatalf("writes made %q; want %q", got, want)
			}
		})
	}

	store := &flakyPins{fails: 1 << 30}
	w := newPinWriter(store, slog.New(slog.DiscardHandler)) // retries 1 s doubling to 30 s
	ops(w, "p1")
	w.start()
	time.Sleep(50 * time.Millisecond) // failed once, waiting to retry
	start := time.Now()
	w.close()
	if d := time.Since(start); d > 900*time.Millisecond { // less than the 1 s wait to retry
		t.Fatalf("close took %v with writes failing", d)
	}
}
