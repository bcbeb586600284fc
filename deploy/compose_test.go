package deploy

import (
	"bytes"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/jsonschema-go/jsonschema"
	"go.yaml.in/yaml/v3"

	"github.com/gwmcp/gw/internal/config"
)

// root is the repository root, compose's project directory; go test runs in deploy/.
const root = ".."

// composeFile is the part of compose.yaml that the checks below read. The schema check covers
// the rest.
type composeFile struct {
	Name     string             `yaml:"name"`
	Services map[string]service `yaml:"services"`
	Volumes  map[string]any     `yaml:"volumes"`
}

type service struct {
	Image string `yaml:"image"`
	Build *struct {
		Context    string `yaml:"context"`
		Dockerfile string `yaml:"dockerfile"`
	} `yaml:"build"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Ports       []string          `yaml:"ports"`
	Volumes     []mount           `yaml:"volumes"`
	DependsOn   map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Healthcheck *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
}

// mount is a volumes entry in either syntax: "source:target[:mode]" or the long form.
type mount struct {
	Type     string `yaml:"type"`
	Source   string `yaml:"source"`
	Target   string `yaml:"target"`
	ReadOnly bool   `yaml:"read_only"`
}

func (m *mount) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		parts := strings.Split(n.Value, ":")
		m.Source, m.Target = parts[0], parts[len(parts)-1]
		if len(parts) == 3 {
			m.Target, m.ReadOnly = parts[1], parts[2] == "ro"
		}
		m.Type = "volume"
		if strings.HasPrefix(m.Source, ".") || strings.HasPrefix(m.Source, "/") {
			m.Type = "bind"
		}
		return nil
	}
	type plain mount
	return n.Decode((*plain)(m))
}

func readFile(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	var c composeFile
	if err := yaml.Unmarshal(readFile(t, "compose.yaml"), &c); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	return c
}

// specSchema returns the Compose Specification's schema, resolved.
func specSchema(t *testing.T) *jsonschema.Resolved {
	t.Helper()
	var s jsonschema.Schema
	if err := json.Unmarshal(readFile(t, "deploy/testdata/compose-spec.json"), &s); err != nil {
		t.Fatal(err)
	}
	// The schema's $id is relative ("compose_spec.json"); any absolute base will do.
	rs, err := s.Resolve(&jsonschema.ResolveOptions{BaseURI: "https://compose-spec.io/"})
	if err != nil {
		t.Fatalf("resolve schema: %v", err)
	}
	return rs
}

// asJSON converts a YAML document into the values encoding/json would produce, which is what the
// schema validator expects.
func asJSON(t *testing.T, data []byte) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestComposeMatchesSpec validates compose.yaml against the Compose Specification's schema, and
// shows with a few broken copies that the check is not vacuous.
func TestComposeMatchesSpec(t *testing.T) {
	rs := specSchema(t)
	data := readFile(t, "compose.yaml")
	if err := rs.Validate(asJSON(t, data)); err != nil {
		t.Fatalf("compose.yaml does not match the Compose Specification: %v", err)
	}
	for _, tc := range []struct{ from, to string }{
		{"depends_on:", "depend_on:"},                   // unknown key
		{"image: gw:local", "image: {name: gw}"},        // wrong type
		{"read_only: true", "read_only: [true]"},        // wrong type, nested
		{"condition: service_healthy", "condition: up"}, // not in the enum
	} {
		broken := bytes.Replace(data, []byte(tc.from), []byte(tc.to), 1)
		if bytes.Equal(broken, data) {
			t.Fatalf("compose.yaml has no %q to break", tc.from)
		}
		err := rs.Validate(asJSON(t, broken))
		if err == nil {
			t.Errorf("schema accepts %q", tc.to)
			continue
		}
		t.Logf("%q: %v", tc.to, err)
	}
}

// interpolate expands compose's ${VAR:-default} with the defaults, as compose does with VAR unset.
func interpolate(v string) string {
	for {
		i := strings.Index(v, "${")
		j := strings.Index(v, "}")
		if i < 0 || j < i {
			return v
		}
		_, def, _ := strings.Cut(v[i+2:j], ":-")
		v = v[:i] + def + v[j+1:]
	}
}

func TestComposeServices(t *testing.T) {
	c := loadCompose(t)
	if got := slices.Sorted(maps.Keys(c.Services)); !slices.Equal(got, []string{"gw", "nats"}) {
		t.Fatalf("services = %v, want gw and nats", got)
	}
	// Both images build from deploy/ (deploy/build.sh fills deploy/build) and carry their own
	// healthchecks: podman-compose 1.0 runs a compose healthcheck through /bin/sh, which a
	// scratch image lacks.
	for name, want := range map[string][2]string{"nats": {"Dockerfile.nats", "gw-nats:local"}, "gw": {"Dockerfile", "gw:local"}} {
		svc := c.Services[name]
		if svc.Build == nil || svc.Build.Context != "deploy" || svc.Build.Dockerfile != want[0] || svc.Image != want[1] {
			t.Errorf("%s: build %+v image %q, want context deploy, dockerfile %s, image %s", name, svc.Build, svc.Image, want[0], want[1])
		}
		if svc.Healthcheck != nil {
			t.Errorf("%s has a compose healthcheck %+v; the image's HEALTHCHECK (exec form) is the one that runs in a scratch image", name, svc.Healthcheck)
		}
	}

	nats := c.Services["nats"]
	if !slices.Contains(nats.Command, "-js") {
		t.Errorf("nats command %v does not enable JetStream (-js)", nats.Command)
	}
	// Published on loopback only: this server has no authentication. The host ports can move
	// (NATS_PORT, NATS_MONITOR_PORT: the podman test picks free ones).
	want := []string{"127.0.0.1:${NATS_PORT:-4222}:4222", "127.0.0.1:${NATS_MONITOR_PORT:-8222}:8222"}
	if !slices.Equal(nats.Ports, want) {
		t.Errorf("nats ports = %v, want %v", nats.Ports, want)
	}
	for i, p := range []string{"127.0.0.1:4222:4222", "127.0.0.1:8222:8222"} {
		if got := interpolate(nats.Ports[i]); got != p {
			t.Errorf("nats port %s by default = %s, want %s", nats.Ports[i], got, p)
		}
	}
	if i := slices.Index(nats.Command, "-m"); i < 0 || i+1 >= len(nats.Command) || nats.Command[i+1] != "8222" {
		t.Errorf("nats command %v does not serve monitoring on 8222 (-m 8222)", nats.Command)
	}
	var store bool
	for _, m := range nats.Volumes {
		if m.Type == "volume" {
			if _, ok := c.Volumes[m.Source]; !ok {
				t.Errorf("nats mounts volume %q, which compose.yaml does not declare", m.Source)
			}
			if i := slices.Index(nats.Command, "--store_dir"); i >= 0 && i+1 < len(nats.Command) && nats.Command[i+1] == m.Target {
				store = true
			}
		}
	}
	if !store {
		t.Errorf("JetStream's --store_dir is not on a named volume: %v, %+v", nats.Command, nats.Volumes)
	}

	gw := c.Services["gw"]
	if d, ok := gw.DependsOn["nats"]; !ok || d.Condition != "service_healthy" {
		t.Errorf("gw depends_on = %+v, want nats with condition service_healthy", gw.DependsOn)
	}
	if want := []string{"gw", "run", "-c", "/etc/gw/gw.yaml"}; !slices.Equal(gw.Command, want) {
		t.Errorf("gw command = %v, want %v", gw.Command, want)
	}
	if got := gw.Environment["GW_NATS__URL"]; got != "nats://nats:4222" {
		t.Errorf("gw GW_NATS__URL = %q, want nats://nats:4222", got)
	}
	if len(gw.Ports) != 0 {
		t.Errorf("gw publishes ports %v; it is reached over NATS", gw.Ports)
	}
}

// gwConfigMount returns the host path, relative to the repository root, of the file mounted where
// gw's command reads its configuration.
func gwConfigMount(t *testing.T, gw service) string {
	t.Helper()
	i := slices.Index(gw.Command, "-c")
	if i < 0 || i+1 >= len(gw.Command) {
		t.Fatalf("gw command %v has no -c", gw.Command)
	}
	for _, m := range gw.Volumes {
		if m.Target == gw.Command[i+1] {
			if m.Type != "bind" || !m.ReadOnly {
				t.Errorf("config mount %+v: want a read-only bind mount", m)
			}
			return filepath.Clean(m.Source)
		}
	}
	t.Fatalf("nothing is mounted at %s", gw.Command[i+1])
	return ""
}

// TestGWConfig loads the mounted gw.yaml with gw's own strict loader and the environment compose
// gives the container, and checks the three example servers in it.
func TestGWConfig(t *testing.T) {
	gw := loadCompose(t).Services["gw"]
	src := gwConfigMount(t, gw)
	if src != "deploy/gw.yaml" {
		t.Errorf("config mounted from %s, want deploy/gw.yaml", src)
	}
	var environ []string
	for k, v := range gw.Environment {
		environ = append(environ, k+"="+v)
	}
	cfg, err := config.Load(config.Options{File: filepath.Join(root, src), Environ: environ})
	if err != nil {
		t.Fatalf("gw.yaml: %v", err)
	}
	if cfg.NATS.URL != "nats://nats:4222" {
		t.Errorf("nats.url = %q: GW_NATS__URL not applied", cfg.NATS.URL)
	}
	want := map[string][]string{
		"notes": nil,
		"files": {"-root", "/srv/files"},
		"web":   {"-legacy"},
	}
	if got := slices.Sorted(maps.Keys(cfg.Servers)); !slices.Equal(got, slices.Sorted(maps.Keys(want))) {
		t.Fatalf("servers = %v, want files, notes and web", got)
	}
	for name, args := range want {
		s := cfg.Servers[name]
		if s.Command != "/usr/local/bin/"+name || !slices.Equal(s.Args, args) || s.Disabled {
			t.Errorf("server %s = %s %v (disabled %v), want /usr/local/bin/%s %v", name, s.Command, s.Args, s.Disabled, name, args)
		}
	}
}

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd  string // upper case: FROM, RUN, COPY, …
	args []string
}

func parseDockerfile(t *testing.T, data []byte) []instruction {
	t.Helper()
	var out []instruction
	var cur strings.Builder
	for line := range strings.Lines(string(data)) {
		line = strings.TrimSpace(line)
		if cur.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if s, ok := strings.CutSuffix(line, "\\"); ok {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(line)
		f := strings.Fields(cur.String())
		cur.Reset()
		out = append(out, instruction{cmd: strings.ToUpper(f[0]), args: f[1:]})
	}
	if cur.Len() > 0 {
		t.Fatal("Dockerfile ends in a continuation line")
	}
	return out
}

// dockerfile is what TestDockerfiles reads of one Dockerfile.
type dockerfile struct {
	froms       []string
	copies      map[string][]string // destination → sources, relative to the context
	healthcheck []string            // exec form
	entrypoint  []string
	cmd         []string
	user        string
}

func readDockerfile(t *testing.T, path string) dockerfile {
	t.Helper()
	d := dockerfile{copies: map[string][]string{}}
	execForm := func(in instruction, args []string) []string {
		var v []string
		if err := json.Unmarshal([]byte(strings.Join(args, " ")), &v); err != nil {
			t.Errorf("%s: %s %v is not in exec form: %v", path, in.cmd, args, err)
		}
		return v
	}
	for _, in := range parseDockerfile(t, readFile(t, path)) {
		switch in.cmd {
		case "FROM":
			d.froms = append(d.froms, strings.Join(in.args, " "))
		case "COPY":
			var paths []string
			for _, a := range in.args {
				if strings.HasPrefix(a, "--from=") {
					t.Errorf("%s: COPY %v: a build stage would need a registry image", path, in.args)
				} else if !strings.HasPrefix(a, "--") {
					paths = append(paths, a)
				}
			}
			dst := paths[len(paths)-1]
			d.copies[dst] = append(d.copies[dst], paths[:len(paths)-1]...)
		case "HEALTHCHECK":
			i := slices.Index(in.args, "CMD")
			if i < 0 {
				t.Fatalf("%s: HEALTHCHECK %v has no CMD", path, in.args)
			}
			d.healthcheck = execForm(in, in.args[i+1:])
		case "ENTRYPOINT":
			d.entrypoint = execForm(in, in.args)
		case "CMD":
			d.cmd = execForm(in, in.args)
		case "USER":
			d.user = in.args[0]
		}
	}
	return d
}

// builtByScript returns the binaries deploy/build.sh puts in build/bin: the packages of its go
// build lines, by their last element.
func builtByScript(t *testing.T) []string {
	t.Helper()
	var out []string
	for line := range strings.Lines(string(readFile(t, "deploy/build.sh"))) {
		for _, f := range strings.Fields(line) {
			if strings.HasPrefix(f, "./cmd/") || strings.HasPrefix(f, "./examples/") {
				out = append(out, filepath.Base(f))
			}
			if strings.HasPrefix(f, "github.com/nats-io/nats-server/") {
				out = append(out, "nats-server")
			}
		}
	}
	return out
}

// TestDockerfiles checks the images compose.yaml builds: FROM scratch (nothing to pull), every
// binary copied from build/bin one that deploy/build.sh builds, every other source present, an
// unprivileged user, gw's health subcommand as the healthcheck, and for gw the compose command
// as its default and the three example servers gw.yaml starts.
func TestDockerfiles(t *testing.T) {
	c := loadCompose(t)
	built := builtByScript(t)
	if want := []string{"gw", "notes", "files", "web", "nats-server"}; !slices.Equal(built, want) {
		t.Errorf("deploy/build.sh builds %v, want %v", built, want)
	}
	for _, name := range []string{"gw", "nats"} {
		svc := c.Services[name]
		path := filepath.Join(svc.Build.Context, svc.Build.Dockerfile)
		d := readDockerfile(t, path)
		if !slices.Equal(d.froms, []string{"scratch"}) {
			t.Errorf("%s: FROM %v, want scratch alone", path, d.froms)
		}
		for dst, srcs := range d.copies {
			for _, src := range srcs {
				if bin, ok := strings.CutPrefix(src, "build/bin/"); ok {
					if !slices.Contains(built, bin) {
						t.Errorf("%s: COPY %s %s: deploy/build.sh does not build it", path, src, dst)
					}
				} else if !strings.HasPrefix(src, "build/") {
					if _, err := os.Stat(filepath.Join(root, svc.Build.Context, src)); err != nil {
						t.Errorf("%s: COPY %s: %v", path, src, err)
					}
				}
			}
		}
		if d.user == "" || strings.HasPrefix(d.user, "0") || strings.HasPrefix(d.user, "root") {
			t.Errorf("%s: USER %q, want an unprivileged one", path, d.user)
		}
		if len(d.healthcheck) < 2 || d.healthcheck[0] != "gw" || d.healthcheck[1] != "health" {
			t.Errorf("%s: HEALTHCHECK %v, want gw health …", path, d.healthcheck)
		}
		if !slices.Contains(d.copies["/usr/local/bin/"], "build/bin/gw") {
			t.Errorf("%s: no gw in /usr/local/bin/ for the healthcheck: %v", path, d.copies)
		}
		switch name {
		case "gw":
			if !slices.Equal(d.healthcheck, []string{"gw", "health", "--ready"}) {
				t.Errorf("%s: HEALTHCHECK %v, want gw health --ready", path, d.healthcheck)
			}
			if !slices.Equal(d.cmd, svc.Command) || d.entrypoint != nil {
				t.Errorf("%s: CMD %v ENTRYPOINT %v, want compose's command %v", path, d.cmd, d.entrypoint, svc.Command)
			}
			for _, bin := range []string{"notes", "files", "web"} {
				if !slices.Contains(d.copies["/usr/local/bin/"], "build/bin/"+bin) {
					t.Errorf("%s: %s, which gw.yaml starts, is not in /usr/local/bin/", path, bin)
				}
			}
			if !slices.Equal(d.copies["/srv/files/"], []string{"build/files/"}) {
				t.Errorf("%s: /srv/files/ comes from %v, want build/files/ (the sample tree)", path, d.copies["/srv/files/"])
			}
		case "nats":
			if !slices.Equal(d.entrypoint, []string{"nats-server"}) || !slices.Equal(d.cmd, svc.Command) {
				t.Errorf("%s: ENTRYPOINT %v CMD %v, want nats-server with compose's command %v", path, d.entrypoint, d.cmd, svc.Command)
			}
			if want := []string{"gw", "health", "--url", "http://127.0.0.1:8222/healthz"}; !slices.Equal(d.healthcheck, want) {
				t.Errorf("%s: HEALTHCHECK %v, want %v", path, d.healthcheck, want)
			}
		}
	}
	if !strings.Contains(string(readFile(t, "deploy/build.sh")), "cp -R examples/files/sample/. ") {
		t.Error("deploy/build.sh does not copy the files server's sample tree")
	}
}
