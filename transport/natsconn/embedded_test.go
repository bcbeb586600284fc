package natsconn

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// startEmbedded starts an embedded server with o (StoreDir defaults to a temporary directory) and
// shuts it down when the test ends.
func startEmbedded(t *testing.T, o EmbeddedOptions) *Embedded {
	t.Helper()
	if o.StoreDir == "" {
		o.StoreDir = t.TempDir()
	}
	e, err := StartEmbedded(testContext(t), o)
	if err != nil {
		t.Fatalf("StartEmbedded: %v", err)
	}
	t.Cleanup(e.Shutdown)
	return e
}

// connectInProcess returns an in-process connection that is closed when the test ends.
func connectInProcess(t *testing.T, e *Embedded, name string) *nats.Conn {
	t.Helper()
	nc, err := e.Connect(name)
	if err != nil {
		t.Fatalf("Embedded.Connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// TestEmbeddedInProcessJetStream: with Port 0 the server does not listen, an in-process connection
// works, and JetStream answers on it.
func TestEmbeddedInProcessJetStream(t *testing.T) {
	rec, log := newRecorder(t)
	e := startEmbedded(t, EmbeddedOptions{Port: 0, ServerName: "gw-test", Logger: log})
	if u := e.ClientURL(); u != "" {
		t.Errorf("ClientURL = %q with Port 0, want empty", u)
	}
	if a := e.srv.Addr(); a != nil {
		t.Errorf("server listens on %v with Port 0", a)
	}
	nc := connectInProcess(t, e, "in-process")

	ctx := testContext(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	info, err := js.AccountInfo(ctx)
	if err != nil {
		t.Fatalf("AccountInfo: %v", err)
	}
	if info.Streams != 0 {
		t.Errorf("fresh store has %d streams", info.Streams)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}}); err != nil {
		t.Fatalf("CreateStream: %v", err)
	}
	if _, err := js.Publish(ctx, "t.1", []byte("x")); err != nil {
		t.Fatalf("Publish: %v", err)
	}

	// The server's logs reach slog, tagged, with nats-server's message.
	if !rec.has("INFO", "Server is ready", "component=nats-server") {
		t.Errorf("no server log record routed to slog")
	}
	if !rec.has("INFO", "nats: connected", "conn=in-process", "url=nats://in-process") {
		t.Errorf("connect not logged")
	}
}

// TestEmbeddedListensOnRandomPort: Port -1 picks a free loopback port, ClientURL names it and
// Connect reaches it over TCP.
func TestEmbeddedListensOnRandomPort(t *testing.T) {
	e := startEmbedded(t, EmbeddedOptions{Port: -1})
	u := e.ClientURL()
	if !strings.HasPrefix(u, "nats://127.0.0.1:") || strings.HasSuffix(u, ":0") || strings.HasSuffix(u, ":-1") {
		t.Fatalf("ClientURL = %q", u)
	}
	nc, err := Connect(testContext(t), ConnOptions{URL: u, Name: "tcp"})
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	defer nc.Close()
	if got := nc.ConnectedUrl(); got != u {
		t.Errorf("connected to %q, want %q", got, u)
	}
	roundTrip(t, nc, connectInProcess(t, e, "peer"))
}

// roundTrip checks that a message published on pub reaches a subscription on sub.
func roundTrip(t *testing.T, sub, pub *nats.Conn) {
	t.Helper()
	s, err := sub.SubscribeSync("rt")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Unsubscribe()
	if err := sub.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish("rt", []byte("ping")); err != nil {
		t.Fatal(err)
	}
	m, err := s.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("NextMsg: %v", err)
	}
	if string(m.Data) != "ping" {
		t.Fatalf("got %q", m.Data)
	}
}

// TestEmbeddedPortInUse: a taken port is reported as ErrAddrInUse wrapping EADDRINUSE, quickly,
// and nothing is left running (goleak checks that at the end).
func TestEmbeddedPortInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port

	start := time.Now()
	e, err := StartEmbedded(testContext(t), EmbeddedOptions{StoreDir: t.TempDir(), Port: port})
	if err == nil {
		e.Shutdown()
		t.Fatal("StartEmbedded succeeded on a port in use")
	}
	if !errors.Is(err, ErrAddrInUse) || !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("err = %v, want ErrAddrInUse and EADDRINUSE", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %s to fail", d)
	}
	t.Logf("error: %v", err)
}

