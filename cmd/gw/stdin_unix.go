//go:build unix

package main

import (
	"os"
	"syscall"
)

// serveStdin is the standard input of gw stdio and gw connect, made so that
// closing it stops a read in progress: the face closes its input when it
// stops for a reason of its own (SIGTERM, a pin file gone bad) while the
// client keeps stdin open, and a blocking read would hold the exit for the
// face's whole grace period.
// A pipe or socket (what an MCP client gives its server) is switched to
// non-blocking mode, which puts it in Go's poller; a terminal or a file is
// left as it is (a shell shares its terminal's mode).
func serveStdin() *os.File {
	var st syscall.Stat_t
	if err := syscall.Fstat(0, &st); err != nil {
		return os.Stdin
	}
	if kind := st.Mode & syscall.S_IFMT; kind != syscall.S_IFIFO && kind != syscall.S_IFSOCK {
		return os.Stdin
	}
	if err := syscall.SetNonblock(0, true); err != nil {
		return os.Stdin
	}
	return os.NewFile(0, "/dev/stdin") // non-blocking: pollable
}
