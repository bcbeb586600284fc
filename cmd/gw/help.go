package main

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/gwmcp/gw/policies"
)

// Help is asked for in three ways, and all three answer the same way: the
// command's help on standard output, exit status 0.
//
//	gw help CMD     gw CMD --help     gw CMD -h
//
// (gw policy SUB --help and gw policy help too.) A mistake in the
// arguments, by contrast, is reported on standard error with exit status 2.

const configFlags = `
Flags:
  -c, --config FILE   gw YAML/JSON/TOML, or a Claude Desktop / Cursor / VS Code JSON file
  -v, --verbose       log at debug level (servers' stderr is logged at info, always)
      --set KEY=VALUE override a configuration key (repeatable), e.g. --set nats.url=nats://host:4222
                      (precedence: defaults < file < GW_ environment < --set)
`

// commandHelp holds each command's help; "policy" is built by policyHelp.
var commandHelp = map[string]string{
	"run": `Usage: gw run -c FILE [--set KEY=VALUE]… [-v]

Start the configured servers and the policies, and serve the merged tools over NATS (an embedded
NATS server unless nats.url is set) until SIGINT or SIGTERM. The configuration file is watched:
an edit adds, removes or restarts only the servers that changed, with the same environment and
--set overrides as at start. Plain gw, in the repository root, runs examples/demo.yaml.
With the HTTP face on (http.addr), /healthz and /readyz answer probes (health.ready,
health.required; see gw help health).
` + configFlags,
	"stdio": `Usage: gw stdio -c FILE [--principal NAME] [--view NAME] [--set KEY=VALUE]… [-v]

Be one MCP server on standard input and output: start the configured servers and the policies,
and serve their merged tools, prompts and resources to the client that started gw (Claude
Desktop, Cursor, VS Code, an SDK agent), in either era of MCP (initialize, 2025-11-25; or
per-request _meta, 2026-07-28). Logs go to standard error; standard output carries MCP messages
only. The configuration file is watched as by gw run, and the client is told when lists change.
gw exits, stopping every server, when standard input closes.

Tool-definition pins (gateway.pinning) are kept in pins.file, by default the per-user
$XDG_STATE_HOME/gw/pins.json (else ~/.local/state/gw/pins.json), so a tool changed since an
earlier run is held back until gw pin accept; pins.file none keeps them in memory. gw stdio does
not start on a pin file it cannot read.

In a client's configuration:
  {"mcpServers": {"gw": {"command": "gw", "args": ["stdio", "-c", "/path/gw.yaml"]}}}
` + configFlags + `      --principal NAME the caller the authorize policy sees (default: the local user)
      --view NAME      serve only the view NAME of the configuration's views (views: {NAME:
                       {servers: [...], include: ["fs__*"], exclude: [...]}})
`,
	"connect": `Usage: gw connect --nats URL [--creds FILE | --nkey FILE | --token T | --user U --password P]
                  [--tls-ca FILE] [--tls-cert FILE --tls-key FILE] [--prefix mcp.v1]
                  [--principal NAME] [--timeout 60s] [-v]

Be one MCP server on standard input and output, as gw stdio is, but with no servers of its own:
serve the tools and prompts of every gw run gateway on a NATS cluster (their catalogs in the KV
bucket mcp-catalog), so that a desktop client uses a shared fleet of gateways. Calls go to a
gateway that hosts the tool; progress, sampling, elicitation and roots requests of the servers
reach this client. The client is told when a gateway joins, leaves or changes its catalog. No
configuration file: flags only. Logs go to standard error; standard output carries MCP messages
only. gw exits when standard input closes.

In a client's configuration:
  {"mcpServers": {"fleet": {"command": "gw", "args": ["connect", "--nats", "nats://nats.example:4222",
   "--creds", "/path/user.creds"]}}}

Flags:
      --nats URL        the NATS server or cluster (comma-separated URLs); required
      --creds FILE      a .creds file (user JWT and nkey seed); or --nkey FILE, --token T,
                        --user U --password P (one kind of credentials at most)
      --tls-ca FILE     the CAs of the server's certificate; --tls-cert/--tls-key a client one
      --prefix P        the gateways' subject prefix (nats.prefix), default mcp.v1
      --principal NAME  the caller, the {principal} of every subject (default: the local user)
      --timeout D       the deadline of a request, default 60s
  -v, --verbose         log at debug level
`,
	"tools": `Usage: gw tools -c FILE [--json] [--set KEY=VALUE]… [-v]
       gw tools -c FILE --changed [--json]

Start the servers and print the merged tool catalog: exposed name, server, the server's own name
and a description. Exit status 1 if a server did not start.

With --changed, start nothing: print the tools whose definitions (name, title, description,
schemas, annotations) differ from the ones pinned when gw first saw them, as the gateways
reported them: gw stdio in its pin file (pins.file), gw run in the pin bucket (mcp-pins, on
nats.url or the embedded server's store, when there is one): server, tool, exposed name, the
fields that changed, whether the tool is held back, and the pinned and current digests. Accept a
change with gw pin accept.
` + configFlags + `      --json          one JSON array of {name, server, tool, description}; with --changed,
                      of the changes with both definitions
      --changed       the changed tools, from the pin file and the pin bucket
`,
	"pin": `Usage: gw pin accept -c FILE SERVER[/TOOL]… | --all

Accept the changed definitions of a server's tools (SERVER), of one tool (SERVER/TOOL) or of every
changed tool (--all), as gw tools --changed lists them: their current definitions become their
pins, in the pin file (pins.file) and the pin bucket alike. Every gw run gateway sharing the pin
bucket serves the tools again at once; a running gw stdio on the pin file within a second. Exit
status 1 if an argument matches no changed tool.
` + configFlags + `      --all           every changed tool
`,
	"audit": `Usage: gw audit -c FILE [-f] [--since 1h] [-n 100] [--principal NAME] [--decision allow|deny]
                [--tool NAME] [--server NAME] [--json]

Print the authorization decisions that gw run gateways recorded in the audit stream MCP_AUDIT
(on nats.url, or the embedded server's store): time, gateway, principal, decision, tool, the
policy's reason and the digest of the policy module that decided. Records come from --since ago
on, the latest -n of them; -f then prints new ones as they come, until interrupted. With no gw
run up, -f prints what the store holds, lets go of it (a gw run could not start while gw audit
held it) and waits for a gw run on 127.0.0.1:nats.embedded.port to follow. A record is kept for
audit.max_age (default 720h); its arguments only with audit.arguments: true.
` + configFlags + `  -f, --follow        keep printing new records
      --since D       from D ago (default 1h)
  -n N                at most the latest N past records (default 100)
      --principal P   P's calls only
      --decision D    allow or deny only
      --tool NAME     calls of the tool exposed as NAME only
      --server NAME   calls of NAME's tools only
      --json          one JSON object per record and line
`,
	"call": `Usage: gw call -c FILE NAME ['JSON-ARGS'] [--pretty] [--set KEY=VALUE]… [-v]

Start the servers, call the tool exposed as NAME with the JSON object JSON-ARGS (default {}), and
print the CallToolResult as JSON. Exit status 1 if the call fails or its result has isError.
` + configFlags + `      --pretty        indent the result
`,
	"servers": `Usage: gw servers -c FILE [--json] [--set KEY=VALUE]… [-v]

Start the servers and print each one's state, protocol era and version, server info and last
error. Exit status 1 if a server is not ready.
` + configFlags + `      --json          the status of each server as JSON
`,
	"bench": `Usage: gw bench -c FILE [--server NAME] [--tool NAME --args JSON] [--concurrency 1,16,256]
                [--duration 5s] [--paths direct,gateway,nats,stdio,http] [--json] [--set KEY=VALUE]… [-v]

Time one tool of one of your servers directly and through each of gw's paths, in one run, and
print what gw adds: for each path and concurrency, calls per second, p50 and p99 latency, errors,
and the p50 and throughput ratios to direct. Each run has that many callers calling back to back
for --duration, after a warm-up that is not counted (a tenth of it, 100ms to 1s).

Paths:
  direct   the server started on its own, called by a bare pipelined JSON-RPC client over its
           stdio (one connection, replies handed out by id), in the server's era: the floor
  gateway  gw's gateway in process (Gateway.CallTool): what gw itself adds
  nats     the NATS face over that gateway on an embedded NATS server, called from another
           connection (gw run's NATS path, without a network)
  stdio    gw stdio -c FILE as a child process, called by the same client as direct
  http     gw run's Streamable HTTP face on 127.0.0.1 over the gateway, on keep-alive
           connections (legacy: one session; modern: stateless POSTs)

gw stdio and the HTTP face are called in the server's era, so that each path compares like with
like.

The gateway starts every configured server (gw stdio starts its own copies); every path calls
as the local user. The faces admit a bounded number of calls at once (nats.max_concurrent, 64
by default; gw stdio 64): beyond it callers get "gw: busy", counted as errors. A call whose
result has isError counts as an error too. Exit status 2 for a mistake in the arguments, 1 if a
path did not start or the run was interrupted.
` + configFlags + `      --server NAME   the server (default: the first configured)
      --tool NAME     its tool, by the server's name or gw's (default: the first that takes no
                      arguments, read-only ones first, never one marked destructive)
      --args JSON     the tool's arguments, a JSON object (default {}; required when the tool
                      requires arguments)
      --concurrency N,N…  callers at once, one run each (default 1,16,256)
      --duration D    how long each run is measured (default 5s)
      --paths P,P…    the paths to run (default all)
      --json          the results as one JSON object
`,
	"status": `Usage: gw status [-c FILE | --nats URL] [--prefix P] [--gateway NAME] [--watch] [--json]
                 [--interval 1s] [--set KEY=VALUE]… [-v]

Show every gw run gateway on the bus, or one (--gateway): its state, tools, tools/call rate, error
rate, latency and totals, the digests of its policy modules; each server's state, pid, failures,
restarts, tools and last error; and the latest denials of the audit events. Everything is read
from what the gateways publish (status events, the catalog bucket, the micro service's stats,
polled every --interval: rates are over the last interval; audit events on P.evt.audit.>): gw
status starts nothing. A gateway that said ready but answered neither of the last two polls is
shown "unreachable".

The bus is --nats URL, else the configuration's nats.url (with its credentials), else the
embedded NATS server of a gw run on this host (127.0.0.1:nats.embedded.port), else, when no gw
run holds it, the embedded server's store opened here (the history: every gateway unreachable;
with --watch, shown once, then the store is let go and gw status waits for a gw run on that
port); without -c, nats://127.0.0.1:4222. The prefix is --prefix, else the configuration's,
else mcp.v1.

Flags:
  -c, --config FILE   gw's configuration, for its nats section (optional)
      --set KEY=VALUE override a configuration key (repeatable; needs -c)
      --nats URL      the NATS server or cluster
      --prefix P      the gateways' subject prefix (nats.prefix)
      --gateway NAME  show this gateway only (exit status 1 if there is none)
      --watch         redraw at every change, at most once per --interval, until interrupted
      --json          the snapshot as one JSON object (with --watch: one per line)
      --interval D    how often the gateways' stats are polled (default 1s)
  -v, --verbose       log at debug level
`,
	"health": `Usage: gw health [--ready] [--addr HOST:PORT] [--url URL] [--timeout 3s]

Probe a running gw run over HTTP and print one line: /healthz ("live": the process serves), or
with --ready /readyz ("ready", or "not ready: " and why: NATS not connected, policies not loaded,
too few servers up for health.ready, a health.required server down). Exit status 0 when the
probe answers 200, 1 otherwise (no answer within --timeout included), 2 for a mistake in the
arguments. It needs no shell, curl or wget: a FROM scratch image's healthcheck runs it
(HEALTHCHECK CMD ["gw", "health", "--ready"]). The probes need no token, even with http.tokens.

Flags:
      --ready         probe /readyz instead of /healthz
      --addr H:P      gw run's http.addr (default: $GW_HTTP__ADDR, else 127.0.0.1:8931); an
                      address on every interface (0.0.0.0:8931) is probed on loopback
      --url URL       probe another URL instead: 200 is healthy (nats-server's monitoring
                      endpoint, http://127.0.0.1:8222/healthz, in the compose stack)
      --timeout D     give up after D (default 3s)
`,
	"version": `Usage: gw version

Print gw's version.
`,
}

