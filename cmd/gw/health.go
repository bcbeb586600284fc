package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gwmcp/gw/gateway"
	"github.com/gwmcp/gw/gateway/policy"
	"github.com/gwmcp/gw/internal/config"
)

// The probe endpoints on gw run's HTTP listener.
const (
	healthzPath = "/healthz"
	readyzPath  = "/readyz"
)

// health answers gw run's probes: /healthz (the process serves HTTP) and
// /readyz (NATS connected, policies loaded, servers up as config.Health
// asks). Both are unauthenticated, as Kubernetes and compose probes expect,
// even with http.tokens: they carry no tool data, only states and server
// names (never a server's error text, which may quote its stderr).
//
// Its fields are set before the HTTP server starts serving and not changed
// after, except stopping.
type health struct {
	rule     config.Health
	nc       *nats.Conn
	policies *policy.Set
	g        *gateway.Gateway
	stopping atomic.Bool // set when gw run begins to stop: no new traffic
	// starting is set until the catalog of the start is on NATS: before
	// that, a call to a tool may find no subscription to take it.
	starting atomic.Bool
}

// wrap serves the probes and hands every other request to next; a nil h
// serves no probes.
func (h *health) wrap(next http.Handler) http.Handler {
	if h == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case healthzPath:
			writeProbe(w, r, true, map[string]string{"status": "live"})
		case readyzPath:
			rep := h.readiness()
			writeProbe(w, r, rep.Status == "ready", rep)
		default:
			next.ServeHTTP(w, r)
		}
	})
}

func writeProbe(w http.ResponseWriter, r *http.Request, ok bool, body any) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "probes take GET", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if !ok {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	if r.Method == http.MethodGet {
		_ = json.NewEncoder(w).Encode(body)
	}
}

// readyReport is /readyz's body: short, and Why says in one line each what
// keeps gw from being ready.
type readyReport struct {
	Status   string        `json:"status"` // "ready" or "not ready"
	NATS     string        `json:"nats"`   // nats.go's connection status, lower case
	Policies string        `json:"policies"`
	Servers  serversReport `json:"servers"`
	Why      []string      `json:"why,omitempty"`
}

type serversReport struct {
	Rule     string            `json:"rule"`
	Required []string          `json:"required,omitempty"`
	Up       int               `json:"up"`
	Total    int               `json:"total"` // the running (enabled) servers
	Need     int               `json:"need"`  // how many of them the rule asks to be up
	Down     map[string]string `json:"down,omitempty"`
}

func (h *health) readiness() readyReport {
	rep := readyReport{NATS: "none", Policies: "loaded"}
	var why []string
	if h.stopping.Load() {
		why = append(why, "gw is stopping")
	}
	if h.starting.Load() {
		why = append(why, "gw is starting: its tools are not on NATS yet")
	}
	if h.nc != nil {
		rep.NATS = strings.ToLower(h.nc.Status().String())
	}
	if h.nc == nil || !h.nc.IsConnected() {
		why = append(why, "nats is "+rep.NATS)
	}
	if !policiesLoaded(h.policies) {
		rep.Policies = "not loaded"
		why = append(why, "policies are not loaded")
	}
	var servers []gateway.ServerStatus
	if h.g != nil {
		servers = h.g.Servers()
	}
	rep.Servers, why = serverReadiness(h.rule, servers, why)
	rep.Status = "ready"
	if len(why) > 0 {
		rep.Status, rep.Why = "not ready", why
	}
	return rep
}

// policiesLoaded: every configured policy slot holds a module. A refused
// swap keeps the last good one; Close empties them.
func policiesLoaded(ps *policy.Set) bool {
	if ps == nil {
		return false
	}
	return (ps.Collision == nil || ps.Collision.Current() != nil) && (ps.Authorize == nil || ps.Authorize.Current() != nil)
}

