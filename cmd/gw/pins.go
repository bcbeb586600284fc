package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gwmcp/gw/gateway"
	"github.com/gwmcp/gw/gateway/pinfile"
	"github.com/gwmcp/gw/internal/config"
	"github.com/gwmcp/gw/transport/natsconn"
	"github.com/gwmcp/gw/transport/natsface"
)

// natsPins is the gateway's PinStore over the NATS pin bucket: pins and
// changes are the gateway's JSON, keyed by server and tool.
type natsPins struct {
	pins *natsface.Pins
	log  *slog.Logger
}

func (p natsPins) Watch(ctx context.Context, fn func(gateway.Pin)) error {
	return p.pins.Watch(ctx, func(value []byte) {
		var pin gateway.Pin
		if err := json.Unmarshal(value, &pin); err != nil || pin.Server == "" || pin.Tool == "" || pin.Digest == "" {
			p.log.Warn("ignoring a malformed pin in the pin bucket", "value", oneLine(string(value), 200))
			return
		}
		fn(pin)
	})
}

func (p natsPins) Create(ctx context.Context, pin gateway.Pin) error {
	return p.pins.Create(ctx, pin.Server, pin.Tool, mustMarshal(pin))
}

func (p natsPins) Report(ctx context.Context, c gateway.ToolChange) error {
	return p.pins.Report(ctx, c.Server, c.Tool, mustMarshal(c))
}

func (p natsPins) Clear(ctx context.Context, server, tool string) error {
	return p.pins.Clear(ctx, server, tool)
}

func mustMarshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("gw: marshal %T: %v", v, err))
	}
	return b
}

// openPinFile opens gw stdio's pin file (pins.file, else the per-user
// file); nil when pins.file is none or gateway.pinning is off (nothing
// reads or writes pins then). A file that cannot be read is an error:
// serving without its pins would trust every tool anew, as gw run refuses
// to without its bucket.
func openPinFile(cfg *config.Config, logger *slog.Logger) (*pinfile.Store, error) {
	if gateway.PinMode(cfg.Gateway.Pinning) == gateway.PinOff {
		return nil, nil
	}
	path, err := pinFilePath(cfg)
	if err != nil || path == "" {
		return nil, err
	}
	return pinfile.Open(path, pinfile.Options{Logger: logger})
}

// pinFilePath is pins.file, else the per-user file; "" for none.
func pinFilePath(cfg *config.Config) (string, error) {
	switch path := cfg.Pins.File; path {
	case config.PinsFileNone:
		return "", nil
	case "":
		path, err := pinfile.DefaultPath()
		if err != nil {
			return "", fmt.Errorf("%w (set pins.file, or pins.file none to keep pins in memory)", err)
		}
		return path, nil
	default:
		return path, nil
	}
}

// openPinFileCLI opens the pin file for gw tools --changed and gw pin
// accept when there is one: nil when pins.file is none or the file does
// not exist (no gw stdio wrote it; a gw run user gets no state directory
// made, and no error where there is no home, as in a container).
func openPinFileCLI(cfg *config.Config, logger *slog.Logger) (*pinfile.Store, error) {
	path, err := pinFilePath(cfg)
	if err != nil || path == "" {
		return nil, nil // no per-user directory: no per-user file to read
	}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	// gw tools --changed only reads: no lock file unless gw pin accept writes.
	return pinfile.Open(path, pinfile.Options{Logger: logger, DeferLock: true})
}

// natsPinsMayExist: a pin bucket may hold changes for the CLI: nats.url is
// set, or the embedded server's store exists (a gw run ran here). Else
// opening it would only create an empty store, in the user's state
// directory, for someone who only runs gw stdio.
func natsPinsMayExist(cfg *config.Config) bool {
	if cfg.NATS.URL != "" {
		return true
	}
	_, err := os.Stat(embeddedStoreDir(cfg))
	return err == nil
}

// openPinsCLI opens the pin bucket for gw tools --changed and gw pin.
func openPinsCLI(ctx context.Context, cfg *config.Config, logger *slog.Logger) (*natsface.Pins, func(), error) {
	nc, release, _, err := connectCLI(ctx, cfg, logger)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	pins, err := natsface.OpenPins(ctx, nc, natsface.DefaultPinBucket, 1)
	if err != nil {
		release()
		return nil, nil, err
	}
	return pins, release, nil
}

