package mcptest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// NPMServer finds an npm reference server (mcp-server-everything, …): under
// the repository's testdata/npm, where make test installs them, or on PATH.
// CI must have them: a missing server fails the test there (CI set) and
// skips it on a developer's machine without npm.
func NPMServer(t testing.TB, name string) string {
	t.Helper()
	if dir, err := os.Getwd(); err == nil {
		for ; ; dir = filepath.Dir(dir) {
			p := filepath.Join(dir, "testdata", "npm", "node_modules", ".bin", name)
			if _, err := os.Stat(p); err == nil {
				return p
			}
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil || filepath.Dir(dir) == dir {
				break // the module's root: no higher
			}
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s not installed (make npm-servers installs it into testdata/npm)", name)
	}
	t.Skipf("%s not installed; run make npm-servers", name)
	return ""
}
