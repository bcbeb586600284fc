//go:build !unix

package natsconn

import (
	"fmt"
	"os"
	"path/filepath"
)

// lockStoreDir only opens the lock file where there is no flock: two embedded servers sharing a
// store are not detected there.
func lockStoreDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockFileName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("natsconn: embedded server: store_dir lock: %w", err)
	}
	return f, nil
}
