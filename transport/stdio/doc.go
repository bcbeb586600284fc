// Package stdio runs an MCP server as a child process and exchanges newline-delimited messages with it.
//
// The package knows nothing of MCP or JSON-RPC: a message is an opaque byte slice that must not
// contain '\n'. It implements the stdio transport of the MCP specification (basic/transports/stdio):
// messages are written to the child's stdin and read from its stdout, one per line; stderr is
// captured into the host's logger and a short in-memory tail.
//
// It is implemented for Unix systems only (process groups and signals).
//
// # Goroutines
//
// Start starts three goroutines, all owned by the Process:
//
//   - the waiter reaps the child (cmd.Wait), records how it ended, closes Done, kills the rest of
//     the child's process group, and, once stdout and stderr have reached EOF or a short time has
//     passed, switches both pipes to non-waiting reads so that a grandchild that escaped the group
//     and holds them open cannot block readers;
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
//  4. send SIGKILL to the process group and wait for the child to be reaped;
//  5. wait for the waiter, then for the stderr goroutines (the logger drains its queue);
//  6. close the stdout and stderr read ends.
//
// # Locks
//
// Writes are serialised by a one-slot channel (so waiting for it honours a context). Every other
// lock in the package is a leaf: it is never held while taking another or while blocking.
package stdio
