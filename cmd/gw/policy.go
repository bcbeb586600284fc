package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/gwmcp/gw/gateway"
	"github.com/gwmcp/gw/gateway/policy"
	"github.com/gwmcp/gw/internal/config"
	"github.com/gwmcp/gw/plugins"
	"github.com/gwmcp/gw/policies"
)

// newPolicyHost starts the wazero host with the configured compilation
// cache: by default a folder in the user's cache directory, so restarts do
// not pay compilation again.
func newPolicyHost(ctx context.Context, pc config.Policies, logger *slog.Logger) (*plugins.Host, error) {
	dir := pc.CacheDir
	if dir == "" {
		if base, err := os.UserCacheDir(); err == nil {
			dir = filepath.Join(base, "gw", "wasm")
		}
	}
	return plugins.NewHost(ctx, plugins.HostConfig{CacheDir: dir, Logger: logger})
}

func policyLimits(pc config.Policies) plugins.Limits {
	return plugins.Limits{
		CallTimeout:      pc.AuthorizeTimeout,
		CollisionTimeout: pc.CollisionTimeout,
		MemoryLimitPages: uint32(pc.MemoryLimitMiB) * 16, // 64 KiB pages
	}
}

// policySpecs turns the configuration into the policies to load. The
// default collision policy, the embedded prefix, takes its settings from
// gateway.names unless given its own.
func policySpecs(cfg *config.Config) ([]policy.Spec, error) {
	pc := cfg.Policies
	collisionCfg := pc.Collision.Config
	if pc.Collision.Module == "prefix" && len(collisionCfg) == 0 {
		collisionCfg = map[string]any{"separator": cfg.Gateway.Names.Separator, "max_length": cfg.Gateway.Names.MaxLength}
	}
	raw, err := json.Marshal(collisionCfg)
	if err != nil {
		return nil, fmt.Errorf("policies.collision.config: %w", err)
	}
	specs := []policy.Spec{{Kind: policy.Collision, Module: pc.Collision.Module, Config: raw}}
	if pc.Authorize.Module != "" {
		raw, err := json.Marshal(pc.Authorize.Config)
		if err != nil {
			return nil, fmt.Errorf("policies.authorize.config: %w", err)
		}
		specs = append(specs, policy.Spec{Kind: policy.Authorize, Module: pc.Authorize.Module, Config: raw})
	}
	return specs, nil
}

// newGateway loads the configured policies and builds a gateway they
// serve, traced when tracing is configured; customize may add options (a
// face's handler and events). release closes the policies and their host
// and flushes the spans, after the gateway has closed.
func newGateway(ctx context.Context, cfg *config.Config, logger *slog.Logger, customize func(*gateway.Options)) (g *gateway.Gateway, ps *policy.Set, release func(), err error) {
	ps, host, err := loadPolicies(ctx, cfg, logger)
	if err != nil {
		return nil, nil, nil, err
	}
	tp, prop, stopTracing, err := newTracing(ctx, cfg.Tracing, os.Getenv, logger)
	if err != nil {
		_ = ps.Close(context.Background())
		_ = host.Close(context.Background())
		return nil, nil, nil, err
	}
	release = func() {
		_ = ps.Close(context.Background())
		_ = host.Close(context.Background())
		stopTracing()
	}
	opts := gatewayOptions(cfg, logger)
	opts.TracerProvider, opts.Propagator = tp, prop
	ps.Apply(&opts)
	if customize != nil {
		customize(&opts)
	}
	if g, err = gateway.New(opts); err != nil {
		release()
		return nil, nil, nil, err
	}
	return g, ps, release, nil
}

// loadPolicies loads the configured policy modules.
func loadPolicies(ctx context.Context, cfg *config.Config, logger *slog.Logger) (*policy.Set, *plugins.Host, error) {
	host, err := newPolicyHost(ctx, cfg.Policies, logger)
	if err != nil {
		return nil, nil, err
	}
	specs, err := policySpecs(cfg)
	if err != nil {
		_ = host.Close(ctx)
		return nil, nil, err
	}
	loader := &policy.Loader{Host: host, Builtin: policies.Builtin, Limits: policyLimits(cfg.Policies), Logger: logger}
	ps, err := policy.LoadSet(ctx, loader, specs...)
	if err != nil {
		_ = host.Close(ctx)
		return nil, nil, err
	}
	return ps, host, nil
}

