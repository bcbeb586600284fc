package mcptest

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// Protocol versions the server knows.
const (
	// LegacyVersion is the newest initialize-era revision; initialize is
	// answered with it unless the client asked for one of LegacyVersions.
	LegacyVersion = "2025-11-25"
	// ModernVersion is the default entry of Options.SupportedVersions.
	ModernVersion = "2026-07-28"
)

// LegacyVersions are the initialize-era revisions the server negotiates:
// the one a client asks for when it is listed (as the spec asks: older
// clients, such as mcp-hub's, refuse any other), else LegacyVersion.
var LegacyVersions = []string{LegacyVersion, "2025-06-18", "2025-03-26", "2024-11-05"}

// JSON-RPC and MCP error codes the server sends.
const (
	CodeParseError                      = -32700
	CodeInvalidRequest                  = -32600
	CodeMethodNotFound                  = -32601
	CodeInvalidParams                   = -32602
	CodeInternalError                   = -32603
	CodeResourceNotFoundLegacy          = -32002 // 2025-11-25 only
	CodeMissingRequiredClientCapability = -32021
	CodeUnsupportedProtocolVersion      = -32022
)

// Environment variables read by ParseEnv, OptionsFromEnv and MainIfChild.
// Options.Environ writes them.
const (
	// EnvServer set to "1" makes MainIfChild run the server and exit.
	EnvServer = "MCPTEST_SERVER"
	// EnvEra selects Options.Era: "legacy" (default), "modern" or "dual".
	EnvEra = "MCPTEST_ERA"
	// EnvSupportedVersions is Options.SupportedVersions, comma separated.
	EnvSupportedVersions = "MCPTEST_SUPPORTED_VERSIONS"
	// EnvPreinitError is Options.PreinitError, a decimal JSON-RPC code.
	EnvPreinitError = "MCPTEST_PREINIT_ERROR"
	// EnvDiscover is Options.Discover: "error", "silent" or "garbage-then-error".
	EnvDiscover = "MCPTEST_DISCOVER"
	// EnvName is Options.Name.
	EnvName = "MCPTEST_NAME"
	// EnvVersion is Options.Version.
	EnvVersion = "MCPTEST_VERSION"
	// EnvTools is Options.Tools, comma separated.
	EnvTools = "MCPTEST_TOOLS"
	// EnvToolCount is Options.ToolCount.
	EnvToolCount = "MCPTEST_TOOL_COUNT"
	// EnvToolDescription is Options.ToolDescription.
	EnvToolDescription = "MCPTEST_TOOL_DESCRIPTION"
	// EnvPageSize is Options.PageSize.
	EnvPageSize = "MCPTEST_PAGE_SIZE"
	// EnvTTLMs is Options.TTLMs.
	EnvTTLMs = "MCPTEST_TTL_MS"
	// EnvGarbageOnStart is Options.GarbageOnStart ("1"/"true").
	EnvGarbageOnStart = "MCPTEST_GARBAGE_ON_START"
	// EnvExitAfterMs is Options.ExitAfter in milliseconds.
	EnvExitAfterMs = "MCPTEST_EXIT_AFTER_MS"
	// EnvCrashOnStart is Options.CrashOnStart ("1"/"true").
	EnvCrashOnStart = "MCPTEST_CRASH_ON_START"
	// EnvStderrSpam is Options.StderrSpamKiB.
	EnvStderrSpam = "MCPTEST_STDERR_SPAM"
	// EnvEOFGraceMs is Options.EOFGrace in milliseconds (negative: none).
	EnvEOFGraceMs = "MCPTEST_EOF_GRACE_MS"
	// EnvBadTools is Options.BadTools ("1"/"true").
	EnvBadTools = "MCPTEST_BAD_TOOLS"
	// EnvPingDelayMs is Options.PingDelay in milliseconds.
	EnvPingDelayMs = "MCPTEST_PING_DELAY_MS"
	// EnvPingDelayEvery is Options.PingDelayEvery.
	EnvPingDelayEvery = "MCPTEST_PING_DELAY_EVERY"
	// EnvStartDelayMs is Options.StartDelay in milliseconds.
	EnvStartDelayMs = "MCPTEST_START_DELAY_MS"
)

// DefaultEOFGrace is how long requests in flight may still finish after the
// input ends, when Options.EOFGrace is zero.
const DefaultEOFGrace = 250 * time.Millisecond

// Era selects which generation of MCP the server speaks.
type Era string

