// Command gw is the Wasm-policy MCP gateway: it runs many MCP servers as
// child processes and serves their merged tools.
//
//	gw run -c FILE                       serve the tools over NATS until interrupted
//	gw stdio -c FILE                     be one MCP server on stdin/stdout
//	gw connect --nats URL                the same, serving a NATS fleet of gateways
//	gw tools -c FILE [--json]            print the merged tool catalog
//	gw tools -c FILE --changed           print the tools whose definitions changed since pinned
//	gw pin accept -c FILE SERVER[/TOOL]  accept changed tool definitions (or --all)
//	gw call  -c FILE NAME 'JSON-ARGS'    call one tool and print its result
//	gw servers -c FILE                   start every server and print its status
//	gw bench -c FILE [--tool NAME …]     time a server's tool directly and through gw
//	gw status [-c FILE] [--watch]        the gateways on the bus: servers, tools, rates
//	gw policy eval|check …               try a policy module
//	gw health [--ready] [--addr H:P]     probe a gw run (a container healthcheck)
//	gw help [COMMAND]                    usage (also: gw COMMAND --help)
//
// FILE is gw's YAML, JSON or TOML (a servers: map) or the mcpServers JSON
// of Claude Desktop, Cursor or VS Code.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gwmcp/gw/gateway"
	"github.com/gwmcp/gw/internal/config"
	"github.com/gwmcp/gw/transport/jsonrpc"
)

// version is set with -ldflags "-X main.version=…" by release builds.
var version = "dev"

const usage = `gw — the Wasm-policy MCP gateway

Usage:
  gw run     -c FILE                    serve the servers' tools over NATS until interrupted
                                        (plain gw runs examples/demo.yaml)
  gw stdio   -c FILE [--principal NAME] [--view NAME] be one MCP server on stdin/stdout, for Claude Desktop,
                                        Cursor, VS Code or an SDK agent (both MCP eras)
  gw connect --nats URL [--principal NAME] be one MCP server on stdin/stdout serving the tools of
                                        the gw run gateways on a NATS cluster (no local servers)
  gw tools   -c FILE [--json]           print the merged tool catalog
  gw tools   -c FILE --changed [--json] print the tools held back because their definitions
                                        changed since they were pinned
  gw pin accept -c FILE SERVER[/TOOL]…|--all accept changed tool definitions
  gw call    -c FILE NAME ['JSON-ARGS'] call a tool, print the CallToolResult as JSON
  gw servers -c FILE [--json]           start the servers and print their status
  gw bench   -c FILE [--server NAME] [--tool NAME --args JSON] [--concurrency 1,16,256]
             [--duration 5s] [--paths direct,gateway,nats,stdio,http] [--json]
                                        time a server's tool directly and through each of gw's
                                        paths, side by side
  gw status  [-c FILE | --nats URL] [--gateway NAME] [--watch] [--json]
                                        every gateway on the bus (or one): servers, states,
                                        tools, call rates, errors, recent denials
  gw audit   -c FILE [-f] [--since 1h] [-n 100] [--principal NAME] [--decision allow|deny]
             [--tool NAME] [--server NAME] [--json]
                                        print the authorization decisions the gateways recorded
  gw policy  eval|check …               evaluate or check a policy module
  gw health  [--ready] [--addr HOST:PORT] [--url URL]
                                        probe a gw run's /healthz or /readyz (or any URL): one
                                        line, exit 0 or 1; a container healthcheck with no shell
  gw version
  gw help [COMMAND]                     this text, or one command's help (or: gw COMMAND --help)

Flags:
  -c, --config FILE   gw YAML, or a Claude Desktop / Cursor / VS Code JSON file
  -v, --verbose       log at debug level (servers' stderr is logged at info, always)
      --set KEY=VALUE override a configuration key, e.g. --set nats.url=nats://host:4222
                      (precedence: defaults < file < GW_ environment < --set)
      --json          machine-readable output
      --pretty        indent the result of gw call

Try: go run ./cmd/gw tools -c examples/demo.yaml
`

func main() { os.Exit(mainCode()) }

// mainCode is main up to its exit status (the tests run it profiled).
func mainCode() int {
	ctx, stop := shutdownSignals()
	stdout := os.Stdout
	if len(os.Args) > 1 && (os.Args[1] == "stdio" || os.Args[1] == "connect") {
		// stdout carries MCP messages only: anything else that would
		// write to it writes to stderr instead.
		os.Stdout = os.Stderr
	}
	code := run(ctx, os.Args[1:], stdout, os.Stderr)
	stop()
	return code
}

