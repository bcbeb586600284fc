package mcptest

import (
	_ "embed"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// tinySource is a small MCP server in C (testdata/tinymcp.c): 13 tools,
// the legacy era, a few hundred KiB of memory and a millisecond of start,
// for tests that run a thousand servers at once.
//
//go:embed testdata/tinymcp.c
var tinySource []byte

// TinyServer compiles tinymcp with cc -O2 into t's temporary directory and
// returns the binary's path. Its arguments: --name NAME (its serverInfo and
// tool descriptions), --delay-ms N (sleep before reading: a slow start of
// its own). Without a C compiler the test is skipped, except under CI,
// whose machines have one.
func TinyServer(t testing.TB) string {
	t.Helper()
	cc, err := exec.LookPath("gcc")
	if err != nil {
		if cc, err = exec.LookPath("cc"); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatal("no C compiler (gcc or cc) to build tinymcp")
			}
			t.Skip("no C compiler (gcc or cc) to build tinymcp")
		}
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "tinymcp.c")
	if err := os.WriteFile(src, tinySource, 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "tinymcp")
	if out, err := exec.Command(cc, "-O2", "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("build tinymcp: %v\n%s", err, out)
	}
	return bin
}
