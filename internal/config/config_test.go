package config

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/knadh/koanf/v2"
)

// noEnv is an empty environment, so tests do not see the real one.
var noEnv = []string{}

// writeFile writes content to dir/name, creating directories, and returns
// the path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func mustParse(t *testing.T, data, format string) *Config {
	t.Helper()
	cfg, err := Parse([]byte(data), format)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return cfg
}

// errLines splits a joined error into its lines and checks that each is a
// one-line "config: " message.
func errLines(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		t.Fatal("got no error")
	}
	lines := strings.Split(err.Error(), "\n")
	for _, l := range lines {
		if !strings.HasPrefix(l, "config: ") {
			t.Errorf("error line %q does not start with \"config: \"", l)
		}
	}
	return lines
}

func TestDefaultsApplied(t *testing.T) {
	cfg := mustParse(t, "servers:\n  notes:\n    command: go\n", "yaml")
	want := Default()
	if !reflect.DeepEqual(cfg.Gateway, want.Gateway) {
		t.Errorf("Gateway = %+v, want %+v", cfg.Gateway, want.Gateway)
	}
	if cfg.Log != want.Log {
		t.Errorf("Log = %+v, want %+v", cfg.Log, want.Log)
	}
	s := cfg.Servers["notes"]
	wantServer := Server{Command: "go", Restart: RestartOnFailure}
	if !reflect.DeepEqual(s, wantServer) {
		t.Errorf("server = %+v, want %+v", s, wantServer)
	}
	if len(cfg.Warnings) != 0 {
		t.Errorf("Warnings = %q, want none", cfg.Warnings)
	}
	// The documented default values, spelled out once.
	g := want.Gateway
	if g.CallTimeout != 60*time.Second || g.DiscoverTimeout != 5*time.Second || g.StartTimeout != 30*time.Second ||
		g.MaxMessageSize != 16*1024*1024 || g.PingInterval != 15*time.Second || g.PingMisses != 3 || g.Names.Separator != "__" || g.Names.MaxLength != 64 ||
		g.Restart.InitialBackoff != 500*time.Millisecond || g.Restart.MaxBackoff != 30*time.Second ||
		g.Restart.DegradedAfter != 3 || g.Restart.StableAfter != 30*time.Second ||
		want.Log.Level != "info" || want.Log.Format != "text" {
		t.Errorf("Default() = %+v", want)
	}
}

const fullYAML = `
servers:                 # name -> server
  notes:
    command: go          # required
    args: [run, ./examples/notes]
    env: {KEY: value}
    cwd: .
    restart: on-failure
    disabled: false
    call_timeout: 30s
  web:
    command: /usr/bin/node
    args: ["server.js", "--port", "8080"]
    cwd: /srv/web
    restart: always
  old:
    command: old-server
    disabled: true
    restart: never
gateway:
  call_timeout: 45s
  discover_timeout: 2s
  start_timeout: 20s
  max_message_size: 1048576
  ping_interval: 15s
  names:
    separator: "."
    max_length: 100
  restart:
    initial_backoff: 250ms
    max_backoff: 1m
    degraded_after: 5
    stable_after: 2m30s
policies:
  collision:
    module: first-come
  authorize:
    module: ./authz.wasm
    config:
      rules:
        - callers: [alice, "group:dev"]
          tools: ["notes__*"]
  watch: 1s
  authorize_timeout: 50ms
  memory_limit_mib: 32
nats:
  url: nats://a:4222,nats://b:4222
  creds_file: ./gw.creds
  gateway: gw-1
log:
  level: debug
  format: json
`

func TestYAMLFullExample(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, "gw.yaml", fullYAML)
	cfg, err := Load(Options{File: file, Environ: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		Servers: map[string]Server{
			"notes": {
				Command:     "go",
				Args:        []string{"run", "./examples/notes"},
				Env:         map[string]string{"KEY": "value"},
				Cwd:         dir, // "." is the config file's directory
				Restart:     RestartOnFailure,
				CallTimeout: 30 * time.Second,
			},
			"web": {
				Command: "/usr/bin/node",
				Args:    []string{"server.js", "--port", "8080"},
				Cwd:     "/srv/web",
				Restart: RestartAlways,
			},
			"old": {Command: "old-server", Disabled: true, Restart: RestartNever},
		},
		Gateway: Gateway{
			CallTimeout:     45 * time.Second,
			DiscoverTimeout: 2 * time.Second,
			StartTimeout:    20 * time.Second,
			MaxMessageSize:  1 << 20,
			MaxDepth:        128,
			MaxInFlight:     64,
			PingInterval:    15 * time.Second,
			PingMisses:      3,
			ConfigWatch:     2 * time.Second,
			ShutdownGrace:   25 * time.Second,
			Pinning:         "hold",
			Names:           Names{Separator: ".", MaxLength: 100},
			Restart: Restart{
				InitialBackoff: 250 * time.Millisecond,
				MaxBackoff:     time.Minute,
				DegradedAfter:  5,
				StableAfter:    150 * time.Second,
			},
		},
		Policies: Policies{
			Collision: Policy{Module: "first-come"},
			Authorize: Policy{Module: filepath.Join(dir, "authz.wasm"), Config: map[string]any{
				"rules": []any{map[string]any{"callers": []any{"alice", "group:dev"}, "tools": []any{"notes__*"}}},
			}},
			Watch:            time.Second,
			AuthorizeTimeout: 50 * time.Millisecond,
			CollisionTimeout: 2 * time.Second,
			MemoryLimitMiB:   32,
		},
		NATS: NATS{
			URL:           "nats://a:4222,nats://b:4222",
			CredsFile:     filepath.Join(dir, "gw.creds"),
			Gateway:       "gw-1",
			Prefix:        "mcp.v1",
			MaxConcurrent: 64,
			PingInterval:  10 * time.Second,
			Replicas:      1,
			Embedded:      Embedded{Port: 4222},
		},
		HTTP:    HTTP{Addr: DefaultHTTPAddr},
		Health:  Health{Ready: ReadyAll},
		Metrics: Metrics{Enabled: true, MaxTools: 500},
		Log:     Log{Level: "debug", Format: "json"},
		Audit:   Default().Audit,
		Order:   []string{"notes", "web", "old"}, // the file's order
		// Tracing is left out of the file: its default.
		Tracing: Tracing{SamplerArg: 1},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("got  %+v\nwant %+v", cfg, want)
	}
}