// cliFlags are the flags of the commands that take a configuration file:
// the ones every such command shares, then the ones parseArgs registers
// only for the commands that take them.
type cliFlags struct {
	config  string
	verbose bool
	json    bool
	pretty  bool
	set     map[string]any // --set key=value: configuration overrides

	principal string // gw stdio: the caller the authorizer sees
	view      string // gw stdio: serve only this configured view

	changed bool       // gw tools: the changed tools in the pin file and bucket
	all     bool       // gw pin accept: every changed tool
	bench   benchFlags // gw bench's own flags
	audit   auditFlags // gw audit's own flags
}

// parseArgs accepts flags before, between and after positional arguments.
// A command's own flags are registered for it alone, so that the flag
// package refuses them elsewhere.
func parseArgs(name string, args []string, stderr io.Writer) (cliFlags, []string, error) {
	f := cliFlags{set: map[string]any{}}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Func("set", "override a configuration key: --set gateway.call_timeout=10s (repeatable)", setFlag(f.set))
	fs.SetOutput(stderr)
	// Help flags are handled before parsing (see wantsHelp); this runs
	// after a flag error, which the flag package has printed.
	fs.Usage = func() { fmt.Fprintf(stderr, "run 'gw help %s' for usage\n", name) }
	fs.StringVar(&f.config, "c", "", "config file")
	fs.StringVar(&f.config, "config", "", "config file")
	fs.BoolVar(&f.verbose, "v", false, "verbose")
	fs.BoolVar(&f.verbose, "verbose", false, "verbose")
	switch name {
	case "tools", "servers", "audit", "bench":
		fs.BoolVar(&f.json, "json", false, "JSON output")
	case "call":
		fs.BoolVar(&f.pretty, "pretty", false, "indent JSON output")
	}
	switch name {
	case "stdio":
		fs.StringVar(&f.principal, "principal", "", "the caller's name (default: the local user)")
		fs.StringVar(&f.view, "view", "", "serve only this view of the configuration's views")
	case "audit":
		f.audit.register(fs)
	case "tools":
		fs.BoolVar(&f.changed, "changed", false, "the tools whose definitions changed since they were pinned")
	case "pin":
		fs.BoolVar(&f.all, "all", false, "every changed tool")
	case "bench":
		f.bench.register(fs)
	}
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return f, nil, err
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
	return f, positional, nil
}

// setFlag parses --set KEY=VALUE into set.
func setFlag(set map[string]any) func(string) error {
	return func(kv string) error {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return fmt.Errorf("want key=value, got %q", kv)
		}
		set[k] = v
		return nil
	}
}

