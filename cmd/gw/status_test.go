package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	fleetview "github.com/gwmcp/gw/internal/fleet"
	"github.com/gwmcp/gw/policies"
)

// statusRun is a `gw run` named name with server alpha (mcptest), the
// allowlist policy (alice may call alpha__echo, no one anything else) and
// its HTTP face on a free port; extraHTTP is added to the http section.
func statusRun(t *testing.T, name, extraHTTP string) (r *reloadRun, base string) {
	t.Helper()
	port, httpPort := freePort(t), freePort(t)
	head := runHead(t, name, port)
	head = withHTTPAddr(head, httpPort, extraHTTP)
	head = strings.Replace(head, "policies:\n", "policies:\n  authorize: {module: allowlist, config: {rules: [{callers: [\"alice\"], tools: [\"alpha__echo\"]}]}}\n", 1)
	// A restart waits 1.5 to 3 s (equal jitter): long enough for a page
	// that redraws at most once a second to show the server down.
	head += `gateway: {restart: {initial_backoff: 3s}}
servers:
  alpha:
    command: EXE
    env: {MCPTEST_SERVER: "1"}
`
	r = startHTTPRun(t, head, port, httpPort)
	r.eventually("alpha__echo", func() bool { return r.callOK("alpha__echo") })
	return r, fmt.Sprintf("http://127.0.0.1:%d", httpPort)
}

// denyCall calls alpha__echo as principal, whom the allowlist refuses:
// gw run records the denial in its audit stream.
func denyCall(t *testing.T, r *reloadRun, principal string) {
	t.Helper()
	msg, err := r.nc.Request("mcp.v1.req."+principal+".tools.call.alpha__echo", []byte(`{"name":"alpha__echo","arguments":{"text":"x"}}`), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(msg.Data), "-31403") {
		t.Fatalf("%s's call was not denied: %s", principal, msg.Data)
	}
}

// listedTools is how many tools the gateway lists.
func listedTools(t *testing.T, r *reloadRun) int {
	t.Helper()
	msg, err := r.nc.Request("mcp.v1.req.alice.tools.list", []byte(`{}`), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Tools []json.RawMessage `json:"tools"`
	}
	if err := json.Unmarshal(msg.Data, &res); err != nil || len(res.Tools) == 0 {
		t.Fatalf("tools/list: %v %s", err, msg.Data)
	}
	return len(res.Tools)
}

