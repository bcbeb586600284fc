package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/gwmcp/gw/transport/natsconn"
)

// Help is asked for in several ways; each prints on stdout and exits 0.
func TestHelpEverywhere(t *testing.T) {
	for _, args := range [][]string{
		{"help"}, {"--help"}, {"-h"},
		{"help", "run"}, {"run", "--help"}, {"run", "-h"}, {"run", "-c", "x.yaml", "--help"},
		{"help", "tools"}, {"tools", "--help"}, {"call", "-h"}, {"servers", "--help"}, {"version", "--help"},
		{"help", "bench"}, {"bench", "--help"}, {"help", "health"}, {"health", "--help"}, {"health", "-h"},
		{"help", "policy"}, {"policy", "--help"}, {"policy", "-h"}, {"policy", "help"},
		{"policy", "eval", "--help"}, {"policy", "check", "-h"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			code, stdout, stderr := runGW(t, args...)
			if code != 0 || !strings.Contains(stdout, "Usage") || stderr != "" {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit 0 and help on stdout only", code, stdout, stderr)
			}
		})
	}
	// The help of one command is its own.
	if _, stdout, _ := runGW(t, "help", "run"); !strings.Contains(stdout, "gw run -c FILE") || strings.Contains(stdout, "gw tools") {
		t.Errorf("gw help run:\n%s", stdout)
	}
	if _, stdout, _ := runGW(t, "policy", "eval", "--help"); !strings.Contains(stdout, "gw policy eval --kind") {
		t.Errorf("gw policy eval --help:\n%s", stdout)
	}
	// Mistakes are not help: stderr and exit 2.
	for _, args := range [][]string{{"help", "nope"}, {"nope", "--help"}, {"policy"}, {"tools", "--bogus"}} {
		code, stdout, stderr := runGW(t, args...)
		if code != 2 || stdout != "" || stderr == "" {
			t.Errorf("gw %s: exit %d, stdout %q, stderr %q; want exit 2 and stderr only", strings.Join(args, " "), code, stdout, stderr)
		}
	}
}

