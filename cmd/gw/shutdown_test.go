package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gwmcp/gw/internal/mcptest"
)

// TestShutdownGraceAndHurry: after the first signal gw run lets a call in
// flight run on (gateway.shutdown_grace); a second signal cancels it at once,
// the caller gets an error, and gw run returns. With a short grace and no
// second signal, gw run stops when the grace ends.
func TestShutdownGraceAndHurry(t *testing.T) {
	for _, tc := range []struct {
		name  string
		grace string
		hurry bool
	}{
		{"second signal", "60s", true},
		{"grace ends", "1s", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			port := freePort(t)
			cfg := writeConfig(t, "gw.yaml", runHead(t, "gw-stop", port)+fmt.Sprintf(`gateway: {shutdown_grace: %s}
servers:
  alpha:
    command: EXE
    env: {MCPTEST_SERVER: "1"}
`, tc.grace))
			graceful, stop := context.WithCancel(context.Background())
			defer stop()
			hurry, hurryNow := context.WithCancel(context.Background())
			defer hurryNow()
			var stderr mcptest.SyncBuffer
			done := make(chan int, 1)
			go func() {
				done <- run(withHurry(graceful, hurry), []string{"run", "-c", cfg}, &bytes.Buffer{}, &stderr)
			}()
			nc := connectWhenUp(t, port, &stderr)
			waitForTool(t, nc, "alpha__echo", &stderr)

			answer := make(chan *nats.Msg, 1)
			go func() {
				m, err := nc.Request("mcp.v1.req.alice.tools.call.alpha__slow", []byte(`{"name":"alpha__slow","arguments":{"ms":120000}}`), 2*time.Minute)
				if err != nil {
					m = &nats.Msg{Data: []byte("request error: " + err.Error())}
				}
				answer <- m
			}()
			time.Sleep(300 * time.Millisecond) // the call is with the server
			stop()
			stopped := time.Now()
			select {
			case code := <-done:
				t.Fatalf("gw run returned %d at once, with a call in flight and grace left\n%s", code, stderr.String())
			case m := <-answer:
				t.Fatalf("the call in flight was answered at once: %s", m.Data)
			case <-time.After(500 * time.Millisecond):
			}
			if tc.hurry {
				hurryNow()
			}
			select {
			case code := <-done:
				if code != 0 {
					t.Fatalf("gw run exited %d\n%s", code, stderr.String())
				}
			case <-time.After(20 * time.Second):
				t.Fatalf("gw run still running 20s after the stop\n%s", stderr.String())
			}
			took := time.Since(stopped)
			if !tc.hurry && took < time.Second {
				t.Fatalf("gw run stopped after %v, before its 1s grace", took)
			}
			m := <-answer
			if !strings.Contains(string(m.Data), "shutting down") {
				t.Fatalf("the call in flight got %s; want an error saying gw is shutting down", m.Data)
			}
			t.Logf("stopped %v after the first signal; the call got %s", took, m.Data)
		})
	}
}

// connectWhenUp connects to the embedded NATS of a gw run on port.
func connectWhenUp(t *testing.T, port int, stderr *mcptest.SyncBuffer) *nats.Conn {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		nc, err := nats.Connect(fmt.Sprintf("nats://127.0.0.1:%d", port))
		if err == nil {
			t.Cleanup(nc.Close)
			return nc
		}
		if time.Now().After(deadline) {
			t.Fatalf("embedded NATS never came up: %v\n%s", err, stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitForTool waits until tool answers a call over NATS.
func waitForTool(t *testing.T, nc *nats.Conn, tool string, stderr *mcptest.SyncBuffer) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, err := nc.Request("mcp.v1.req.alice.tools.call."+tool, []byte(`{"name":"`+tool+`","arguments":{"text":"up?"}}`), 5*time.Second)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never answered: %v\n%s", tool, err, stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestShutdownSignals: the first SIGTERM ends the run's context, the second
// its hurry context.
func TestShutdownSignals(t *testing.T) {
	ctx, stop := shutdownSignals()
	defer stop()
	hurry := hurryOf(ctx)
	wait := func(c context.Context, what string) {
		t.Helper()
		select {
		case <-c.Done():
		case <-time.After(5 * time.Second):
			t.Fatalf("%s did not end", what)
		}
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	wait(ctx, "the run's context after the first SIGTERM")
	if hurry.Err() != nil {
		t.Fatal("the first SIGTERM ended the hurry context too")
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	wait(hurry, "the hurry context after the second signal")
}

// runInBackground runs `gw run -c cfg` until the test ends (then stops it
// and waits), and returns its stderr.
func runInBackground(t *testing.T, cfg string) *mcptest.SyncBuffer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var stderr mcptest.SyncBuffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"run", "-c", cfg}, &bytes.Buffer{}, &stderr) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return &stderr
}