// TestEmbeddedBadStoreDir: a store directory that cannot be created is a *fs.PathError, a missing
// one an ErrInvalidOptions.
func TestEmbeddedBadStoreDir(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{file, filepath.Join(file, "sub")} {
		_, err := StartEmbedded(testContext(t), EmbeddedOptions{StoreDir: dir})
		var pe *fs.PathError
		if !errors.As(err, &pe) {
			t.Errorf("StoreDir %s: err = %v, want a *fs.PathError", dir, err)
		}
		if err != nil && !strings.Contains(err.Error(), "store_dir") {
			t.Errorf("error does not name store_dir: %v", err)
		}
	}
	_, err := StartEmbedded(testContext(t), EmbeddedOptions{})
	if !errors.Is(err, ErrInvalidOptions) || !strings.Contains(err.Error(), "store_dir is required") {
		t.Errorf("no StoreDir: err = %v", err)
	}
}

// TestEmbeddedStoreInUse: a second server on the same store directory is refused while the first
// runs, and accepted once it has shut down.
func TestEmbeddedStoreInUse(t *testing.T) {
	dir := t.TempDir()
	e1, err := StartEmbedded(testContext(t), EmbeddedOptions{StoreDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	e2, err := StartEmbedded(testContext(t), EmbeddedOptions{StoreDir: dir})
	if !errors.Is(err, ErrStoreInUse) {
		if e2 != nil {
			e2.Shutdown()
		}
		t.Errorf("second server on the same store: err = %v, want ErrStoreInUse", err)
	}
	e1.Shutdown()
	e3 := startEmbedded(t, EmbeddedOptions{StoreDir: dir})
	e3.Shutdown()
}

func TestEmbeddedOptionsValidation(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		o    EmbeddedOptions
		want string
	}{
		{EmbeddedOptions{StoreDir: dir, Host: "0.0.0.0"}, `host "0.0.0.0" is not a loopback address`},
		{EmbeddedOptions{StoreDir: dir, Host: "example.com"}, `host "example.com" is not a loopback address`},
		{EmbeddedOptions{StoreDir: dir, Port: -2}, "port must be -1"},
		{EmbeddedOptions{StoreDir: dir, Port: 65536}, "got 65536"},
		{EmbeddedOptions{StoreDir: dir, MaxPayload: -1}, "max_payload must not be negative"},
	} {
		_, err := StartEmbedded(testContext(t), tc.o)
		if !errors.Is(err, ErrInvalidOptions) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err = %v, want ErrInvalidOptions with %q", tc.o, err, tc.want)
		}
	}
	// Several problems are reported together, one line each.
	_, err := StartEmbedded(testContext(t), EmbeddedOptions{Host: "10.0.0.1", Port: -5})
	if n := strings.Count(err.Error(), "\n") + 1; n != 3 {
		t.Errorf("want 3 problems, got %d: %v", n, err)
	}
	for _, h := range []string{"localhost", "127.0.0.2", "::1"} {
		if err := (EmbeddedOptions{StoreDir: dir, Host: h}).validate(); err != nil {
			t.Errorf("host %s refused: %v", h, err)
		}
	}
}

