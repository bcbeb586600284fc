package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// conformanceRuns are the two runs of the official conformance suite's
// server scenarios: each era's requirement set (--requirements, which also
// runs the set's not-scored scenarios) against gw run's HTTP endpoint, with
// the fixture behind gw speaking the same era.
var conformanceRuns = []struct {
	era, revision string
	fixtureArgs   []string
}{
	{"legacy", "2025-11-25", []string{"-legacy"}},
	{"modern", "2026-07-28", nil},
}

// conformanceExpect is where the passing set of a revision is kept.
func conformanceExpect(revision string) string {
	return filepath.Join("..", "..", "testdata", "conformance", "passing-"+revision+".txt")
}

// TestConformanceSuite runs @modelcontextprotocol/conformance's server
// scenarios against gw run's Streamable HTTP endpoint, in both eras. Behind
// gw is one server, examples/conformance (the Go SDK's conformance
// everything-server), with its names exposed as-is (the first-come
// collision policy), so the suite sees the tools, prompts and resources it
// expects. Every scenario and check listed in
// testdata/conformance/passing-REVISION.txt must still pass: a regression
// fails. One that passes and is not listed is reported, to be added
// (GW_CONFORMANCE_UPDATE=1 rewrites the files from the run;
// docs/CONFORMANCE.md says why the rest fail).
func TestConformanceSuite(t *testing.T) {
	bin, env := npmTool(t, "conformance")
	fixture := filepath.Join(t.TempDir(), "everything")
	if out, err := exec.Command("go", "build", "-o", fixture, "../../examples/conformance").CombinedOutput(); err != nil {
		t.Fatalf("go build examples/conformance: %v\n%s", err, out)
	}
	for _, run := range conformanceRuns {
		t.Run(run.era, func(t *testing.T) {
			url := conformanceGW(t, run.era, fixture, run.fixtureArgs)
			got := runConformance(t, bin, env, url, run.revision)
			checkConformance(t, run.revision, got)
		})
	}
}

// conformanceGW starts gw run with the fixture as its one server, names
// as-is, and returns its MCP endpoint once the fixture's tools are listed.
func conformanceGW(t *testing.T, era, fixture string, args []string) string {
	t.Helper()
	port, httpPort := freePort(t), freePort(t)
	head := runHead(t, "conformance-"+era, port)
	head = withHTTPAddr(head, httpPort, "")
	head = strings.Replace(head, "policies:\n", "policies:\n  collision: {module: first-come}\n", 1)
	quoted, _ := json.Marshal(args)
	head += fmt.Sprintf(`gateway: {start_timeout: 60s}
servers:
  everything:
    command: %s
    args: %s
`, fixture, quoted)
	r := startReloadRun(t, head, port)
	t.Cleanup(r.stop)
	r.eventually("the fixture's tools", func() bool {
		msg, err := r.nc.Request("mcp.v1.req.alice.tools.list", []byte(`{}`), 2*time.Second)
		return err == nil && bytes.Contains(msg.Data, []byte(`"test_simple_text"`))
	})
	return fmt.Sprintf("http://127.0.0.1:%d/mcp", httpPort)
}

// scenarioResult is one scenario's checks, each check id's worst status
// (an id may repeat; FAILURE wins).
type scenarioResult map[string]string

