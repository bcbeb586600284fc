//go:build unix && !linux

package stdio

// waitExitedNoReap is only implemented on Linux. Elsewhere the waiter reaps the leader first and
// then kills its process group, which leaves a small window in which the pid could be reused.
func waitExitedNoReap(pid int) bool { return false }
