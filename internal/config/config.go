// Package config loads, strictly decodes and validates gw's configuration.
//
// # Layers and precedence
//
// A configuration is built from four layers. Each later layer overrides the
// earlier ones key by key: maps merge, and scalars and lists replace.
//
//  1. Defaults, as returned by [Default].
//  2. The configuration file, [Options.File]: YAML (.yaml, .yml), JSON
//     (.json) or TOML (.toml).
//  3. Environment variables that start with GW_ (see below).
//  4. [Options.Overrides]: dotted keys, usually from command-line flags.
//
// [Parse] uses only layers 1 and 2.
//
// # Environment variables
//
// After the GW_ prefix, a double underscore "__" separates levels. A single
// underscore is part of a key:
//
//	GW_LOG__LEVEL=debug                      log.level
//	GW_GATEWAY__CALL_TIMEOUT=10s             gateway.call_timeout
//	GW_GATEWAY__NAMES__MAX_LENGTH=96         gateway.names.max_length
//	GW_SERVERS__notes__COMMAND=node          servers.notes.command
//	GW_SERVERS__notes__ARGS=["run","."]      servers.notes.args
//	GW_SERVERS__notes__ENV__API_KEY=secret   servers.notes.env.API_KEY
//
// gw's own key names (log, level, call_timeout, …) match without regard to
// case. Server names and env keys are map keys and are used exactly as
// written: GW_SERVERS__NOTES__COMMAND configures a server named "NOTES", not
// "notes". Everything after ENV__ is the env key, so it may contain "__".
// Values are converted to the key's type: integers in decimal, booleans as
// strconv.ParseBool reads them, durations such as "10s", and lists and maps as
// JSON. A GW_ variable that names no key is an error, just like an unknown
// key in the file, when its first part is one of gw's sections or a near
// miss of one (GW_GATWAY__…); others (GW_TOKEN, GW_HOME) belong to other
// tools and are left alone.
//
// Override keys are split at dots in the same way, and everything after
// "servers.NAME.env." is one env key, so "servers.notes.env.SOME.VAR" sets
// the env key "SOME.VAR". An override whose value is a string is converted
// to the key's type as an environment variable's value is. Other values must
// already have the key's type; a time.Duration is accepted for durations.
//
// # File formats
//
// Besides gw's own format (top-level servers, gateway and log), the client
// configuration files that users already have load as they are:
//
//   - Claude Desktop and Cursor: servers under "mcpServers". gw's own
//     sections (gateway, policies, nats, log) may sit beside it and are
//     decoded and validated exactly as in gw's own files, so a policy
//     written there is applied. Other top-level keys, like Claude Desktop's
//     "globalShortcut", are ignored with a warning, except a key that looks
//     like a misspelt section of gw's ("polices", "Policies", "gatway"):
//     that is an unknown-key error, so a policy is never silently dropped.
//   - VS Code (.vscode/mcp.json): servers with "type": "stdio" and an optional
//     "envFile". The top-level "inputs" are ignored with a warning, and
//     ${input:…} placeholders are passed on unchanged with a warning.
//     Comments and trailing commas, which VS Code allows, are accepted in any
//     JSON file.
//
// In every format a server may have "type": "stdio" and an "envFile" whose
// KEY=VALUE lines are added to "env" (keys in "env" win). Remote servers, with
// a "url" or a type such as "http", "sse" or "streamable-http", are not
// supported yet: they are skipped with a warning. A file with both "servers"
// and "mcpServers" is an error.
//
// Relative paths in the file (cwd, envFile) are relative to the file's
// directory; cwd is made absolute. Paths from the environment or overrides,
// and everything given to Parse, stay relative to gw's working directory. An
// empty cwd stays empty: the child then runs in gw's working directory.
//
// # Server order
//
// Servers have an order, which breaks ties between them: the first-come
// collision policy gives a contested name to the first server that has it,
// and a resource URI belongs to the first server that lists it. The order is
// the file's (YAML, JSON and TOML all keep one; gw reads it from the file
// itself, as koanf's maps do not), unless a server's "priority" says
// otherwise: an integer, default 0, higher first. An explicit priority wins
// over the file's order; servers of equal priority keep the file's order;
// servers only GW_ variables or overrides configure come after those the
// file lists, by name. [Config.ServerNames] returns the order. A server that
// `gw run` adds on a reload goes after the running ones of its priority
// (the running servers keep their places), so reordering the file takes
// effect at the next start; changing a priority takes effect at once.
//
// # Strictness
//
// Decoding is strict. An unknown key is an error that names its full path,
// such as config: unknown key "servers.notes.comand". Keys are
// case-sensitive. A value of the wrong type is an error naming the key; the
// only conversions are duration strings ("30s") into durations and integral
// numbers into integers (JSON reads every number as a float). After decoding,
// the configuration is validated, and every problem found is reported, each
// as one line, joined with errors.Join. Each is an [*Error] that matches
// one of [ErrSyntax], [ErrUnknownKey], [ErrWrongType] or [ErrInvalid] under
// errors.Is. A file that cannot be read is reported as the *fs.PathError
// wrapped with a "config: " prefix.
//
// Internally the merged layers are walked against the schema before
// mapstructure decodes them, so that every unknown key and wrong type is
// reported with its full path; the mapstructure decoder itself is also set to
// reject unused keys and loose typing.
package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/knadh/koanf/v2"
)