// connectCLI connects a command that reads what gw run gateways keep on
// NATS (pins, audit records): to nats.url when set; else to the embedded
// server's store, started here without a listener when no gw run holds it
// (own is true then), or through the running gw's embedded server on
// nats.embedded.port when one does.
func connectCLI(ctx context.Context, cfg *config.Config, logger *slog.Logger) (nc *nats.Conn, release func(), own bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	name := cfg.NATS.Gateway
	if name == "" {
		name = defaultGatewayName()
	}
	name += "-cli"
	var embedded *natsconn.Embedded
	if cfg.NATS.URL != "" {
		nc, _, err = connectNATS(ctx, cfg, name, logger)
	} else {
		quiet := *cfg
		quiet.NATS.Embedded.Port = 0 // no listener: only this process
		nc, embedded, err = connectNATS(ctx, &quiet, name, slog.New(slog.DiscardHandler))
		if errors.Is(err, natsconn.ErrStoreInUse) {
			port := cfg.NATS.Embedded.Port
			if port <= 0 {
				return nil, nil, false, fmt.Errorf("%w\n  a gw run holds the embedded NATS store but listens on no fixed port (nats.embedded.port %d): set nats.url to reach it", err, port)
			}
			inUse := err
			url := fmt.Sprintf("nats://127.0.0.1:%d", port)
			if nc, err = natsconn.Connect(ctx, natsconn.ConnOptions{URL: url, Name: "gw " + name, Logger: logger}); err != nil {
				// Another gw command holds the store, or a gw run is still starting.
				err = fmt.Errorf("%w, and nothing answers on %s: %w", inUse, url, err)
			}
		}
	}
	if err != nil {
		return nil, nil, false, err
	}
	return nc, func() {
		_ = nc.Drain()
		if embedded != nil {
			embedded.Shutdown()
		}
	}, embedded != nil, nil
}

// awaitGWRun waits for a gw run on this host and connects to its embedded
// NATS server, for a command that follows what gateways publish (gw audit
// -f, gw status --watch) and found none up: holding the store itself would
// keep every gw run from starting.
func awaitGWRun(ctx context.Context, cfg *config.Config, cmd string, stderr io.Writer) (*nats.Conn, error) {
	port := cfg.NATS.Embedded.Port
	if port <= 0 {
		return nil, fmt.Errorf("no gw run is up here, and nats.embedded.port %d names no port to wait for one on: start gw run first, or set nats.url", port)
	}
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	fmt.Fprintf(stderr, "%s: no gw run is up here; waiting for one on %s\n", cmd, url)
	for {
		dial, cancel := context.WithTimeout(ctx, 2*time.Second)
		nc, err := natsconn.Connect(dial, natsconn.ConnOptions{URL: url, Name: cmd})
		cancel()
		if err == nil {
			return nc, nil
		}
		if !sleepCtx(ctx, 250*time.Millisecond) {
			return nil, ctx.Err()
		}
	}
}

// changes reads the changes the gateways reported.
func changes(ctx context.Context, pins *natsface.Pins) ([]gateway.ToolChange, error) {
	values, err := pins.Changes(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]gateway.ToolChange, 0, len(values))
	for _, v := range values {
		var c gateway.ToolChange
		if err := json.Unmarshal(v, &c); err != nil || c.Server == "" || c.Tool == "" || c.Current.Digest == "" {
			continue
		}
		out = append(out, c)
	}
	return out, nil
}

// allChanges reads the changes the gateways reported: gw stdio's in the
// pin file, then gw run's in the pin bucket.
func allChanges(ctx context.Context, cfg *config.Config, logger *slog.Logger) ([]gateway.ToolChange, error) {
	var list []gateway.ToolChange
	file, err := openPinFileCLI(cfg, logger)
	if err != nil {
		return nil, err
	}
	if file != nil {
		defer file.Close()
		if list, err = file.Changes(); err != nil {
			return nil, err
		}
	}
	if !natsPinsMayExist(cfg) {
		return list, nil
	}
	pins, release, err := openPinsCLI(ctx, cfg, logger)
	if err != nil {
		return nil, err
	}
	defer release()
	more, err := changes(ctx, pins)
	if err != nil {
		return nil, err
	}
	return mergeChanges(list, more), nil
}

// mergeChanges is the pin file's changes and then the bucket's, a change
// both report (a server run by gw stdio and gw run alike) listed once.
func mergeChanges(file, bucket []gateway.ToolChange) []gateway.ToolChange {
	type key struct{ server, tool, pinned, current string }
	seen := make(map[key]bool, len(file))
	for _, c := range file {
		seen[key{c.Server, c.Tool, c.Pinned.Digest, c.Current.Digest}] = true
	}
	for _, c := range bucket {
		if !seen[key{c.Server, c.Tool, c.Pinned.Digest, c.Current.Digest}] {
			file = append(file, c)
		}
	}
	return file
}

