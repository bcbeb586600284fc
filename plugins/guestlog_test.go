package plugins

import (
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestLineWriter(t *testing.T) {
	var logs logBuffer
	g := newGuestLog(slog.New(slog.NewTextHandler(&logs, nil)), "m")
	now := time.Unix(1000, 0)
	g.now = func() time.Time { return now }
	w := &lineWriter{log: g, stream: "stdout", level: slog.LevelInfo}

	w.Write([]byte("hel"))
	w.Write([]byte("lo\r\nwor"))
	w.Write([]byte("ld\n\n"))
	w.Write([]byte(strings.Repeat("x", guestLogLineMax+10) + "\nafter"))
	w.flush()
	text := logs.String()
	for _, want := range []string{`line=hello`, `line=world`, `truncated=true`, `line=after`, `module=m`, `stream=stdout`} {
		if !strings.Contains(text, want) {
			t.Errorf("log lacks %s:\n%s", want, text)
		}
	}
	if n := strings.Count(text, "\n"); n != 4 {
		t.Errorf("%d records, want 4 (empty lines are skipped):\n%s", n, text)
	}

	// The budget: a burst, then the sustained rate; drops are reported with the next line.
	logs = logBuffer{}
	g = newGuestLog(slog.New(slog.NewTextHandler(&logs, nil)), "m")
	g.now = func() time.Time { return now }
	w = &lineWriter{log: g, stream: "stderr", level: slog.LevelWarn}
	line := strings.Repeat("y", 960) + "\n" // costs 1024 with the per-line charge
	for range 100 {
		w.Write([]byte(line))
	}
	if n := strings.Count(logs.String(), "policy output\""); n != guestLogBurst/1024 {
		t.Errorf("%d lines logged in a burst, want %d", n, guestLogBurst/1024)
	}
	now = now.Add(time.Second) // refills guestLogRate bytes: 16 lines
	w.Write([]byte(line))
	if !strings.Contains(logs.String(), "lines=36") {
		t.Errorf("drops not reported:\n%s", logs.String()[len(logs.String())-300:])
	}
}