const (
	// EraLegacy speaks 2025-11-25 only: initialize, then notifications/initialized,
	// then requests; results carry no resultType; server-to-client requests
	// (sampling, elicitation, roots, ping) are real JSON-RPC requests.
	EraLegacy Era = "legacy"
	// EraModern speaks the stateless revisions in Options.SupportedVersions only:
	// every request carries its version and capabilities in _meta, results carry
	// resultType, server-to-client requests use multi round-trip requests.
	EraModern Era = "modern"
	// EraDual serves both: a request whose params._meta carries
	// io.modelcontextprotocol/protocolVersion (or clientCapabilities) is served
	// as modern, anything else as legacy (and so needs the handshake first).
	EraDual Era = "dual"
)

// DiscoverMode is how a legacy server treats server/discover before initialize.
type DiscoverMode string

const (
	// DiscoverError answers with an error whose code is Options.PreinitError.
	DiscoverError DiscoverMode = "error"
	// DiscoverSilent never answers, as some legacy servers do.
	DiscoverSilent DiscoverMode = "silent"
	// DiscoverGarbageThenError writes a non-JSON line to stdout, then the error.
	DiscoverGarbageThenError DiscoverMode = "garbage-then-error"
)

// Options configures the server. The zero value is a legacy server with the
// built-in tools, no pagination and no misbehaviour. Each field documents the
// environment variable that sets it in a child process.
type Options struct {
	// Era is the protocol generation (MCPTEST_ERA). Empty means EraLegacy.
	Era Era

	// SupportedVersions are the modern protocol versions the server accepts
	// in _meta (MCPTEST_SUPPORTED_VERSIONS, comma separated). They are
	// listed by server/discover and in the data of UnsupportedProtocolVersion
	// errors (-32022). Empty means [ModernVersion].
	SupportedVersions []string

	// PreinitError is the code of the error a legacy server returns for a
	// request (other than initialize and ping) before the handshake completed,
	// and for server/discover in DiscoverError mode (MCPTEST_PREINIT_ERROR).
	// Zero means -32601; -32600 is the other common choice.
	PreinitError int

	// Discover is the legacy answer to server/discover before initialize
	// (MCPTEST_DISCOVER). Empty means DiscoverError. After the handshake
	// server/discover is simply an unknown method (-32601).
	Discover DiscoverMode

	// Name and Version identify the server in serverInfo (MCPTEST_NAME,
	// MCPTEST_VERSION). Empty means "mcptest" and "1.0.0".
	Name    string
	Version string

	// Tools are extra tool names (MCPTEST_TOOLS, comma separated) listed after
	// the built-in tools; each behaves like echo. A name may not repeat or
	// shadow a built-in tool.
	Tools []string
	// ToolDescription is the description of the tools in Tools
	// (MCPTEST_TOOL_DESCRIPTION); empty means "Extra tool from
	// MCPTEST_TOOLS; behaves like echo.".
	ToolDescription string

	// ToolCount adds this many more echo-like tools, named bulk-00000,
	// bulk-00001, … (MCPTEST_TOOL_COUNT): catalogs of many tools.
	ToolCount int

	// PageSize paginates tools/list, prompts/list, resources/list and
	// resources/templates/list with this many items a page (MCPTEST_PAGE_SIZE).
	// Zero means no pagination. Modern cursors: the first nextCursor is the
	// empty string "" (a valid cursor, not the end), later ones "page-N".
	// Legacy cursors are always non-empty ("page-N"). The last page has no
	// nextCursor; an unknown cursor is an error -32602.
	PageSize int

	// TTLMs is the ttlMs of modern cacheable results: server/discover, the
	// four list methods and resources/read (MCPTEST_TTL_MS). cacheScope is
	// always "public".
	TTLMs int

	// GarbageOnStart writes a non-JSON line and then a JSON line that is not
	// JSON-RPC to stdout before anything else (MCPTEST_GARBAGE_ON_START=1).
	GarbageOnStart bool

	// ExitAfter makes the server exit with status 1 after this long
	// (MCPTEST_EXIT_AFTER_MS, in milliseconds). Zero means never.
	ExitAfter time.Duration

	// CrashOnStart writes a line to Stderr and exits with status 2 before
	// reading anything (MCPTEST_CRASH_ON_START=1).
	CrashOnStart bool

	// StderrSpamKiB writes this many KiB of text to Stderr on start
	// (MCPTEST_STDERR_SPAM).
	StderrSpamKiB int

	// EOFGrace is how long requests still in flight when the input ends may
	// go on to finish and reply before they are all cancelled and Serve
	// returns (MCPTEST_EOF_GRACE_MS). Zero means DefaultEOFGrace, so that a
	// client that writes a request and closes stdin still gets its reply;
	// negative means none: everything in flight is cancelled at once.
	// Requests that never end on their own (never, subscriptions/listen, a
	// legacy wait for the client) always take the whole grace period.
	EOFGrace time.Duration

	// BadTools appends malformed entries to tools/list after the real tools
	// (MCPTEST_BAD_TOOLS=1): one with an empty name, one without a name and
	// one that is not an object.
	BadTools bool

	// PingDelay holds the answer to a ping this long
	// (MCPTEST_PING_DELAY_MS, in milliseconds): a busy or hung server as its
	// client's keepalive sees it. PingDelayEvery (MCPTEST_PING_DELAY_EVERY)
	// delays only every Nth ping (the 2nd, 4th, … for 2); 0 or 1 delays all.
	PingDelay      time.Duration
	PingDelayEvery int

	// StartDelay is how long the server waits before it reads its first
	// line (MCPTEST_START_DELAY_MS, in milliseconds), like a server that
	// starts slowly (npx fetching a package, a cold JVM): requests sent
	// meanwhile queue up in the pipe and are read together.
	StartDelay time.Duration

	// Stderr receives the server's diagnostics. Nil discards them;
	// MainIfChild sets os.Stderr. Not settable from the environment.
	Stderr io.Writer

	// Exit is called with the exit status when the server "dies": the crash
	// tool (3), ExitAfter (1) and CrashOnStart (2). MainIfChild sets os.Exit.
	// If Exit is nil or returns, Serve simulates the death in process: it
	// stops answering, closes in and out when they are io.Closers, and returns
	// an *ExitError. Not settable from the environment.
	Exit func(code int)
}

