package mcptest

import (
	"bytes"
	"sync"
)

// SyncBuffer is a bytes.Buffer that a logger and a test may share: a test
// reads what a server, gateway or watcher has logged while it still writes.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