func digestOf(t *testing.T, module string) string {
	wasm, ok := policies.Builtin(module)
	if !ok {
		t.Fatalf("no embedded policy %s", module)
	}
	sum := sha256.Sum256(wasm)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// TestStatusCommand runs gw status against a real gw run: the table names
// the gateway ready with its tools, policy digests and calls, the server
// ready with its pid and tools; --json carries the same; --gateway of an
// unknown gateway is an error; --watch --json prints a new snapshot when
// calls are made; help goes to stdout.
func TestStatusCommand(t *testing.T) {
	r, _ := statusRun(t, "status-gw", "")
	for range 5 {
		if !r.callOK("alpha__echo") {
			t.Fatal("alpha__echo failed")
		}
	}
	pid := r.server("alpha").Pid
	tools := listedTools(t, r)

	code, stdout, stderr := runGW(t, "status", "-c", r.cfg, "--interval", "200ms")
	if code != 0 {
		t.Fatalf("gw status: %d\n%s", code, stderr)
	}
	t.Logf("gw status:\n%s", stdout)
	lines := strings.Split(stdout, "\n")
	if !strings.HasPrefix(lines[0], "GATEWAY") || !strings.Contains(lines[0], "CALLS/S") {
		t.Errorf("header: %q", lines[0])
	}
	gwRow := strings.Fields(lines[1])
	auth := "authorize=" + short(digestOf(t, "allowlist"))
	if len(gwRow) < 10 || gwRow[0] != "status-gw" || gwRow[1] != "ready" || gwRow[2] != fmt.Sprint(tools) || !strings.Contains(lines[1], auth) {
		t.Errorf("gateway row %q; want status-gw ready, %d tools, %s", lines[1], tools, auth)
	}
	if calls := gwRow[6]; calls == "0" {
		t.Errorf("gateway row %q: no calls counted", lines[1])
	}
	var srvRow string
	for _, l := range lines {
		if f := strings.Fields(l); len(f) > 2 && f[0] == "status-gw" && f[1] == "alpha" {
			srvRow = l
		}
	}
	if f := strings.Fields(srvRow); len(f) < 7 || f[2] != "ready" || f[3] != fmt.Sprint(int(pid)) || !strings.Contains(f[6], "alpha__echo") {
		t.Errorf("server row %q; want alpha ready, pid %d, alpha__echo among its tools", srvRow, int(pid))
	}
	// Every call was alice's, allowed: audit events, no denial.
	if !strings.Contains(stdout, "audit events, no denials") {
		t.Error(`alice's calls were allowed, and the view does not say "… audit events, no denials"`)
	}

	// JSON, with a denial in the audit stream.
	denyCall(t, r, "bob")
	code, stdout, stderr = runGW(t, "status", "-c", r.cfg, "--json", "--gateway", "status-gw", "--interval", "200ms")
	if code != 0 {
		t.Fatalf("gw status --json: %d\n%s", code, stderr)
	}
	var snap fleetview.Snapshot
	if err := json.Unmarshal([]byte(stdout), &snap); err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	if len(snap.Gateways) != 1 || snap.Gateways[0].Calls.Requests < 5 || snap.Gateways[0].Policies["authorize"] != digestOf(t, "allowlist") ||
		snap.Gateways[0].Policies["collision"] != digestOf(t, "prefix") {
		t.Errorf("snapshot: %s", stdout)
	}
	if len(snap.Gateways) == 1 && (len(snap.Gateways[0].Servers) != 1 || snap.Gateways[0].Servers[0].Name != "alpha" || len(snap.Gateways[0].Servers[0].Tools) != tools) {
		t.Errorf("servers: %+v", snap.Gateways[0].Servers)
	}
	// The denial came before this gw status started: replayed from MCP_AUDIT.
	if a := snap.Audit; a.Denials != 1 || len(a.Recent) != 1 || a.Recent[0].Principal != "bob" || a.Recent[0].Gateway != "status-gw" ||
		a.Recent[0].Tool != "alpha__echo" || a.Recent[0].Policy != digestOf(t, "allowlist") || a.Events < 7 {
		t.Errorf("audit: %+v", a)
	}

	if code, _, stderr := runGW(t, "status", "-c", r.cfg, "--gateway", "nope", "--interval", "200ms"); code != 1 || !strings.Contains(stderr, `no gateway "nope"`) {
		t.Errorf("--gateway nope: %d %s", code, stderr)
	}
	if code, stdout, _ := runGW(t, "status", "--help"); code != 0 || !strings.HasPrefix(stdout, "Usage: gw status") {
		t.Errorf("gw status --help: %d %q", code, stdout)
	}
	if code, _, stderr := runGW(t, "status", "extra"); code != 2 || !strings.Contains(stderr, "unexpected argument") {
		t.Errorf("gw status extra: %d %s", code, stderr)
	}

	// --watch: a snapshot per change; calls and a denial show up live.
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"status", "-c", r.cfg, "--watch", "--json", "--interval", "200ms"}, pw, io.Discard)
		pw.Close()
	}()
	defer func() {
		cancel()
		go func() { _, _ = io.Copy(io.Discard, pr) }()
		if code := <-done; code != 0 {
			t.Errorf("gw status --watch exited %d", code)
		}
	}()
	sc := bufio.NewScanner(pr)
	sc.Buffer(nil, 1<<20)
	first := int64(-1)
	deadline := time.Now().Add(30 * time.Second)
	for sc.Scan() && time.Now().Before(deadline) {
		var s fleetview.Snapshot
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil || len(s.Gateways) != 1 {
			t.Fatalf("watch line %v: %s", err, sc.Text())
		}
		n := s.Gateways[0].Calls.Requests
		if first < 0 {
			first = n
			r.callOK("alpha__echo")
			denyCall(t, r, "carol")
			continue
		}
		if n > first && len(s.Audit.Recent) > 0 && s.Audit.Recent[0].Principal == "carol" {
			if s.Gateways[0].Calls.Window == 0 {
				t.Error("a watched gateway has no rate window")
			}
			return
		}
	}
	t.Fatalf("gw status --watch never showed the new call and carol's denial (%v)", sc.Err())
}

// TestStatusText: the tables' columns, and what an empty bus shows.
func TestStatusText(t *testing.T) {
	var b strings.Builder
	if err := writeStatus(&b, fleetview.Snapshot{Prefix: "mcp.v1"}, false); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"GATEWAY  STATE  TOOLS  CALLS/S  ERRORS/S  LATENCY  CALLS  ERRORS  SHED  POLICIES",
		"(no gateway on mcp.v1)", "GATEWAY  SERVER  STATE  PID  FAILURES  RESTARTS  TOOLS  ERROR", "no audit events"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("missing %q in\n%s", want, b.String())
		}
	}
}

