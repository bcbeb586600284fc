//go:build !unix

package pinfile

import (
	"context"
	"os"
)

const openNoFollow = 0

// lockFile does nothing where there is no flock: two processes writing the
// file at the same moment may lose one's write there (each write still
// re-reads the file first, which narrows the window to milliseconds).
func lockFile(context.Context, *os.File) error { return nil }

func tryLock(*os.File) error { return nil }

func unlockFile(*os.File) {}

func linked(os.FileInfo) bool { return true }