func TestCwdRelativeToConfigDir(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, "conf/gw.yml", "servers:\n  a: {command: x, cwd: ../work}\n  b: {command: y}\n")
	cfg, err := Load(Options{File: file, Environ: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cfg.Servers["a"].Cwd, filepath.Join(dir, "work"); got != want {
		t.Errorf("cwd = %q, want %q", got, want)
	}
	if got := cfg.Servers["b"].Cwd; got != "" {
		t.Errorf("empty cwd became %q, want it to stay empty", got)
	}
	// Parse has no file, so relative paths stay relative.
	cfg = mustParse(t, "servers:\n  a: {command: x, cwd: sub/dir}\n", "yaml")
	if got := cfg.Servers["a"].Cwd; got != "sub/dir" {
		t.Errorf("Parse cwd = %q, want sub/dir", got)
	}
}

// A Claude Desktop file as Claude writes it, with a setting of Claude's own.
const claudeDesktopJSON = `{
  "mcpServers": {
    "filesystem": {
      "command": "npx",
      "args": [
        "-y",
        "@modelcontextprotocol/server-filesystem",
        "/Users/alice/Desktop",
        "/Users/alice/Downloads"
      ]
    },
    "github": {
      "command": "npx",
      "args": ["-y", "@modelcontextprotocol/server-github"],
      "env": {
        "GITHUB_PERSONAL_ACCESS_TOKEN": "ghp_0123456789abcdef"
      }
    },
    "postgres": {
      "command": "npx",
      "args": ["-y", "@modelcontextprotocol/server-postgres", "postgresql://localhost/mydb"]
    },
    "brave-search": {
      "command": "npx",
      "args": ["-y", "@modelcontextprotocol/server-brave-search"],
      "env": {"BRAVE_API_KEY": "BSA-xyz"}
    }
  },
  "globalShortcut": "Ctrl+Space"
}`

func TestClaudeDesktopAsIs(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, "claude_desktop_config.json", claudeDesktopJSON)
	cfg, err := Load(Options{File: file, Environ: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Servers) != 4 {
		t.Fatalf("got %d servers, want 4: %+v", len(cfg.Servers), cfg.Servers)
	}
	gh := cfg.Servers["github"]
	want := Server{
		Command: "npx",
		Args:    []string{"-y", "@modelcontextprotocol/server-github"},
		Env:     map[string]string{"GITHUB_PERSONAL_ACCESS_TOKEN": "ghp_0123456789abcdef"},
		Restart: RestartOnFailure,
	}
	if !reflect.DeepEqual(gh, want) {
		t.Errorf("github = %+v, want %+v", gh, want)
	}
	if got := cfg.Servers["filesystem"].Args; len(got) != 4 || got[3] != "/Users/alice/Downloads" {
		t.Errorf("filesystem args = %q", got)
	}
	if got := cfg.Servers["brave-search"].Env["BRAVE_API_KEY"]; got != "BSA-xyz" {
		t.Errorf("brave-search env = %q", got)
	}
	wantWarn := []string{`top-level key "globalShortcut" is not used by gw; ignored`}
	if !reflect.DeepEqual(cfg.Warnings, wantWarn) {
		t.Errorf("Warnings = %q, want %q", cfg.Warnings, wantWarn)
	}
	if !reflect.DeepEqual(cfg.Gateway, Default().Gateway) {
		t.Errorf("gateway settings changed: %+v", cfg.Gateway)
	}
}

func TestCursorRemoteServersSkipped(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, ".cursor/mcp.json", `{
  "mcpServers": {
    "local": {"type": "stdio", "command": "python", "args": ["server.py"], "env": {"DEBUG": "1"}, "cwd": "tools"},
    "remote": {"url": "https://example.com/mcp", "headers": {"Authorization": "Bearer x"}},
    "events": {"type": "sse", "url": "http://localhost:8000/sse"},
    "stream": {"type": "streamable-http"}
  }
}`)
	cfg, err := Load(Options{File: file, Environ: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Server{"local": {
		Command: "python",
		Args:    []string{"server.py"},
		Env:     map[string]string{"DEBUG": "1"},
		Cwd:     filepath.Join(dir, ".cursor", "tools"),
		Restart: RestartOnFailure,
	}}
	if !reflect.DeepEqual(cfg.Servers, want) {
		t.Errorf("Servers = %+v, want %+v", cfg.Servers, want)
	}
	wantWarn := []string{
		`server "events": remote servers (url) are not supported yet; skipped`,
		`server "remote": remote servers (url) are not supported yet; skipped`,
		`server "stream": remote servers (url) are not supported yet; skipped`,
	}
	if !reflect.DeepEqual(cfg.Warnings, wantWarn) {
		t.Errorf("Warnings = %q, want %q", cfg.Warnings, wantWarn)
	}
}

func TestOnlyRemoteServersIsAnError(t *testing.T) {
	_, err := Parse([]byte(`{"mcpServers": {"r": {"url": "https://example.com/mcp"}}}`), "json")
	if err == nil || !strings.Contains(err.Error(), "config: no servers configured") {
		t.Fatalf("err = %v, want no servers configured", err)
	}
}

func TestVSCode(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, ".vscode/github.env", `# tokens for the github server
GITHUB_TOKEN=from-env-file
export GITHUB_HOST="github.example.com"
LOG_LEVEL=debug # trailing comment
SHARED=from-file
`)
	file := writeFile(t, dir, ".vscode/mcp.json", `{
  // VS Code allows comments
  "inputs": [
    {"type": "promptString", "id": "perplexity-key", "description": "Perplexity API Key", "password": true}
  ],
  "servers": {
    "perplexity": {
      "type": "stdio",
      "command": "npx",
      "args": ["-y", "server-perplexity-ask"],
      "env": {"PERPLEXITY_API_KEY": "${input:perplexity-key}"}
    },
    "github": {
      "type": "stdio",
      "command": "docker",
      "args": ["run", "-i", "--rm", "ghcr.io/github/github-mcp-server"],
      "env": {"SHARED": "from-config"},
      "envFile": "github.env",
    },
    /* a remote one */
    "fetch": {"type": "http", "url": "https://example.com/mcp"},
  },
}`)
	cfg, err := Load(Options{File: file, Environ: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	gh := cfg.Servers["github"]
	wantEnv := map[string]string{
		"GITHUB_TOKEN": "from-env-file",
		"GITHUB_HOST":  "github.example.com",
		"LOG_LEVEL":    "debug",
		"SHARED":       "from-config", // env wins over envFile
	}
	if !reflect.DeepEqual(gh.Env, wantEnv) {
		t.Errorf("github env = %q, want %q", gh.Env, wantEnv)
	}
	if got := cfg.Servers["perplexity"].Env["PERPLEXITY_API_KEY"]; got != "${input:perplexity-key}" {
		t.Errorf("placeholder = %q, want it passed as-is", got)
	}
	if _, ok := cfg.Servers["fetch"]; ok {
		t.Error("remote server fetch was not skipped")
	}
	wantWarn := []string{
		`"inputs" (VS Code prompts) are not supported; ignored`,
		`server "fetch": remote servers (url) are not supported yet; skipped`,
		`server "perplexity": ${input:...} placeholders are not resolved; passed as-is`,
	}
	if !reflect.DeepEqual(cfg.Warnings, wantWarn) {
		t.Errorf("Warnings = %q, want %q", cfg.Warnings, wantWarn)
	}
}

func TestEnvFileErrors(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "bad.env", "GOOD=1\nthis line has no equals sign\n")
	tests := []struct {
		name, envFile string
		want          string
		is            error
	}{
		{"missing", "nope.env", `config: server "a": envFile: open ` + filepath.Join(dir, "nope.env") + ": no such file or directory", fs.ErrNotExist},
		{"bad line", "bad.env", `config: server "a": envFile: ` + filepath.Join(dir, "bad.env") + ":2: expected KEY=VALUE", ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := writeFile(t, dir, "gw.yaml", "servers:\n  a: {command: x, envFile: "+tt.envFile+"}\n")
			_, err := Load(Options{File: file, Environ: noEnv})
			if err == nil || err.Error() != tt.want {
				t.Fatalf("err = %v\nwant %s", err, tt.want)
			}
			if !errors.Is(err, tt.is) {
				t.Errorf("errors.Is(err, %v) = false", tt.is)
			}
		})
	}
}

func TestPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, "gw.yaml", `
servers:
  notes:
    command: from-file
    env: {A: file, B: file}
gateway:
  call_timeout: 20s
  max_message_size: 2048
log:
  level: warn
`)
	tests := []struct {
		name      string
		environ   []string
		overrides map[string]any
		check     func(t *testing.T, c *Config)
	}{
		{"file over defaults", noEnv, nil, func(t *testing.T, c *Config) {
			eq(t, "call_timeout", c.Gateway.CallTimeout, 20*time.Second)
			eq(t, "start_timeout", c.Gateway.StartTimeout, 30*time.Second)
			eq(t, "log.level", c.Log.Level, "warn")
		}},
		{"env over file", []string{"GW_GATEWAY__CALL_TIMEOUT=10s", "GW_LOG__LEVEL=debug", "PATH=/bin", "GWX=1"}, nil, func(t *testing.T, c *Config) {
			eq(t, "call_timeout", c.Gateway.CallTimeout, 10*time.Second)
			eq(t, "log.level", c.Log.Level, "debug")
			eq(t, "max_message_size", c.Gateway.MaxMessageSize, 2048)
		}},
		{"overrides over env", []string{"GW_GATEWAY__CALL_TIMEOUT=10s", "GW_LOG__LEVEL=debug"},
			map[string]any{"gateway.call_timeout": "5s", "log.level": "error"}, func(t *testing.T, c *Config) {
				eq(t, "call_timeout", c.Gateway.CallTimeout, 5*time.Second)
				eq(t, "log.level", c.Log.Level, "error")
			}},
		{"maps merge across layers", []string{"GW_SERVERS__notes__ENV__B=env", "GW_SERVERS__notes__ENV__C=env"},
			map[string]any{"servers.notes.env.C": "override", "servers.notes.command": "from-override"}, func(t *testing.T, c *Config) {
				eq(t, "env", c.Servers["notes"].Env, map[string]string{"A": "file", "B": "env", "C": "override"})
				eq(t, "command", c.Servers["notes"].Command, "from-override")
			}},
		{"typed overrides", noEnv,
			map[string]any{"gateway.call_timeout": 7 * time.Second, "gateway.max_message_size": int64(4096), "servers.notes.disabled": false,
				"servers.notes.args": []string{"a", "b"}, "servers.notes.env": map[string]string{"D": "override"}}, func(t *testing.T, c *Config) {
				eq(t, "call_timeout", c.Gateway.CallTimeout, 7*time.Second)
				eq(t, "max_message_size", c.Gateway.MaxMessageSize, 4096)
				eq(t, "args", c.Servers["notes"].Args, []string{"a", "b"})
				eq(t, "env", c.Servers["notes"].Env, map[string]string{"A": "file", "B": "file", "D": "override"})
			}},
		{"string overrides converted", noEnv,
			map[string]any{"gateway.max_message_size": "8192", "servers.notes.disabled": "false", "servers.notes.args": `["x"]`}, func(t *testing.T, c *Config) {
				eq(t, "max_message_size", c.Gateway.MaxMessageSize, 8192)
				eq(t, "args", c.Servers["notes"].Args, []string{"x"})
			}},
		{"section override refined by a longer key", noEnv,
			map[string]any{"gateway.names.separator": "--", "gateway.names": map[string]any{"separator": "::", "max_length": 32}}, func(t *testing.T, c *Config) {
				eq(t, "names", c.Gateway.Names, Names{Separator: "--", MaxLength: 32})
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Load(Options{File: file, Environ: tt.environ, Overrides: tt.overrides})
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, cfg)
		})
	}
}

