package plugins

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// relaxed is the deadline of tests that are not about deadlines.
const relaxed = 30 * time.Second

// Test fixtures shared by the whole test binary.
var (
	// echoWasm is testdata/echo built for wasip1 as a reactor: the realistic Go guest.
	echoWasm []byte
	// cacheDir is a compilation cache shared by the tests' Hosts, so the Go guest is compiled
	// once per test binary rather than once per test.
	cacheDir string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	tmp, err := os.MkdirTemp("", "gw-plugins-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	cacheDir = filepath.Join(tmp, "cache")
	echoWasm, err = buildGuest("echo", tmp)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			return 1
		}
	}
	return code
}

// buildGuest compiles testdata/<name> (its own Go module) with GOOS=wasip1 GOARCH=wasm
// -buildmode=c-shared. The go build cache makes this fast after the first run.
func buildGuest(name, dir string) ([]byte, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	out := filepath.Join(dir, name+".wasm")
	cmd := exec.Command(goBin, "build", "-buildmode=c-shared", "-trimpath", "-ldflags=-s -w", "-o", out, ".")
	cmd.Dir = filepath.Join("testdata", name)
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "GOWORK=off", "GOFLAGS=", "CGO_ENABLED=0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("build guest %s: %v\n%s", name, err, stderr.Bytes())
	}
	return os.ReadFile(out)
}

// newHost returns a Host using the shared compilation cache, closed at the end of the test.
func newHost(t testing.TB) *Host {
	t.Helper()
	h, err := NewHost(context.Background(), HostConfig{CacheDir: cacheDir, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := h.Close(context.Background()); err != nil {
			t.Errorf("Host.Close: %v", err)
		}
	})
	return h
}

// load loads a module or fails the test. Unless the test sets them, the deadlines are relaxed to
// 30 s: a loaded 2-core CI machine (and the race detector) can stall a goroutine for 100 ms, and
// tests that are not about deadlines must not fail on that.
func load(t testing.TB, h *Host, name string, wasm []byte, config string, lim Limits) *Module {
	t.Helper()
	if lim.CallTimeout == 0 {
		lim.CallTimeout = relaxed
	}
	if lim.InitTimeout == 0 {
		lim.InitTimeout = relaxed
	}
	m, err := h.Load(context.Background(), name, wasm, []byte(config), lim)
	if err != nil {
		t.Fatalf("Load %s: %v", name, err)
	}
	return m
}

// logBuffer collects log records for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testLogger logs to the test's output when -v, and discards otherwise.
func testLogger(t testing.TB) *slog.Logger {
	if !testing.Verbose() {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}
