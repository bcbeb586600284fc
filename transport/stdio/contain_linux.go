//go:build linux

package stdio

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Containment on Linux; see "Containment" in the package comment.
//
// Every gw process owns one cgroup v2 directory, its parent, gw-<pid>-<start time>, made in the
// cgroup gw runs in, and one child of it per server: <parent>/<n>-<name>. gw stays where it is;
// only servers go into the children. No controller is enabled: cgroup.procs, cgroup.events and
// cgroup.kill are all gw needs, and a cgroup without controllers may sit under one that holds
// processes.

// cgroupKillWait bounds how long killing a cgroup waits for its processes to be gone.
const cgroupKillWait = 2 * time.Second

// setParentDeath asks the kernel to SIGKILL the child when the thread that starts it ends. The
// child is started from the waiter goroutine while it is locked to its OS thread, and that thread
// stays locked (Go never ends a locked thread whose goroutine still runs) until the child is
// reaped: so the signal comes when gw dies, not when the Go runtime retires a thread.
func setParentDeath(attr *syscall.SysProcAttr) { attr.Pdeathsig = syscall.SIGKILL }

// cgroupHost is gw's parent cgroup, set up once, on first use. There is one per process (host),
// as there is one cgroup the process runs in.
type cgroupHost struct {
	once   sync.Once
	parent string // <own cgroup>/gw-<pid>-<start>; "" when cgroups are not used
	err    error  // why cgroups are not used
	seq    atomic.Uint64
}

var host cgroupHost

// cgroup is one server's cgroup. A nil *cgroup is valid: no cgroup, every method does nothing.
type cgroup struct {
	dir string
	fd  int // open on dir for CLONE_INTO_CGROUP until the child started; -1 after
}

// newCgroup creates a cgroup for a server called name, or reports why it cannot.
func newCgroup(name string) (*cgroup, error) {
	host.once.Do(host.setUp)
	if host.err != nil {
		return nil, host.err
	}
	dir := filepath.Join(host.parent, strconv.FormatUint(host.seq.Add(1), 10)+"-"+cgroupName(name))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, err
	}
	fd, err := syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		_ = syscall.Rmdir(dir)
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	return &cgroup{dir: dir, fd: fd}, nil
}

// cgroupName makes a server's name fit for a cgroup directory.
func cgroupName(name string) string {
	b := []byte(name)
	if len(b) > 64 {
		b = b[:64]
	}
	for i, c := range b {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			b[i] = '_'
		}
	}
	return string(b)
}

// path is the cgroup's directory, "" for none.
func (c *cgroup) path() string {
	if c == nil {
		return ""
	}
	return c.dir
}

// setAttr makes the child start inside the cgroup (clone3 with CLONE_INTO_CGROUP), so that not
// even its first fork can happen outside.
func (c *cgroup) setAttr(attr *syscall.SysProcAttr) {
	if c != nil {
		attr.UseCgroupFD, attr.CgroupFD = true, c.fd
	}
}

// started releases what only starting needed.
func (c *cgroup) started() {
	if c != nil && c.fd >= 0 {
		_ = syscall.Close(c.fd)
		c.fd = -1
	}
}

// adopt moves a child that was started outside the cgroup into it: the fallback when clone3 is
// refused (by an old seccomp profile, say). A fork the child made before the move stays outside.
func (c *cgroup) adopt(pid int) error {
	return writeCgroupFile(filepath.Join(c.dir, "cgroup.procs"), strconv.Itoa(pid))
}

// kill sends SIGKILL to every process in the cgroup, whatever its session or process group.
func (c *cgroup) kill() {
	if c != nil {
		_ = writeCgroupFile(filepath.Join(c.dir, "cgroup.kill"), "1")
	}
}

// remove kills what is left in the cgroup, waits for it to be empty and removes it.
func (c *cgroup) remove() error {
	if c == nil {
		return nil
	}
	c.started()
	return killTree(c.dir)
}

// setUp finds the cgroup gw runs in on a writable cgroup v2 mount, sweeps the leftovers of dead
// gw processes there, creates gw's parent and tells the reaper. Any failure leaves cgroups unused.
func (h *cgroupHost) setUp() {
	base, err := ownCgroupDir()
	if err != nil {
		h.err = err
		return
	}
	pid := os.Getpid()
	start, err := procStartTime(pid)
	if err != nil {
		h.err = err
		return
	}
	sweepDead(base)
	parent := filepath.Join(base, fmt.Sprintf("gw-%d-%d", pid, start))
	if err := os.Mkdir(parent, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		h.err = err
		return
	}
	if _, err := os.Stat(filepath.Join(parent, "cgroup.kill")); err != nil {
		_ = syscall.Rmdir(parent)
		h.err = fmt.Errorf("%s has no cgroup.kill (Linux 5.14 or later is needed)", parent)
		return
	}
	h.parent = parent
	reaper.tell("c" + parent) // without a reaper, the next gw's sweep is the fallback
}

