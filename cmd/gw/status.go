package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gwmcp/gw/gateway"
	"github.com/gwmcp/gw/gateway/policy"
	"github.com/gwmcp/gw/internal/config"
	fleetview "github.com/gwmcp/gw/internal/fleet"
	"github.com/gwmcp/gw/transport/httpface"
	"github.com/gwmcp/gw/transport/natsconn"
	"github.com/gwmcp/gw/transport/natsface"
)

// policyDigests maps each policy kind to the digest of the module in its
// slot now (policiesInUse: "sha256:" and the hex SHA-256 of the module's
// bytes, as audit records and /metrics name it).
func policyDigests(ps *policy.Set) map[string]string {
	out := map[string]string{}
	for _, p := range policiesInUse(ps) {
		out[p.Kind] = p.Digest
	}
	return out
}

// toolsByServer is the catalog's map of each server to its tools' exposed
// names: the fleet view shows tools per server without parsing names.
func toolsByServer(tools []gateway.Entry) map[string][]string {
	out := map[string][]string{}
	for _, t := range tools {
		out[t.Server] = append(out[t.Server], t.Name)
	}
	return out
}

// statusPage is gw run's live status page (internal/fleet's Page) on the
// HTTP listener: its fleet view runs on gw run's NATS connection, started
// by the first request for data, so that a gw run nobody looks at polls
// nothing.
//
// Access: the page's own files (HTML, CSS, JS) hold no data and are open;
// /status.json and /status/events pass the face's own checks (Origin, Host
// on loopback, and the bearer token when http.tokens are set), exactly as
// /mcp does. The page sends the token from a form in the Authorization
// header (fetch, not EventSource): never in a URL, where logs and history
// keep it.
type statusPage struct {
	nc     *nats.Conn
	prefix string
	log    *slog.Logger
	page   fleetview.Page

	mu     sync.Mutex
	view   *fleetview.View
	closed bool
}

func newStatusPage(nc *nats.Conn, prefix string, logger *slog.Logger) *statusPage {
	s := &statusPage{nc: nc, prefix: prefix, log: logger}
	s.page.View = s.get
	return s
}

// get returns the fleet view, starting it on first use.
func (s *statusPage) get() (*fleetview.View, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("shutting down")
	}
	if s.view != nil {
		return s.view, nil
	}
	v, err := fleetview.New(s.nc, fleetview.Options{Prefix: s.prefix, Logger: s.log})
	if err == nil {
		err = v.Start()
	}
	if err != nil {
		return nil, err
	}
	s.view = v
	return v, nil
}

// wrap serves the page's paths in front of next, the rest of the
// listener's handlers; the page's data passes f's checks. A nil s serves
// next alone.
func (s *statusPage) wrap(f *httpface.Face, next http.Handler) http.Handler {
	if s == nil {
		return next
	}
	data := f.Guard(&s.page)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == fleetview.PathJSON || r.URL.Path == fleetview.PathEvents:
			data.ServeHTTP(w, r)
		case fleetview.Handles(r.URL.Path):
			s.page.ServeHTTP(w, r)
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// close ends the page's event streams and stops the view. Idempotent; nil
// does nothing.
func (s *statusPage) close() {
	if s == nil {
		return
	}
	s.page.Close()
	s.mu.Lock()
	v := s.view
	s.view, s.closed = nil, true
	s.mu.Unlock()
	if v != nil {
		v.Close()
	}
}

// statusOptions are gw status's flags.
type statusOptions struct {
	config   string
	set      map[string]any
	natsURL  string
	prefix   string
	gateway  string
	watch    bool
	json     bool
	interval time.Duration
	verbose  bool
}

func parseStatus(args []string, stderr io.Writer) (statusOptions, error) {
	o := statusOptions{set: map[string]any{}}
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, "run 'gw help status' for usage") }
	fs.StringVar(&o.config, "c", "", "config file")
	fs.StringVar(&o.config, "config", "", "config file")
	fs.Func("set", "override a configuration key (repeatable)", setFlag(o.set))
	fs.StringVar(&o.natsURL, "nats", "", "NATS server URL(s)")
	fs.StringVar(&o.prefix, "prefix", "", "the gateways' subject prefix")
	fs.StringVar(&o.gateway, "gateway", "", "show this gateway only")
	fs.BoolVar(&o.watch, "watch", false, "redraw until interrupted")
	fs.BoolVar(&o.json, "json", false, "JSON output")
	fs.DurationVar(&o.interval, "interval", time.Second, "how often to poll the gateways' stats")
	fs.BoolVar(&o.verbose, "v", false, "log at debug level")
	fs.BoolVar(&o.verbose, "verbose", false, "log at debug level")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case o.interval < 100*time.Millisecond:
		return o, fmt.Errorf("--interval must be at least 100ms")
	case o.config == "" && len(o.set) > 0:
		return o, fmt.Errorf("--set needs -c FILE")
	}
	return o, nil
}