func eq[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func TestEnvOnlyNoFile(t *testing.T) {
	cfg, err := Load(Options{Environ: []string{
		"GW_SERVERS__Notes__COMMAND=node",
		`GW_SERVERS__Notes__ARGS=["server.js","--verbose"]`,
		"GW_SERVERS__Notes__ENV__API_KEY=secret",
		"GW_SERVERS__Notes__ENV__some.var=dotted",
		"GW_SERVERS__Notes__ENV__DOUBLE__UNDERSCORE=kept",
		"GW_SERVERS__Notes__DISABLED=false",
		"GW_SERVERS__Notes__RESTART=always",
		"GW_gateway__names__MAX_LENGTH=96",
		"GW_GATEWAY__PING_INTERVAL=1m",
	}})
	if err != nil {
		t.Fatal(err)
	}
	want := Server{
		Command: "node",
		Args:    []string{"server.js", "--verbose"},
		Env:     map[string]string{"API_KEY": "secret", "some.var": "dotted", "DOUBLE__UNDERSCORE": "kept"},
		Restart: RestartAlways,
	}
	eq(t, "servers", cfg.Servers, map[string]Server{"Notes": want})
	eq(t, "max_length", cfg.Gateway.Names.MaxLength, 96)
	eq(t, "ping_interval", cfg.Gateway.PingInterval, time.Minute)
}

func TestOverridesDoNotChangeCallersMaps(t *testing.T) {
	env := map[string]any{"A": "1"}
	ov := map[string]any{"servers.s.env": env, "servers.s.command": "x", "servers.s.env.B": "2"}
	if _, err := Load(Options{Environ: noEnv, Overrides: ov}); err != nil {
		t.Fatal(err)
	}
	eq(t, "caller's map", env, map[string]any{"A": "1"})
}

func TestUnknownKeys(t *testing.T) {
	tests := []struct {
		name      string
		data      string
		format    string
		environ   []string
		overrides map[string]any
		want      []string
	}{
		{name: "top level", data: "servers: {a: {command: x}}\nlogging: {level: debug}\n",
			want: []string{`config: unknown key "logging"`}},
		{name: "nested", data: "servers: {a: {command: x}}\ngateway: {names: {sep: x}, calltimeout: 1s}\n",
			want: []string{`config: unknown key "gateway.calltimeout"`, `config: unknown key "gateway.names.sep"`}},
		{name: "inside a server", data: "servers:\n  notes:\n    comand: go\n",
			want: []string{`config: unknown key "servers.notes.comand"`}},
		{name: "case matters", data: "servers:\n  notes:\n    Command: go\n",
			want: []string{`config: unknown key "servers.notes.Command"`}},
		{name: "inside an mcpServers entry", format: "json", data: `{"mcpServers": {"a": {"command": "x", "autoApprove": []}}}`,
			want: []string{`config: unknown key "mcpServers.a.autoApprove"`}},
		{name: "warnings is not a key", data: "servers: {a: {command: x}}\nwarnings: [x]\n",
			want: []string{`config: unknown key "warnings"`}},
		{name: "environment variable", data: "servers: {a: {command: x}}\n",
			environ: []string{"GW_GATEWAY__CALL_TIMOUT=1s", "GW_LOG_LEVEL=debug"},
			want: []string{
				`config: unknown key "gateway.call_timout" (from environment variable GW_GATEWAY__CALL_TIMOUT)`,
				`config: unknown key "log_level" (from environment variable GW_LOG_LEVEL)`,
			}},
		{name: "below a leaf", data: "servers: {a: {command: x}}\n",
			environ: []string{"GW_LOG__LEVEL__X=debug"},
			want:    []string{`config: unknown key "log.level.x" (from environment variable GW_LOG__LEVEL__X)`}},
		{name: "override", data: "servers: {a: {command: x}}\n",
			overrides: map[string]any{"gateway.foo": 1},
			want:      []string{`config: unknown key "gateway.foo" (from override "gateway.foo")`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.format == "" {
				tt.format = "yaml"
			}
			if tt.environ == nil {
				tt.environ = noEnv
			}
			file := writeFile(t, t.TempDir(), "gw."+tt.format, tt.data)
			_, err := Load(Options{File: file, Environ: tt.environ, Overrides: tt.overrides})
			eq(t, "errors", errLines(t, err), tt.want)
			if !errors.Is(err, ErrUnknownKey) {
				t.Error("errors.Is(err, ErrUnknownKey) = false")
			}
		})
	}
}

func TestWrongTypes(t *testing.T) {
	tests := []struct {
		name, format, data string
		want               []string
	}{
		{"string for int", "yaml", "servers: {a: {command: x}}\ngateway: {max_message_size: big}\n",
			[]string{`config: key "gateway.max_message_size": expected an integer, got string "big"`}},
		{"quoted number for int", "yaml", "servers: {a: {command: x}}\ngateway: {max_message_size: \"2048\"}\n",
			[]string{`config: key "gateway.max_message_size": expected an integer, got string "2048"`}},
		{"number for duration", "yaml", "servers: {a: {command: x}}\ngateway: {call_timeout: 30}\n",
			[]string{`config: key "gateway.call_timeout": expected a duration string such as "30s", got number 30`}},
		{"number in args", "yaml", "servers: {a: {command: x, args: [--port, 8080]}}\n",
			[]string{`config: key "servers.a.args[1]": expected a string, got number 8080`}},
		{"number as env value", "yaml", "servers: {a: {command: x, env: {PORT: 8080}}}\n",
			[]string{`config: key "servers.a.env.PORT": expected a string, got number 8080`}},
		{"null env value", "yaml", "servers: {a: {command: x, env: {PORT: }}}\n",
			[]string{`config: key "servers.a.env.PORT": expected a string, got null`}},
		{"string for bool", "json", `{"servers": {"a": {"command": "x", "disabled": "yes"}}}`,
			[]string{`config: key "servers.a.disabled": expected a boolean, got string "yes"`}},
		{"args as string", "json", `{"servers": {"a": {"command": "x", "args": "--verbose"}}}`,
			[]string{`config: key "servers.a.args": expected a list of strings, got string "--verbose"`}},
		{"servers as list", "yaml", "servers: [a, b]\n",
			[]string{`config: key "servers": expected a map, got a list`}},
		{"server as string", "yaml", "servers: {a: go}\n",
			[]string{`config: key "servers.a": expected a map, got string "go"`}},
		{"bool for string", "yaml", "servers: {a: {command: x}}\nlog: {level: true}\n",
			[]string{`config: key "log.level": expected a string, got boolean true`}},
		{"type not a string", "json", `{"servers": {"a": {"command": "x", "type": 1}}}`,
			[]string{`config: server "a": type: expected a string, got number 1`}},
		{"several at once", "yaml", "servers: {a: {command: 1, restart: 2}}\n", []string{
			`config: key "servers.a.command": expected a string, got number 1`,
			`config: key "servers.a.restart": expected a string, got number 2`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.data), tt.format)
			eq(t, "errors", errLines(t, err), tt.want)
		})
	}
}

func TestEnvironmentValueErrors(t *testing.T) {
	_, err := Load(Options{Environ: []string{
		"GW_SERVERS__a__COMMAND=x",
		"GW_GATEWAY__MAX_MESSAGE_SIZE=big",
		"GW_SERVERS__a__DISABLED=maybe",
		"GW_SERVERS__a__ARGS=--verbose",
	}})
	lines := errLines(t, err)
	want := []string{
		`config: environment variable GW_GATEWAY__MAX_MESSAGE_SIZE (key "gateway.max_message_size"): "big" is not an integer`,
		`config: environment variable GW_SERVERS__a__DISABLED (key "servers.a.disabled"): "maybe" is not a boolean`,
		`config: environment variable GW_SERVERS__a__ARGS (key "servers.a.args"): "--verbose" is not a JSON list such as ["a","b"]`,
	}
	eq(t, "errors", lines, want)
	if !errors.Is(err, ErrWrongType) {
		t.Error("errors.Is(err, ErrWrongType) = false")
	}
}

func TestDurations(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr string
	}{
		{in: "30s", want: 30 * time.Second},
		{in: "1m30s", want: 90 * time.Second},
		{in: "500ms", want: 500 * time.Millisecond},
		{in: "1h", want: time.Hour},
		{in: `"2s"`, want: 2 * time.Second},
		{in: "30x", wantErr: `config: key "gateway.call_timeout": invalid duration "30x" (want a number with a unit, such as "30s" or "500ms")`},
		{in: `"30"`, wantErr: `config: key "gateway.call_timeout": invalid duration "30" (want a number with a unit, such as "30s" or "500ms")`},
		{in: "1.5", wantErr: `config: key "gateway.call_timeout": expected a duration string such as "30s", got number 1.5`},
		{in: "0s", wantErr: `config: gateway.call_timeout must be greater than 0, got 0s`},
		{in: "-5s", wantErr: `config: gateway.call_timeout must be greater than 0, got -5s`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			cfg, err := Parse([]byte("servers: {a: {command: x}}\ngateway:\n  call_timeout: "+tt.in+"\n"), "yaml")
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("err = %v\nwant %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			eq(t, "call_timeout", cfg.Gateway.CallTimeout, tt.want)
		})
	}
}

