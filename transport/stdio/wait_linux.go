//go:build linux

package stdio

import (
	"syscall"
	"unsafe"
)

// waitExitedNoReap blocks until the process pid has exited, without reaping it
// (waitid with WNOWAIT). While the zombie exists its pid, which is also the id of its process group,
// cannot be reused, so the group can still be signalled safely. It reports false if waitid failed;
// the caller then reaps first and signals the group after, accepting a small pid-reuse race.
func waitExitedNoReap(pid int) bool {
	const pPID = 1      // idtype_t P_PID
	var info [16]uint64 // siginfo_t is 128 bytes
	for {
		_, _, errno := syscall.Syscall6(syscall.SYS_WAITID, pPID, uintptr(pid),
			uintptr(unsafe.Pointer(&info)), syscall.WEXITED|syscall.WNOWAIT, 0, 0)
		switch errno {
		case 0:
			return true
		case syscall.EINTR:
			continue
		default:
			return false
		}
	}
}
