// Package stdio runs an MCP server as a child process and exchanges newline-delimited messages with it.
//
// The package knows nothing of MCP or JSON-RPC: a message is an opaque byte slice that must not
// contain '\n'. It implements the stdio transport of the MCP specification (basic/transports/stdio):
// messages are written to the child's stdin and read from its stdout, one per line; stderr is
// captured into the host's logger and a short in-memory tail.
//
// It is implemented for Unix systems only (process groups and signals); the parent-death signal,
// cgroups and the reaper below are Linux only (contain_linux.go, reaper_linux.go;
// contain_other.go does nothing).
//
// # Containment
//
// A server is its child process and everything that process starts. What ends them:
//
//   - The process group. The child leads a group of its own; when it exits, or Close stops it,
//     the group is sent SIGKILL. This reaches every descendant that did not call setsid or
//     setpgid, including one that ignores SIGTERM.
//   - The parent-death signal (Linux, always on). The child gets SIGKILL when gw dies, even of
//     SIGKILL. The kernel sends it when the thread that started the child ends, not the process,
//     and Go retires a thread when a goroutine locked to it returns (https://go.dev/issue/27505);
//     so children are started by a few spawner goroutines (one per CPU, up to 8; spawner.go),
//     each locked to its thread, and a spawner returns only once every child it started has been
//     reaped. The waiter waits on a pidfd in Go's poller, so a running server holds no thread.
//     The signal is not inherited by grandchildren and is dropped by the exec of a set-user-ID
//     program.
//   - A cgroup (Linux, Config.Contain == ContainCgroup, the default). Where gw can create a
//     cgroup v2 directory below its own (found through /proc/self/cgroup on a writable cgroup2
//     mount in /proc/self/mountinfo: /sys/fs/cgroup, or /sys/fs/cgroup/unified in the hybrid
//     layout; as root, or in a delegated cgroup), gw creates gw-<pid>-<start time> there and one
//     child cgroup per server, <n>-<name>. The child is started straight into it (clone3 with
//     CLONE_INTO_CGROUP: its first fork is already inside); if the kernel refuses (an old
//     seccomp profile), it is started outside and moved in at once, which leaves a fork made
//     in between outside. Wherever the group is sent SIGKILL, the cgroup is sent cgroup.kill,
//     which also reaches descendants that called setsid; the waiter then removes the cgroup.
//     Where no cgroup can be made (not root, no cgroup v2, a kernel before 5.14 without
//     cgroup.kill), Start says so once at level Info and goes on with the group alone. A
//     systemd unit that runs gw should say Delegate=yes, so that systemd knows gw manages the
//     cgroups below its own.
//   - The reaper (Linux). When gw is killed with SIGKILL, the parent-death signal takes its
//     servers but not their descendants. So the first Start also starts one reaper per gw: its
//     own executable again (/proc/self/exe, so a binary replaced since is no matter), in a
//     session of its own, ignoring SIGINT, SIGTERM and SIGHUP, reading a pipe from gw. gw tells
//     it each server's process group when the server starts and again when the group has been
//     killed, and its parent cgroup if it has one (reaper_linux.go has the protocol). When gw is
//     gone, however it ended, the pipe reports EOF, and the reaper kills the groups still
//     listed and gw's parent cgroup with every server and descendant in it, and removes it;
//     after a clean shutdown that is just the empty directory. Package init runs the reaper
//     when its environment says so, before main; it refuses (exit status 2) unless fd 3 is a
//     pipe that names the same gw. A group is listed only while its leader runs or is an
//     unreaped zombie, so its id cannot name another group then; the reaper kills at once, so
//     the id would have to be taken by a new group leader in that instant.
//   - The sweep. If the reaper died with gw (kill -9 of both), the next gw started in the same
//     cgroup kills and removes, at its first Start, the gw-<pid>-<start> directories whose
//     process no longer runs (the start time tells a reused pid apart; a process that exists but
//     whose start time cannot be read is spared).
//
// What survives a SIGKILL of gw, then: with a cgroup, nothing; without one, a descendant that
// left its server's process group. Under systemd (KillMode=control-group) and in a container
// (its init gone, the kernel kills the rest), that is ended anyway.
//
// Why a reaper and not the sweep alone: with only the sweep, a killed gw's descendants run until
// some gw starts again in the same cgroup, which may be never, and without cgroups there is no
// sweep at all, while a server run through npx or a shell leaves its real server as a
// grandchild in the group when the parent-death signal takes the direct child. The reaper costs
// one sleeping process per gw, and a short write to a pipe per server start and exit, never on
// a call path. Why not a subreaper (PR_SET_CHILD_SUBREAPER) in gw: the attribute dies with gw,
// so it does nothing for a SIGKILL of gw, and while gw runs, orphans it adopted would have to be
// reaped with wait(-1), which would take exit statuses os/exec is waiting for; cgroups find
// escaped descendants without adopting them. Why the reaper is not the servers' parent (a shim
// per server or one spawner): a second process on the path of every start and signal, for the
// same result.
//
// # Goroutines
//
// Start has a spawner start the child (see Containment), then starts three goroutines, all owned
// by the Process:
//
//   - the waiter waits for the child to exit (on a pidfd in Go's poller; where the kernel has no
//     pollable pidfd, blocked in waitid on a thread of its own), reaps it (cmd.Wait),
//     records how it ended, closes Done, kills the rest of the child's process group and
//     cgroup, and, once stdout and stderr have reached EOF or a short time has passed, switches
//     both pipes to non-waiting reads so that a grandchild that escaped the group and holds them
//     open cannot block readers; last it removes the child's cgroup;
//   - the stderr reader reads stderr lines into the tail and hands them to the logger over a
//     bounded queue, dropping (and counting) lines when the queue is full, so a slow logger never
//     blocks the child;
//   - the stderr logger writes queued lines to the Logger.
//
// All three end on their own after the child exits; Close waits for them.
//
// # Shutdown order
//
// Close runs these steps once:
//
//  1. mark the Process closing: WriteMessage fails with ErrClosed from now on;
//  2. close stdin (an in-flight write fails), then wait up to StopGrace for the child to exit;
//  3. send SIGTERM to the process group, then wait up to StopGrace;
//  4. send SIGKILL to the process group, and cgroup.kill to its cgroup, and wait for the child to
//     be reaped;
//  5. wait for the waiter (which removes the cgroup once it is empty), then for the stderr
//     goroutines (the logger drains its queue);
//  6. close the stdout and stderr read ends.
//
// # Locks
//
// Writes are serialised by a one-slot channel (so waiting for it honours a context). Every other
// lock in the package is a leaf: it is never held while taking another or while blocking.
package stdio
