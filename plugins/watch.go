package plugins

import (
	"context"
	"crypto/sha256"
	"os"
	"time"
)

// Watch polls the file at path every interval (default 1 s when interval ≤ 0) and calls
// reload(content) when its content changes. It returns when ctx is done; it runs on the calling
// goroutine (start it with go, and cancel ctx to stop it) and starts no goroutine of its own.
//
// A change is noticed by modification time, size or identity (a file renamed over path), then
// confirmed by a SHA-256 of the content, so touching the file or rewriting it unchanged calls
// nothing; an in-place rewrite that keeps both size and modification time goes unnoticed. The
// content present when Watch starts is the baseline and is not reported. A file that is
// missing, empty (just created or truncated by a writer) or unreadable is skipped until it has
// content again. A file that changes while being read is read again on the next tick, so reload
// sees no half-written file unless the writer pauses mid-write for a whole interval (to be safe,
// write a temporary file and rename it over path).
//
// reload runs on Watch's goroutine; Watch does not poll while reload runs. reload decides what a
// change means: typically Host.Load, a dry run, then Slot.Swap — keeping the old module if any
// step fails.
func Watch(ctx context.Context, path string, interval time.Duration, reload func(content []byte)) {
	if interval <= 0 {
		interval = time.Second
	}
	var last fileState
	if st, b, ok := readStable(path); ok {
		last, last.sum = st, sha256.Sum256(b)
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fi, err := os.Stat(path)
		if err != nil || (last.info != nil && os.SameFile(fi, last.info) &&
			fi.ModTime().Equal(last.info.ModTime()) && fi.Size() == last.info.Size()) {
			continue
		}
		st, b, ok := readStable(path)
		if !ok {
			continue
		}
		sum := sha256.Sum256(b)
		changed := sum != last.sum
		last, last.sum = st, sum
		if changed && ctx.Err() == nil {
			reload(b)
		}
	}
}

// fileState is what Watch remembers of the file.
type fileState struct {
	info os.FileInfo // nil if never read
	sum  [sha256.Size]byte
}

// readStable reads the file and reports ok only if it is a non-empty regular file whose size and
// modification time were the same before and after the read, and match what was read.
func readStable(path string) (fileState, []byte, bool) {
	before, err := os.Stat(path)
	if err != nil || !before.Mode().IsRegular() || before.Size() == 0 {
		return fileState{}, nil, false
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return fileState{}, nil, false
	}
	after, err := os.Stat(path)
	if err != nil || !after.ModTime().Equal(before.ModTime()) || after.Size() != before.Size() ||
		int64(len(b)) != after.Size() {
		return fileState{}, nil, false
	}
	return fileState{info: after}, b, true
}
