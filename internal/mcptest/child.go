package mcptest

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// MainIfChild runs the server and exits if the environment variable
// MCPTEST_SERVER is "1"; otherwise it returns at once. Call it first in
// TestMain so a test binary re-executed with Options.Environ becomes a server:
//
//	func TestMain(m *testing.M) {
//		mcptest.MainIfChild()
//		os.Exit(m.Run())
//	}
//
// In the parent it sets GORACE so that children built with -race exit at
// once: the race detector otherwise sleeps a second at exit, so every
// child outlived the stdin-close step of a stop and was sent SIGTERM.
func MainIfChild() {
	if os.Getenv(EnvServer) == "1" {
		Main()
	}
	if g := os.Getenv("GORACE"); !strings.Contains(g, "atexit_sleep_ms") {
		_ = os.Setenv("GORACE", strings.TrimSpace(g+" atexit_sleep_ms=0"))
	}
}

// Main serves stdin and stdout with the Options in the environment (see
// ParseEnv), writing diagnostics to stderr, and exits: 0 when stdin ends,
// the status of a deliberate death (1, 2 or 3; see Options.Exit), 64 when the
// environment is malformed, 1 on an I/O error. It never returns.
func Main() {
	opts, err := ParseEnv(os.LookupEnv)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(64)
	}
	opts.Stderr = os.Stderr
	opts.Exit = os.Exit
	err = Serve(os.Stdin, os.Stdout, opts)
	var exit *ExitError
	switch {
	case errors.As(err, &exit):
		os.Exit(exit.Code)
	case err != nil:
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}