// ownCgroupDir returns the directory of the cgroup v2 this process belongs to, on a cgroup2
// mount that is not read-only.
func ownCgroupDir() (string, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", err
	}
	var own string
	found := false
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(strings.TrimRight(line, "\n"), "0::"); ok {
			own, found = rest, true
		}
	}
	switch {
	case !found || !strings.HasPrefix(own, "/"):
		return "", errors.New("not in a cgroup v2 hierarchy")
	case strings.Contains(own+"/", "/../"):
		// A process outside the root of its cgroup namespace.
		return "", fmt.Errorf("cgroup %s is outside this cgroup namespace", own)
	}
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	return cgroupDirFromMountinfo(mounts, own)
}

// cgroupDirFromMountinfo maps the cgroup v2 path own onto the writable cgroup2 mount whose root
// holds it most closely, given the contents of /proc/self/mountinfo.
func cgroupDirFromMountinfo(mountinfo []byte, own string) (string, error) {
	best, bestRoot := "", ""
	for line := range strings.Lines(string(mountinfo)) {
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		f, g := strings.Fields(pre), strings.Fields(post)
		if len(f) < 6 || len(g) < 1 || g[0] != "cgroup2" {
			continue
		}
		root, point := unescapeMount(f[3]), unescapeMount(f[4])
		if !strings.Contains(","+f[5]+",", ",rw,") {
			continue
		}
		rel, ok := strings.CutPrefix(own, root)
		if root == "/" {
			rel, ok = own, true
		} else if !ok || (rel != "" && !strings.HasPrefix(rel, "/")) {
			continue
		}
		if best == "" || len(root) > len(bestRoot) {
			best, bestRoot = filepath.Join(point, rel), root
		}
	}
	if best == "" {
		return "", errors.New("no writable cgroup2 mount holds this process's cgroup")
	}
	return best, nil
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space, and so on).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// procStartTime returns the start time of process pid (field 22 of /proc/pid/stat, in clock
// ticks since boot), which together with the pid names a process even after its pid is reused.
func procStartTime(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// parseOwner reads a parent cgroup's name, gw-<pid>-<start>.
func parseOwner(name string) (pid int, start uint64, ok bool) {
	rest, ok := strings.CutPrefix(name, "gw-")
	if !ok {
		return 0, 0, false
	}
	p, s, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, 0, false
	}
	pid, err1 := strconv.Atoi(p)
	start, err2 := strconv.ParseUint(s, 10, 64)
	return pid, start, err1 == nil && err2 == nil && pid > 0
}

// ownerAlive reports whether the gw process that created a parent cgroup may still run: a process
// whose start time cannot be read but that exists (a /proc mounted with hidepid) is given the
// benefit of the doubt.
func ownerAlive(pid int, start uint64) bool {
	if st, err := procStartTime(pid); err == nil {
		return st == start
	}
	return syscall.Kill(pid, 0) != syscall.ESRCH
}

// sweepDead kills and removes the parent cgroups under base whose gw died without cleaning up
// (SIGKILL, with its reaper gone too, or no reaper).
func sweepDead(base string) {
	ents, err := os.ReadDir(base)
	if err != nil {
		return
	}
	for _, e := range ents {
		if pid, start, ok := parseOwner(e.Name()); ok && e.IsDir() && !ownerAlive(pid, start) {
			_ = killTree(filepath.Join(base, e.Name()))
		}
	}
}

// killTree kills every process in the cgroup dir and its descendants, waits until none is left and
// removes the directories, deepest first. A dir that is already gone is no error.
func killTree(dir string) error {
	if err := writeCgroupFile(filepath.Join(dir, "cgroup.kill"), "1"); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	if err := awaitEmpty(dir, cgroupKillWait); err != nil {
		return err
	}
	return removeTree(dir)
}

// awaitEmpty waits up to d for the cgroup dir and its descendants to hold no live process (zombies
// do not count).
func awaitEmpty(dir string, d time.Duration) error {
	end := time.Now().Add(d)
	for pause := time.Millisecond; ; pause = min(2*pause, 50*time.Millisecond) {
		b, err := os.ReadFile(filepath.Join(dir, "cgroup.events"))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if bytes.Contains(b, []byte("populated 0")) {
			return nil
		}
		if time.Now().After(end) {
			return fmt.Errorf("cgroup %s: processes still alive %v after cgroup.kill", dir, d)
		}
		time.Sleep(pause)
	}
}

// removeTree removes the cgroup dir and its descendant cgroups, which must hold no process.
func removeTree(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	for _, e := range ents {
		if e.IsDir() {
			if err := removeTree(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	if err := syscall.Rmdir(dir); err != nil && err != syscall.ENOENT {
		return &os.PathError{Op: "rmdir", Path: dir, Err: err}
	}
	return nil
}

// writeCgroupFile writes s to an existing cgroup interface file.
func writeCgroupFile(path, s string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(s)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
