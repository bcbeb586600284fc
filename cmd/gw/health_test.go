package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gwmcp/gw/gateway"
	"github.com/gwmcp/gw/internal/config"
)

// getProbe GETs a probe and returns its status code and body, 0 when
// nothing answered.
func getProbe(t *testing.T, url string) (int, string) {
	t.Helper()
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// gwHealth runs `gw health` with args and returns its exit status and its
// one line.
func gwHealth(t *testing.T, args ...string) (int, string) {
	t.Helper()
	code, stdout, stderr := runGW(t, append([]string{"health"}, args...)...)
	if stderr != "" || strings.Count(stdout, "\n") != 1 {
		t.Errorf("gw health %v: want one line on stdout, got %q, stderr %q", args, stdout, stderr)
	}
	return code, strings.TrimSpace(stdout)
}

// TestReadyzFollowsNATS runs gw run against a separate nats-server process
// with http.tokens set: the probes answer without a token (while /mcp
// refuses one without), /readyz and `gw health --ready` turn to 503 and
// exit 1 when the NATS server dies and back to 200 and 0 when it returns,
// while /healthz stays 200 throughout.
func TestReadyzFollowsNATS(t *testing.T) {
	bin := natsServerBin(t)
	port, store := freePort(t), t.TempDir()
	ns := startNATSServer(t, bin, port, store)
	// After gw stops (cleanups run last first): gw drains its connection.
	t.Cleanup(func() { _ = ns.Process.Kill(); _, _ = ns.Process.Wait() })
	t.Setenv("TEST_HEALTH_TOKEN", "s3cret-token-for-health")
	httpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	r := startReloadRun(t, fmt.Sprintf(`
nats: {url: "nats://127.0.0.1:%d", gateway: readyz-nats, ping_interval: 1s}
http:
  addr: %q
  tokens: {alice: {token_env: TEST_HEALTH_TOKEN}}
policies: {cache_dir: %s}
servers:
  alpha:
    command: EXE
    env: {MCPTEST_SERVER: "1"}
`, port, httpAddr, filepath.Join(os.TempDir(), "gw-test-wasm-cache")), port)
	t.Cleanup(r.stop)
	base := "http://" + httpAddr
	r.eventually("/readyz 200", func() bool { code, _ := getProbe(t, base+readyzPath); return code == 200 })

	if code, body := getProbe(t, base+"/mcp"); code != http.StatusUnauthorized {
		t.Errorf("/mcp without a token: %d %s; want 401, or the probes' pass proves nothing", code, body)
	}
	code, body := getProbe(t, base+readyzPath)
	var rep readyReport
	if err := json.Unmarshal([]byte(body), &rep); err != nil || code != 200 || rep.Status != "ready" || rep.NATS != "connected" ||
		rep.Policies != "loaded" || rep.Servers.Up != 1 || rep.Servers.Total != 1 || rep.Servers.Rule != "all" || len(rep.Why) != 0 {
		t.Errorf("/readyz: %d %s (%v)", code, body, err)
	}
	if strings.Contains(body, "s3cret") {
		t.Errorf("/readyz shows a secret: %s", body)
	}
	if code, line := gwHealth(t, "--ready", "--addr", httpAddr); code != 0 || line != "ready" {
		t.Errorf("gw health --ready: exit %d %q", code, line)
	}

	_ = ns.Process.Kill() // NATS goes away…
	_, _ = ns.Process.Wait()
	r.eventually("/readyz 503", func() bool { code, _ := getProbe(t, base+readyzPath); return code == 503 })
	code, body = getProbe(t, base+readyzPath)
	if err := json.Unmarshal([]byte(body), &rep); err != nil || code != 503 || rep.Status != "not ready" || rep.NATS == "connected" ||
		len(rep.Why) != 1 || !strings.HasPrefix(rep.Why[0], "nats is ") {
		t.Errorf("/readyz without NATS: %d %s", code, body)
	}
	if code, body := getProbe(t, base+healthzPath); code != 200 || !strings.Contains(body, `"live"`) {
		t.Errorf("/healthz without NATS: %d %s; the process is alive", code, body)
	}
	if code, line := gwHealth(t, "--ready", "--addr", httpAddr); code != 1 || !strings.HasPrefix(line, "not ready: nats is ") {
		t.Errorf("gw health --ready without NATS: exit %d %q", code, line)
	}
	if code, line := gwHealth(t, "--addr", httpAddr); code != 0 || line != "live" {
		t.Errorf("gw health without NATS: exit %d %q", code, line)
	}

	ns = startNATSServer(t, bin, port, store) // …and comes back
	r.eventually("/readyz 200 again", func() bool { code, _ := getProbe(t, base+readyzPath); return code == 200 })
	if code, line := gwHealth(t, "--ready", "--addr", httpAddr); code != 0 || line != "ready" {
		t.Errorf("gw health --ready after NATS returned: exit %d %q", code, line)
	}
}

// TestReadyzServerRule crashes a server whose program is gone, so that it
// keeps failing and turns degraded, under three rules: "all" and a required
// server make /readyz 503 and name it, "50%" stays 200 and lists it down.
// Once the program is back, the server recovers and so does /readyz.
func TestReadyzServerRule(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, health string
		ready        bool   // while beta is degraded
		why          string // then
	}{
		{"all", `{ready: all}`, false, "1 of 2 servers up, health.ready all needs 2 (down: beta)"},
		{"half", `{ready: "50%"}`, true, ""},
		{"required", `{ready: any, required: [beta]}`, false, "required server beta is degraded"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// beta runs a link to the test binary: removing it makes every
			// restart fail, as a broken deploy would.
			link := filepath.Join(t.TempDir(), "beta-server")
			if err := os.Symlink(exe, link); err != nil {
				t.Fatal(err)
			}
			port := freePort(t)
			httpPort := freePort(t)
			head := withHTTPAddr(runHead(t, "readyz-"+tt.name, port), httpPort, "")
			r := startReloadRun(t, head+fmt.Sprintf(`health: %s
gateway:
  restart: {initial_backoff: 20ms, max_backoff: 200ms, degraded_after: 2}
servers:
  alpha:
    command: EXE
    env: {MCPTEST_SERVER: "1"}
  beta:
    command: %s
    env: {MCPTEST_SERVER: "1"}
`, tt.health, link), port)
			t.Cleanup(r.stop)
			url := fmt.Sprintf("http://127.0.0.1:%d%s", httpPort, readyzPath)
			r.eventually("/readyz 200", func() bool { code, _ := getProbe(t, url); return code == 200 })

			if err := os.Remove(link); err != nil {
				t.Fatal(err)
			}
			_, _ = r.nc.Request("mcp.v1.req.alice.tools.call.beta__crash", []byte(`{"name":"beta__crash","arguments":{}}`), 5*time.Second)
			var rep readyReport
			var code int
			r.eventually("beta degraded in /readyz", func() bool {
				var body string
				code, body = getProbe(t, url)
				return json.Unmarshal([]byte(body), &rep) == nil && rep.Servers.Down["beta"] == "degraded"
			})
			if (code == 200) != tt.ready || rep.Servers.Up != 1 || rep.Servers.Total != 2 {
				t.Errorf("beta degraded: %d %+v; want ready %v", code, rep, tt.ready)
			}
			if tt.why != "" && (len(rep.Why) != 1 || rep.Why[0] != tt.why) {
				t.Errorf("why = %q, want %q", rep.Why, tt.why)
			}
			if tt.why == "" && len(rep.Why) != 0 {
				t.Errorf("why = %q, want nothing", rep.Why)
			}

			if err := os.Symlink(exe, link); err != nil { // the program is back
				t.Fatal(err)
			}
			var last string
			defer func() {
				if t.Failed() {
					t.Logf("last /readyz: %s", last)
				}
			}()
			r.eventually("beta back, /readyz 200", func() bool {
				code, body := getProbe(t, url)
				last = body
				var rep readyReport // a fresh one: decoding merges into a map
				return code == 200 && json.Unmarshal([]byte(body), &rep) == nil && len(rep.Servers.Down) == 0
			})
		})
	}
}

