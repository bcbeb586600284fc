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
func policySpecs(cfg *config.Config) ([]gateway.PolicySpec, error) {
	pc := cfg.Policies
	collisionCfg := pc.Collision.Config
	if pc.Collision.Module == "prefix" && len(collisionCfg) == 0 {
		collisionCfg = map[string]any{"separator": cfg.Gateway.Names.Separator, "max_length": cfg.Gateway.Names.MaxLength}
	}
	raw, err := json.Marshal(collisionCfg)
	if err != nil {
		return nil, fmt.Errorf("policies.collision.config: %w", err)
	}
	specs := []gateway.PolicySpec{{Kind: gateway.PolicyCollision, Module: pc.Collision.Module, Config: raw}}
	if pc.Authorize.Module != "" {
		raw, err := json.Marshal(pc.Authorize.Config)
		if err != nil {
			return nil, fmt.Errorf("policies.authorize.config: %w", err)
		}
		specs = append(specs, gateway.PolicySpec{Kind: gateway.PolicyAuthorize, Module: pc.Authorize.Module, Config: raw})
	}
	return specs, nil
}

// newGateway loads the configured policies and builds a gateway they
// serve; customize may add options (a face's handler and events). release
// closes the policies and their host, after the gateway has closed.
func newGateway(ctx context.Context, cfg *config.Config, logger *slog.Logger, customize func(*gateway.Options)) (g *gateway.Gateway, ps *gateway.PolicySet, release func(), err error) {
	ps, host, err := loadPolicies(ctx, cfg, logger)
	if err != nil {
		return nil, nil, nil, err
	}
	release = func() {
		_ = ps.Close(context.Background())
		_ = host.Close(context.Background())
	}
	opts := gatewayOptions(cfg, logger)
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
func loadPolicies(ctx context.Context, cfg *config.Config, logger *slog.Logger) (*gateway.PolicySet, *plugins.Host, error) {
	host, err := newPolicyHost(ctx, cfg.Policies, logger)
	if err != nil {
		return nil, nil, err
	}
	specs, err := policySpecs(cfg)
	if err != nil {
		_ = host.Close(ctx)
		return nil, nil, err
	}
	loader := &gateway.PolicyLoader{Host: host, Builtin: policies.Builtin, Limits: policyLimits(cfg.Policies), Logger: logger}
	ps, err := gateway.LoadPolicySet(ctx, loader, specs...)
	if err != nil {
		_ = host.Close(ctx)
		return nil, nil, err
	}
	return ps, host, nil
}

const policyUsage = `Usage:
  gw policy eval --kind authorize|collision --module M [--config JSON] INPUT.json
  gw policy check M

M is an embedded policy (%s) or a path to a .wasm file.
INPUT.json is the ABI input (docs/POLICY_ABI.md); "-" reads standard input.
`

// runPolicy serves `gw policy`: tools for policy authors.
func runPolicy(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	usage := fmt.Sprintf(policyUsage, strings.Join(policies.Names(), ", "))
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
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
	loader := &gateway.PolicyLoader{Host: host, Builtin: policies.Builtin, Limits: plugins.Limits{}, Logger: logger}

	switch args[0] {
	case "eval":
		if *module == "" || len(pos) != 1 || (*kind != string(gateway.PolicyAuthorize) && *kind != string(gateway.PolicyCollision)) {
			fmt.Fprint(stderr, usage)
			return 2
		}
		input, err := readInput(pos[0], stdin)
		if err != nil {
			fmt.Fprintln(stderr, "gw policy eval:", err)
			return 1
		}
		spec := gateway.PolicySpec{Kind: gateway.PolicyKind(*kind), Module: *module, Config: json.RawMessage(*cfgJSON)}
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
		if spec.Kind == gateway.PolicyAuthorize {
			_, err = gateway.ParseDecision(out)
		} else {
			_, err = gateway.ParseCollisionOutput(out)
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
func checkPolicy(ctx context.Context, loader *gateway.PolicyLoader, module string, cfg json.RawMessage, stdout, stderr io.Writer) int {
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