func TestJSONIntegers(t *testing.T) {
	tests := []struct {
		in      string
		want    int
		wantErr string
	}{
		{in: "2048", want: 2048},
		{in: "16777216", want: 16777216},
		{in: "2048.0", want: 2048},
		{in: "1e4", want: 10000},
		{in: "2048.5", wantErr: `config: key "gateway.max_message_size": expected an integer, got number 2048.5`},
		{in: "1e300", wantErr: `config: key "gateway.max_message_size": expected an integer, got number 1e+300`},
		{in: "100", wantErr: `config: gateway.max_message_size must be at least 1024, got 100`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			data := `{"servers": {"a": {"command": "x"}}, "gateway": {"max_message_size": ` + tt.in + `, "names": {"max_length": 100}}}`
			cfg, err := Parse([]byte(data), "json")
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("err = %v\nwant %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			eq(t, "max_message_size", cfg.Gateway.MaxMessageSize, tt.want)
			eq(t, "max_length", cfg.Gateway.Names.MaxLength, 100)
		})
	}
}

func TestMaxDepth(t *testing.T) {
	for in, want := range map[string]string{
		"":      "",
		"2":     "",
		"10000": "",
		"1":     "config: gateway.max_depth must be 2 to 10000, got 1",
		"10001": "config: gateway.max_depth must be 2 to 10000, got 10001",
	} {
		data := `{"servers": {"a": {"command": "x"}}}`
		if in != "" {
			data = `{"servers": {"a": {"command": "x"}}, "gateway": {"max_depth": ` + in + `}}`
		}
		cfg, err := Parse([]byte(data), "json")
		if want != "" {
			if err == nil || err.Error() != want {
				t.Errorf("max_depth %s: err = %v, want %s", in, err, want)
			}
			continue
		}
		if err != nil {
			t.Fatalf("max_depth %s: %v", in, err)
		}
		if in == "" && cfg.Gateway.MaxDepth != 128 {
			t.Errorf("default max_depth %d, want 128", cfg.Gateway.MaxDepth)
		}
	}
}

func TestMaxInFlight(t *testing.T) {
	if _, err := Parse([]byte(`{"servers": {"a": {"command": "x"}}, "gateway": {"max_in_flight": 0}}`), "json"); err == nil ||
		err.Error() != "config: gateway.max_in_flight must be at least 1, got 0" {
		t.Errorf("max_in_flight 0: %v", err)
	}
	cfg, err := Parse([]byte(`{"servers": {"a": {"command": "x"}}, "gateway": {"max_in_flight": 512}}`), "json")
	if err != nil || cfg.Gateway.MaxInFlight != 512 {
		t.Errorf("max_in_flight 512: %v %+v", err, cfg)
	}
}

func TestBothServersAndMCPServers(t *testing.T) {
	_, err := Parse([]byte(`{"servers": {"a": {"command": "x"}}, "mcpServers": {"b": {"command": "y"}}}`), "json")
	want := `config: both "servers" and "mcpServers" are set; use one`
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %s", err, want)
	}
	if !errors.Is(err, ErrInvalid) {
		t.Error("errors.Is(err, ErrInvalid) = false")
	}
}

func TestBadServerNames(t *testing.T) {
	long := strings.Repeat("x", 65)
	for _, name := range []string{"my.server", "has space", "ümlaut", long} {
		t.Run(name[:min(len(name), 10)], func(t *testing.T) {
			_, err := Parse([]byte(`{"servers": {"ok": {"command": "x"}, "`+name+`": {"command": "x"}}}`), "json")
			want := `config: server "` + name + `": invalid name: must be 1 to 64 of the characters A-Z a-z 0-9 _ -`
			if name == long {
				want = `config: server "` + name[:60] + `"…: invalid name: must be 1 to 64 of the characters A-Z a-z 0-9 _ -`
			}
			eq(t, "errors", errLines(t, err), []string{want})
		})
	}
	for _, name := range []string{"a", "A-b_c", "x1", strings.Repeat("y", 64)} {
		if _, err := Parse([]byte(`{"servers": {"`+name+`": {"command": "x"}}}`), "json"); err != nil {
			t.Errorf("name %q: %v", name, err)
		}
	}
}

func TestValidationErrorsJoined(t *testing.T) {
	data := `
servers:
  notes:
    restart: sometimes
    call_timeout: -1s
  empty:
gateway:
  call_timeout: 0s
  discover_timeout: -1s
  max_message_size: 10
  ping_interval: -1s
  names: {separator: "::", max_length: 4}
  restart: {initial_backoff: 1m, max_backoff: 30s, degraded_after: 0, stable_after: -1s}
log: {level: loud, format: xml}
`
	_, err := Parse([]byte(data), "yaml")
	want := []string{
		`config: server "empty": command is required`,
		`config: server "notes": command is required`,
		`config: server "notes": restart "sometimes" is not one of always, on-failure, never`,
		`config: server "notes": call_timeout must not be negative, got -1s`,
		`config: gateway.call_timeout must be greater than 0, got 0s`,
		`config: gateway.discover_timeout must be greater than 0, got -1s`,
		`config: gateway.ping_interval must not be negative, got -1s`,
		`config: gateway.max_message_size must be at least 1024, got 10`,
		`config: gateway.names.separator "::" must be 1 to 8 of the characters A-Z a-z 0-9 _ . -`,
		`config: gateway.names.max_length must be between 10 and 128, got 4`,
		`config: gateway.restart.initial_backoff (1m0s) must not exceed gateway.restart.max_backoff (30s)`,
		`config: gateway.restart.degraded_after must be at least 1, got 0`,
		`config: gateway.restart.stable_after must not be negative, got -1s`,
		`config: log.level "loud" is not one of debug, info, warn, error`,
		`config: log.format "xml" is not one of text, json`,
	}
	eq(t, "errors", errLines(t, err), want)

	var e *Error
	if !errors.As(err, &e) || e.Key != "servers.empty.command" || !errors.Is(e, ErrInvalid) {
		t.Errorf("first error = %#v, want an *Error for servers.empty.command", e)
	}
}

func TestNoEnabledServers(t *testing.T) {
	tests := []struct{ data, want string }{
		{"log: {level: info}\n", "config: no servers configured"},
		{"", "config: no servers configured"},
		{"servers: {a: {command: x, disabled: true}}\n", "config: no enabled servers: all 1 are disabled"},
	}
	for _, tt := range tests {
		_, err := Parse([]byte(tt.data), "yaml")
		if err == nil || err.Error() != tt.want {
			t.Errorf("Parse(%q) err = %v, want %s", tt.data, err, tt.want)
		}
	}
}

func TestMissingFile(t *testing.T) {
	_, err := Load(Options{File: "examples/x.yaml", Environ: noEnv})
	want := "config: open examples/x.yaml: no such file or directory"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %s", err, want)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Error("errors.Is(err, fs.ErrNotExist) = false")
	}
}

func TestUnsupportedExtension(t *testing.T) {
	_, err := Load(Options{File: "gw.ini", Environ: noEnv})
	want := `config: gw.ini: unsupported file type ".ini" (want .yaml, .yml, .json or .toml)`
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %s", err, want)
	}
	if _, err := Parse(nil, "ini"); err == nil {
		t.Error("Parse with format ini: no error")
	}
}

func TestMalformed(t *testing.T) {
	tests := []struct{ name, file, data, want string }{
		{"yaml mapping in value", "bad.yaml", "servers:\n  a:\n    command: x: y\n",
			"bad.yaml: yaml: line 3: mapping values are not allowed in this context"},
		{"yaml tab", "bad.yaml", "servers:\n\ta: {}\n", "bad.yaml: yaml: line 2: found character that cannot start any token"},
		{"yaml top-level list", "list.yaml", "- a\n- b\n", "list.yaml: yaml: unmarshal errors: line 1: cannot unmarshal !!seq into map[string]interface {}"},
		{"yaml duplicate key", "dup.yaml", "servers: {}\nservers: {}\n", `dup.yaml: yaml: unmarshal errors: line 2: mapping key "servers" already defined at line 1`},
		{"json missing comma", "bad.json", "{\n  \"servers\": {}\n  \"log\": {}\n}", "bad.json:3:3: invalid character '\"' after object key:value pair"},
		{"json truncated", "cut.json", `{"servers": {`, "cut.json:1:13: unexpected end of JSON input"},
		{"json top-level list", "list.json", `[1, 2]`, "list.json:1:1: the top level must be an object, not array"},
		{"json unterminated comment", "c.json", "{} /* x", "c.json:1:4: invalid character '/' after top-level value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			file := writeFile(t, dir, tt.file, tt.data)
			_, err := Load(Options{File: file, Environ: noEnv})
			want := "config: " + filepath.Join(dir, tt.want)
			if err == nil || err.Error() != want {
				t.Fatalf("err = %v\nwant %s", err, want)
			}
			if !errors.Is(err, ErrSyntax) {
				t.Error("errors.Is(err, ErrSyntax) = false")
			}
		})
	}
}

