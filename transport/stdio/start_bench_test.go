//go:build unix

package stdio

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// BenchmarkStartMany starts 200 or 1,000 processes (cat, which waits for
// stdin's end) at once, as a gateway's start does, then stops them: what
// one start costs gw and the kernel, with and without a cgroup per child.
func BenchmarkStartMany(b *testing.B) {
	for _, c := range []struct {
		name    string
		contain Containment
	}{{"cgroup", ContainCgroup}, {"group", ContainGroup}} {
		for _, n := range []int{200, 1000} {
			b.Run(fmt.Sprintf("contain=%s/n=%d", c.name, n), func(b *testing.B) {
				benchStartMany(b, c.contain, n)
			})
		}
	}
}

func benchStartMany(b *testing.B, contain Containment, n int) {
	var startTook, closeTook time.Duration
	for b.Loop() {
		procs := make([]*Process, n)
		var wg sync.WaitGroup
		begin := time.Now()
		for i := range procs {
			wg.Go(func() {
				p, err := Start(Config{Name: fmt.Sprintf("cat%d", i), Command: "cat", Contain: contain})
				if err != nil {
					b.Error(err)
					return
				}
				procs[i] = p
			})
		}
		wg.Wait()
		startTook += time.Since(begin)
		begin = time.Now()
		for _, p := range procs {
			if p != nil {
				wg.Go(func() { _ = p.Close() })
			}
		}
		wg.Wait()
		closeTook += time.Since(begin)
	}
	b.ReportMetric(float64(startTook.Microseconds())/float64(b.N*n), "start-µs/proc")
	b.ReportMetric(float64(closeTook.Microseconds())/float64(b.N*n), "close-µs/proc")
}
