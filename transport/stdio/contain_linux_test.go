//go:build linux

package stdio

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// TestSweepKillsDeadGWCgroups: the cgroups of a gw that died with its reaper are killed and removed
// by the next gw. The dead gw is named by our own pid with another start time: a reused pid.
func TestSweepKillsDeadGWCgroups(t *testing.T) {
	base, err := ownCgroupDir()
	if err != nil {
		t.Skipf("no cgroup v2 to use: %v", err)
	}
	start, err := procStartTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	dead := filepath.Join(base, fmt.Sprintf("gw-%d-%d", os.Getpid(), start+1))
	server := filepath.Join(dead, "1-server")
	if err := os.MkdirAll(server, 0o755); err != nil {
		t.Skipf("cannot create cgroups here: %v", err)
	}
	t.Cleanup(func() { _ = killTree(dead) })
	fd, err := syscall.Open(server, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), childEnv+"=ignoreterm")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, UseCgroupFD: true, CgroupFD: fd}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	reaped := false
	t.Cleanup(func() {
		if !reaped {
			_ = cmd.Process.Kill()
			<-waited
		}
	})

	sweepDead(base)
	select {
	case err := <-waited:
		reaped = true
		if err == nil || waitStatus(t, err).Signal() != syscall.SIGKILL {
			t.Fatalf("the leftover server ended with %v, want SIGKILL", err)
		}
	case <-time.After(prompt):
		t.Fatal("the leftover server still runs after the sweep")
	}
	if _, err := os.Stat(dead); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s still there after the sweep: %v", dead, err)
	}
}

func TestCgroupDirFromMountinfo(t *testing.T) {
	const v1 = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
`
	const hybrid = v1 + `41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`
	const pure = `30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate
`
	const readOnly = `30 23 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw
`
	const bound = `30 23 0:26 /system.slice/gw.service /sys/fs/cgroup rw,relatime - cgroup2 cgroup2 rw
31 23 0:26 / /mnt/cg\040all rw,relatime - cgroup2 cgroup2 rw
`
	for _, tc := range []struct {
		name, mountinfo, own, want string
	}{
		{"hybrid root", hybrid, "/", "/sys/fs/cgroup/unified"},
		{"pure v2", pure, "/user.slice/u.scope", "/sys/fs/cgroup/user.slice/u.scope"},
		{"read-only", readOnly, "/", ""},
		{"closest root", bound, "/system.slice/gw.service/sub", "/sys/fs/cgroup/sub"},
		{"escaped space", bound, "/other", "/mnt/cg all/other"},
		{"v1 only", v1, "/", ""},
	} {
		got, err := cgroupDirFromMountinfo([]byte(tc.mountinfo), tc.own)
		if got != tc.want || (err != nil) != (tc.want == "") {
			t.Errorf("%s: got (%q, %v), want %q", tc.name, got, err, tc.want)
		}
	}
}

// TestStartFallsBackToAdopt: when the child cannot be started straight into its cgroup (here a
// descriptor that is no cgroup makes clone3 fail), it is started outside and moved in.
func TestStartFallsBackToAdopt(t *testing.T) {
	cg, err := newCgroup("fallback")
	if err != nil {
		t.Skipf("no cgroup: %v", err)
	}
	null, err := syscall.Open(os.DevNull, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	_ = syscall.Close(cg.fd)
	cg.fd = null
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	attempts := 0
	cmd, got, err := startIn(func(c *cgroup) *exec.Cmd {
		attempts++
		cmd := exec.Command(exe)
		cmd.Env = append(os.Environ(), childEnv+"=ignoreterm")
		cmd.SysProcAttr = &syscall.SysProcAttr{}
		c.setAttr(cmd.SysProcAttr)
		return cmd
	}, cg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if err := got.remove(); err != nil {
			t.Error(err)
		}
	}()
	if attempts != 2 || got != cg {
		t.Fatalf("%d attempts, cgroup %v; want 2 attempts and the cgroup kept", attempts, got.path())
	}
	procs, err := os.ReadFile(filepath.Join(cg.dir, "cgroup.procs"))
	if err != nil || string(procs) != fmt.Sprintf("%d\n", cmd.Process.Pid) {
		t.Fatalf("cgroup.procs = %q, %v; want the child's pid %d", procs, err, cmd.Process.Pid)
	}
}

// TestStrayReaperEnvIsRefused: a binary that finds the reaper's variable in its environment
// without having been started as a gw's reaper (no pipe, or one that does not name that gw)
// exits at once and kills nothing.
func TestStrayReaperEnvIsRefused(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, hello string
		pipe        bool
	}{
		{"no pipe", "", false},
		{"empty pipe", "", true},
		{"another gw", "gw 1\n", true},
	} {
		cmd := exec.Command(exe)
		cmd.Env = []string{reaperEnv + "=" + strconv.Itoa(os.Getpid())}
		if tc.pipe {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			_, _ = w.WriteString(tc.hello + "+1\n")
			_ = w.Close()
			cmd.ExtraFiles = []*os.File{r}
			defer r.Close()
		}
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Errorf("%s: the stray reaper ended with %v, want exit status 2", tc.name, err)
		}
	}
}

// TestReaperKillsListedGroupsOnly speaks the reaper's protocol: of two process groups listed,
// the one taken off the list again survives gw's end, the other does not.
func TestReaperKillsListedGroupsOnly(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	group := func() *exec.Cmd { // a process group of one that ignores SIGTERM
		cmd := exec.Command(exe)
		cmd.Env = append(os.Environ(), childEnv+"=ignoreterm")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return cmd
	}
	kept, killed := group(), group()

	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	reaperCmd := exec.Command(exe)
	reaperCmd.Env = []string{reaperEnv + "=" + strconv.Itoa(os.Getpid())}
	reaperCmd.ExtraFiles = []*os.File{r}
	if err := reaperCmd.Start(); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(w, "gw %d\n+%d\n+%d\n-%d\n", os.Getpid(), kept.Process.Pid, killed.Process.Pid, kept.Process.Pid)
	_ = w.Close() // gw is gone
	if err := reaperCmd.Wait(); err != nil {
		t.Fatalf("reaper: %v", err)
	}
	if !eventually(prompt, func() bool { return processGone(killed.Process.Pid) }) {
		t.Error("the listed group survived the reaper")
	}
	if processGone(kept.Process.Pid) {
		t.Error("the group taken off the list was killed")
	}
}