// ExitError is returned by Serve when the server died in process (see
// Options.Exit).
type ExitError struct {
	Code int // the exit status a real process would have had
}

func (e *ExitError) Error() string {
	return fmt.Sprintf("mcptest: server exited with status %d", e.Code)
}

// ErrBadOptions is wrapped by every error ParseEnv and Serve return for an
// invalid configuration.
var ErrBadOptions = errors.New("mcptest: invalid options")

// withDefaults validates o and fills in its defaults.
func (o Options) withDefaults() (Options, error) {
	bad := func(format string, args ...any) (Options, error) {
		return o, fmt.Errorf("%w: %s", ErrBadOptions, fmt.Sprintf(format, args...))
	}
	switch o.Era {
	case "":
		o.Era = EraLegacy
	case EraLegacy, EraModern, EraDual:
	default:
		return bad("era %q is not legacy, modern or dual", o.Era)
	}
	switch o.Discover {
	case "":
		o.Discover = DiscoverError
	case DiscoverError, DiscoverSilent, DiscoverGarbageThenError:
	default:
		return bad("discover mode %q is not error, silent or garbage-then-error", o.Discover)
	}
	if len(o.SupportedVersions) == 0 {
		o.SupportedVersions = []string{ModernVersion}
	}
	for _, v := range o.SupportedVersions {
		if v == "" {
			return bad("empty supported version")
		}
	}
	if o.PreinitError == 0 {
		o.PreinitError = CodeMethodNotFound
	}
	if o.Name == "" {
		o.Name = "mcptest"
	}
	if o.Version == "" {
		o.Version = "1.0.0"
	}
	seen := map[string]bool{}
	for _, t := range builtinTools {
		seen[t.name] = true
	}
	for _, name := range o.Tools {
		if name == "" {
			return bad("empty tool name")
		}
		if seen[name] {
			return bad("tool %q is listed twice or shadows a built-in tool", name)
		}
		seen[name] = true
	}
	if o.EOFGrace == 0 {
		o.EOFGrace = DefaultEOFGrace
	}
	if o.PageSize < 0 || o.TTLMs < 0 || o.ExitAfter < 0 || o.StderrSpamKiB < 0 || o.ToolCount < 0 || o.StartDelay < 0 || o.PingDelay < 0 || o.PingDelayEvery < 0 {
		return bad("negative page size, ttl, exit delay, start or ping delay, or stderr spam")
	}
	if o.Stderr == nil {
		o.Stderr = io.Discard
	}
	return o, nil
}

