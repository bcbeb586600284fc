//go:build unix

package natsconn

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockStoreDir takes an exclusive advisory lock on dir's lock file, so that two embedded servers
// (in one process or two) never share a JetStream store: nats-server itself does not prevent
// that, and the store would be corrupted. Closing the returned file releases the lock.
func lockStoreDir(dir string) (*os.File, error) {
	name := filepath.Join(dir, lockFileName)
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("natsconn: embedded server: store_dir lock: %w", err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s (another gw, or another embedded server in this one, uses it)", ErrStoreInUse, dir)
		}
		return nil, fmt.Errorf("natsconn: embedded server: store_dir lock %s: %w", name, err)
	}
	return f, nil
}
