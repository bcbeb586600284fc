//go:build unix

package stdio

import (
	"errors"
	"io"
	"os"
	"sync"
	"syscall"
	"time"
)

// pipeReader is the read end of a pipe from the child (stdout or stderr).
//
// Normally reads block until data or EOF arrives. EOF only arrives once every process holding the
// write end has closed it, and a grandchild that escaped the process group can hold it forever.
// So once the leader has exited (and its group was killed), the waiter calls orphan: from then on
// reads return what is still buffered in the pipe and io.EOF when it is empty, instead of blocking.
// Nothing the child wrote before exiting is lost, because the pipe is drained rather than closed.
type pipeReader struct {
	f  *os.File // non-blocking (os.Pipe registers it with the runtime poller)
	rc syscall.RawConn

	orphaned   chan struct{} // closed by orphan
	orphanOnce sync.Once
	eof        chan struct{} // closed when a read has returned io.EOF
	eofOnce    sync.Once
}

func newPipeReader(f *os.File) (*pipeReader, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	return &pipeReader{f: f, rc: rc, orphaned: make(chan struct{}), eof: make(chan struct{})}, nil
}

// Read implements io.Reader. It returns io.EOF when the pipe is closed by all writers, or, after
// orphan, when the pipe is empty. After f is closed it returns an error matching os.ErrClosed.
func (r *pipeReader) Read(b []byte) (int, error) {
	if !r.isOrphaned() {
		n, err := r.f.Read(b)
		// orphan wakes a blocked Read with an expired deadline; anything else is a real result.
		if !errors.Is(err, os.ErrDeadlineExceeded) || !r.isOrphaned() {
			if err == io.EOF {
				r.sawEOF()
			}
			return n, err
		}
	}
	return r.readNow(b)
}

// readNow reads without waiting: it returns buffered data, or io.EOF if there is none.
// It uses RawConn.Control rather than RawConn.Read because the latter would fail on the expired
// deadline orphan sets.
func (r *pipeReader) readNow(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	var n int
	var errno error
	err := r.rc.Control(func(fd uintptr) {
		for {
			n, errno = syscall.Read(int(fd), b)
			if errno != syscall.EINTR {
				return
			}
		}
	})
	switch {
	case err != nil:
		// Control fails only once f is closed, with an error that, unlike f.Read's, does not
		// match os.ErrClosed.
		return 0, &os.PathError{Op: "read", Path: r.f.Name(), Err: os.ErrClosed}
	case errno == syscall.EAGAIN || (errno == nil && n == 0):
		r.sawEOF()
		return 0, io.EOF
	case errno != nil:
		return 0, &os.PathError{Op: "read", Path: r.f.Name(), Err: errno}
	}
	return n, nil
}

// orphan switches the reader to non-waiting reads and wakes a Read blocked on the pipe.
func (r *pipeReader) orphan() {
	r.orphanOnce.Do(func() {
		close(r.orphaned) // before the deadline, so a woken Read sees it
		_ = r.f.SetReadDeadline(time.Unix(1, 0))
	})
}

func (r *pipeReader) isOrphaned() bool {
	select {
	case <-r.orphaned:
		return true
	default:
		return false
	}
}

func (r *pipeReader) sawEOF() { r.eofOnce.Do(func() { close(r.eof) }) }