// ParseEnv reads Options from environment variables through lookup (use
// os.LookupEnv). Unset or empty variables keep their defaults; malformed
// values are errors wrapping ErrBadOptions. Stderr and Exit are left nil.
func ParseEnv(lookup func(string) (string, bool)) (Options, error) {
	var o Options
	var errs []error
	get := func(key string) string {
		v, _ := lookup(key)
		return strings.TrimSpace(v)
	}
	list := func(key string) []string {
		v := get(key)
		if v == "" {
			return nil
		}
		var out []string
		for _, s := range strings.Split(v, ",") {
			out = append(out, strings.TrimSpace(s))
		}
		return out
	}
	num := func(key string) int {
		v := get(key)
		if v == "" {
			return 0
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%w: %s=%q is not an integer", ErrBadOptions, key, v))
		}
		return n
	}
	flag := func(key string) bool {
		v := get(key)
		if v == "" {
			return false
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%w: %s=%q is not a boolean", ErrBadOptions, key, v))
		}
		return b
	}
	o.Era = Era(get(EnvEra))
	o.SupportedVersions = list(EnvSupportedVersions)
	o.PreinitError = num(EnvPreinitError)
	o.Discover = DiscoverMode(get(EnvDiscover))
	o.Name = get(EnvName)
	o.Version = get(EnvVersion)
	o.Tools = list(EnvTools)
	o.ToolCount = num(EnvToolCount)
	o.ToolDescription = get(EnvToolDescription)
	o.PageSize = num(EnvPageSize)
	o.TTLMs = num(EnvTTLMs)
	o.GarbageOnStart = flag(EnvGarbageOnStart)
	o.ExitAfter = time.Duration(num(EnvExitAfterMs)) * time.Millisecond
	o.CrashOnStart = flag(EnvCrashOnStart)
	o.StderrSpamKiB = num(EnvStderrSpam)
	o.EOFGrace = time.Duration(num(EnvEOFGraceMs)) * time.Millisecond
	o.StartDelay = time.Duration(num(EnvStartDelayMs)) * time.Millisecond
	o.BadTools = flag(EnvBadTools)
	o.PingDelay = time.Duration(num(EnvPingDelayMs)) * time.Millisecond
	o.PingDelayEvery = num(EnvPingDelayEvery)
	if err := errors.Join(errs...); err != nil {
		return Options{}, err
	}
	if _, err := o.withDefaults(); err != nil {
		return Options{}, err
	}
	return o, nil
}

// OptionsFromEnv is ParseEnv(os.LookupEnv) for a child process. Like
// regexp.MustCompile it panics on a malformed environment, which is a bug in
// the test that started the child; use ParseEnv to handle the error.
func OptionsFromEnv() Options {
	o, err := ParseEnv(os.LookupEnv)
	if err != nil {
		panic(err)
	}
	return o
}

// Environ returns the environment variables ("KEY=value") that make a child
// process started with MainIfChild serve with o, including MCPTEST_SERVER=1.
// Append them to os.Environ() for exec.Cmd.Env. Stderr and Exit are not
// represented; ExitAfter, EOFGrace and StartDelay are rounded to milliseconds.
func (o Options) Environ() []string {
	env := []string{EnvServer + "=1"}
	add := func(key, value string) {
		if value != "" {
			env = append(env, key+"="+value)
		}
	}
	num := func(key string, n int) {
		if n != 0 {
			add(key, strconv.Itoa(n))
		}
	}
	flag := func(key string, b bool) {
		if b {
			add(key, "1")
		}
	}
	add(EnvEra, string(o.Era))
	add(EnvSupportedVersions, strings.Join(o.SupportedVersions, ","))
	num(EnvPreinitError, o.PreinitError)
	add(EnvDiscover, string(o.Discover))
	add(EnvName, o.Name)
	add(EnvVersion, o.Version)
	add(EnvTools, strings.Join(o.Tools, ","))
	num(EnvToolCount, o.ToolCount)
	add(EnvToolDescription, o.ToolDescription)
	num(EnvPageSize, o.PageSize)
	num(EnvTTLMs, o.TTLMs)
	flag(EnvGarbageOnStart, o.GarbageOnStart)
	num(EnvExitAfterMs, int(o.ExitAfter/time.Millisecond))
	flag(EnvCrashOnStart, o.CrashOnStart)
	num(EnvStderrSpam, o.StderrSpamKiB)
	num(EnvEOFGraceMs, int(o.EOFGrace/time.Millisecond))
	num(EnvStartDelayMs, int(o.StartDelay/time.Millisecond))
	flag(EnvBadTools, o.BadTools)
	num(EnvPingDelayMs, int(o.PingDelay/time.Millisecond))
	num(EnvPingDelayEvery, o.PingDelayEvery)
	return env
}