// A server whose command does not exist is reported once, with the cause,
// and no empty table is printed.
func TestMissingCommandReportedOnce(t *testing.T) {
	cfg := writeConfig(t, "gw.yaml", "servers:\n  ghost:\n    command: /nonexistent/ghost-server\n")
	code, stdout, stderr := runGW(t, "servers", "-c", cfg)
	if code != 1 || strings.Count(stdout+stderr, "no such file") != 1 || !strings.Contains(stdout, "ghost") {
		t.Errorf("gw servers: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	code, stdout, stderr = runGW(t, "tools", "-c", cfg)
	if code != 1 || stdout != "" || strings.Count(stderr, "no such file") != 1 || !strings.Contains(stderr, `server "ghost"`) {
		t.Errorf("gw tools: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
}

func TestPolicyCheckMissingFile(t *testing.T) {
	code, _, stderr := runGW(t, "policy", "check", "./nope.wasm")
	if code != 1 || strings.Contains(stderr, "policy :") || !strings.Contains(stderr, "policy module: open ./nope.wasm") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

// The README's policy commands work on the example inputs, and an input of
// the wrong kind is an error, not an empty answer.
func TestPolicyEvalExampleInputs(t *testing.T) {
	const authz, coll = "../../examples/policy/authorize-input.json", "../../examples/policy/collision-input.json"
	code, stdout, stderr := runGW(t, "policy", "eval", "--kind", "authorize", "--module", "read-only", authz)
	if code != 0 || strings.TrimSpace(stdout) != `{"allow":true}` {
		t.Errorf("authorize: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	code, stdout, stderr = runGW(t, "policy", "eval", "--kind", "collision", "--module", "first-come", coll)
	if code != 0 || !strings.Contains(stdout, `"reason":"shadowed by notes"`) {
		t.Errorf("collision: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	code, stdout, stderr = runGW(t, "policy", "eval", "--kind", "collision", "--module", "first-come", authz)
	if code != 1 || stdout != "" || !strings.Contains(stderr, "not a collision input") || !strings.Contains(stderr, "--kind authorize") {
		t.Errorf("authorize input as collision: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	code, stdout, stderr = runGW(t, "policy", "eval", "--kind", "authorize", "--module", "read-only", coll)
	if code != 1 || stdout != "" || !strings.Contains(stderr, "not an authorize input") {
		t.Errorf("collision input as authorize: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

// Every examples/ and docs/ path the README names exists.
func TestREADMEPathsExist(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	paths := regexp.MustCompile(`(?:examples|docs)/[A-Za-z0-9_./-]*[A-Za-z0-9_]`).FindAllString(string(readme), -1)
	if len(paths) == 0 {
		t.Fatal("no paths found in README.md")
	}
	// The inputs of the policy eval examples too, whatever their folder.
	evals := regexp.MustCompile(`policy eval [^\n]* (\S+\.json)\n`).FindAllStringSubmatch(string(readme), -1)
	if len(evals) == 0 {
		t.Fatal("no gw policy eval example in README.md")
	}
	for _, m := range evals {
		paths = append(paths, m[1])
	}
	for _, p := range paths {
		if _, err := os.Stat("../../" + p); err != nil {
			t.Errorf("README.md names %s: %v", p, err)
		}
	}
}

// A second gw run on a host whose store is in use says what to do.
func TestSecondRunSaysWhatToDo(t *testing.T) {
	store := t.TempDir()
	first, err := natsconn.StartEmbedded(context.Background(), natsconn.EmbeddedOptions{StoreDir: store, Port: 0, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Shutdown()
	port := freePort(t)
	cfg := writeConfig(t, "gw.yaml", fmt.Sprintf(`
servers:
  a: {command: EXE, env: {MCPTEST_SERVER: "1"}}
nats:
  embedded: {port: %d, store_dir: %s}
http: {addr: ""}
`, port, store))
	code, _, stderr := runGW(t, "run", "-c", cfg)
	for _, want := range []string{"store_dir is in use", fmt.Sprintf("--set nats.url=nats://127.0.0.1:%d", port), "--set nats.embedded.store_dir=DIR"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr does not say %q:\n%s", want, stderr)
		}
	}
	if code != 1 {
		t.Errorf("exit %d", code)
	}
}

// TestCommandOwnFlags: --principal, --view, --changed and --all are flags of
// the commands that take them only; elsewhere the flag package refuses them
// as any unknown flag, before a configuration is read, and the help of a
// command lists only its own.
func TestCommandOwnFlags(t *testing.T) {
	own := map[string][]string{
		"principal": {"stdio", "audit"},
		"view":      {"stdio"},
		"changed":   {"tools"},
		"all":       {"pin"},
		"json":      {"tools", "servers", "audit", "bench"},
		"pretty":    {"call"},
	}
	cmds := []string{"run", "stdio", "tools", "pin", "call", "servers", "bench", "audit"}
	for flag, takers := range own {
		arg := "--" + flag
		if flag == "principal" || flag == "view" {
			arg += "=x"
		}
		for _, cmd := range cmds {
			takes := slices.Contains(takers, cmd)
			if _, _, err := parseArgs(cmd, []string{"-c", "gw.yaml", arg}, io.Discard); (err == nil) != takes {
				t.Errorf("gw %s %s: parse error %v, want one: %v", cmd, arg, err, !takes)
			}
			help, _ := helpFor(cmd)
			if listed := regexp.MustCompile(`(?m)^ +--` + flag + `\b`).MatchString(help); listed != takes {
				t.Errorf("gw help %s lists --%s: %v, want %v", cmd, flag, listed, takes)
			}
			if takes {
				continue
			}
			// No such file: the flag is refused before it would be read.
			code, stdout, stderr := runGW(t, cmd, "-c", "/nonexistent/gw.yaml", arg)
			want := "flag provided but not defined: -" + flag + "\nrun 'gw help " + cmd + "' for usage\n"
			if code != 2 || stdout != "" || stderr != want {
				t.Errorf("gw %s %s: exit %d, stdout %q, stderr %q; want exit 2, stderr %q", cmd, arg, code, stdout, stderr, want)
			}
		}
	}
}