// demoConfig is what plain `gw` runs, from the repository root.
const demoConfig = "examples/demo.yaml"

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		if _, err := os.Stat(demoConfig); err == nil {
			args = []string{"run", "-c", demoConfig}
		}
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help" {
		if len(args) > 1 && args[0] == "help" {
			return printHelp(args[1], stdout, stderr)
		}
		fmt.Fprint(stdout, usage)
		return 0
	}
	cmd, rest := args[0], args[1:]
	if _, ok := helpFor(cmd); !ok {
		fmt.Fprintf(stderr, "gw: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	if wantsHelp(rest) {
		return printHelp(cmd, stdout, stderr)
	}
	switch cmd {
	case "version":
		fmt.Fprintln(stdout, "gw", version)
		return 0
	case "policy":
		return runPolicy(ctx, rest, os.Stdin, stdout, stderr)
	case "connect": // flags only, no configuration file
		return runConnect(ctx, rest, serveStdin(), stdout, stderr)
	case "status": // a configuration file is optional
		return runStatus(ctx, rest, stdout, stderr)
	case "health":
		return runHealth(ctx, rest, stdout, stderr)
	}
	f, pos, err := parseArgs(cmd, rest, stderr)
	if err != nil {
		return 2
	}
	switch cmd {
	case "tools", "servers", "run", "stdio", "bench", "audit":
		if len(pos) != 0 {
			fmt.Fprintf(stderr, "gw %s: unexpected argument %q\n", cmd, pos[0])
			return 2
		}
	case "call":
		if len(pos) < 1 || len(pos) > 2 {
			fmt.Fprintln(stderr, "gw call: want NAME and optional 'JSON-ARGS'")
			return 2
		}
	}
	if f.config == "" {
		fmt.Fprintf(stderr, "gw %s: -c FILE is required\n", cmd)
		return 2
	}
	// The same layers build the configuration at start and at every reload
	// (`gw run` watches the file): a reload that forgot --set or GW_ would
	// see the servers they configure as changed and restart them without.
	loadOpts := config.Options{File: f.config, Environ: os.Environ(), Overrides: f.set}
	cfg, err := config.Load(loadOpts)
	if err != nil {
		fmt.Fprintln(stderr, "gw:", err)
		return 1
	}
	logger := newLogger(cfg, f.verbose, cmd == "run" || cmd == "stdio", stderr)
	for _, w := range cfg.Warnings {
		logger.Warn(w)
	}
	switch cmd {
	case "run":
		return runGateway(ctx, loadOpts, cfg, logger, stderr)
	case "pin":
		return runPin(ctx, cfg, logger, pos, f.all, stdout, stderr)
	case "tools":
		if f.changed {
			return printChanges(ctx, cfg, logger, f.json, stdout, stderr)
		}
	case "stdio":
		view, err := viewFor(cfg, f.view)
		if err != nil {
			fmt.Fprintln(stderr, "gw stdio:", err)
			return 2
		}
		return runStdio(ctx, loadOpts, cfg, stdioOptions{principal: f.principal, view: view}, logger, serveStdin(), stdout, stderr)
	case "bench":
		return runBench(ctx, cfg, f, logger, stdout, stderr)
	case "audit":
		return runAudit(ctx, cfg, logger, f.audit, f.json, stdout, stderr)
	}
	g, _, release, err := newGateway(ctx, cfg, logger, nil)
	if err != nil {
		fmt.Fprintln(stderr, "gw:", err)
		return 1
	}
	defer release()
	defer g.Close()
	startErr := g.Start(ctx)
	if startErr != nil && cmd != "servers" { // gw servers reports them in its table
		// One line per server that did not come up; the rest still serve.
		for _, line := range strings.Split(startErr.Error(), "\n") {
			fmt.Fprintln(stderr, "gw:", line)
		}
	}
	switch cmd {
	case "tools":
		return printTools(g.ListTools(ctx), f.json, stdout, stderr, startErr)
	case "servers":
		return printServers(g.Servers(), f.json, stdout)
	default:
		return callTool(ctx, g, pos, f.pretty, stdout, stderr)
	}
}