// printChanges is gw tools --changed: the tools whose definitions differ
// from their pins, as the gateways reported them.
func printChanges(ctx context.Context, cfg *config.Config, logger *slog.Logger, asJSON bool, stdout, stderr io.Writer) int {
	list, err := allChanges(ctx, cfg, logger)
	if err != nil {
		fmt.Fprintln(stderr, "gw tools:", err)
		return 1
	}
	if list == nil {
		list = []gateway.ToolChange{} // --json: [], not null
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(list)
		return 0
	}
	if len(list) == 0 {
		fmt.Fprintln(stderr, "0 changed tools")
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVER\tTOOL\tNAME\tCHANGED\tSTATE\tPINNED\tCURRENT")
	for _, c := range list {
		state := "held"
		switch {
		case c.AllowedBy != "":
			state = "allowed by " + c.AllowedBy
		case !c.Held:
			state = "served"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.Server, c.Tool, c.Name, strings.Join(c.Fields, ","), state, short(c.Pinned.Digest), short(c.Current.Digest))
	}
	_ = tw.Flush()
	fmt.Fprintf(stderr, "%d changed tools; accept with: gw pin accept -c FILE SERVER/TOOL\n", len(list))
	return 0
}

// short is a digest's first 12 hex digits.
func short(digest string) string {
	d := strings.TrimPrefix(digest, "sha256:")
	if len(d) > 12 {
		d = d[:12]
	}
	return d
}

// runPin is gw pin accept SERVER[/TOOL]|--all: pin the reported changes'
// current definitions, in gw stdio's pin file and in gw run's pin bucket.
// The gateways watch them and serve the tools again: gw run at once, gw
// stdio once it next checks its file (every second).
func runPin(ctx context.Context, cfg *config.Config, logger *slog.Logger, pos []string, all bool, stdout, stderr io.Writer) int {
	if len(pos) == 0 || pos[0] != "accept" {
		fmt.Fprintln(stderr, "gw pin: want accept SERVER[/TOOL] or accept --all")
		return 2
	}
	targets := pos[1:]
	if all == (len(targets) > 0) {
		fmt.Fprintln(stderr, "gw pin accept: want SERVER[/TOOL]… or --all")
		return 2
	}
	matched := map[string]bool{}
	accepted := 0
	printAccepted := func(c gateway.ToolChange) {
		accepted++
		fmt.Fprintf(stdout, "accepted %s/%s (%s: %s)\n", c.Server, c.Tool, strings.Join(c.Fields, ","), c.Current.Digest)
	}
	code := acceptInFile(ctx, cfg, logger, targets, all, matched, printAccepted, stderr)
	if code == 0 && natsPinsMayExist(cfg) {
		code = acceptInBucket(ctx, cfg, logger, targets, all, matched, printAccepted, stderr)
	}
	if code != 0 {
		return code
	}
	for _, t := range targets {
		if !matched[t] {
			fmt.Fprintf(stderr, "gw pin accept: no changed tool matches %q (list them with: gw tools --changed -c FILE)\n", t)
			code = 1
		}
	}
	if all && accepted == 0 {
		fmt.Fprintln(stderr, "gw pin accept: no changed tools")
	}
	return code
}

// acceptInFile accepts the matching changes in gw stdio's pin file, in one
// write under its lock.
func acceptInFile(ctx context.Context, cfg *config.Config, logger *slog.Logger, targets []string, all bool, matched map[string]bool, accepted func(gateway.ToolChange), stderr io.Writer) int {
	file, err := openPinFileCLI(cfg, logger)
	if err != nil {
		fmt.Fprintln(stderr, "gw pin:", err)
		return 1
	}
	if file == nil {
		return 0
	}
	defer file.Close()
	list, err := file.Accept(ctx, func(c gateway.ToolChange) bool {
		target, ok := matchTarget(targets, c, all)
		if ok {
			matched[target] = true
		}
		return ok
	})
	if err != nil {
		fmt.Fprintln(stderr, "gw pin:", err)
		return 1
	}
	for _, c := range list {
		accepted(c)
	}
	return 0
}

// acceptInBucket accepts the matching changes in gw run's pin bucket.
func acceptInBucket(ctx context.Context, cfg *config.Config, logger *slog.Logger, targets []string, all bool, matched map[string]bool, accepted func(gateway.ToolChange), stderr io.Writer) int {
	pins, release, err := openPinsCLI(ctx, cfg, logger)
	if err != nil {
		fmt.Fprintln(stderr, "gw pin:", err)
		return 1
	}
	defer release()
	list, err := changes(ctx, pins)
	if err != nil {
		fmt.Fprintln(stderr, "gw pin:", err)
		return 1
	}
	for _, c := range list {
		target, ok := matchTarget(targets, c, all)
		if !ok {
			continue
		}
		matched[target] = true
		p := gateway.AcceptedPin(c)
		if err := pins.Put(ctx, c.Server, c.Tool, mustMarshal(p)); err != nil {
			fmt.Fprintln(stderr, "gw pin:", err)
			return 1
		}
		if err := pins.Clear(ctx, c.Server, c.Tool); err != nil {
			fmt.Fprintln(stderr, "gw pin:", err)
			return 1
		}
		accepted(c)
	}
	return 0
}

// matchTarget returns the target (SERVER or SERVER/TOOL) that selects c.
func matchTarget(targets []string, c gateway.ToolChange, all bool) (string, bool) {
	if all {
		return "", true
	}
	for _, t := range targets {
		server, tool, hasTool := strings.Cut(t, "/")
		if server == c.Server && (!hasTool || tool == c.Tool) {
			return t, true
		}
	}
	return "", false
}