// Restart policies for [Server.Restart].
const (
	RestartAlways    = "always"
	RestartOnFailure = "on-failure"
	RestartNever     = "never"
)

// Server is one MCP server that gw runs as a child process.
type Server struct {
	// Command is the program to run. Required.
	Command string `koanf:"command"`
	// Args are the command's arguments.
	Args []string `koanf:"args"`
	// Env holds variables added to the child's environment. Keys are kept
	// exactly as written.
	Env map[string]string `koanf:"env"`
	// Cwd is the child's working directory. Empty means gw's own.
	Cwd string `koanf:"cwd"`
	// Restart is one of RestartAlways, RestartOnFailure (the default) and
	// RestartNever. Load and Parse fill in the default; Validate accepts
	// "" as the default.
	Restart string `koanf:"restart"`
	// Disabled servers are kept in the configuration but not started.
	Disabled bool `koanf:"disabled"`
	// CallTimeout overrides Gateway.CallTimeout for this server; 0 means
	// use the gateway's.
	CallTimeout time.Duration `koanf:"call_timeout"`
	// Priority places the server in the configured order, which breaks
	// ties between servers (the first-come collision policy keeps a name
	// for the first server that has it): a higher priority comes first.
	// Servers of equal priority, 0 by default, keep the file's order. See
	// [Config.ServerNames].
	Priority int `koanf:"priority"`
}

// Names controls how gw names tools from several servers.
type Names struct {
	// Separator joins a server name and a tool name. Default "__".
	Separator string `koanf:"separator"`
	// MaxLength is the longest name gw exposes, 10..128 (room for the
	// hash that shortens long names). Default 64.
	MaxLength int `koanf:"max_length"`
}

// Restart controls how gw restarts a server that stops.
type Restart struct {
	// InitialBackoff is the first delay before a restart. Default 500ms.
	InitialBackoff time.Duration `koanf:"initial_backoff"`
	// MaxBackoff caps the delay between restarts. Default 30s.
	MaxBackoff time.Duration `koanf:"max_backoff"`
	// DegradedAfter is the number of consecutive failures after which a
	// server's status is "degraded". Default 3.
	DegradedAfter int `koanf:"degraded_after"`
	// StableAfter is how long a server must stay up for its failure count
	// to reset. Default 30s.
	StableAfter time.Duration `koanf:"stable_after"`
}

