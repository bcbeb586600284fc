//go:build unix

package pinfile

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/gwmcp/gw/gateway"
)

// TestOpenTriesTheLock: where flock fails (a file system without it), Open
// fails, naming the lock file, rather than every write later; with
// DeferLock, the first write does.
func TestOpenTriesTheLock(t *testing.T) {
	flock = func(int, int) error { return syscall.ENOLCK }
	t.Cleanup(func() { flock = syscall.Flock })
	path := filepath.Join(t.TempDir(), "pins.json")
	if s, err := Open(path, Options{}); !errors.Is(err, syscall.ENOLCK) || !strings.Contains(err.Error(), path+".lock") {
		if s != nil {
			_ = s.Close()
		}
		t.Fatalf("Open where flock fails: %v; want ENOLCK naming the lock file", err)
	}
	s, err := Open(path, Options{DeferLock: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Create(context.Background(), gateway.Pin{Server: "a", Tool: "b", Digest: "sha256:1"}); !errors.Is(err, syscall.ENOLCK) {
		t.Fatalf("write where flock fails: %v", err)
	}
}