func TestEmbeddedContextDone(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := StartEmbedded(ctx, EmbeddedOptions{StoreDir: t.TempDir()})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestEmbeddedMaxPayload(t *testing.T) {
	e := startEmbedded(t, EmbeddedOptions{MaxPayload: 4096})
	nc := connectInProcess(t, e, "mp")
	if got := nc.MaxPayload(); got != 4096 {
		t.Errorf("MaxPayload = %d", got)
	}
	if err := nc.Publish("x", make([]byte, 4097)); !errors.Is(err, nats.ErrMaxPayload) {
		t.Errorf("oversized publish: err = %v", err)
	}
}

// TestEmbeddedShutdown: Shutdown closes the in-process connections, is idempotent and safe to call
// concurrently, and Connect afterwards fails with ErrShutdown.
func TestEmbeddedShutdown(t *testing.T) {
	e, err := StartEmbedded(testContext(t), EmbeddedOptions{StoreDir: t.TempDir(), Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	a, err := e.Connect("a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.Connect("b")
	if err != nil {
		t.Fatal(err)
	}
	b.Close() // closed before: forgotten by the next Connect, harmless to Shutdown
	c, err := e.Connect("c")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(e.conns); n != 2 {
		t.Errorf("tracking %d connections, want 2 (a and c)", n)
	}

	var wg sync.WaitGroup
	for range 4 {
		wg.Go(e.Shutdown)
	}
	wg.Wait()
	e.Shutdown()

	for _, nc := range []*nats.Conn{a, c} {
		if !nc.IsClosed() {
			t.Errorf("connection %s still open after Shutdown", nc.Opts.Name)
		}
	}
	if _, err := e.Connect("late"); !errors.Is(err, ErrShutdown) {
		t.Errorf("Connect after Shutdown: err = %v, want ErrShutdown", err)
	}
	if u := e.ClientURL(); u != "" {
		t.Errorf("ClientURL after Shutdown = %q", u)
	}
}

// TestReconnectAfterRestart: a client made by Connect outlives a restart of the server on the
// same port and store: it reconnects by itself, its subscription carries on, the stream and its
// message are still there, and the disconnect and reconnect were logged.
func TestReconnectAfterRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := testContext(t)
	e1, err := StartEmbedded(ctx, EmbeddedOptions{StoreDir: dir, Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	url := e1.ClientURL()
	port := e1.srv.Addr().(*net.TCPAddr).Port

	rec, log := newRecorder(t)
	nc, err := Connect(ctx, ConnOptions{URL: url, Name: "survivor", ReconnectWait: 50 * time.Millisecond, Logger: log})
	if err != nil {
		e1.Shutdown()
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"events.>"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "events.one", []byte("kept")); err != nil {
		t.Fatal(err)
	}
	sub, err := nc.SubscribeSync("greet")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	status := nc.StatusChanged(nats.RECONNECTING, nats.CONNECTED)
	defer nc.RemoveStatusListener(status)
	e1.Shutdown()
	waitStatus(t, status, nats.RECONNECTING)

	e2, err := StartEmbedded(ctx, EmbeddedOptions{StoreDir: dir, Port: port})
	if err != nil {
		t.Fatalf("restart on port %d: %v", port, err)
	}
	defer e2.Shutdown()
	waitStatus(t, status, nats.CONNECTED)
	if err := nc.Flush(); err != nil { // the server has our re-sent SUB once this returns
		t.Fatal(err)
	}

	pub := connectInProcess(t, e2, "publisher")
	if err := pub.Publish("greet", []byte("hello again")); err != nil {
		t.Fatal(err)
	}
	m, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("subscription after reconnect: %v", err)
	}
	if string(m.Data) != "hello again" {
		t.Errorf("got %q", m.Data)
	}

	st, err := js.Stream(ctx, "EVENTS")
	if err != nil {
		t.Fatalf("stream after restart: %v", err)
	}
	got, err := st.GetMsg(ctx, 1)
	if err != nil {
		t.Fatalf("message after restart: %v", err)
	}
	if string(got.Data) != "kept" {
		t.Errorf("message after restart = %q", got.Data)
	}
	if n := nc.Stats().Reconnects; n != 1 {
		t.Errorf("Reconnects = %d, want 1", n)
	}
	if !rec.has("WARN", "nats: disconnected, reconnecting", "conn=survivor") {
		t.Error("disconnect not logged")
	}
	// The reconnect handler runs on nats.go's callback goroutine, after the status change.
	deadline := time.Now().Add(5 * time.Second)
	for !rec.has("INFO", "nats: reconnected", "conn=survivor", "url="+url) {
		if time.Now().After(deadline) {
			t.Fatal("reconnect not logged")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitStatus waits up to 10s for want on ch.
func waitStatus(t *testing.T, ch <-chan nats.Status, want nats.Status) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case s := <-ch:
			if s == want {
				return
			}
		case <-timeout:
			t.Fatalf("status %v not reached", want)
		}
	}
}

// TestServerLoggerLevels: the server's Fatalf is logged as an error and remembered,
// and each level maps to its slog level.
func TestServerLoggerLevels(t *testing.T) {
	rec, log := newRecorder(t)
	l := newServerLogger(log)
	l.Noticef("n %d", 1)
	l.Warnf("w %d", 2)
	l.Errorf("e %d", 3)
	l.Debugf("d %d", 4)
	l.Tracef("t %d", 5)
	l.Fatalf("f %d", 6)
	l.Fatalf("f %d", 7)
	for _, want := range []string{"INFO n 1", "WARN w 2", "ERROR e 3", "DEBUG d 4", "DEBUG-4 t 5", "ERROR f 6", "ERROR f 7"} {
		if !rec.has(want) {
			t.Errorf("no record %q", want)
		}
	}
	if got := l.firstFatal(); got != "f 6" {
		t.Errorf("firstFatal = %q", got)
	}
}