// Gateway holds settings that apply to the gateway as a whole.
type Gateway struct {
	// CallTimeout bounds one tool call. Default 60s.
	CallTimeout time.Duration `koanf:"call_timeout"`
	// DiscoverTimeout is how long the server/discover probe waits before
	// gw falls back. Default 5s.
	DiscoverTimeout time.Duration `koanf:"discover_timeout"`
	// StartTimeout bounds a server's handshake and discovery. Default 30s.
	StartTimeout time.Duration `koanf:"start_timeout"`
	// MaxMessageSize is the largest message in bytes, at least 1024.
	// Default 16 MiB.
	MaxMessageSize int `koanf:"max_message_size"`
	// MaxDepth is how deeply a caller's message may nest objects and
	// arrays, 2 to 10000; every face answers a deeper one with -32600
	// before any server sees it. Default 128.
	MaxDepth int `koanf:"max_depth"`
	// MaxInFlight bounds the requests one MCP client of `gw stdio` may have
	// in flight at once; more are answered "gw: busy" at once. Default 64.
	// (The NATS face has nats.max_concurrent.)
	MaxInFlight int `koanf:"max_in_flight"`
	// PingInterval is the keepalive ping period (server/discover in the
	// modern era); 0 turns pings off. Default 15s: on stdio a ping costs
	// next to nothing, and without one a hung server stays "ready".
	PingInterval time.Duration `koanf:"ping_interval"`
	// PingMisses is how many pings in a row may go unanswered (each is
	// given one interval) before the server is restarted, so a hung server
	// is restarted and a merely busy one is not. Default 3.
	PingMisses int `koanf:"ping_misses"`
	// ConfigWatch is how often `gw run` checks its configuration file: a
	// changed file adds, removes or restarts only the servers that changed.
	// 0 turns it off. Default 2s.
	ConfigWatch time.Duration `koanf:"config_watch"`
	// ShutdownGrace is how long `gw run` lets calls in flight finish after
	// SIGINT or SIGTERM before it cancels them; a second signal cancels them
	// at once. Default 25s, inside the 30s that Kubernetes and compose-style
	// supervisors commonly wait before SIGKILL.
	ShutdownGrace time.Duration `koanf:"shutdown_grace"`
	// Pinning is what gw does when a tool's definition (name, title,
	// description, schemas, annotations) differs from the one it pinned
	// when it first saw the tool: hold (the default) holds the tool back
	// until the change is accepted (gw pin accept) or a collision policy
	// allows it; warn serves it and reports the change; off pins nothing.
	Pinning string  `koanf:"pinning"`
	Names   Names   `koanf:"names"`
	Restart Restart `koanf:"restart"`
}

// Audit configures the audit records of authorization decisions: gw run
// publishes them on NATS ({prefix}.evt.audit.{principal}) and keeps them in
// the stream MCP_AUDIT. Only calls decided by an authorize policy have one.
type Audit struct {
	// Record is which decisions are recorded: all (the default), denied or
	// off.
	Record string `koanf:"record"`
	// Arguments adds each call's arguments to its record. Off by default:
	// arguments may hold secrets.
	Arguments bool `koanf:"arguments"`
	// MaxAge and MaxBytes bound the audit stream, the oldest records going
	// first. Defaults 720h (30 days) and 256 MiB (JetStream reserves it
	// from the account's storage); max_bytes -1 is no limit.
	MaxAge   time.Duration `koanf:"max_age"`
	MaxBytes int           `koanf:"max_bytes"`
}

// Tracing configures OpenTelemetry traces, exported over OTLP. The standard
// OTEL_* environment variables work as users of other OpenTelemetry SDKs
// expect and win over these keys (OTEL_EXPORTER_OTLP_ENDPOINT and
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, _PROTOCOL, OTEL_TRACES_SAMPLER and
// _ARG, OTEL_PROPAGATORS, OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES,
// OTEL_SDK_DISABLED).
// With no endpoint from either, tracing is off.
type Tracing struct {
	// Endpoint is the OTLP collector's URL (http://localhost:4318 for
	// http/protobuf, http://localhost:4317 for grpc); "" leaves it to the
	// environment, and tracing off without one.
	Endpoint string `koanf:"endpoint"`
	// Protocol is http/protobuf (the default) or grpc.
	Protocol string `koanf:"protocol"`
	// Sampler is one of OTEL_TRACES_SAMPLER's values: always_on,
	// always_off, traceidratio, parentbased_always_on (the default),
	// parentbased_always_off, parentbased_traceidratio.
	Sampler string `koanf:"sampler"`
	// SamplerArg is the ratio, 0..1, of the traceidratio samplers (default 1).
	SamplerArg float64 `koanf:"sampler_arg"`
	// Propagators is OTEL_PROPAGATORS' list, comma-separated: the trace
	// context formats gw reads and writes in headers and _meta, among
	// TracingPropagators; "" (or a list of no name, ",") =
	// tracecontext,baggage, as the specification has it. A string, as the
	// variable is, not a list.
	Propagators string `koanf:"propagators"`
}

