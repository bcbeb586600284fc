// Package loglimit bounds how many log lines one noisy source may write, so a
// child process or a policy module that prints without end cannot fill gw's
// log or disk. A source gets a burst, then a steady rate; what is held back is
// counted and reported with the next line that is let through (or by Flush).
package loglimit

import (
	"sync"
	"time"
)

// Limiter is a token bucket for log lines. The zero value lets nothing through; use New.
// It is safe for concurrent use.
type Limiter struct {
	mu         sync.Mutex
	perSecond  float64
	burst      float64
	tokens     float64
	last       time.Time
	suppressed int64
}

// New returns a Limiter that holds burst tokens at most and gains perSecond tokens a second:
// with Allow, burst lines at once and perSecond lines a second after.
func New(perSecond, burst int) *Limiter {
	return &Limiter{perSecond: float64(perSecond), burst: float64(burst), tokens: float64(burst)}
}

// Allow reports whether one more line may be logged. When it may, suppressed is the number of
// lines held back since the last line let through, for the caller to log with it.
func (l *Limiter) Allow() (ok bool, suppressed int64) { return l.TakeAt(time.Now(), 1) }

// TakeAt is Allow for a line that costs cost tokens (a budget in bytes, say), at the time now.
func (l *Limiter) TakeAt(now time.Time, cost int) (ok bool, suppressed int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() {
		l.tokens = min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.perSecond)
	}
	l.last = now
	if l.tokens < float64(cost) {
		l.suppressed++
		return false, 0
	}
	l.tokens -= float64(cost)
	suppressed, l.suppressed = l.suppressed, 0
	return true, suppressed
}

// Flush returns the number of lines held back and not yet reported, and resets it: for a final
// report when the source ends.
func (l *Limiter) Flush() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.suppressed
	l.suppressed = 0
	return n
}