// policyHelp is the help of gw policy and its subcommands.
func policyHelp() string {
	return fmt.Sprintf(`Usage:
  gw policy eval --kind authorize|collision --module M [--config JSON] INPUT.json
  gw policy check M [--config JSON]

eval runs a policy module on one input and prints its answer; an answer that is not valid for
the kind (a collision input given to --kind authorize, say) is an error, exit status 1.
check loads a module, checks its ABI and exports, and dry-runs it.

M is an embedded policy (%s) or a path to a .wasm file.
INPUT.json is the ABI input (docs/POLICY_ABI.md); "-" reads standard input. Examples:
examples/policy/authorize-input.json and examples/policy/collision-input.json.
`, strings.Join(policies.Names(), ", "))
}

// helpFor returns cmd's help, or false for an unknown command.
func helpFor(cmd string) (string, bool) {
	if cmd == "policy" {
		return policyHelp(), true
	}
	h, ok := commandHelp[cmd]
	return h, ok
}

// wantsHelp reports whether args ask for help: -h, -help or --help before
// any "--".
func wantsHelp(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		if slices.Contains([]string{"-h", "-help", "--help", "-h=true", "--help=true"}, a) {
			return true
		}
	}
	return false
}

// printHelp serves gw help CMD.
func printHelp(cmd string, stdout, stderr io.Writer) int {
	h, ok := helpFor(cmd)
	if !ok {
		fmt.Fprintf(stderr, "gw help: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	fmt.Fprint(stdout, h)
	return 0
}