// newLogger logs to stderr. `gw run` logs at the configured level; the
// one-shot commands show warnings only so their output stays readable; -v
// shows everything.
func newLogger(cfg *config.Config, verbose, daemon bool, w io.Writer) *slog.Logger {
	level := slog.LevelWarn
	if daemon {
		_ = level.UnmarshalText([]byte(cfg.Log.Level))
	}
	if verbose {
		level = slog.LevelDebug
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if cfg.Log.Format == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	if !daemon && !verbose {
		h = oneShotHandler{h}
	}
	return slog.New(h)
}

// serverEndedMsg is the gateway's log message for a server that stopped or
// failed to start (gateway/supervisor.go).
const serverEndedMsg = "server ended"

// oneShotHandler drops the gateway's "server ended" lines: the one-shot
// commands report a server that did not start themselves, once (gw tools
// and gw call on stderr, gw servers in its table). -v shows everything.
type oneShotHandler struct{ slog.Handler }

func (h oneShotHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == serverEndedMsg {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h oneShotHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return oneShotHandler{h.Handler.WithAttrs(attrs)}
}

func (h oneShotHandler) WithGroup(name string) slog.Handler {
	return oneShotHandler{h.Handler.WithGroup(name)}
}

// gatewayOptions turns the configuration into gateway options. Servers come
// in the configured order (priority, then the file's order; see
// config.Config.ServerNames), which breaks naming ties in collision
// policies such as first-come.
func gatewayOptions(cfg *config.Config, logger *slog.Logger) gateway.Options {
	var specs []gateway.ServerSpec
	for _, name := range cfg.ServerNames() {
		s := cfg.Servers[name]
		if s.Disabled {
			continue
		}
		specs = append(specs, gateway.ServerSpec{
			Name:        name,
			Command:     s.Command,
			Args:        s.Args,
			Env:         s.Env,
			Dir:         s.Cwd,
			Restart:     gateway.RestartPolicy(s.Restart),
			CallTimeout: s.CallTimeout,
			Priority:    s.Priority,
		})
	}
	gc := cfg.Gateway
	return gateway.Options{
		Servers:         specs,
		Resolver:        gateway.PrefixResolver{Separator: gc.Names.Separator, MaxLength: gc.Names.MaxLength},
		Logger:          logger,
		ClientInfo:      gateway.Implementation{Name: "gw", Version: version},
		CallTimeout:     gc.CallTimeout,
		DiscoverTimeout: gc.DiscoverTimeout,
		StartTimeout:    gc.StartTimeout,
		MaxMessageSize:  gc.MaxMessageSize,
		PingInterval:    pingInterval(gc.PingInterval),
		PingMisses:      gc.PingMisses,
		InitialBackoff:  gc.Restart.InitialBackoff,
		MaxBackoff:      gc.Restart.MaxBackoff,
		DegradedAfter:   gc.Restart.DegradedAfter,
		StableAfter:     gc.Restart.StableAfter,
		Pinning:         gateway.PinMode(gc.Pinning),
	}
}

// toolRow is one line of `gw tools --json`.
type toolRow struct {
	Name        string `json:"name"`
	Server      string `json:"server"`
	Tool        string `json:"tool"`
	Description string `json:"description"`
}

func printTools(tools []gateway.Entry, asJSON bool, stdout, stderr io.Writer, startErr error) int {
	rows := make([]toolRow, 0, len(tools))
	for _, t := range tools {
		rows = append(rows, toolRow{Name: t.Name, Server: t.Server, Tool: t.Original, Description: t.Item.Description})
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rows)
	} else if len(rows) == 0 {
		fmt.Fprintln(stderr, "0 tools") // no empty table
	} else {
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tSERVER\tTOOL\tDESCRIPTION")
		for _, r := range rows {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Name, r.Server, r.Tool, oneLine(r.Description, 60))
		}
		_ = tw.Flush()
		fmt.Fprintf(stderr, "%d tools\n", len(rows))
	}
	if startErr != nil {
		return 1
	}
	return 0
}

func printServers(st []gateway.ServerStatus, asJSON bool, stdout io.Writer) int {
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(st)
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVER\tSTATE\tERA\tVERSION\tSERVER INFO\tLAST ERROR")
	code := 0
	for _, s := range st {
		if s.State != gateway.StateReady {
			code = 1
		}
		info := strings.TrimSpace(s.ServerInfo.Name + " " + s.ServerInfo.Version)
		// The row names the server: its error need not repeat it. The last
		// column can be long, so the cause at the end is kept.
		lastErr := strings.TrimPrefix(s.LastError, fmt.Sprintf("server %q: ", s.Name))
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, s.State, s.Era, s.Version, info, oneLine(lastErr, 200))
	}
	_ = tw.Flush()
	return code
}

func callTool(ctx context.Context, g *gateway.Gateway, pos []string, pretty bool, stdout, stderr io.Writer) int {
	args := json.RawMessage("{}")
	if len(pos) == 2 {
		args = json.RawMessage(pos[1])
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(args, &obj); err != nil || obj == nil {
			fmt.Fprintf(stderr, "gw call: arguments must be a JSON object, got %q\n", pos[1])
			return 2
		}
	}
	params, _ := json.Marshal(map[string]any{"name": pos[0], "arguments": args})
	res, err := g.CallTool(ctx, params, gateway.CallOptions{})
	if err != nil {
		if errors.Is(err, gateway.ErrUnknownTool) {
			fmt.Fprintf(stderr, "gw call: unknown tool %q (list them with: gw tools -c FILE)\n", pos[0])
			return 1
		}
		fmt.Fprintln(stderr, "gw call:", err)
		return 1
	}
	out := []byte(res)
	if pretty {
		var b bytes.Buffer
		if json.Indent(&b, res, "", "  ") == nil {
			out = b.Bytes()
		}
	}
	_, _ = stdout.Write(append(out, '\n'))
	if jsonrpc.IsToolError(res) {
		return 1
	}
	return 0
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		return s[:n-1] + "…"
	}
	return s
}

// pingInterval maps the config's "0 turns pings off" onto the gateway's
// "negative is off, 0 is the default".
func pingInterval(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}
