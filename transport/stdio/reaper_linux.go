//go:build linux

package stdio

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The reaper ends what gw's servers leave when gw dies without stopping them (SIGKILL): see
// "Containment" in the package comment.
//
// gw tells it, one line at a time over a pipe it never closes:
//
//	gw <pid> first, the pid in the reaper's environment: this pipe is from that gw
//	+<pgid>  a server's process group to kill if gw dies
//	-<pgid>  that group is gone (its leader exited, the group was killed)
//	c<dir>   gw's parent cgroup, to kill and remove when gw is gone
//
// When gw dies, the kernel closes the pipe, and the reaper kills the groups still listed and the
// cgroup. A group is listed only while its leader runs or is an unreaped zombie, and then its id
// cannot name another group: the window for a mistake is the moment between gw's death and the
// kill, in which every member of the group would have to die and its id be reused by a new
// group leader.

const (
	// reaperEnv holds, for the reaper, the pid of the gw that started it.
	reaperEnv = "GW_STDIO_REAPER"
	// reaperWriteWait bounds a line's wait for a reaper that does not read (stopped, say).
	reaperWriteWait = time.Second
)

func init() {
	// The reaper is this binary re-executed; it must act before main does anything else.
	if owner := os.Getenv(reaperEnv); owner != "" {
		os.Exit(reap(owner))
	}
}

// reaperConn is gw's end of the reaper's pipe. The reaper is started at the first tell.
type reaperConn struct {
	once sync.Once
	mu   sync.Mutex
	w    *os.File // gw's end of the pipe; kept open for gw's life (closing it means gw is gone)
	ok   bool     // the reaper runs and every line reached it; guarded by mu
}

// reaper is this process's reaper: like the process groups and cgroups it watches, there is one
// per process.
var reaper reaperConn

// registerGroup lists a server's process group with the reaper.
func registerGroup(pgid int) { reaper.tell("+" + strconv.Itoa(pgid)) }

// forgetGroup takes a killed group off the reaper's list.
func forgetGroup(pgid int) { reaper.tell("-" + strconv.Itoa(pgid)) }

// tell sends the reaper one line. When a line cannot be sent whole (the reaper died, or does not
// read), the reaper is given up on: nothing more is sent, and the pipe stays open, since its
// closing would tell the reaper that gw is gone.
func (r *reaperConn) tell(line string) {
	r.once.Do(r.start)
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.ok {
		return
	}
	_ = r.w.SetWriteDeadline(time.Now().Add(reaperWriteWait))
	if _, err := r.w.WriteString(line + "\n"); err != nil {
		r.ok = false
	}
}

// start starts the reaper: this executable again (/proc/self/exe, so a binary replaced since gw
// started is no matter), in a session of its own (no signal meant for gw's terminal reaches it),
// with the read end of the pipe as fd 3 and nothing else of gw's.
func (r *reaperConn) start() {
	pr, pw, err := os.Pipe()
	if err != nil {
		return
	}
	defer pr.Close()
	if _, err := pw.WriteString("gw " + strconv.Itoa(os.Getpid()) + "\n"); err != nil {
		_ = pw.Close()
		return
	}
	cmd := exec.Command("/proc/self/exe")
	cmd.Args = []string{"gw-stdio-reaper"}
	cmd.Env = []string{reaperEnv + "=" + strconv.Itoa(os.Getpid())}
	cmd.Dir = "/"
	cmd.ExtraFiles = []*os.File{pr}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		_ = pw.Close()
		return
	}
	// Never waited for: it outlives gw, and init reaps it then.
	_ = cmd.Process.Release()
	r.w, r.ok = pw, true
}

// reap is the reaper's main; it returns the exit code.
func reap(owner string) int {
	signal.Ignore(syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP) // it ends when gw does
	// Only a gw that started us gives us a pipe as fd 3 that first says "gw <pid>" (gw may be
	// gone already: what it wrote is still there): anything else is a stray environment
	// variable, and nothing is killed.
	refuse := func() int {
		fmt.Fprintf(os.Stderr, "%s=%s: not started by that gw\n", reaperEnv, owner)
		return 2
	}
	gw, err := strconv.Atoi(owner)
	var st syscall.Stat_t
	if err != nil || syscall.Fstat(3, &st) != nil || st.Mode&syscall.S_IFMT != syscall.S_IFIFO {
		return refuse()
	}
	in := bufio.NewReader(os.NewFile(3, "gw"))
	if hello, err := in.ReadString('\n'); err != nil || hello != "gw "+owner+"\n" {
		return refuse()
	}
	groups := make(map[int]bool)
	var parents []string
	for {
		line, err := in.ReadString('\n')
		if err != nil {
			break // gw is gone (a partial line is a write cut short: ignored)
		}
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			continue
		}
		switch arg := line[1:]; line[0] {
		case '+', '-':
			// 0 and 1 would make kill(2) mean our own group or every process.
			if pgid, err := strconv.Atoi(arg); err == nil && pgid > 1 {
				if line[0] == '+' {
					groups[pgid] = true
				} else {
					delete(groups, pgid)
				}
			}
		case 'c':
			if pid, _, ok := parseOwner(filepath.Base(arg)); ok && pid == gw && filepath.IsAbs(arg) {
				parents = append(parents, arg)
			}
		}
	}
	for pgid := range groups {
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	}
	code := 0
	for _, dir := range parents {
		if err := killTree(dir); err != nil {
			fmt.Fprintln(os.Stderr, "gw reaper:", err)
			code = 1
		}
	}
	return code
}