// runPolicy serves `gw policy`: tools for policy authors. Help (gw policy
// help, gw policy SUB --help) goes to stdout with status 0; a usage mistake
// to stderr with status 2.
func runPolicy(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	usage := policyHelp()
	if len(args) > 0 && (args[0] == "help" || wantsHelp(args)) {
		fmt.Fprint(stdout, usage)
		return 0
	}
	if len(args) == 0 {
		fmt.Fprintf(stderr, "gw policy: want a command, eval or check\n%s", usage)
		return 2
	}
	fs := flag.NewFlagSet("gw policy "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	kind := fs.String("kind", "", "authorize or collision")
	module := fs.String("module", "", "embedded policy name or .wasm path")
	cfgJSON := fs.String("config", "{}", "the policy's configuration, JSON")
	var pos []string
	rest := args[1:]
	for {
		if err := fs.Parse(rest); err != nil {
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	if !json.Valid([]byte(*cfgJSON)) {
		fmt.Fprintf(stderr, "gw policy: --config is not JSON: %q\n", *cfgJSON)
		return 2
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	host, err := plugins.NewHost(ctx, plugins.HostConfig{Logger: logger})
	if err != nil {
		fmt.Fprintln(stderr, "gw policy:", err)
		return 1
	}
	defer host.Close(context.Background())
	loader := &policy.Loader{Host: host, Builtin: policies.Builtin, Limits: plugins.Limits{}, Logger: logger}

	switch args[0] {
	case "eval":
		if *module == "" || len(pos) != 1 || (*kind != string(policy.Authorize) && *kind != string(policy.Collision)) {
			fmt.Fprint(stderr, usage)
			return 2
		}
		input, err := readInput(pos[0], stdin)
		if err != nil {
			fmt.Fprintln(stderr, "gw policy eval:", err)
			return 1
		}
		if err := checkPolicyInput(policy.Kind(*kind), input); err != nil {
			fmt.Fprintf(stderr, "gw policy eval: %s: %v\n", pos[0], err)
			return 1
		}
		spec := policy.Spec{Kind: policy.Kind(*kind), Module: *module, Config: json.RawMessage(*cfgJSON)}
		m, err := loader.Load(ctx, spec)
		if err != nil {
			fmt.Fprintln(stderr, "gw policy eval:", err)
			return 1
		}
		defer m.Close(context.Background())
		out, err := m.Call(ctx, spec.Kind.Export(), input)
		if err != nil {
			fmt.Fprintln(stderr, "gw policy eval:", err)
			return 1
		}
		if spec.Kind == policy.Authorize {
			_, err = policy.ParseDecision(out)
		} else {
			_, err = policy.ParseCollisionOutput(out)
		}
		fmt.Fprintln(stdout, string(out))
		if err != nil {
			fmt.Fprintln(stderr, "gw policy eval: invalid answer:", err)
			return 1
		}
		return 0
	case "check":
		if len(pos) != 1 {
			fmt.Fprint(stderr, usage)
			return 2
		}
		return checkPolicy(ctx, loader, pos[0], json.RawMessage(*cfgJSON), stdout, stderr)
	default:
		fmt.Fprintf(stderr, "gw policy: unknown command %q\n%s", args[0], usage)
		return 2
	}
}

// checkPolicy validates a module with a one-line verdict.
func checkPolicy(ctx context.Context, loader *policy.Loader, module string, cfg json.RawMessage, stdout, stderr io.Writer) int {
	exports, err := loader.Check(ctx, module, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "FAIL: %s: %v\n", module, err)
		return 1
	}
	fmt.Fprintf(stdout, "ok: %s: ABI v%d, exports %s, dry run passed\n", module, plugins.ABIVersion, strings.Join(exports, ", "))
	return 0
}

func readInput(path string, stdin io.Reader) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(stdin)
	}
	return os.ReadFile(path)
}

// checkPolicyInput checks that input has the shape of the ABI's input for
// kind (docs/POLICY_ABI.md), so that an input of the other kind is an error
// rather than an empty answer. Member names are case-sensitive.
func checkPolicyInput(kind policy.Kind, input []byte) error {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(input, &obj); err != nil || obj == nil {
		return fmt.Errorf("not a JSON object (want the %s input of docs/POLICY_ABI.md)", kind)
	}
	other := policy.Authorize
	if kind == policy.Authorize {
		other = policy.Collision
	}
	article := map[policy.Kind]string{policy.Authorize: "an", policy.Collision: "a"}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("not %s %s input: %s (is it %s %s input? then use --kind %s)",
			article[kind], kind, fmt.Sprintf(format, args...), article[other], other, other)
	}
	str := func(name string) error {
		var v string
		if raw, ok := obj[name]; !ok {
			return bad("%q is missing", name)
		} else if json.Unmarshal(raw, &v) != nil {
			return bad("%q is not a string", name)
		}
		return nil
	}
	switch kind {
	case policy.Authorize:
		var caller map[string]json.RawMessage
		if raw, ok := obj["caller"]; !ok {
			return bad(`"caller" is missing`)
		} else if json.Unmarshal(raw, &caller) != nil || caller == nil {
			return bad(`"caller" is not an object`)
		}
		for _, name := range []string{"server", "tool", "name"} {
			if err := str(name); err != nil {
				return err
			}
		}
	case policy.Collision:
		if err := str("kind"); err != nil {
			return err
		}
		var servers []struct {
			Server *string `json:"server"`
			Items  []struct {
				Name *string `json:"name"`
			} `json:"items"`
		}
		raw, ok := obj["servers"]
		if !ok {
			return bad(`"servers" is missing`)
		}
		if err := json.Unmarshal(raw, &servers); err != nil {
			return bad(`"servers" is not a list of {"server", "items"}`)
		}
		for i, sv := range servers {
			if sv.Server == nil {
				return bad(`servers[%d] has no "server"`, i)
			}
			for j, it := range sv.Items {
				if it.Name == nil {
					return bad(`servers[%d].items[%d] has no "name"`, i, j)
				}
			}
		}
	}
	return nil
}