func TestKeysKeepTheirCase(t *testing.T) {
	tests := []struct{ name, format, data string }{
		{"yaml", "yaml", "servers:\n  MyServer:\n    command: x\n    env: {Foo.Bar: x, PATH_X: y, API_KEY: z, lower.case.dots: w, \"a.b.c\": v}\n"},
		{"json", "json", `{"mcpServers": {"MyServer": {"command": "x", "env": {"Foo.Bar": "x", "PATH_X": "y", "API_KEY": "z", "lower.case.dots": "w", "a.b.c": "v"}}}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := mustParse(t, tt.data, tt.format)
			want := map[string]string{"Foo.Bar": "x", "PATH_X": "y", "API_KEY": "z", "lower.case.dots": "w", "a.b.c": "v"}
			s, ok := cfg.Servers["MyServer"]
			if !ok {
				t.Fatalf("server MyServer missing: %+v", cfg.Servers)
			}
			eq(t, "env", s.Env, want)
		})
	}
	// The same through the environment and overrides, merged with a file.
	dir := t.TempDir()
	file := writeFile(t, dir, "gw.yaml", "servers:\n  s:\n    command: x\n    env: {Foo.Bar: file}\n")
	cfg, err := Load(Options{
		File:      file,
		Environ:   []string{"GW_SERVERS__s__ENV__API_KEY=env", "GW_SERVERS__s__ENV__Mixed.Case=env"},
		Overrides: map[string]any{"servers.s.env.SOME.VAR": "override"},
	})
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "env", cfg.Servers["s"].Env, map[string]string{"Foo.Bar": "file", "API_KEY": "env", "Mixed.Case": "env", "SOME.VAR": "override"})
}

func TestNullMeansUnset(t *testing.T) {
	cfg := mustParse(t, "servers:\n  a:\n    command: x\n    args:\n    env:\ngateway:\nlog:\n  level:\n", "yaml")
	eq(t, "gateway", cfg.Gateway, Default().Gateway)
	eq(t, "log", cfg.Log, Default().Log)
	eq(t, "server", cfg.Servers["a"], Server{Command: "x", Restart: RestartOnFailure})
}

func TestDeepNesting(t *testing.T) {
	deep := strings.Repeat(`{"a":`, 5000) + "1" + strings.Repeat("}", 5000)
	list := strings.Repeat("[", 5000) + strings.Repeat("]", 5000)
	tests := []struct{ data, want string }{
		{`{"servers": ` + deep + `}`, `config: unknown key "servers.a.a"`},
		{`{"servers": {"s": {"command": "x", "args": ` + list + `}}}`, `config: key "servers.s.args[0]": expected a string, got a list`},
		{`{"servers": {"s": {"command": "x", "env": ` + deep + `}}}`, `config: key "servers.s.env.a": expected a string, got a map`},
	}
	for _, tt := range tests {
		start := time.Now()
		_, err := Parse([]byte(tt.data), "json")
		if err == nil || err.Error() != tt.want {
			t.Errorf("err = %v, want %s", err, tt.want)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("took %v", d)
		}
	}
	// Deep values in an override are pruned in a copy, not in the caller's.
	inner := []any{[]any{[]any{[]any{[]any{[]any{[]any{"x"}}}}}}}
	ov := map[string]any{"servers.s.args": inner}
	if _, err := Load(Options{Environ: noEnv, Overrides: ov}); err == nil {
		t.Error("no error for nested lists in args")
	}
	eq(t, "override", ov["servers.s.args"], any([]any{[]any{[]any{[]any{[]any{[]any{[]any{"x"}}}}}}}))
}

func TestNullServerEntry(t *testing.T) {
	_, err := Parse([]byte("servers:\n  a:\n  b: {command: x}\n"), "yaml")
	eq(t, "errors", errLines(t, err), []string{`config: server "a": command is required`})
}

func TestErrorKinds(t *testing.T) {
	_, err := Parse([]byte("servers: {a: {comand: x, args: 1}}\nlog: {level: loud}\n"), "yaml")
	for _, kind := range []error{ErrUnknownKey, ErrWrongType} {
		if !errors.Is(err, kind) {
			t.Errorf("errors.Is(err, %v) = false for %v", kind, err)
		}
	}
	// Decoding problems are reported before validation runs.
	if errors.Is(err, ErrInvalid) {
		t.Errorf("validation ran on a configuration that did not decode: %v", err)
	}
	var e *Error
	if !errors.As(err, &e) || e.Key != "servers.a.args" {
		t.Errorf("first error key = %q, want servers.a.args", e.Key)
	}
}

func TestStripJSONC(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"a": 1}`, `{"a": 1}`},
		{`{"a": 1,}`, `{"a": 1 }`},
		{`[1, 2, ]`, `[1, 2  ]`},
		{"[1, // c\n]", "[1      \n]"},
		{`{"a": "//not a comment", "b": "/*nor this*/"}`, `{"a": "//not a comment", "b": "/*nor this*/"}`},
		{`{"a": "x\"//y"}`, `{"a": "x\"//y"}`},
		{"/* a\nb */{}", "    \n    {}"},
		{`{,}`, `{,}`},
		{`[,]`, `[,]`},
		{`{"a":,}`, `{"a":,}`},
		{`[1,,]`, `[1,,]`},
		{`{} /* open`, `{} /* open`},
	}
	for _, tt := range tests {
		if got := string(stripJSONC([]byte(tt.in))); got != tt.want {
			t.Errorf("stripJSONC(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestReadEnvFile(t *testing.T) {
	dir := t.TempDir()
	p := writeFile(t, dir, "x.env", "\ufeff# comment\n\nA=1\r\nexport B = two words \nC=\"quoted # not a comment\" # comment\nD='single'\nE=x #comment\nF=a#b\nG=\nH==eq\n")
	got, err := readEnvFile(p)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"A": "1", "B": "two words", "C": "quoted # not a comment", "D": "single", "E": "x", "F": "a#b", "G": "", "H": "=eq"}
	eq(t, "vars", got, want)

	for _, bad := range []string{"NOEQUALS\n", "=value\n", "A B=c\n", "A=\"open\n"} {
		p := writeFile(t, dir, "bad.env", bad)
		if _, err := readEnvFile(p); err == nil {
			t.Errorf("readEnvFile(%q): no error", bad)
		}
	}
}

func TestOneLine(t *testing.T) {
	eq(t, "oneLine", oneLine("yaml: unmarshal errors:\n  line 1: a\n  line 2: b"), "yaml: unmarshal errors: line 1: a; line 2: b")
	eq(t, "oneLine", oneLine("plain"), "plain")
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(fullYAML), false)
	f.Add([]byte(claudeDesktopJSON), true)
	f.Add([]byte(`{"servers": {"a": {"type": "stdio", "command": "x", "envFile": ""}}, "inputs": [], /* c */ }`), true)
	f.Add([]byte(`{"mcpServers": {"r": {"url": "u"}, "a": {"command": "x", "env": {"K.K": "v"}}}}`), true)
	f.Add([]byte("servers: {a: {command: x, args: [1, null], env: {1: 2}}}\ngateway: {max_message_size: 1e3}\n"), false)
	f.Add([]byte("servers: &a {b: *a}\n"), false)
	f.Add([]byte("? [a, b]\n: c\n"), false)
	f.Fuzz(func(t *testing.T, data []byte, isJSON bool) {
		format := "yaml"
		if isJSON {
			format = "json"
		}
		cfg, err := Parse(data, format)
		if err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "config: ") {
					t.Fatalf("error line %q lacks the config: prefix", line)
				}
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("Parse returned a config that does not validate: %v", err)
		}
		if n := len(stripJSONC(data)); n != len(data) {
			t.Fatalf("stripJSONC changed the length from %d to %d", len(data), n)
		}
	})
}

func TestOverrideErrors(t *testing.T) {
	_, err := Load(Options{Environ: noEnv, Overrides: map[string]any{
		"servers.a.command":        "x",
		"gateway.max_message_size": "lots",
		"gateway.call_timeout":     30,
		"log.level":                []string{"debug"},
	}})
	want := []string{
		`config: override "gateway.max_message_size": "lots" is not an integer`,
		`config: key "gateway.call_timeout": expected a duration string such as "30s", got number 30`,
		`config: key "log.level": expected a string, got a list`,
	}
	eq(t, "errors", errLines(t, err), want)
}