// serverReadiness applies the rule to the servers' states and appends to
// why what falls short. A server is up unless degraded, failed or stopped
// (its calls fail fast then; a starting or restarting one's calls wait).
func serverReadiness(rule config.Health, servers []gateway.ServerStatus, why []string) (serversReport, []string) {
	rep := serversReport{Rule: rule.Ready, Required: rule.Required, Total: len(servers), Need: rule.Quorum(len(servers))}
	state := map[string]gateway.State{}
	for _, s := range servers {
		state[s.Name] = s.State
		switch s.State {
		case gateway.StateDegraded, gateway.StateFailed, gateway.StateStopped:
			if rep.Down == nil {
				rep.Down = map[string]string{}
			}
			rep.Down[s.Name] = string(s.State)
		default:
			rep.Up++
		}
	}
	if rep.Up < rep.Need {
		down := slices.Sorted(maps.Keys(rep.Down))
		why = append(why, fmt.Sprintf("%d of %d servers up, health.ready %s needs %d (down: %s)", rep.Up, rep.Total, rule.Ready, rep.Need, strings.Join(down, ", ")))
	}
	for _, name := range rule.Required {
		st, ok := state[name]
		switch {
		case !ok:
			why = append(why, fmt.Sprintf("required server %s is not running", name))
		case rep.Down[name] != "":
			why = append(why, fmt.Sprintf("required server %s is %s", name, st))
		}
	}
	return rep, why
}

// defaultHealthAddr is where gw health looks: GW_HTTP__ADDR when set (the
// container's gw run reads the same variable), else gw run's default.
func defaultHealthAddr() string {
	if a := os.Getenv("GW_HTTP__ADDR"); a != "" {
		return a
	}
	return config.DefaultHTTPAddr
}

// probeURL is the URL of a probe of gw run at addr. An address that
// listens on every interface is probed on loopback.
func probeURL(addr, path string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("--addr %q: want host:port", addr)
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return "http://" + net.JoinHostPort(host, port) + path, nil
}

// runHealth is `gw health`: one probe, one line, exit 0 when it answers
// 200 and 1 otherwise. It needs no shell, curl or wget, so a FROM scratch
// image's healthcheck can run it.
func runHealth(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gw health", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, "run 'gw help health' for usage") }
	ready := fs.Bool("ready", false, "probe /readyz instead of /healthz")
	addr := fs.String("addr", defaultHealthAddr(), "gw run's http.addr")
	rawURL := fs.String("url", "", "probe this URL instead (nats-server's http://127.0.0.1:8222/healthz, say)")
	timeout := fs.Duration("timeout", 3*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "gw health: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	url := *rawURL
	if url == "" {
		path := healthzPath
		if *ready {
			path = readyzPath
		}
		var err error
		if url, err = probeURL(*addr, path); err != nil {
			fmt.Fprintln(stderr, "gw health:", err)
			return 2
		}
	} else if *ready {
		fmt.Fprintln(stderr, "gw health: --ready and --url do not go together")
		return 2
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	line, ok, err := probe(ctx, url)
	if err != nil {
		fmt.Fprintln(stdout, "gw health:", err)
		return 1
	}
	fmt.Fprintln(stdout, line)
	if !ok {
		return 1
	}
	return 0
}

// probe GETs url and sums its answer up in one line: gw's status and why
// it is not ready, or another server's HTTP status.
func probe(ctx context.Context, url string) (line string, ok bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", false, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return "", false, fmt.Errorf("%s: no answer in time", url)
		}
		return "", false, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	ok = resp.StatusCode == http.StatusOK
	var rep struct {
		Status string   `json:"status"`
		Why    []string `json:"why"`
	}
	if json.Unmarshal(body, &rep) != nil || rep.Status == "" {
		return fmt.Sprintf("%s: %s", url, resp.Status), ok, nil
	}
	line = rep.Status
	if len(rep.Why) > 0 {
		line += ": " + strings.Join(rep.Why, "; ")
	}
	return line, ok, nil
}
