package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// hurryKey carries, in the context run gets, a second context that ends when
// the caller wants the stop to be quick: calls still in flight are cancelled
// instead of waited for.
type hurryKey struct{}

// withHurry returns ctx carrying hurry (see hurryOf).
func withHurry(ctx context.Context, hurry context.Context) context.Context {
	return context.WithValue(ctx, hurryKey{}, hurry)
}

// hurryOf returns the context that ends when a stop under way should stop
// waiting for calls in flight; one that never ends when ctx carries none.
func hurryOf(ctx context.Context) context.Context {
	if h, ok := ctx.Value(hurryKey{}).(context.Context); ok {
		return h
	}
	return context.Background()
}

// shutdownSignals turns SIGINT and SIGTERM into the stop steps people expect
// of a server: the first asks for a graceful stop (ctx ends), the second to
// stop now (hurryOf(ctx) ends: calls in flight are cancelled, servers are still
// stopped and reaped), and the third exits at once with status 130.
func shutdownSignals() (ctx context.Context, stop func()) {
	sigs := make(chan os.Signal, 3)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	graceful, stopGraceful := context.WithCancel(context.Background())
	hurry, stopHurry := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		for n := 1; ; n++ {
			select {
			case <-sigs:
			case <-done:
				return
			}
			switch n {
			case 1:
				stopGraceful()
			case 2:
				os.Stderr.WriteString("gw: stopping now; a third signal exits at once\n")
				stopHurry()
			default:
				os.Exit(130)
			}
		}
	}()
	return withHurry(graceful, hurry), func() {
		signal.Stop(sigs)
		close(done)
		stopGraceful()
		stopHurry()
	}
}