// TestServerReadiness checks the rule on server states alone: which states
// count as down, and the words of each reason.
func TestServerReadiness(t *testing.T) {
	st := func(states ...gateway.State) []gateway.ServerStatus {
		var out []gateway.ServerStatus
		for i, s := range states {
			out = append(out, gateway.ServerStatus{Name: fmt.Sprintf("s%d", i), State: s})
		}
		return out
	}
	for _, tt := range []struct {
		rule    config.Health
		servers []gateway.ServerStatus
		why     []string
	}{
		{config.Health{Ready: "all"}, st(gateway.StateReady, gateway.StateRestarting, gateway.StateStarting), nil},
		{config.Health{Ready: "all"}, st(gateway.StateReady, gateway.StateFailed), []string{"1 of 2 servers up, health.ready all needs 2 (down: s1)"}},
		{config.Health{Ready: "any"}, st(gateway.StateStopped, gateway.StateDegraded), []string{"0 of 2 servers up, health.ready any needs 1 (down: s0, s1)"}},
		{config.Health{Ready: "any"}, st(gateway.StateStopped, gateway.StateReady), nil},
		{config.Health{Ready: "none"}, st(gateway.StateFailed), nil},
		{config.Health{Ready: "none", Required: []string{"s0", "gone"}}, st(gateway.StateFailed), []string{"required server s0 is failed", "required server gone is not running"}},
		{config.Health{Ready: "67%"}, st(gateway.StateReady, gateway.StateReady, gateway.StateDegraded), []string{"2 of 3 servers up, health.ready 67% needs 3 (down: s2)"}},
		{config.Health{Ready: "66%"}, st(gateway.StateReady, gateway.StateReady, gateway.StateDegraded), nil},
		{config.Health{Ready: "all"}, nil, nil},
	} {
		_, why := serverReadiness(tt.rule, tt.servers, nil)
		if strings.Join(why, "|") != strings.Join(tt.why, "|") {
			t.Errorf("%+v over %v: why %q, want %q", tt.rule, tt.servers, why, tt.why)
		}
	}
}