// TestStatusPageAccess: with http.tokens, the page's files are open, its
// data (/status.json, /status/events) needs a token as /mcp does; a foreign
// Origin is refused; the JSON names the gateway and its server.
func TestStatusPageAccess(t *testing.T) {
	t.Setenv("GWTEST_OPS_TOKEN", "ops-secret-token")
	_, base := statusRun(t, "status-auth", `, tokens: {ops: {token_env: GWTEST_OPS_TOKEN}}`)
	get := func(path, token, origin string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	for _, p := range []string{"/", "/status/app.js", "/status/style.css"} {
		if resp, body := get(p, "", ""); resp.StatusCode != 200 || len(body) == 0 {
			t.Errorf("GET %s: %d", p, resp.StatusCode)
		}
	}
	if resp, _ := get("/status.json", "", ""); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /status.json without a token: %d", resp.StatusCode)
	}
	if resp, _ := get("/status.json", "wrong", ""); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /status.json with a wrong token: %d", resp.StatusCode)
	}
	if resp, _ := get("/status.json", "ops-secret-token", "http://evil.example"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("GET /status.json from a foreign origin: %d", resp.StatusCode)
	}
	resp, body := get("/status.json", "ops-secret-token", "")
	var snap fleetview.Snapshot
	if err := json.Unmarshal([]byte(body), &snap); resp.StatusCode != 200 || err != nil {
		t.Fatalf("GET /status.json: %d %v %s", resp.StatusCode, err, body)
	}
	if len(snap.Gateways) != 1 || snap.Gateways[0].Name != "status-auth" || len(snap.Gateways[0].Servers) != 1 ||
		snap.Gateways[0].Servers[0].State != "ready" {
		t.Errorf("status.json: %s", body)
	}
	if resp, _ := get("/status.json", "ops-secret-token", ""); resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("content type %q", resp.Header.Get("Content-Type"))
	}
	// /mcp is still the face's.
	if resp, _ := get("/mcp", "", ""); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /mcp without a token: %d", resp.StatusCode)
	}
}

// chromium returns the Debian chromium binary; a test skips without it
// unless CI is set.
func chromium(t *testing.T) string {
	t.Helper()
	const bin = "/usr/bin/chromium"
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s missing (.ci/run installs Debian's chromium)", bin)
		}
		t.Skipf("%s missing; apt-get install chromium", bin)
	}
	return bin
}

// TestStatusPageBrowser opens the status page of a real gw run in headless
// Chromium (playwright-core, testdata/npm-tools/statuspage.mjs). The page
// shows alpha ready; the test SIGKILLs the pid the page shows; the page
// shows alpha down (restarting, starting or degraded) and then ready again
// with another pid. The script saves a screenshot, logged (in the test's
// temporary directory; $GW_STATUS_SCREENSHOT names a path to keep).
func TestStatusPageBrowser(t *testing.T) {
	browser := chromium(t)
	bin, env := npmTool(t, "playwright-core")
	r, base := statusRun(t, "status-page", "")
	script, err := filepath.Abs("../../testdata/npm-tools/statuspage.mjs")
	if err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(t.TempDir(), "status-page.png")
	if keep := os.Getenv("GW_STATUS_SCREENSHOT"); keep != "" { // a path that outlives the test
		shot = keep
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(filepath.Dir(bin), "node"), script, base+"/", "status-page", "alpha", shot)
	cmd.Env = append(env, "GW_CHROMIUM="+browser, "GW_PROFILE="+t.TempDir())
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Wait() }()
	sc := bufio.NewScanner(out)
	var seen []string
	for sc.Scan() {
		line := sc.Text()
		seen = append(seen, line)
		t.Logf("page: %s", line)
		verb, arg, _ := strings.Cut(line, " ")
		switch verb {
		case "READY":
			var pid int
			if _, err := fmt.Sscan(arg, &pid); err != nil || pid <= 0 || pid != int(r.server("alpha").Pid) {
				t.Fatalf("the page shows pid %q; servers.list says %v", arg, r.server("alpha").Pid)
			}
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
		case "SCREENSHOT":
			t.Logf("screenshot at %s", arg)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("statuspage.mjs: %v (saw %q)", err, seen)
	}
	var down, back bool
	for _, l := range seen {
		down = down || strings.HasPrefix(l, "DOWN ")
		back = back || down && strings.HasPrefix(l, "BACK ")
	}
	if !down || !back {
		t.Errorf("the page did not show alpha down then back: %q", seen)
	}
	if st, err := os.Stat(shot); err != nil || st.Size() == 0 {
		t.Errorf("no screenshot: %v", err)
	}
}