// The mapstructure decoder is strict on its own too, behind the checker.
func TestDecoderIsStrict(t *testing.T) {
	tests := []struct {
		name string
		in   map[string]any
		ok   bool
	}{
		{"valid", map[string]any{"gateway": map[string]any{"call_timeout": "2s", "max_message_size": float64(2048)}}, true},
		{"typed duration", map[string]any{"gateway": map[string]any{"call_timeout": 2 * time.Second}}, true},
		{"unknown key", map[string]any{"gateway": map[string]any{"nope": 1}}, false},
		{"case differs", map[string]any{"Gateway": map[string]any{}}, false},
		{"number for duration", map[string]any{"gateway": map[string]any{"call_timeout": 30}}, false},
		{"fraction for int", map[string]any{"gateway": map[string]any{"max_message_size": 2048.5}}, false},
		{"string for int", map[string]any{"gateway": map[string]any{"max_message_size": "2048"}}, false},
		{"int for string", map[string]any{"log": map[string]any{"level": 1}}, false},
		{"string for bool", map[string]any{"servers": map[string]any{"a": map[string]any{"disabled": "true"}}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := koanf.New(".")
			if err := k.Load(layer(tt.in), nil); err != nil {
				t.Fatal(err)
			}
			var cfg Config
			err := k.UnmarshalWithConf("", &cfg, koanf.UnmarshalConf{DecoderConfig: decoderConfig()})
			if (err == nil) != tt.ok {
				t.Errorf("err = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestToInt(t *testing.T) {
	tests := []struct {
		in   any
		want int
		ok   bool
	}{
		{int(5), 5, true}, {int8(-5), -5, true}, {int16(5), 5, true}, {int32(5), 5, true}, {int64(5), 5, true},
		{uint(5), 5, true}, {uint8(5), 5, true}, {uint16(5), 5, true}, {uint32(5), 5, true}, {uint64(5), 5, true},
		{uint64(math.MaxUint64), 0, false}, {float32(4), 4, true}, {float64(-3), -3, true},
		{0.5, 0, false}, {math.Inf(1), 0, false}, {math.NaN(), 0, false}, {float64(1 << 63), 0, false},
		{float64(math.MinInt), math.MinInt, true}, {"5", 0, false}, {true, 0, false}, {nil, 0, false},
	}
	for _, tt := range tests {
		got, ok := toInt(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("toInt(%T %v) = %d, %v; want %d, %v", tt.in, tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestPolicyValidation(t *testing.T) {
	_, err := Parse([]byte(`
servers: {a: {command: x}}
policies:
  collision: {module: ""}
  watch: -1s
  memory_limit_mib: 0
  authorize: {modul: x}
`), "yaml")
	if err == nil {
		t.Fatal("bad policies accepted")
	}
	for _, want := range []string{"policies.authorize.modul"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	_, err = Parse([]byte("servers: {a: {command: x}}\npolicies: {collision: {module: \"\"}, watch: -1s, memory_limit_mib: 0}\n"), "yaml")
	for _, want := range []string{"collision.module is required", "watch must not be negative", "memory_limit_mib must be 1..4096"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %q", err, want)
		}
	}
}

func TestNATSValidation(t *testing.T) {
	_, err := Parse([]byte(`
servers: {a: {command: x}}
nats: {user: u, token: t, prefix: "mcp..v1", max_concurrent: 0, password: p, ping_interval: 0s, replicas: 3}
`), "yaml")
	for _, want := range []string{"only one of creds_file", "url is empty", "nats: prefix", "max_concurrent must be at least 1", "ping_interval must be positive", "replicas 3 needs a cluster"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %q", err, want)
		}
	}
}

func TestTOML(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, "gw.toml", `
[servers.notes]
command = "go"
args = ["run", "./examples/notes"]
env = { API_KEY = "x" }
call_timeout = "5s"

[gateway]
call_timeout = "10s"

[gateway.names]
max_length = 60
`)
	cfg, err := Load(Options{File: file, Environ: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	n := cfg.Servers["notes"]
	if n.Command != "go" || len(n.Args) != 2 || n.Env["API_KEY"] != "x" || n.CallTimeout != 5*time.Second ||
		cfg.Gateway.CallTimeout != 10*time.Second || cfg.Gateway.Names.MaxLength != 60 {
		t.Fatalf("%+v", cfg)
	}
	bad := writeFile(t, dir, "bad.toml", "[servers.notes]\ncomand = \"go\"\n")
	if _, err := Load(Options{File: bad, Environ: noEnv}); err == nil || !strings.Contains(err.Error(), "servers.notes.comand") {
		t.Errorf("unknown key in TOML: %v", err)
	}
	broken := writeFile(t, dir, "broken.toml", "[servers\n")
	if _, err := Load(Options{File: broken, Environ: noEnv}); err == nil || !strings.Contains(err.Error(), "broken.toml") {
		t.Errorf("syntax error in TOML: %v", err)
	}
}

// gw's own sections beside mcpServers are kept and decoded as strictly as in
// gw's own files: a policy written there ends up in the configuration.
func TestMCPServersFileKeepsGWSections(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, "claude_desktop_config.json", `{
  "mcpServers": {"notes": {"command": "x"}},
  "policies": {
    "authorize": {"module": "allowlist", "config": {"rules": [{"callers": ["alice"], "tools": ["*"]}]}},
    "collision": {"module": "policies/mine.wasm"}
  },
  "nats": {"url": "nats://127.0.0.1:4333"},
  "gateway": {"call_timeout": "10s"},
  "log": {"level": "debug"},
  "globalShortcut": "Ctrl+Space"
}`)
	cfg, err := Load(Options{File: file, Environ: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "authorize module", cfg.Policies.Authorize.Module, "allowlist")
	if cfg.Policies.Authorize.Config["rules"] == nil {
		t.Errorf("authorize config lost: %+v", cfg.Policies.Authorize.Config)
	}
	eq(t, "collision module", cfg.Policies.Collision.Module, filepath.Join(dir, "policies/mine.wasm"))
	eq(t, "nats.url", cfg.NATS.URL, "nats://127.0.0.1:4333")
	eq(t, "gateway.call_timeout", cfg.Gateway.CallTimeout, 10*time.Second)
	eq(t, "log.level", cfg.Log.Level, "debug")
	eq(t, "warnings", cfg.Warnings, []string{`top-level key "globalShortcut" is not used by gw; ignored`})
}

// Unknown keys stay errors in an mcpServers file: inside gw's sections, and
// at the top level when a key looks like a misspelt section of gw's.
func TestMCPServersFileUnknownKeys(t *testing.T) {
	tests := []struct{ name, data, want string }{
		{"inside policies", `{"mcpServers": {"a": {"command": "x"}}, "policies": {"authorise": {"module": "read-only"}}}`,
			`config: unknown key "policies.authorise"`},
		{"inside nats", `{"mcpServers": {"a": {"command": "x"}}, "nats": {"ulr": "nats://x"}}`,
			`config: unknown key "nats.ulr"`},
		{"misspelt section", `{"mcpServers": {"a": {"command": "x"}}, "polices": {"authorize": {"module": "read-only"}}}`,
			`config: unknown key "polices" (did you mean "policies"?)`},
		{"section in the wrong case", `{"mcpServers": {"a": {"command": "x"}}, "Policies": {}}`,
			`config: unknown key "Policies" (did you mean "policies"?)`},
		{"short section", `{"mcpServers": {"a": {"command": "x"}}, "nat": {}}`,
			`config: unknown key "nat" (did you mean "nats"?)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := writeFile(t, t.TempDir(), "mcp.json", tt.data)
			_, err := Load(Options{File: file, Environ: noEnv})
			eq(t, "errors", errLines(t, err), []string{tt.want})
			if !errors.Is(err, ErrUnknownKey) {
				t.Error("errors.Is(err, ErrUnknownKey) = false")
			}
		})
	}
}

func TestNearSection(t *testing.T) {
	for key, want := range map[string]string{
		"polices": "policies", "policy": "policies", "policies_v2": "policies", "gatway": "gateway", "Gateway": "gateway",
		"logs": "log", "nat": "nats", "server": "servers",
		"globalShortcut": "", "preferences": "", "isUsingBuiltInNodeForMcp": "", "ui": "", "news": "",
	} {
		if got := nearSection(key); got != want {
			t.Errorf("nearSection(%q) = %q, want %q", key, got, want)
		}
	}
}

// The configured order is the file's, whatever the names' sort order;
// priority overrides it; servers the file does not list come last.
func TestServerOrder(t *testing.T) {
	tests := []struct {
		name, file, data string
		environ          []string
		overrides        map[string]any
		want             []string
	}{
		{name: "yaml", file: "gw.yaml",
			data: "servers:\n  zeta: {command: x}\n  alpha: {command: x}\n  mid: {command: x, disabled: true}\n",
			want: []string{"zeta", "alpha", "mid"}},
		{name: "yaml alias", file: "gw.yaml",
			data: "servers:\n  zeta: &z {command: x}\n  alpha: *z\n",
			want: []string{"zeta", "alpha"}},
		{name: "json", file: "gw.json",
			data: `{"policies": {"authorize": {"module": "allowlist", "config": {"servers": {"z": 1}}}}, "servers": {"zeta": {"command": "x"}, "alpha": {"command": "x", "args": ["{", "}"]}}}`,
			want: []string{"zeta", "alpha"}},
		{name: "mcpServers with comments", file: "mcp.json",
			data: "{\n  // mine\n  \"mcpServers\": {\"zeta\": {\"command\": \"x\"}, /* b */ \"remote\": {\"url\": \"u\"}, \"alpha\": {\"command\": \"x\",},},\n}",
			want: []string{"zeta", "alpha"}},
		{name: "toml tables", file: "gw.toml",
			data: "[servers.zeta]\ncommand = \"x\"\n[gateway]\ncall_timeout = \"5s\"\n[servers.alpha]\ncommand = \"x\"\n[servers.zeta.env]\nA = \"b\"\n",
			want: []string{"zeta", "alpha"}},
		{name: "toml dotted keys and inline tables", file: "gw.toml",
			data: "[servers]\nzeta.command = \"x\"\n\"alpha\" = {command = \"x\"}\n",
			want: []string{"zeta", "alpha"}},
		{name: "toml inline servers", file: "gw.toml",
			data: "servers = {zeta = {command = \"x\"}, alpha = {command = \"x\"}}\n",
			want: []string{"zeta", "alpha"}},
		{name: "priority first, higher wins", file: "gw.yaml",
			data: "servers:\n  zeta: {command: x}\n  alpha: {command: x}\n  last: {command: x, priority: 10}\n  low: {command: x, priority: -1}\n  beta: {command: x}\n",
			want: []string{"last", "zeta", "alpha", "beta", "low"}},
		{name: "priority from an override", file: "gw.yaml",
			data:      "servers:\n  zeta: {command: x}\n  alpha: {command: x}\n",
			overrides: map[string]any{"servers.alpha.priority": "1"},
			want:      []string{"alpha", "zeta"}},
		{name: "servers not in the file come last, by name", file: "gw.yaml",
			data:    "servers:\n  zeta: {command: x}\n",
			environ: []string{"GW_SERVERS__yank__COMMAND=x", "GW_SERVERS__echo__COMMAND=x"},
			want:    []string{"zeta", "echo", "yank"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.environ == nil {
				tt.environ = noEnv
			}
			file := writeFile(t, t.TempDir(), tt.file, tt.data)
			cfg, err := Load(Options{File: file, Environ: tt.environ, Overrides: tt.overrides})
			if err != nil {
				t.Fatal(err)
			}
			eq(t, "ServerNames", cfg.ServerNames(), tt.want)
		})
	}
}

// A Config built in code has no file order: servers come by priority, then
// by name.
func TestServerNamesWithoutOrder(t *testing.T) {
	c := Config{Servers: map[string]Server{"b": {}, "a": {}, "c": {Priority: 2}}}
	eq(t, "ServerNames", c.ServerNames(), []string{"c", "a", "b"})
}

func TestYAMLServerOrderMergeKeys(t *testing.T) {
	data := "base: &base\n  kilo: {command: x}\n  bravo: {command: x}\nservers:\n  zeta: {command: x}\n  <<: *base\n  alpha: {command: x}\n  kilo: {command: y}\n"
	eq(t, "order", fileServerOrder("yaml", []byte(data)), []string{"zeta", "kilo", "bravo", "alpha"})
}

func TestViews(t *testing.T) {
	cfg := mustParse(t, `
servers:
  fs: {command: x}
  memory: {command: x}
views:
  coding: {include: ["fs__*", "memory__*"], exclude: ["*delete*"]}
  notes: {servers: [memory]}
`, "yaml")
	eq(t, "coding", cfg.Views["coding"], View{Include: []string{"fs__*", "memory__*"}, Exclude: []string{"*delete*"}})
	eq(t, "notes", cfg.Views["notes"].Servers, []string{"memory"})

	_, err := Parse([]byte(`
servers:
  fs: {command: x}
views:
  "bad name": {}
  broken: {include: ["fs__["], servers: [nope], exclude: [""]}
`), "yaml")
	lines := strings.Join(errLines(t, err), "\n")
	for _, want := range []string{`view name "bad name"`, `views.broken.servers names "nope"`, `views.broken.include has a bad pattern "fs__["`, `views.broken.exclude has a bad pattern ""`} {
		if !strings.Contains(lines, want) {
			t.Errorf("errors lack %q:\n%s", want, lines)
		}
	}
}

// TestOtherToolsGWVariables: GW_ variables of other tools are left alone;
// near misses of gw's own are still errors.
func TestOtherToolsGWVariables(t *testing.T) {
	file := writeFile(t, t.TempDir(), "gw.yaml", "servers:\n  a: {command: x}\n")
	cfg, err := Load(Options{File: file, Environ: []string{"GW_TOKEN=abc", "GW_HOME=/x", "GW_SOMETHING__ELSE=1", "GW_LOG__LEVEL=debug"}})
	if err != nil {
		t.Fatalf("Load with other tools' GW_ variables: %v", err)
	}
	eq(t, "log.level", cfg.Log.Level, "debug")
	for _, v := range []string{"GW_GATWAY__CALL_TIMEOUT=1s", "GW_LOG_LEVEL=debug", "GW_SERVERS__a__COMAND=y"} {
		if _, err := Load(Options{File: file, Environ: []string{v}}); err == nil {
			t.Errorf("%s: no error; it is a near miss of gw's own keys", v)
		}
	}
}

// TestHTTP: the HTTP face defaults to loopback; tokens say where they come
// from; gw refuses to listen beyond loopback without tokens; unknown keys
// are errors.
func TestHTTP(t *testing.T) {
	const srv = "servers: {a: {command: x}}\n"
	cfg, err := Parse([]byte(srv), "yaml")
	if err != nil || cfg.HTTP.Addr != DefaultHTTPAddr {
		t.Fatalf("default: %v %+v", err, cfg)
	}
	cfg, err = Parse([]byte(srv+`http: {addr: "0.0.0.0:9000", tokens: {alice: {token_env: ALICE_TOKEN}, bob: {token_file: /run/bob}}, allowed_origins: ["https://app.example.com"]}`), "yaml")
	if err != nil || cfg.HTTP.Tokens["alice"].TokenEnv != "ALICE_TOKEN" || cfg.HTTP.Tokens["bob"].TokenFile != "/run/bob" {
		t.Fatalf("tokens: %v %+v", err, cfg.HTTP)
	}
	if cfg, err := Parse([]byte(srv+`http: {addr: ""}`), "yaml"); err != nil || cfg.HTTP.Addr != "" {
		t.Fatalf("off: %v", err)
	}
	for _, tt := range []struct{ body, want string }{
		{`http: {addr: "0.0.0.0:9000"}`, "listens beyond loopback, and no http.tokens"},
		{`http: {addr: ":9000"}`, "listens beyond loopback"},
		{`http: {addr: "localhost"}`, "must be host:port"},
		{`http: {tokens: {alice: {}}}`, "set exactly one of token_env and token_file"},
		{`http: {tokens: {alice: {token_env: A, token_file: f}}}`, "set exactly one"},
		{`http: {tokens: {"a b": {token_env: A}}}`, "principal"},
		{`http: {allowed_origins: ["app.example.com"]}`, "is not an origin"},
		{`http: {adr: "x"}`, "adr"},
		{`htp: {addr: "x"}`, `unknown key "htp"`},
	} {
		if _, err := Parse([]byte(srv+tt.body), "yaml"); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v; want %q", tt.body, err, tt.want)
		}
	}
}

// TestHealth: health.ready defaults to all, takes all, any, none or a share, from any layer;
// Quorum counts what each asks of n servers; required servers must be configured and enabled.
func TestHealth(t *testing.T) {
	const srv = "servers: {a: {command: x}, b: {command: x}, c: {command: x}, off: {command: x, disabled: true}}\n"
	cfg, err := Parse([]byte(srv), "yaml")
	if err != nil || cfg.Health.Ready != ReadyAll || cfg.Health.Quorum(3) != 3 {
		t.Fatalf("default: %v %+v", err, cfg.Health)
	}
	for _, tt := range []struct {
		ready string
		n     int
		want  int
	}{
		{"all", 3, 3}, {"any", 3, 1}, {"any", 0, 0}, {"none", 3, 0},
		{"50%", 3, 2}, {"50%", 4, 2}, {"1%", 3, 1}, {"100%", 3, 3}, {"34%", 3, 2}, {"33%", 3, 1},
	} {
		cfg, err := Parse([]byte(srv+"health: {ready: \""+tt.ready+"\", required: [a]}\n"), "yaml")
		if err != nil {
			t.Errorf("%s: %v", tt.ready, err)
			continue
		}
		if got := cfg.Health.Quorum(tt.n); got != tt.want {
			t.Errorf("%s of %d: quorum %d, want %d", tt.ready, tt.n, got, tt.want)
		}
	}
	for _, tt := range []struct{ body, want string }{
		{`health: {ready: most}`, `config: health.ready "most" is not all, any, none or a share such as "50%" (1% to 100%)`},
		{`health: {ready: "0%"}`, `health.ready "0%" is not all`},
		{`health: {ready: "101%"}`, `health.ready "101%" is not all`},
		{`health: {ready: "50"}`, `health.ready "50" is not all`},
		{`health: {ready: All}`, `health.ready "All" is not all`},
		{`health: {required: [nope]}`, `config: health.required names "nope", which is not a configured server`},
		{`health: {required: ["off"]}`, `health.required names "off", which is disabled`},
		{`health: {required: [a, a]}`, `health.required names "a" twice`},
		{`health: {ready: [all]}`, `health.ready`},
		{`health: {redy: all}`, `unknown key "health.redy"`},
	} {
		if _, err := Parse([]byte(srv+tt.body), "yaml"); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v; want %q", tt.body, err, tt.want)
		}
	}
	file := filepath.Join(t.TempDir(), "gw.yaml")
	if err := os.WriteFile(file, []byte(srv), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err = Load(Options{File: file, Environ: []string{"GW_HEALTH__READY=any", `GW_HEALTH__REQUIRED=["b"]`}})
	if err != nil || cfg.Health.Ready != ReadyAny || !reflect.DeepEqual(cfg.Health.Required, []string{"b"}) {
		t.Errorf("from the environment: %+v %v", cfg.Health, err)
	}
	// An mcpServers file may carry the section beside its servers, as it may gw's others.
	cfg, err = Parse([]byte(`{"mcpServers": {"a": {"command": "x"}}, "health": {"ready": "any"}}`), "json")
	if err != nil || cfg.Health.Ready != ReadyAny {
		t.Errorf("beside mcpServers: %+v %v", cfg.Health, err)
	}
}

// TestPinningMode: gateway.pinning defaults to hold, takes hold, warn or
// off from any layer, and refuses anything else (a wrong type included).
func TestPinningMode(t *testing.T) {
	const base = "servers: {a: {command: x}}\n"
	c, err := Parse([]byte(base), "yaml")
	if err != nil || c.Gateway.Pinning != "hold" {
		t.Fatalf("default: %q %v", c.Gateway.Pinning, err)
	}
	for _, mode := range []string{"hold", "warn", "off"} {
		c, err := Parse([]byte(base+"gateway: {pinning: "+mode+"}\n"), "yaml")
		if err != nil || c.Gateway.Pinning != mode {
			t.Errorf("%s: %q %v", mode, c.Gateway.Pinning, err)
		}
	}
	for data, want := range map[string]string{
		base + "gateway: {pinning: strict}\n": `config: gateway.pinning "strict" is not one of hold, warn, off`,
		base + "gateway: {pinning: Hold}\n":   `config: gateway.pinning "Hold" is not one of hold, warn, off`,
		base + "gateway: {pinning: \"\"}\n":   `config: gateway.pinning "" is not one of hold, warn, off`,
	} {
		if _, err := Parse([]byte(data), "yaml"); err == nil || err.Error() != want {
			t.Errorf("%q: %v, want %s", data, err, want)
		}
	}
	if _, err := Parse([]byte(base+"gateway: {pinning: [hold]}\n"), "yaml"); err == nil {
		t.Error("a list for gateway.pinning was accepted")
	}
	file := filepath.Join(t.TempDir(), "gw.yaml")
	if err := os.WriteFile(file, []byte(base), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err = Load(Options{File: file, Environ: []string{"GW_GATEWAY__PINNING=warn"}})
	if err != nil || c.Gateway.Pinning != "warn" {
		t.Errorf("from the environment: %q %v", c.Gateway.Pinning, err)
	}
	c, err = Load(Options{File: file, Environ: noEnv, Overrides: map[string]any{"gateway.pinning": "off"}})
	if err != nil || c.Gateway.Pinning != "off" {
		t.Errorf("from an override: %q %v", c.Gateway.Pinning, err)
	}
}

func TestMetricsConfig(t *testing.T) {
	cfg := mustParse(t, "servers:\n  notes:\n    command: go\n", "yaml")
	if cfg.Metrics != (Metrics{Enabled: true, MaxTools: 500}) {
		t.Errorf("default metrics = %+v", cfg.Metrics)
	}
	cfg, err := Parse([]byte(`{"servers": {"a": {"command": "x"}}, "metrics": {"enabled": false, "max_tools": 20}}`), "json")
	if err != nil || cfg.Metrics != (Metrics{MaxTools: 20}) {
		t.Errorf("metrics {false, 20}: %v %+v", err, cfg.Metrics)
	}
	for _, n := range []int{0, MaxMetricsTools + 1} {
		_, err := Parse(fmt.Appendf(nil, `{"servers": {"a": {"command": "x"}}, "metrics": {"max_tools": %d}}`, n), "json")
		want := fmt.Sprintf("config: metrics.max_tools must be 1 to %d, got %d", MaxMetricsTools, n)
		if err == nil || err.Error() != want {
			t.Errorf("max_tools %d: %v; want %s", n, err, want)
		}
	}
}

// TestAudit: audit records everything by default, for 30 days and up to
// 256 MiB, without arguments; bad values are refused with the key named.
func TestAudit(t *testing.T) {
	const base = "servers: {a: {command: x}}\n"
	c, err := Parse([]byte(base), "yaml")
	if err != nil || c.Audit != (Audit{Record: "all", MaxAge: 720 * time.Hour, MaxBytes: 256 << 20}) {
		t.Fatalf("default: %+v %v", c.Audit, err)
	}
	c, err = Parse([]byte(base+"audit: {record: denied, arguments: true, max_age: 24h, max_bytes: -1}\n"), "yaml")
	if err != nil || c.Audit != (Audit{Record: "denied", Arguments: true, MaxAge: 24 * time.Hour, MaxBytes: -1}) {
		t.Fatalf("set: %+v %v", c.Audit, err)
	}
	for _, tt := range []struct{ body, want string }{
		{"audit: {record: some}", `audit.record "some" is not one of all, denied, off`},
		{"audit: {max_age: 0s}", "audit.max_age must be positive"},
		{"audit: {max_bytes: 0}", "audit.max_bytes must be positive, or -1"},
		{"audit: {max_bytes: -2}", "audit.max_bytes"},
		{"audit: {argument: true}", "argument"},
	} {
		if _, err := Parse([]byte(base+tt.body), "yaml"); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v; want %q", tt.body, err, tt.want)
		}
	}
}

func TestPinsFile(t *testing.T) {
	const base = "servers: {a: {command: x}}\n"
	if c := mustParse(t, base, "yaml"); c.Pins.File != "" {
		t.Fatalf("default pins.file %q, want \"\" (the per-user file)", c.Pins.File)
	}
	for _, f := range []string{"none", "/var/lib/gw/pins.json", "rel/pins.json"} {
		if c := mustParse(t, base+"pins: {file: "+f+"}\n", "yaml"); c.Pins.File != f {
			t.Errorf("pins.file %q read as %q", f, c.Pins.File)
		}
	}
	for data, want := range map[string]string{
		base + "pins: {file: None}\n":         `config: pins.file "None": write "none" to keep pins in memory`,
		base + "pins: {file: \" a.json\"}\n":  `config: pins.file " a.json" has leading or trailing spaces`,
		base + "pins: {file: /var/lib/gw/}\n": `config: pins.file "/var/lib/gw/" names a directory; name the file, such as "/var/lib/gw/pins.json"`,
		base + "pins: {file: ~/pins.json}\n":  `config: pins.file "~/pins.json": gw does not expand ~ (nor $HOME) in a file; write an absolute path, or set GW_PINS__FILE="$HOME/…" in a shell`,
		base + "pins: {flie: a.json}\n":       `config: unknown key "pins.flie"`,
		base + "pins: {file: [a.json]}\n":     "",
		base + "pin: {file: a.json}\n":        "",
	} {
		_, err := Parse([]byte(data), "yaml")
		if err == nil || want != "" && err.Error() != want {
			t.Errorf("%q: %v, want %s", data, err, want)
		}
	}
	// In a file, a relative path is the file's directory's; none stays none.
	dir := t.TempDir()
	file := writeFile(t, dir, "conf/gw.yaml", base+"pins: {file: state/pins.json}\n")
	c, err := Load(Options{File: file, Environ: noEnv})
	if err != nil || c.Pins.File != filepath.Join(dir, "conf", "state", "pins.json") {
		t.Errorf("relative pins.file: %q %v", c.Pins.File, err)
	}
	file = writeFile(t, dir, "tilde.yaml", base+"pins: {file: ~/pins.json}\n")
	if _, err := Load(Options{File: file, Environ: noEnv}); err == nil || !strings.Contains(err.Error(), `pins.file "~/pins.json": gw does not expand ~`) {
		t.Errorf("pins.file ~/pins.json in a file: %v", err)
	}
	file = writeFile(t, dir, "gw.yaml", base+"pins: {file: none}\n")
	if c, err := Load(Options{File: file, Environ: noEnv}); err != nil || c.Pins.File != "none" {
		t.Errorf("pins.file none in a file: %q %v", c.Pins.File, err)
	}
	c, err = Load(Options{File: file, Environ: []string{"GW_PINS__FILE=/e/pins.json"}})
	if err != nil || c.Pins.File != "/e/pins.json" {
		t.Errorf("from the environment: %q %v", c.Pins.File, err)
	}
	c, err = Load(Options{File: file, Environ: noEnv, Overrides: map[string]any{"pins.file": "/o/pins.json"}})
	if err != nil || c.Pins.File != "/o/pins.json" {
		t.Errorf("from an override: %q %v", c.Pins.File, err)
	}
	// Beside a client's mcpServers, as every gw section.
	file = writeFile(t, dir, "claude.json", `{"mcpServers": {"a": {"command": "x"}}, "pins": {"file": "p.json"}}`)
	if c, err := Load(Options{File: file, Environ: noEnv}); err != nil || c.Pins.File != filepath.Join(dir, "p.json") {
		t.Errorf("pins beside mcpServers: %q %v", c.Pins.File, err)
	}
}