// statusConn connects gw status to the bus: --nats; else, with -c, as gw
// audit and gw pin do (connectCLI: nats.url, else the embedded server of a
// gw run on this host, else its store opened here, whose history then shows
// every gateway unreachable); else nats://127.0.0.1:4222, gw run's embedded
// server by default. release closes what it opened.
// cfg is the loaded -c file, nil without one; own is connectCLI's.
func statusConn(ctx context.Context, o *statusOptions, logger *slog.Logger) (nc *nats.Conn, release func(), cfg *config.Config, own bool, err error) {
	if o.config != "" {
		cfg, err = config.Load(config.Options{File: o.config, Environ: os.Environ(), Overrides: o.set})
		if err != nil {
			return nil, nil, nil, false, err
		}
		if o.prefix == "" {
			o.prefix = cfg.NATS.Prefix
		}
		if o.natsURL == "" {
			nc, release, own, err = connectCLI(ctx, cfg, logger)
			return nc, release, cfg, own, err
		}
	}
	url := o.natsURL
	if url == "" {
		url = "nats://127.0.0.1:4222"
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	nc, err = natsconn.Connect(ctx, natsconn.ConnOptions{URL: url, Name: "gw status", Logger: logger})
	if err != nil {
		return nil, nil, nil, false, fmt.Errorf("%w\n  is a gw run up? give its NATS with --nats URL or -c FILE", err)
	}
	return nc, nc.Close, cfg, false, nil
}

// runStatus is `gw status`: the fleet (or one gateway) as a table or JSON,
// once or (--watch) until interrupted.
func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseStatus(args, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "gw status:", err)
		return 2
	}
	level := slog.LevelWarn
	if o.verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	nc, release, cfg, own, err := statusConn(ctx, &o, logger)
	if o.watch && errors.Is(err, natsconn.ErrStoreInUse) {
		// Held by a process that serves no NATS: another gw command, or a
		// gw run on its way up.
		nc, release, own, err = nil, func() {}, true, nil
	}
	if err != nil {
		fmt.Fprintln(stderr, "gw status:", err)
		return 1
	}
	if o.prefix == "" {
		o.prefix = natsface.DefaultPrefix
	}
	if !own || !o.watch {
		defer release()
		return showStatus(ctx, nc, &o, o.watch, logger, stdout, stderr)
	}
	// No gw run is up and this process opened the store itself: a gw run
	// started now could not open it. So show what the store holds once, let
	// go of it, and watch through the gw run once one is up.
	if nc != nil {
		_ = showStatus(ctx, nc, &o, false, logger, stdout, stderr) // what it could not show, it said
		release()
	}
	if nc, err = awaitGWRun(ctx, cfg, "gw status", stderr); err != nil {
		if ctx.Err() != nil {
			return 0
		}
		fmt.Fprintln(stderr, "gw status:", err)
		return 1
	}
	defer nc.Close()
	return showStatus(ctx, nc, &o, true, logger, stdout, stderr)
}