// Pins configures where gw stdio keeps tool-definition pins
// (gateway.pinning says what gw does with a changed tool). gw run keeps
// them in the NATS bucket mcp-pins instead.
type Pins struct {
	// File is gw stdio's pin file, which gw pin accept and gw tools
	// --changed read and write too: "" (the default) is the per-user
	// $XDG_STATE_HOME/gw/pins.json, else ~/.local/state/gw/pins.json;
	// PinsFileNone keeps pins in memory, for the life of the process only
	// (every start trusts every tool anew). A relative path in the file is
	// relative to the file's directory; ~ is not expanded (refused).
	File string `koanf:"file"`
}

// PinsFileNone is the Pins.File that keeps pins in memory.
const PinsFileNone = "none"

// Log configures gw's own logging.
type Log struct {
	// Level is one of debug, info (the default), warn and error.
	Level string `koanf:"level"`
	// Format is text (the default) or json.
	Format string `koanf:"format"`
}

// Policy names one policy module and its configuration.
type Policy struct {
	// Module is an embedded policy's name (prefix, reject, first-come,
	// allow-all, allowlist, read-only, deny-destructive) or a path to a
	// .wasm file; a path in the file is relative to the file's directory.
	// Empty means none.
	Module string `koanf:"module"`
	// Config is handed to the module once per instance, as JSON.
	Config map[string]any `koanf:"config"`
}

// Policies configures the WebAssembly policy modules.
type Policies struct {
	// Collision decides exposed names. Default: the embedded "prefix",
	// configured from gateway.names.
	Collision Policy `koanf:"collision"`
	// Authorize decides every tools/call. Default: none (all allowed).
	Authorize Policy `koanf:"authorize"`
	// Watch is how often module files are checked for changes; a changed
	// file is checked and swapped in without a restart. 0 turns it off.
	// Default 2s.
	Watch time.Duration `koanf:"watch"`
	// AuthorizeTimeout bounds one authorization. Default 100ms.
	AuthorizeTimeout time.Duration `koanf:"authorize_timeout"`
	// CollisionTimeout bounds one collision resolution. Default 2s.
	CollisionTimeout time.Duration `koanf:"collision_timeout"`
	// MemoryLimitMiB caps each module instance's memory, 1..4096.
	// Default 64.
	MemoryLimitMiB int `koanf:"memory_limit_mib"`
	// CacheDir keeps compiled modules between runs; "" keeps them in
	// memory only.
	CacheDir string `koanf:"cache_dir"`
}

// TLS configures a TLS connection to NATS.
type TLS struct {
	CAFile             string `koanf:"ca_file"`
	CertFile           string `koanf:"cert_file"`
	KeyFile            string `koanf:"key_file"`
	InsecureSkipVerify bool   `koanf:"insecure_skip_verify"`
}

// Embedded configures the nats-server gw runs itself when no URL is set.
type Embedded struct {
	// StoreDir keeps JetStream state; "" means a "gw/nats" folder in the
	// user's state directory.
	StoreDir string `koanf:"store_dir"`
	// Port is the loopback port clients reach it on: default 4222; -1
	// picks a free one; 0 serves gw's own in-process connection only.
	Port int `koanf:"port"`
}

// NATS configures the NATS face.
type NATS struct {
	// URL of an external server or cluster (comma-separated); "" starts an
	// embedded server.
	URL       string `koanf:"url"`
	CredsFile string `koanf:"creds_file"`
	NKeyFile  string `koanf:"nkey_file"`
	User      string `koanf:"user"`
	Password  string `koanf:"password"`
	Token     string `koanf:"token"`
	TLS       TLS    `koanf:"tls"`
	// Prefix of every subject. Default "mcp.v1".
	Prefix string `koanf:"prefix"`
	// Gateway names this gateway in subjects and events; "" = the host name.
	Gateway string `koanf:"gateway"`
	// MaxConcurrent bounds calls in flight; more are refused at once.
	// Default 64.
	MaxConcurrent int `koanf:"max_concurrent"`
	// LLMSubject is where sampling, elicitation and roots requests go when
	// the caller does not answer them itself; "" = refuse them.
	LLMSubject string `koanf:"llm_subject"`
	// PingInterval is how often gw pings the NATS server at URL; two pings
	// in a row unanswered make the connection stale and gw reconnects, to
	// another server of the cluster if one answers. Default 10s.
	PingInterval time.Duration `koanf:"ping_interval"`
	// Replicas is the replica count of the JetStream event stream, catalog
	// bucket and claim-check store gw makes on the servers at URL: 3 in a
	// three-node cluster keeps them available while one node is down or
	// partitioned. Every gateway sharing the prefix should say the same
	// (each start updates them). Default 1.
	Replicas int      `koanf:"replicas"`
	Embedded Embedded `koanf:"embedded"`
}

