package config

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

var (
	serverNameRE    = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	separatorRE     = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,8}$`)
	subjectPrefixRE = regexp.MustCompile(`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$`)

	restartPolicies = []string{RestartAlways, RestartOnFailure, RestartNever}
	logLevels       = []string{"debug", "info", "warn", "error"}
	pinningModes    = []string{"hold", "warn", "off"}
	auditRecords    = []string{"all", "denied", "off"}
	logFormats      = []string{"text", "json"}
)

// Limits checked by Validate.
const (
	minMaxMessageSize = 1024
	minNameLength     = 10
	maxNameLength     = 128
)

// Validate checks a decoded configuration. It reports every problem it
// finds, each as an *Error on its own line, joined with errors.Join. Load
// and Parse call it; call it yourself on a Config built in code, where an
// empty Server.Restart is allowed and means RestartOnFailure.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, newError(ErrInvalid, key, format, args...))
	}

	c.validateViews(bad)
	c.validateHTTP(bad)
	c.validateHealth(bad)
	c.validateAudit(bad)
	if m := c.Metrics.MaxTools; m < 1 || m > MaxMetricsTools {
		bad("metrics.max_tools", "metrics.max_tools must be 1 to %d, got %d", MaxMetricsTools, m)
	}
	c.validateTracing(bad)
	c.validatePins(bad)
	if c.Gateway.ShutdownGrace < 0 {
		bad("gateway.shutdown_grace", "gateway.shutdown_grace must not be negative, got %s", c.Gateway.ShutdownGrace)
	}
	if c.Gateway.ConfigWatch < 0 {
		bad("gateway.config_watch", "gateway.config_watch must not be negative, got %s", c.Gateway.ConfigWatch)
	}
	pol := c.Policies
	if strings.TrimSpace(pol.Collision.Module) == "" {
		bad("policies.collision.module", "policies: collision.module is required (an embedded policy such as \"prefix\", or a .wasm path)")
	}
	if pol.Watch < 0 {
		bad("policies.watch", "policies: watch must not be negative, got %s", pol.Watch)
	}
	if pol.AuthorizeTimeout <= 0 {
		bad("policies.authorize_timeout", "policies: authorize_timeout must be positive, got %s", pol.AuthorizeTimeout)
	}
	if pol.CollisionTimeout <= 0 {
		bad("policies.collision_timeout", "policies: collision_timeout must be positive, got %s", pol.CollisionTimeout)
	}
	if pol.MemoryLimitMiB < 1 || pol.MemoryLimitMiB > 4096 {
		bad("policies.memory_limit_mib", "policies: memory_limit_mib must be 1..4096, got %d", pol.MemoryLimitMiB)
	}

	n := c.NATS
	auth := 0
	for _, set := range []bool{n.CredsFile != "", n.NKeyFile != "", n.User != "", n.Token != ""} {
		if set {
			auth++
		}
	}
	if auth > 1 {
		bad("nats", "nats: set only one of creds_file, nkey_file, user/password and token")
	}
	if n.Password != "" && n.User == "" {
		bad("nats.password", "nats: password needs user")
	}
	if n.URL == "" && auth > 0 {
		bad("nats.url", "nats: credentials are set but url is empty (the embedded server needs none)")
	}
	if !subjectPrefixRE.MatchString(n.Prefix) {
		bad("nats.prefix", "nats: prefix %s must be dot-separated tokens of [A-Za-z0-9_-]", quoteShort(n.Prefix))
	}
	if n.Gateway != "" && !serverNameRE.MatchString(n.Gateway) {
		bad("nats.gateway", "nats: gateway %s must be 1 to 64 of A-Z a-z 0-9 _ -", quoteShort(n.Gateway))
	}
	if n.MaxConcurrent < 1 {
		bad("nats.max_concurrent", "nats: max_concurrent must be at least 1, got %d", n.MaxConcurrent)
	}
	if n.PingInterval <= 0 {
		bad("nats.ping_interval", "nats: ping_interval must be positive, got %s", n.PingInterval)
	}
	if n.Replicas < 1 || n.Replicas > 5 {
		bad("nats.replicas", "nats: replicas must be 1..5, got %d", n.Replicas)
	} else if n.Replicas > 1 && n.URL == "" {
		bad("nats.replicas", "nats: replicas %d needs a cluster at nats.url; the embedded server is one node", n.Replicas)
	}
	if n.Embedded.Port < -1 || n.Embedded.Port > 65535 {
		bad("nats.embedded.port", "nats: embedded.port must be -1..65535, got %d", n.Embedded.Port)
	}

	enabled := 0
	for _, name := range sortedKeys(c.Servers) {
		s := c.Servers[name]
		key := "servers." + name
		if !serverNameRE.MatchString(name) {
			bad(key, "server %s: invalid name: must be 1 to 64 of the characters A-Z a-z 0-9 _ -", quoteShort(name))
		}
		if strings.TrimSpace(s.Command) == "" {
			bad(key+".command", "server %s: command is required", quoteShort(name))
		}
		if s.Restart != "" && !slices.Contains(restartPolicies, s.Restart) {
			bad(key+".restart", "server %s: restart %s is not one of %s", quoteShort(name), quoteShort(s.Restart), strings.Join(restartPolicies, ", "))
		}
		if s.CallTimeout < 0 {
			bad(key+".call_timeout", "server %s: call_timeout must not be negative, got %s", quoteShort(name), s.CallTimeout)
		}
		if !s.Disabled {
			enabled++
		}
	}
	switch {
	case len(c.Servers) == 0:
		bad("servers", "no servers configured")
	case enabled == 0:
		bad("servers", "no enabled servers: all %d are disabled", len(c.Servers))
	}

	g := c.Gateway
	positive := func(key string, d time.Duration) {
		if d <= 0 {
			bad(key, "%s must be greater than 0, got %s", key, d)
		}
	}
	notNegative := func(key string, d time.Duration) {
		if d < 0 {
			bad(key, "%s must not be negative, got %s", key, d)
		}
	}
	positive("gateway.call_timeout", g.CallTimeout)
	positive("gateway.discover_timeout", g.DiscoverTimeout)
	positive("gateway.start_timeout", g.StartTimeout)
	notNegative("gateway.ping_interval", g.PingInterval)
	if g.PingMisses < 1 {
		bad("gateway.ping_misses", "gateway.ping_misses must be at least 1, got %d", g.PingMisses)
	}
	if g.MaxMessageSize < minMaxMessageSize {
		bad("gateway.max_message_size", "gateway.max_message_size must be at least %d, got %d", minMaxMessageSize, g.MaxMessageSize)
	}
	if g.MaxInFlight < 1 {
		bad("gateway.max_in_flight", "gateway.max_in_flight must be at least 1, got %d", g.MaxInFlight)
	}
	if g.MaxDepth < 2 || g.MaxDepth > 10000 {
		bad("gateway.max_depth", "gateway.max_depth must be 2 to 10000, got %d", g.MaxDepth)
	}
	if !slices.Contains(pinningModes, g.Pinning) {
		bad("gateway.pinning", "gateway.pinning %s is not one of %s", quoteShort(g.Pinning), strings.Join(pinningModes, ", "))
	}
	if !separatorRE.MatchString(g.Names.Separator) {
		bad("gateway.names.separator", "gateway.names.separator %s must be 1 to 8 of the characters A-Z a-z 0-9 _ . -", quoteShort(g.Names.Separator))
	}
	if g.Names.MaxLength < minNameLength || g.Names.MaxLength > maxNameLength {
		bad("gateway.names.max_length", "gateway.names.max_length must be between %d and %d, got %d", minNameLength, maxNameLength, g.Names.MaxLength)
	}
	r := g.Restart
	notNegative("gateway.restart.initial_backoff", r.InitialBackoff)
	notNegative("gateway.restart.max_backoff", r.MaxBackoff)
	if r.InitialBackoff > r.MaxBackoff {
		bad("gateway.restart.initial_backoff", "gateway.restart.initial_backoff (%s) must not exceed gateway.restart.max_backoff (%s)", r.InitialBackoff, r.MaxBackoff)
	}
	if r.DegradedAfter < 1 {
		bad("gateway.restart.degraded_after", "gateway.restart.degraded_after must be at least 1, got %d", r.DegradedAfter)
	}
	notNegative("gateway.restart.stable_after", r.StableAfter)

	if !slices.Contains(logLevels, c.Log.Level) {
		bad("log.level", "log.level %s is not one of %s", quoteShort(c.Log.Level), strings.Join(logLevels, ", "))
	}
	if !slices.Contains(logFormats, c.Log.Format) {
		bad("log.format", "log.format %s is not one of %s", quoteShort(c.Log.Format), strings.Join(logFormats, ", "))
	}
	return errors.Join(errs...)
}

// readyPercent reads a Health.Ready share, "N%" with N 1 to 100.
func readyPercent(s string) (int, bool) {
	n, err := strconv.Atoi(strings.TrimSuffix(s, "%"))
	return n, err == nil && strings.HasSuffix(s, "%") && n >= 1 && n <= 100
}

// validateHealth checks the readiness rule and that every required server is configured and
// enabled: a rule that no server can meet would keep gw unready for good.
func (c *Config) validateHealth(bad func(key, format string, args ...any)) {
	h := c.Health
	switch h.Ready {
	case ReadyAll, ReadyAny, ReadyNone:
	default:
		if _, ok := readyPercent(h.Ready); !ok {
			bad("health.ready", "health.ready %s is not all, any, none or a share such as \"50%%\" (1%% to 100%%)", quoteShort(h.Ready))
		}
	}
	for i, name := range h.Required {
		key := fmt.Sprintf("health.required[%d]", i)
		s, ok := c.Servers[name]
		switch {
		case !ok:
			bad(key, "health.required names %s, which is not a configured server", quoteShort(name))
		case s.Disabled:
			bad(key, "health.required names %s, which is disabled: gw would never be ready", quoteShort(name))
		case slices.Index(h.Required, name) < i:
			bad(key, "health.required names %s twice", quoteShort(name))
		}
	}
}

// MaxMetricsTools bounds metrics.max_tools: each tool is a histogram of
// some twenty series, and a scrape of millions is no longer cheap.
const MaxMetricsTools = 10000

// principalRE is what an HTTP token's principal may be: what the authorize
// policy and the logs see.
var principalRE = regexp.MustCompile(`^[A-Za-z0-9_.@-]{1,64}$`)

// validateHTTP checks the HTTP face: an address, tokens that say where
// they come from, origins that are origins, and no listening beyond
// loopback without tokens.
func (c *Config) validateHTTP(bad func(key, format string, args ...any)) {
	h := c.HTTP
	for _, name := range slices.Sorted(maps.Keys(h.Tokens)) {
		t := h.Tokens[name]
		key := "http.tokens." + name
		if !principalRE.MatchString(name) {
			bad(key, "http.tokens: principal %s must be 1 to 64 of A-Z a-z 0-9 _ . @ -", quoteShort(name))
		}
		if (t.TokenEnv == "") == (t.TokenFile == "") {
			bad(key, "%s: set exactly one of token_env and token_file", key)
		}
	}
	for i, o := range h.AllowedOrigins {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.TrimSuffix(u.Path, "/") != "" || u.RawQuery != "" {
			bad(fmt.Sprintf("http.allowed_origins[%d]", i), "http.allowed_origins: %s is not an origin such as \"https://app.example.com\"", quoteShort(o))
		}
	}
	if h.Addr == "" {
		return
	}
	host, port, err := net.SplitHostPort(h.Addr)
	if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 0 || n > 65535 {
		bad("http.addr", "http.addr %s must be host:port, such as %q (\"\" turns the HTTP face off)", quoteShort(h.Addr), DefaultHTTPAddr)
		return
	}
	if len(h.Tokens) == 0 && !isLoopbackHost(host) {
		bad("http.addr", "http.addr %s listens beyond loopback, and no http.tokens are configured: anyone who can reach it could use every tool. Configure http.tokens, or listen on 127.0.0.1", quoteShort(h.Addr))
	}
}

// isLoopbackHost: localhost or a loopback IP. "" (every interface) is not.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// validateViews checks view names, that their servers are configured and
// that their patterns are valid globs.
func (c *Config) validateViews(bad func(key, format string, args ...any)) {
	for _, name := range slices.Sorted(maps.Keys(c.Views)) {
		v := c.Views[name]
		key := "views." + name
		if !serverNameRE.MatchString(name) {
			bad(key, "view name %s must be 1 to 64 of the characters A-Z a-z 0-9 _ -", quoteShort(name))
		}
		for _, s := range v.Servers {
			if _, ok := c.Servers[s]; !ok {
				bad(key+".servers", "%s.servers names %s, which is not a configured server", key, quoteShort(s))
			}
		}
		for _, list := range []struct {
			field    string
			patterns []string
		}{{"include", v.Include}, {"exclude", v.Exclude}} {
			for _, p := range list.patterns {
				if _, err := path.Match(p, ""); err != nil || p == "" {
					bad(key+"."+list.field, "%s.%s has a bad pattern %s (a glob such as \"fs__*\")", key, list.field, quoteShort(p))
				}
			}
		}
	}
}

func (c *Config) validateAudit(bad func(key, format string, args ...any)) {
	a := c.Audit
	if !slices.Contains(auditRecords, a.Record) {
		bad("audit.record", "audit.record %s is not one of %s", quoteShort(a.Record), strings.Join(auditRecords, ", "))
	}
	if a.MaxAge <= 0 {
		bad("audit.max_age", "audit.max_age must be positive, got %s", a.MaxAge)
	}
	if a.MaxBytes < -1 || a.MaxBytes == 0 {
		bad("audit.max_bytes", "audit.max_bytes must be positive, or -1 for no limit, got %d", a.MaxBytes)
	}
}

// validatePins catches pin files that are most likely typos: a path that
// would quietly be another file than meant.
func (c *Config) validatePins(bad func(key, format string, args ...any)) {
	f := c.Pins.File
	switch {
	case f != strings.TrimSpace(f):
		bad("pins.file", "pins.file %s has leading or trailing spaces", quoteShort(f))
	case f != PinsFileNone && strings.EqualFold(f, PinsFileNone):
		bad("pins.file", "pins.file %s: write %q to keep pins in memory", quoteShort(f), PinsFileNone)
	case strings.HasPrefix(f, "~"):
		// Left unresolved by the file's loader, which would make it <dir>/~/….
		bad("pins.file", "pins.file %s: gw does not expand ~ (nor $HOME) in a file; write an absolute path, or set GW_PINS__FILE=\"$HOME/…\" in a shell", quoteShort(f))
	case strings.HasSuffix(f, "/") || strings.HasSuffix(f, string(filepath.Separator)):
		bad("pins.file", "pins.file %s names a directory; name the file, such as %q", quoteShort(f), filepath.Join(f, "pins.json"))
	}
}
