//go:build unix

package pinfile

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// Pins are security state, so the files are held to OpenSSH's StrictModes:
// another local user must not be able to write them or replace them.

// ownerOK: the user running gw, or root (who can replace anything anyway).
func ownerOK(fi os.FileInfo) (uint32, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, true
	}
	return st.Uid, st.Uid == uint32(os.Geteuid()) || st.Uid == 0
}

// checkDir refuses a directory another user could replace the pin file in:
// owned by someone else, or writable by group or others without the sticky
// bit. A sticky one (such as /tmp) is accepted: there others cannot remove
// or rename our files, and checkFile refuses any file they create under
// our names. A directory not made yet is made 0700 by the first write.
func checkDir(dir string) error {
	fi, err := os.Stat(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("pinfile: %w", err)
	}
	if uid, ok := ownerOK(fi); !ok {
		return fmt.Errorf("%w: directory %s is owned by uid %d, not by you (uid %d) or root: put pins.file in a directory of yours", ErrUnsafe, dir, uid, os.Geteuid())
	}
	if fi.Mode().Perm()&0o022 != 0 && fi.Mode()&os.ModeSticky == 0 {
		return fmt.Errorf("%w: directory %s is writable by group or others (mode %s) and not sticky, so another user could replace the pin file: chmod go-w it, or put pins.file elsewhere", ErrUnsafe, dir, fi.Mode().Perm())
	}
	return nil
}

// checkFile refuses a pin or lock file (fi, from the descriptor gw reads
// or locks) that is not the user's own or that others may write.
func checkFile(path string, fi os.FileInfo) error {
	if uid, ok := ownerOK(fi); !ok {
		return fmt.Errorf("%w: %s is owned by uid %d, not by you (uid %d) or root: another user may have planted it; remove it if you did not make it", ErrUnsafe, path, uid, os.Geteuid())
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%w: %s is writable by group or others (mode %s): chmod go-w it", ErrUnsafe, path, fi.Mode().Perm())
	}
	return nil
}