// HTTPToken says where one principal's bearer token comes from: exactly one
// of TokenEnv (an environment variable) and TokenFile (a file whose content,
// trimmed, is the token). The token itself is never in the file.
type HTTPToken struct {
	TokenEnv  string `koanf:"token_env"`
	TokenFile string `koanf:"token_file"`
}

// HTTP configures the Streamable HTTP face of gw run.
type HTTP struct {
	// Addr is the host:port to listen on; "" turns the face off. Default
	// "127.0.0.1:8931". Beyond loopback, Tokens are required.
	Addr string `koanf:"addr"`
	// Tokens maps a principal, the caller the authorize policy sees, to
	// where its bearer token comes from. With none, every client is
	// "anonymous" and only loopback addresses are allowed.
	Tokens map[string]HTTPToken `koanf:"tokens"`
	// AllowedOrigins are the browser origins ("https://app.example.com")
	// allowed besides loopback ones.
	AllowedOrigins []string `koanf:"allowed_origins"`
}

// Health configures the probes of gw run on its HTTP listener (http.addr): /healthz answers 200
// while the process serves; /readyz answers 200 only while NATS is connected, the policies are
// loaded and the servers are up as Ready and Required ask.
//
// A server is up unless it is degraded, failed or stopped: the states in which its calls fail
// fast. A server starting, or restarting after a crash, counts as up, as its calls wait for it;
// one that keeps failing turns degraded after gateway.restart.degraded_after failures in a row.
// Disabled servers do not count.
type Health struct {
	// Ready is how many of the enabled servers must be up: "all" (the default), "any" (at least
	// one), "none" (servers do not count, only NATS and the policies), or a share "N%", 1 to 100,
	// rounded up (50% of 3 servers is 2).
	Ready string `koanf:"ready"`
	// Required names servers that must be up whatever Ready says, such as the one server every
	// agent needs under ready "any".
	Required []string `koanf:"required"`
}

// Health.Ready's words; any other value is a percentage.
const (
	ReadyAll  = "all"
	ReadyAny  = "any"
	ReadyNone = "none"
)

// Quorum returns how many of n enabled servers Ready asks to be up. Ready must be valid
// (Validate checks it).
func (h Health) Quorum(n int) int {
	switch h.Ready {
	case ReadyAll, "":
		return n
	case ReadyAny:
		return min(n, 1)
	case ReadyNone:
		return 0
	}
	pct, _ := readyPercent(h.Ready)
	return (n*pct + 99) / 100
}

// Metrics configures gw run's Prometheus metrics (docs/OBSERVABILITY.md).
type Metrics struct {
	// Enabled serves /metrics on the HTTP listener (http.addr), behind
	// the same bearer tokens as /mcp when http.tokens are configured.
	// Default true.
	Enabled bool `koanf:"enabled"`
	// MaxTools caps the distinct (server, tool) label pairs of the tool
	// call series; calls to further tools count as tool="_other" of their
	// server. Default 500.
	MaxTools int `koanf:"max_tools"`
}

// Config is gw's whole configuration.
type Config struct {
	// Servers maps a server name, [A-Za-z0-9_-]{1,64}, to its settings.
	Servers  map[string]Server `koanf:"servers"`
	Gateway  Gateway           `koanf:"gateway"`
	Policies Policies          `koanf:"policies"`
	NATS     NATS              `koanf:"nats"`
	HTTP     HTTP              `koanf:"http"`
	Health   Health            `koanf:"health"`
	Metrics  Metrics           `koanf:"metrics"`
	Log      Log               `koanf:"log"`
	Audit    Audit             `koanf:"audit"`
	Tracing  Tracing           `koanf:"tracing"`
	Pins     Pins              `koanf:"pins"`
	// Views maps a view name, [A-Za-z0-9_-]{1,64}, to a subset of the
	// namespace that a face can serve on its own (gw stdio --view NAME).
	Views map[string]View `koanf:"views"`
	// Warnings are non-fatal notes from loading, such as skipped remote
	// servers or ignored VS Code inputs. They are not configuration keys.
	Warnings []string `koanf:"-"`
	// Order lists the servers in the order the configuration file gives
	// them (Go maps, Servers included, keep no order). Load and Parse set
	// it; servers that only GW_ variables or overrides configure are not
	// in it. Use [Config.ServerNames] for the order to run servers in. It
	// is not a configuration key.
	Order []string `koanf:"-"`
}

