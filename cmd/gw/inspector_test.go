package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// npmTool finds a bin of testdata/npm-tools (the MCP Inspector, the
// conformance suite, mcp-hub), where make test installs them with the Node
// 22 they need. It returns the bin and an environment whose PATH starts
// with that Node. CI must have them: a missing bin fails the test there (CI
// set) and skips it on a developer's machine without npm.
func npmTool(t testing.TB, name string) (bin string, env []string) {
	t.Helper()
	bin, env, err := findNPMTool(name, t.TempDir())
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%v (make npm-tools installs them)", err)
		}
		t.Skipf("%v; run make npm-tools", err)
	}
	return bin, env
}

// findNPMTool is npmTool's search, with home as the tool's HOME.
func findNPMTool(name, home string) (bin string, env []string, err error) {
	dir, err := filepath.Abs("../../testdata/npm-tools/node_modules/.bin")
	if err != nil {
		return "", nil, err
	}
	bin = filepath.Join(dir, name)
	_, errBin := os.Stat(bin)
	_, errNode := os.Stat(filepath.Join(dir, "node"))
	if errBin != nil || errNode != nil {
		return "", nil, fmt.Errorf("%s or node 22 not installed in testdata/npm-tools", name)
	}
	env = []string{"PATH=" + dir + string(os.PathListSeparator) + os.Getenv("PATH"), "HOME=" + home}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PATH=") && !strings.HasPrefix(kv, "HOME=") {
			env = append(env, kv)
		}
	}
	return bin, env, nil
}

// inspectorCall runs the MCP Inspector's CLI once: tools/call of tool with
// text as its text argument, in era, against target (a command line after
// "--", or --server-url). It returns the text of the result.
func inspectorCall(t *testing.T, era, tool, text string, target ...string) string {
	t.Helper()
	bin, env := npmTool(t, "inspector")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args := append([]string{"--cli", "--format", "json", "--protocol-era", era,
		"--method", "tools/call", "--tool-name", tool, "--tool-arg", "text=" + text}, target...)
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	t.Logf("inspector %s %s: %v", era, tool, time.Since(start).Round(time.Millisecond))
	var out struct {
		Result struct {
			Content []struct{ Type, Text string }
			IsError bool
		}
		Error *struct{ Message string }
	}
	// The answer is the one JSON object on stdout; an error's is the last
	// line of stderr (after the stdio server's own log lines).
	answer := bytes.TrimSpace(stdout.Bytes())
	if len(answer) == 0 {
		lines := bytes.Split(bytes.TrimSpace(stderr.Bytes()), []byte("\n"))
		answer = lines[len(lines)-1]
	}
	if jerr := json.Unmarshal(answer, &out); jerr != nil {
		t.Fatalf("inspector %s: %v (%v)\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, jerr, stdout.String(), stderr.String())
	}
	if out.Error != nil {
		t.Fatalf("inspector %s: %s\nstderr: %s", strings.Join(args, " "), out.Error.Message, stderr.String())
	}
	if err != nil || out.Result.IsError || len(out.Result.Content) != 1 || out.Result.Content[0].Type != "text" {
		t.Fatalf("inspector %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return out.Result.Content[0].Text
}

// TestInspectorCLI points the official MCP Inspector's CLI (v2, on Node 22)
// at gw, in both eras it negotiates: at `gw stdio`, a command it starts (the
// test binary re-executed as gw), and at `gw run`'s Streamable HTTP
// endpoint. Each time it calls a tool of a legacy and of a modern mcptest
// server through gw and gets the server's echo back; after a stdio run no
// process is left behind.
func TestInspectorCLI(t *testing.T) {
	npmTool(t, "inspector")
	eras := []string{"legacy", "modern"}
	t.Run("stdio", func(t *testing.T) {
		// The shared compiled-policy cache: compiling the prefix module
		// under -race takes seconds at every start.
		cfg := writeConfig(t, "gw.yaml", `
policies: {cache_dir: `+filepath.Join(os.TempDir(), "gw-test-wasm-cache")+`}
gateway: {start_timeout: 60s}
servers:
  alpha:
    command: EXE
    env: {MCPTEST_SERVER: "1"}
  beta:
    command: EXE
    env: {MCPTEST_SERVER: "1", MCPTEST_ERA: modern}
`)
		for _, era := range eras {
			t.Run(era, func(t *testing.T) {
				mark := "inspector-" + era + "-" + t.Name()
				for _, tool := range []string{"alpha__echo", "beta__echo"} {
					want := "inspected " + tool + " over stdio"
					got := inspectorCall(t, era, tool, want, "-e", envRunAsGW+"=1", "-e", "GWTEST_STDIO_MARK="+mark,
						"--", mustExe(t), "stdio", "-c", cfg)
					if got != want {
						t.Errorf("%s: %q, want %q", tool, got, want)
					}
				}
				deadline := time.Now().Add(10 * time.Second)
				for len(leftovers(mark)) > 0 && time.Now().Before(deadline) {
					time.Sleep(100 * time.Millisecond)
				}
				if left := leftovers(mark); len(left) > 0 {
					t.Errorf("processes left behind: %v", left)
				}
			})
		}
	})
	t.Run("http", func(t *testing.T) {
		r, _, url := httpRun(t, "inspector-http", "")
		r.eventually("alpha__echo and beta__echo", func() bool { return r.callOK("alpha__echo") && r.callOK("beta__echo") })
		for _, era := range eras {
			t.Run(era, func(t *testing.T) {
				for _, tool := range []string{"alpha__echo", "beta__echo"} {
					want := "inspected " + tool + " over HTTP"
					got := inspectorCall(t, era, tool, want, "--transport", "http", "--server-url", url)
					if got != want {
						t.Errorf("%s: %q, want %q", tool, got, want)
					}
				}
			})
		}
	})
}
