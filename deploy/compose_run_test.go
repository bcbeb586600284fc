package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gwmcp/gw/internal/mcptest"
)

// podmanStack runs podman and podman-compose on the test's own storage,
// networks and configuration (testdata/containers.conf, storage.conf), in a
// copy of the repository's compose files.
type podmanStack struct {
	t       *testing.T
	dir     string   // everything podman keeps, and the project
	proj    string   // the compose project directory
	name    string   // the compose project name
	env     []string // CONTAINERS_CONF, … and the published ports
	natsURL string
}

// needTool finds a program the test cannot run without: CI installs it
// (.ci/run), so there its absence fails the test; elsewhere it skips.
func needTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not installed; .ci/run installs it (apt-get install podman podman-compose runc)", name)
		}
		t.Skipf("the compose stack test needs %s: apt-get install podman podman-compose runc", name)
	}
}

func newPodmanStack(t *testing.T) *podmanStack {
	t.Helper()
	needTool(t, "podman")
	needTool(t, "podman-compose")
	needTool(t, "runc")
	if os.Geteuid() != 0 {
		t.Skip("the compose stack test runs podman rootful: it needs root")
	}
	// A short path: overlay mounts name every layer's directory in one
	// option string, which has a size limit.
	dir, err := os.MkdirTemp("", "gwc")
	if err != nil {
		t.Fatal(err)
	}
	s := &podmanStack{t: t, dir: dir, proj: filepath.Join(dir, "proj"), name: "gwtest" + strconv.Itoa(os.Getpid())}
	for _, f := range []string{"containers.conf", "storage.conf"} {
		b := bytes.ReplaceAll(readFile(t, "deploy/testdata/"+f), []byte("@DIR@"), []byte(dir))
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	natsPort := mcptest.FreePort(t)
	s.natsURL = fmt.Sprintf("nats://127.0.0.1:%d", natsPort)
	s.env = append(os.Environ(),
		"CONTAINERS_CONF="+filepath.Join(dir, "containers.conf"),
		"CONTAINERS_STORAGE_CONF="+filepath.Join(dir, "storage.conf"),
		"BUILDAH_FORMAT=docker", // keep the images' HEALTHCHECKs
		"NATS_PORT="+strconv.Itoa(natsPort),
		"NATS_MONITOR_PORT="+strconv.Itoa(mcptest.FreePort(t)),
	)
	if out, err := s.podman("info"); err != nil {
		_ = os.RemoveAll(dir)
		t.Skipf("podman cannot run here (permissions, cgroups?): %v\n%s", err, out)
	}
	return s
}

func (s *podmanStack) command(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir, cmd.Env = s.proj, s.env
	if _, err := os.Stat(s.proj); err != nil {
		cmd.Dir = s.dir
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (s *podmanStack) podman(args ...string) (string, error) { return s.command("podman", args...) }

func (s *podmanStack) compose(args ...string) (string, error) {
	return s.command("podman-compose", append([]string{"-p", s.name}, args...)...)
}

// container is the name podman-compose gives a service's container.
func (s *podmanStack) container(service string) string { return s.name + "_" + service + "_1" }

// prepare copies the compose files into the project directory and builds
// the images' context there with deploy/build.sh, as a user would.
func (s *podmanStack) prepare() {
	t := s.t
	for _, f := range []string{"compose.yaml", "deploy/Dockerfile", "deploy/Dockerfile.nats", "deploy/gw.yaml"} {
		dst := filepath.Join(s.proj, f)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, readFile(t, f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(filepath.Join(root, "deploy", "build.sh"), filepath.Join(s.proj, "deploy", "build"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("deploy/build.sh: %v\n%s", err, out)
	}
}

// teardown takes the stack down and removes everything it made, then checks
// that podman holds nothing more: no container, image, volume or network.
func (s *podmanStack) teardown() {
	t := s.t
	if out, err := s.compose("down", "-v"); err != nil {
		t.Errorf("podman-compose down -v: %v\n%s", err, out)
	}
	if ids, _ := s.podman("images", "-qa"); strings.TrimSpace(ids) != "" {
		if out, err := s.podman(append([]string{"rmi", "-f"}, strings.Fields(ids)...)...); err != nil {
			t.Errorf("podman rmi: %v\n%s", err, out)
		}
	}
	// podman-compose 1.0 leaves the project's network.
	_, _ = s.podman("network", "rm", "-f", s.name+"_default")
	for _, args := range [][]string{{"ps", "-aq"}, {"images", "-qa"}, {"volume", "ls", "-q"}, {"network", "ls", "-q", "--filter", "name=" + s.name}} {
		if out, err := s.podman(args...); err != nil || strings.TrimSpace(out) != "" {
			t.Errorf("left behind after the stack: podman %s: %v %s", strings.Join(args, " "), err, out)
		}
	}
	if err := os.RemoveAll(s.dir); err != nil {
		t.Errorf("podman's directory: %v", err)
	}
}

// waitHealthy runs the service's healthcheck until it passes: without
// systemd, podman runs healthchecks only when asked.
func (s *podmanStack) waitHealthy(service string, within time.Duration) {
	s.t.Helper()
	deadline := time.Now().Add(within)
	for {
		out, err := s.podman("healthcheck", "run", s.container(service))
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			logs, _ := s.podman("logs", "--tail", "30", s.container(service))
			s.t.Fatalf("%s is not healthy after %s: %v %s\nlogs:\n%s", service, within, err, out, logs)
		}
		time.Sleep(time.Second)
	}
}

// serverStatus is one entry of servers.list.
type serverStatus struct {
	Name     string `json:"name"`
	State    string `json:"state"`
	Pid      int    `json:"pid"`
	Restarts int    `json:"restarts"`
}

func servers(nc *nats.Conn) map[string]serverStatus {
	msg, err := nc.Request("mcp.v1.req.compose-test.servers.list", []byte(`{}`), 5*time.Second)
	if err != nil {
		return nil
	}
	var res struct {
		Servers []serverStatus `json:"servers"`
	}
	_ = json.Unmarshal(msg.Data, &res)
	out := map[string]serverStatus{}
	for _, s := range res.Servers {
		out[s.Name] = s
	}
	return out
}

// callText calls a tool over NATS and returns its result's text, "" on any failure.
func callText(nc *nats.Conn, tool, args string) string {
	msg, err := nc.Request("mcp.v1.req.compose-test.tools.call."+tool, []byte(`{"name":"`+tool+`","arguments":`+args+`}`), 10*time.Second)
	if err != nil {
		return ""
	}
	var res struct {
		Content []struct {
			Text string `json:"text"`
		} `json:"content"`
		IsError bool `json:"isError"`
	}
	if json.Unmarshal(msg.Data, &res) != nil || res.IsError || len(res.Content) == 0 {
		return ""
	}
	return res.Content[0].Text
}

func eventually(t *testing.T, what string, within time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// TestComposeStackRuns builds the stack's FROM scratch images with podman,
// brings compose.yaml up with podman-compose on a bridge network, waits
// for both healthchecks (gw's /readyz through gw health, nats-server's
// /healthz), calls a tool over NATS from the host, kills a server process
// inside the gw container and sees gw restart it, and tears everything
// down. It skips where podman cannot run.
func TestComposeStackRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("builds images and runs containers")
	}
	s := newPodmanStack(t)
	t.Cleanup(s.teardown)
	s.prepare()
	if out, err := s.compose("up", "-d", "--build"); err != nil {
		t.Fatalf("podman-compose up: %v\n%s", err, out)
	}
	s.waitHealthy("nats", 2*time.Minute)
	s.waitHealthy("gw", 2*time.Minute)

	nc, err := nats.Connect(s.natsURL, nats.Timeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var before serverStatus
	eventually(t, "notes, files and web ready", time.Minute, func() bool {
		st := servers(nc)
		before = st["notes"]
		return before.State == "ready" && st["files"].State == "ready" && st["web"].State == "ready"
	})
	if got := callText(nc, "files__list_files", `{}`); got == "" {
		t.Fatal("files__list_files over NATS: no result")
	}
	if got := callText(nc, "notes__list_notes", `{}`); got == "" {
		t.Fatal("notes__list_notes over NATS: no result")
	}

	// Kill the notes server inside the gw container, by its host PID.
	top, err := s.podman("top", s.container("gw"), "hpid", "args")
	if err != nil {
		t.Fatalf("podman top: %v %s", err, top)
	}
	hpid := 0
	for line := range strings.Lines(top) {
		if f := strings.Fields(line); len(f) >= 2 && f[1] == "/usr/local/bin/notes" {
			hpid, _ = strconv.Atoi(f[0])
		}
	}
	if hpid == 0 {
		t.Fatalf("no notes process in the gw container:\n%s", top)
	}
	if err := syscall.Kill(hpid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, "notes restarted", time.Minute, func() bool {
		n := servers(nc)["notes"]
		return n.State == "ready" && n.Restarts > before.Restarts && n.Pid != before.Pid
	})
	if got := callText(nc, "notes__list_notes", `{}`); got == "" {
		t.Error("notes__list_notes after the restart: no result")
	}
	s.waitHealthy("gw", 30*time.Second)
	if out, err := s.podman("inspect", "--format", "{{.State.Health.Status}}", s.container("gw")); err != nil || strings.TrimSpace(out) != "healthy" {
		t.Errorf("gw's health: %v %q", err, out)
	}
}