// Default returns the configuration used where no layer sets a key. It has
// no servers, so on its own it does not pass validation.
func Default() Config {
	return Config{
		Gateway: Gateway{
			CallTimeout:     60 * time.Second,
			DiscoverTimeout: 5 * time.Second,
			StartTimeout:    30 * time.Second,
			MaxMessageSize:  16 << 20,
			MaxDepth:        128,
			MaxInFlight:     64,
			ConfigWatch:     2 * time.Second,
			ShutdownGrace:   25 * time.Second,
			PingInterval:    15 * time.Second,
			PingMisses:      3,
			Pinning:         "hold",
			Names: Names{
				Separator: "__",
				MaxLength: 64,
			},
			Restart: Restart{
				InitialBackoff: 500 * time.Millisecond,
				MaxBackoff:     30 * time.Second,
				DegradedAfter:  3,
				StableAfter:    30 * time.Second,
			},
		},
		Policies: Policies{
			Collision:        Policy{Module: "prefix"},
			Watch:            2 * time.Second,
			AuthorizeTimeout: 100 * time.Millisecond,
			CollisionTimeout: 2 * time.Second,
			MemoryLimitMiB:   64,
		},
		NATS: NATS{
			Prefix:        "mcp.v1",
			MaxConcurrent: 64,
			PingInterval:  10 * time.Second,
			Replicas:      1,
			Embedded:      Embedded{Port: 4222},
		},
		HTTP:    HTTP{Addr: DefaultHTTPAddr},
		Health:  Health{Ready: ReadyAll},
		Metrics: Metrics{Enabled: true, MaxTools: 500},
		Log:     Log{Level: "info", Format: "text"},
		Audit:   Audit{Record: "all", MaxAge: 30 * 24 * time.Hour, MaxBytes: 256 << 20},
		Tracing: Tracing{SamplerArg: 1},
	}
}

// DefaultHTTPAddr is where gw run serves MCP over HTTP by default: loopback
// only.
const DefaultHTTPAddr = "127.0.0.1:8931"

// Options says where Load finds the configuration.
type Options struct {
	// File is the configuration file; its extension (.yaml, .yml or
	// .json) selects the format. Empty means no file.
	File string
	// Environ is the environment to read GW_ variables from, as
	// "KEY=VALUE" strings. Nil means os.Environ(); use an empty, non-nil
	// slice for none.
	Environ []string
	// Overrides are dotted keys with their values, such as
	// "gateway.call_timeout": "10s". They take precedence over everything.
	Overrides map[string]any
}

// Load builds the configuration from defaults, opts.File, the environment
// and opts.Overrides, then decodes and validates it. See the package
// documentation for the rules.
func Load(opts Options) (*Config, error) {
	b := builder{environ: opts.Environ, overrides: opts.Overrides, useEnv: true}
	if b.environ == nil {
		b.environ = os.Environ()
	}
	if opts.File != "" {
		format, err := formatOf(opts.File)
		if err != nil {
			return nil, err
		}
		data, err := os.ReadFile(opts.File)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		dir := filepath.Dir(opts.File)
		if abs, err := filepath.Abs(dir); err == nil {
			dir = abs
		}
		b.file = &fileSource{name: opts.File, format: format, data: data, dir: dir}
	}
	return b.build()
}

// Parse decodes and validates a configuration given as bytes, with format
// "yaml" (or "yml") or "json". Only defaults and data are used: not the
// environment, no overrides. Relative paths stay relative to gw's working
// directory.
func Parse(data []byte, format string) (*Config, error) {
	switch format {
	case "yaml", "yml":
		format = "yaml"
	case "json", "toml":
	default:
		return nil, newError(ErrInvalid, "", "unsupported format %q (want yaml, json or toml)", format)
	}
	b := builder{file: &fileSource{format: format, data: data}}
	return b.build()
}

