package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/gwmcp/gw/internal/mcptest"
)

// envCallLog names the file where an mcptest server child records every
// tools/call line it reads, before it runs it (the fleet test counts
// executions per call with it).
const envCallLog = "GWTEST_CALL_LOG"

// callLogServerIfChild runs an mcptest server that records its calls, and
// exits, when this process is a server child with envCallLog set; otherwise
// it returns at once. Call it before mcptest.MainIfChild.
func callLogServerIfChild() {
	path := os.Getenv(envCallLog)
	if path == "" || os.Getenv(mcptest.EnvServer) != "1" {
		return
	}
	opts, err := mcptest.ParseEnv(os.LookupEnv)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(64)
	}
	log, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	pr, pw := io.Pipe()
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		sc.Buffer(make([]byte, 64<<10), 8<<20)
		for sc.Scan() {
			line := append(sc.Bytes(), '\n')
			if callLine(line) {
				// One write per line, O_APPEND: lines never interleave.
				if _, err := log.Write(line); err != nil {
					pw.CloseWithError(err)
					return
				}
			}
			if _, err := pw.Write(line); err != nil {
				return
			}
		}
		pw.CloseWithError(sc.Err())
	}()
	opts.Stderr = os.Stderr
	opts.Exit = os.Exit
	err = mcptest.Serve(pr, os.Stdout, opts)
	var exit *mcptest.ExitError
	switch {
	case errors.As(err, &exit):
		os.Exit(exit.Code)
	case err != nil:
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// callLine reports whether a line read by a server is a tools/call request.
func callLine(line []byte) bool {
	var m struct {
		Method string `json:"method"`
	}
	return json.Unmarshal(line, &m) == nil && m.Method == "tools/call"
}