// TestHealthCommand: gw health's exit statuses and lines against a probe
// that is not gw's (--url), a closed port, and mistakes in the arguments.
func TestHealthCommand(t *testing.T) {
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/sick" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_, _ = io.WriteString(w, "{}")
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	base := "http://" + ln.Addr().String()
	if code, line := gwHealth(t, "--url", base+"/healthz"); code != 0 || line != base+"/healthz: 200 OK" {
		t.Errorf("a healthy URL: exit %d %q", code, line)
	}
	if code, line := gwHealth(t, "--url", base+"/sick"); code != 1 || line != base+"/sick: 503 Service Unavailable" {
		t.Errorf("a sick URL: exit %d %q", code, line)
	}
	closed := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	if code, line := gwHealth(t, "--ready", "--addr", closed); code != 1 || !strings.Contains(line, "connection refused") {
		t.Errorf("nothing listening: exit %d %q", code, line)
	}
	for _, args := range [][]string{{"--addr", "nohost"}, {"--ready", "--url", base}, {"extra"}, {"--bogus"}} {
		if code, stdout, stderr := runGW(t, append([]string{"health"}, args...)...); code != 2 || stdout != "" || stderr == "" {
			t.Errorf("gw health %v: exit %d, stdout %q, stderr %q; want 2 and a message", args, code, stdout, stderr)
		}
	}
	for addr, want := range map[string]string{
		"0.0.0.0:8931":   "http://127.0.0.1:8931/readyz",
		":8931":          "http://127.0.0.1:8931/readyz",
		"[::]:8931":      "http://[::1]:8931/readyz",
		"10.1.2.3:8931":  "http://10.1.2.3:8931/readyz",
		"localhost:8931": "http://localhost:8931/readyz",
	} {
		if got, err := probeURL(addr, readyzPath); err != nil || got != want {
			t.Errorf("probeURL(%s) = %s %v, want %s", addr, got, err, want)
		}
	}
}

// TestProbeHandler: the probes in front of another handler, before anything
// is connected, while gw starts and while gw stops; they take GET and HEAD only, and every
// other path reaches the handler behind them.
func TestProbeHandler(t *testing.T) {
	h := &health{rule: config.Health{Ready: "all"}}
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	srv := httptest.NewServer(h.wrap(next))
	defer srv.Close()
	do := func(method, path string) (int, string) {
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := do("GET", healthzPath); code != 200 || strings.TrimSpace(body) != `{"status":"live"}` {
		t.Errorf("/healthz: %d %s", code, body)
	}
	code, body := do("GET", readyzPath)
	var rep readyReport
	if err := json.Unmarshal([]byte(body), &rep); err != nil || code != 503 ||
		strings.Join(rep.Why, "|") != "nats is none|policies are not loaded" {
		t.Errorf("/readyz with nothing connected: %d %s", code, body)
	}
	h.starting.Store(true)
	if _, body := do("GET", readyzPath); !strings.Contains(body, `"gw is starting: its tools are not on NATS yet"`) {
		t.Errorf("/readyz while starting: %s", body)
	}
	h.starting.Store(false)
	h.stopping.Store(true)
	if _, body := do("GET", readyzPath); !strings.Contains(body, `"gw is stopping"`) {
		t.Errorf("/readyz while stopping: %s", body)
	}
	if code, body := do("HEAD", readyzPath); code != 503 || body != "" {
		t.Errorf("HEAD /readyz: %d %q", code, body)
	}
	if code, _ := do("POST", healthzPath); code != http.StatusMethodNotAllowed {
		t.Errorf("POST /healthz: %d", code)
	}
	if code, _ := do("GET", "/mcp"); code != http.StatusTeapot {
		t.Errorf("/mcp did not reach the handler behind the probes: %d", code)
	}
	var nilHealth *health
	if got := nilHealth.wrap(next); fmt.Sprintf("%p", got) != fmt.Sprintf("%p", next) {
		t.Error("a nil health wraps its handler")
	}
}