// formatOf picks the parser for a file by its extension.
func formatOf(name string) (string, error) {
	switch ext := strings.ToLower(filepath.Ext(name)); ext {
	case ".yaml", ".yml":
		return "yaml", nil
	case ".json":
		return "json", nil
	case ".toml":
		return "toml", nil
	default:
		return "", newError(ErrInvalid, "", "%s: unsupported file type %q (want .yaml, .yml, .json or .toml)", name, ext)
	}
}

// fileSource is the configuration file's contents and where it came from.
type fileSource struct {
	name   string // as given by the user, for messages; "" for Parse
	format string // "yaml" or "json"
	data   []byte
	dir    string // base for relative paths; "" leaves them relative
}

// builder assembles one configuration from its layers.
type builder struct {
	file      *fileSource
	useEnv    bool
	environ   []string
	overrides map[string]any
}

func (b *builder) build() (*Config, error) {
	k := koanf.New(".") // paths are never split by koanf; see layer
	var (
		errs     []error
		warnings []string
		order    []string
		label    = "servers"
	)
	if b.file != nil {
		raw, fileOrder, err := parseFile(b.file)
		if err != nil {
			return nil, err
		}
		order = fileOrder
		n := normalizer{dir: b.file.dir}
		if err := n.file(raw); err != nil {
			return nil, err
		}
		if n.mcpServers {
			label = "mcpServers"
		}
		errs = append(errs, n.errs...)
		warnings = n.warnings
		if err := k.Load(layer(raw), nil); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
	}
	if b.useEnv {
		m, envErrs := envLayer(b.environ)
		errs = append(errs, envErrs...)
		if err := k.Load(m, nil); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
	}
	if len(b.overrides) > 0 {
		m, ovErrs := overrideLayer(b.overrides)
		errs = append(errs, ovErrs...)
		if err := k.Load(layer(m), nil); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
	}

	merged := k.Raw()
	c := checker{serversLabel: label}
	c.check("", merged, configType, true)
	errs = append(errs, c.errs...)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	cfg := Default()
	if err := k.UnmarshalWithConf("", &cfg, koanf.UnmarshalConf{DecoderConfig: decoderConfig()}); err != nil {
		// The checker above should have caught everything the decoder
		// rejects; this is a backstop.
		return nil, &Error{Kind: ErrWrongType, msg: oneLine(err.Error()), err: err}
	}
	for name, s := range cfg.Servers {
		if s.Restart == "" {
			s.Restart = RestartOnFailure
		}
		cfg.Servers[name] = s
	}
	cfg.Warnings = warnings
	for _, name := range order {
		if _, ok := cfg.Servers[name]; ok { // not a skipped remote server
			cfg.Order = append(cfg.Order, name)
		}
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// layer is a koanf.Provider over an already nested map. koanf's "."
// delimiter never splits its keys, so server names and env keys with dots
// survive.
type layer map[string]any

// ReadBytes is not supported: a layer is already parsed.
func (l layer) ReadBytes() ([]byte, error) {
	return nil, errors.New("config: layer has no bytes")
}

// Read returns the layer's map.
func (l layer) Read() (map[string]any, error) { return l, nil }

// decoderConfig is the strict mapstructure configuration used to decode the
// merged layers.
func decoderConfig() *mapstructure.DecoderConfig {
	return &mapstructure.DecoderConfig{
		DecodeHook: mapstructure.ComposeDecodeHookFunc(
			durationOnlyFromStringHook,
			mapstructure.StringToTimeDurationHookFunc(),
			integralFloatHook,
		),
		ErrorUnused:      true,
		WeaklyTypedInput: false,
		TagName:          "koanf",
		MatchName:        func(mapKey, fieldName string) bool { return mapKey == fieldName },
	}
}

// View is a named subset of the merged namespace, so one gateway can give
// each client a short list (VS Code refuses more than 128 tools, and long
// lists waste model context). An item is in the view when its server is
// listed in Servers or its exposed name matches an Include pattern (with
// neither, every item is), and it matches no Exclude pattern. Patterns are
// path.Match globs over exposed names ("fs__*"); resources and templates
// follow their server.
type View struct {
	Servers []string `koanf:"servers"`
	Include []string `koanf:"include"`
	Exclude []string `koanf:"exclude"`
}
