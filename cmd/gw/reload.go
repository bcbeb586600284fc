package main

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"time"

	"github.com/gwmcp/gw/gateway"
	"github.com/gwmcp/gw/internal/config"
	"github.com/gwmcp/gw/plugins"
)

// watchConfig reloads the configuration file when it changes: servers that
// were added, removed or changed are started, stopped or restarted; the
// others keep running untouched. A file that does not load is refused with
// a log line and nothing changes. Settings other than servers need a
// restart, which is logged. It returns when ctx ends.
//
// load is what built the running configuration: the file, the environment
// and the --set overrides. Every reload rebuilds the configuration from all
// of them, so a server configured partly by --set or a GW_ variable keeps
// that part and is not seen as changed.
func watchConfig(ctx context.Context, load config.Options, interval time.Duration, current *config.Config, g *gateway.Gateway, logger *slog.Logger) {
	if interval <= 0 || load.File == "" {
		return
	}
	reload := func([]byte) {
		next, err := config.Load(load)
		if err != nil {
			logger.Error("configuration change refused; keeping the running configuration", "file", load.File, "error", err)
			return
		}
		if err := applyServers(g, gatewayOptions(next, logger).Servers, logger); err != nil {
			logger.Error("configuration change refused; the servers run as before", "file", load.File, "error", err)
			return
		}
		for _, section := range changedSections(current, next) {
			logger.Warn("configuration change needs a restart to take effect", "section", section)
		}
		current = next
	}
	// The file may have changed while the servers started, before the
	// watcher took its first look: catch up once (nothing happens when the
	// file still says what runs).
	reload(nil)
	plugins.Watch(ctx, load.File, interval, reload)
}

// applyServers makes the gateway's servers match want, touching only the
// servers that differ: added servers start, changed ones restart in place
// (gateway.ReplaceServer), removed ones stop. It is all or nothing: when a
// step fails (a changed server's new configuration does not start, say),
// the steps already taken are undone, newest first, and the error returned.
func applyServers(g *gateway.Gateway, want []gateway.ServerSpec, logger *slog.Logger) error {
	have := map[string]gateway.ServerSpec{}
	for _, s := range g.ServerSpecs() {
		have[s.Name] = s
	}
	var undo []func() error
	rollback := func(err error) error {
		for i := len(undo) - 1; i >= 0; i-- {
			if uerr := undo[i](); uerr != nil {
				logger.Error("could not undo a step of the refused configuration change", "error", uerr)
			}
		}
		return err
	}
	seen := map[string]bool{}
	for _, spec := range want {
		seen[spec.Name] = true
		old, ok := have[spec.Name]
		switch {
		case !ok:
			if err := g.AddServer(spec); err != nil {
				return rollback(fmt.Errorf("add server %q: %w", spec.Name, err))
			}
			undo = append(undo, func() error { return g.RemoveServer(spec.Name) })
			logger.Info("server added", "server", spec.Name)
		case !sameSpec(old, spec):
			if err := g.ReplaceServer(spec); err != nil {
				return rollback(fmt.Errorf("restart server %q: %w", spec.Name, err))
			}
			undo = append(undo, func() error { return g.ReplaceServer(old) })
			logger.Info("server restarted with its new configuration", "server", spec.Name)
		}
	}
	for _, old := range g.ServerSpecs() {
		if seen[old.Name] {
			continue
		}
		if err := g.RemoveServer(old.Name); err != nil {
			return rollback(fmt.Errorf("remove server %q: %w", old.Name, err))
		}
		undo = append(undo, func() error { return g.AddServer(old) })
		logger.Info("server removed", "server", old.Name)
	}
	// Running servers keep their places (see gateway.AddServer), so a file
	// that only moves servers around changes nothing until the next start.
	var wantOrder, haveOrder []string
	running := map[string]bool{}
	for _, s := range g.ServerSpecs() {
		haveOrder = append(haveOrder, s.Name)
		running[s.Name] = true
	}
	for _, s := range want {
		if running[s.Name] {
			wantOrder = append(wantOrder, s.Name)
		}
	}
	if !slices.Equal(wantOrder, haveOrder) {
		logger.Warn("the running servers' order differs from the configured one; a new order takes effect at the next start, or set priority", "running", haveOrder, "configured", wantOrder)
	}
	return nil
}

// sameSpec compares specs after defaults, so "" and "on-failure" match.
func sameSpec(a, b gateway.ServerSpec) bool {
	for _, s := range []*gateway.ServerSpec{&a, &b} {
		if s.Restart == "" {
			s.Restart = gateway.RestartOnFailure
		}
		if len(s.Args) == 0 {
			s.Args = nil
		}
		if len(s.Env) == 0 {
			s.Env = nil
		}
	}
	return reflect.DeepEqual(a, b)
}

// changedSections names the settings, other than servers, that differ.
func changedSections(a, b *config.Config) []string {
	var out []string
	for name, pair := range map[string][2]any{
		"gateway":  {a.Gateway, b.Gateway},
		"policies": {a.Policies, b.Policies},
		"nats":     {a.NATS, b.NATS},
		"http":     {a.HTTP, b.HTTP},
		"health":   {a.Health, b.Health},
		"metrics":  {a.Metrics, b.Metrics},
		"audit":    {a.Audit, b.Audit},
		"log":      {a.Log, b.Log},
		"tracing":  {a.Tracing, b.Tracing},
		"pins":     {a.Pins, b.Pins},
	} {
		if !reflect.DeepEqual(pair[0], pair[1]) {
			out = append(out, name)
		}
	}
	return out
}