// showStatus prints the fleet on nc once, or, with watch, redraws it as it
// changes until ctx ends.
func showStatus(ctx context.Context, nc *nats.Conn, o *statusOptions, watch bool, logger *slog.Logger, stdout, stderr io.Writer) int {
	v, err := fleetview.New(nc, fleetview.Options{Prefix: o.prefix, Interval: o.interval, Logger: logger})
	if err == nil {
		err = v.Start()
	}
	if err != nil {
		fmt.Fprintln(stderr, "gw status:", err)
		return 1
	}
	defer v.Close()
	select {
	case <-v.Ready():
	case <-ctx.Done():
		return 1
	case <-time.After(15 * time.Second):
		logger.Warn("the fleet view is incomplete: showing what arrived")
	}
	if !watch {
		snap := filterGateway(v.Snapshot(), o.gateway)
		if err := writeStatus(stdout, snap, o.json); err != nil {
			fmt.Fprintln(stderr, "gw status:", err)
			return 1
		}
		if o.gateway != "" && len(snap.Gateways) == 0 {
			fmt.Fprintf(stderr, "gw status: no gateway %q on %s\n", o.gateway, o.prefix)
			return 1
		}
		return 0
	}
	for {
		changed := v.Changed()
		if !o.json {
			fmt.Fprint(stdout, "\x1b[H\x1b[2J") // home, clear: redraw in place
		}
		if err := writeStatus(stdout, filterGateway(v.Snapshot(), o.gateway), o.json); err != nil {
			fmt.Fprintln(stderr, "gw status:", err)
			return 1
		}
		select {
		case <-ctx.Done():
			return 0
		case <-changed:
		}
		select { // at most one redraw per interval
		case <-ctx.Done():
			return 0
		case <-time.After(o.interval):
		}
	}
}

func filterGateway(s fleetview.Snapshot, name string) fleetview.Snapshot {
	if name != "" {
		s.Gateways = slices.DeleteFunc(s.Gateways, func(g fleetview.Gateway) bool { return g.Name != name })
	}
	return s
}

// writeStatus prints a snapshot: one JSON object per line, or three plain
// tables (gateways, servers, recent denials) whose columns never move.
func writeStatus(w io.Writer, s fleetview.Snapshot, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(w).Encode(s)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "GATEWAY\tSTATE\tTOOLS\tCALLS/S\tERRORS/S\tLATENCY\tCALLS\tERRORS\tSHED\tPOLICIES")
	for _, g := range s.Gateways {
		c := g.Calls
		rate, errRate, lat := "-", "-", "-"
		if c.Window > 0 {
			rate, errRate = fmt.Sprintf("%.1f", c.Rate), fmt.Sprintf("%.1f", c.ErrorRate)
			if c.Rate > 0 {
				lat = fmt.Sprintf("%.1fms", c.LatencyMs)
			}
		}
		var pol []string
		for _, k := range slices.Sorted(maps.Keys(g.Policies)) {
			pol = append(pol, k+"="+short(g.Policies[k]))
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%d\t%d\t%d\t%s\n", g.Name, orDash(g.State), g.Tools, rate, errRate, lat,
			c.Requests, c.Errors, c.Shed, orDash(strings.Join(pol, " ")))
	}
	if len(s.Gateways) == 0 {
		fmt.Fprintf(tw, "(no gateway on %s)\n", s.Prefix)
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "GATEWAY\tSERVER\tSTATE\tPID\tFAILURES\tRESTARTS\tTOOLS\tERROR")
	for _, g := range s.Gateways {
		for _, sv := range g.Servers {
			pid := "-"
			if sv.PID > 0 {
				pid = fmt.Sprint(sv.PID)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\n", g.Name, orDash(sv.Name), orDash(sv.State), pid,
				sv.Failures, sv.Restarts, orDash(toolList(sv.Tools)), orDash(firstLine(sv.LastError+sv.ListError)))
		}
	}
	fmt.Fprintln(tw)
	switch {
	case s.Audit.Events == 0:
		fmt.Fprintln(tw, "no audit events")
	case len(s.Audit.Recent) == 0:
		fmt.Fprintf(tw, "%d audit events, no denials\n", s.Audit.Events)
	default:
		fmt.Fprintf(tw, "%d audit events, %d denials; the latest:\n", s.Audit.Events, s.Audit.Denials)
		fmt.Fprintln(tw, "TIME\tGATEWAY\tPRINCIPAL\tTOOL\tREASON\tPOLICY")
		for _, d := range s.Audit.Recent {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", d.Time.Local().Format(time.TimeOnly), orDash(d.Gateway),
				orDash(d.Principal), orDash(d.Tool), orDash(firstLine(d.Reason)), orDash(short(d.Policy)))
		}
	}
	return tw.Flush()
}

// toolList is a server's tools, comma-separated, cut after 80 characters.
func toolList(tools []string) string {
	s := strings.Join(tools, ",")
	if len(s) <= 80 {
		return s
	}
	cut := strings.LastIndexByte(s[:80], ',')
	if cut < 0 {
		cut = 80
	}
	return fmt.Sprintf("%s,…(%d)", s[:cut], len(tools))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return strings.ReplaceAll(line, "\t", " ")
}
