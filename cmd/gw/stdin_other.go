//go:build !unix

package main

import "os"

// serveStdin is gw stdio's standard input (see stdin_unix.go).
func serveStdin() *os.File { return os.Stdin }