func (s scenarioResult) failed() []string {
	var out []string
	for id, status := range s {
		if status == "FAILURE" {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

var resultDir = regexp.MustCompile(`^server-(.+)-\d{4}-\d{2}-\d{2}T[0-9-]+Z$`)

// runConformance runs the suite's server scenarios of revision's
// requirement set against url and reads every scenario's checks.json.
func runConformance(t *testing.T, bin string, env []string, url, revision string) map[string]scenarioResult {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "server", "--url", url, "--requirements", revision, "-o", filepath.Join(dir, "results"))
	cmd.Dir, cmd.Env = dir, env
	start := time.Now()
	out, err := cmd.CombinedOutput() // exits 1 when a scenario fails
	t.Logf("conformance --requirements %s: %v, %v", revision, time.Since(start).Round(time.Millisecond), err)
	if i := bytes.Index(out, []byte("=== SUMMARY ===")); i >= 0 {
		t.Logf("%s", out[i:])
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "results"))
	results := map[string]scenarioResult{}
	for _, e := range entries {
		m := resultDir.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, "results", e.Name(), "checks.json"))
		if err != nil {
			t.Fatal(err)
		}
		var checks []struct{ ID, Status string }
		if err := json.Unmarshal(data, &checks); err != nil {
			t.Fatalf("%s: %v", e.Name(), err)
		}
		res := scenarioResult{}
		for _, c := range checks {
			if res[c.ID] != "FAILURE" {
				res[c.ID] = c.Status
			}
		}
		results[m[1]] = res
	}
	if len(results) == 0 {
		t.Fatalf("conformance ran no scenario: %v\n%s", err, out)
	}
	return results
}

// passingSet is what a run passed: a scenario's name when none of its
// checks failed, else scenario:check for each check that did not fail.
func passingSet(results map[string]scenarioResult) []string {
	var out []string
	for name, res := range results {
		if len(res.failed()) == 0 {
			out = append(out, name)
			continue
		}
		for id, status := range res {
			if status != "FAILURE" {
				out = append(out, name+":"+id)
			}
		}
	}
	slices.Sort(out)
	return out
}

// checkConformance fails for every listed item that no longer passes, and
// reports unlisted ones that pass now.
func checkConformance(t *testing.T, revision string, results map[string]scenarioResult) {
	t.Helper()
	passing := passingSet(results)
	path := conformanceExpect(revision)
	if os.Getenv("GW_CONFORMANCE_UPDATE") != "" {
		writeConformanceExpect(t, path, revision, results, passing)
		return
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, line := range strings.Split(string(data), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			want = append(want, line)
		}
	}
	for _, item := range want {
		name, check, partial := strings.Cut(item, ":")
		res, ok := results[name]
		switch {
		case !ok:
			t.Errorf("%s: scenario %s did not run", revision, name)
		case !partial && len(res.failed()) > 0:
			t.Errorf("%s: scenario %s no longer passes: failed %v", revision, name, res.failed())
		case partial && (res[check] == "" || res[check] == "FAILURE"):
			t.Errorf("%s: check %s of %s no longer passes (%q)", revision, check, name, res[check])
		}
	}
	for _, item := range passing {
		if !slices.Contains(want, item) {
			name, _, _ := strings.Cut(item, ":")
			if !slices.Contains(want, name) {
				t.Logf("%s: %s passes now and is not in %s: run with GW_CONFORMANCE_UPDATE=1 and update docs/CONFORMANCE.md", revision, item, path)
			}
		}
	}
}

// writeConformanceExpect records a run: the passing set, and as comments
// what failed.
func writeConformanceExpect(t *testing.T, path, revision string, results map[string]scenarioResult, passing []string) {
	var b strings.Builder
	fmt.Fprintf(&b, "# What gw passes of the conformance suite's %s requirement set (server scenarios,\n", revision)
	fmt.Fprintf(&b, "# run by cmd/gw/conformance_test.go; GW_CONFORMANCE_UPDATE=1 rewrites this file).\n")
	fmt.Fprintf(&b, "# A line is a scenario none of whose checks fail, or scenario:check for a check that\n")
	fmt.Fprintf(&b, "# passes in a scenario that fails. Why the rest fail: docs/CONFORMANCE.md.\n#\n")
	var names []string
	for name := range results {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if f := results[name].failed(); len(f) > 0 {
			fmt.Fprintf(&b, "# fails: %s: %s\n", name, strings.Join(f, ", "))
		}
	}
	b.WriteString("\n" + strings.Join(passing, "\n") + "\n")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s", path)
}
