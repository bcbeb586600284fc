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
		{"start_period:", "start_periods:"},             // unknown key, nested
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

func TestComposeServices(t *testing.T) {
	c := loadCompose(t)
	if got := slices.Sorted(maps.Keys(c.Services)); !slices.Equal(got, []string{"gw", "nats"}) {
		t.Fatalf("services = %v, want gw and nats", got)
	}

	nats := c.Services["nats"]
	if !strings.HasPrefix(nats.Image, "nats:2.15") {
		t.Errorf("nats image = %q, want nats:2.15…", nats.Image)
	}
	if !slices.Contains(nats.Command, "-js") {
		t.Errorf("nats command %v does not enable JetStream (-js)", nats.Command)
	}
	// Published on loopback only: this server has no authentication.
	if want := []string{"127.0.0.1:4222:4222", "127.0.0.1:8222:8222"}; !slices.Equal(nats.Ports, want) {
		t.Errorf("nats ports = %v, want %v", nats.Ports, want)
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
	if nats.Healthcheck == nil || !strings.Contains(strings.Join(nats.Healthcheck.Test, " "), ":8222/healthz") {
		t.Errorf("nats healthcheck does not probe the monitoring endpoint /healthz: %+v", nats.Healthcheck)
	}

	gw := c.Services["gw"]
	if gw.Build == nil || gw.Build.Context != "." || gw.Build.Dockerfile != "deploy/Dockerfile" {
		t.Fatalf("gw build = %+v, want context . and dockerfile deploy/Dockerfile", gw.Build)
	}
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

// TestDockerfile checks that the image has what compose.yaml and gw.yaml expect: a golang:1.26
// build stage compiling gw and the three example servers into /usr/local/bin of the runtime
// stage, the sample tree in /srv/files, sources that exist for every COPY, and the compose
// command as its default.
func TestDockerfile(t *testing.T) {
	gw := loadCompose(t).Services["gw"]
	instrs := parseDockerfile(t, readFile(t, gw.Build.Dockerfile))

	var froms []instruction
	var built []string
	copied := map[string]string{} // destination → source
	for _, in := range instrs {
		switch in.cmd {
		case "FROM":
			froms = append(froms, in)
		case "RUN":
			if i := slices.Index(in.args, "build"); i > 0 && in.args[i-1] == "go" {
				for _, a := range in.args[i+1:] {
					if strings.HasPrefix(a, "./") {
						built = append(built, a)
					}
				}
				if !strings.Contains(strings.Join(in.args, " "), "-o /out/") {
					t.Errorf("go build does not write to /out/: %v", in.args)
				}
			}
		case "COPY":
			var from string
			var paths []string
			for _, a := range in.args {
				if v, ok := strings.CutPrefix(a, "--from="); ok {
					from = v
				} else if !strings.HasPrefix(a, "--") {
					paths = append(paths, a)
				}
			}
			dst := paths[len(paths)-1]
			for _, src := range paths[:len(paths)-1] {
				if from == "" {
					if _, err := os.Stat(filepath.Join(root, src)); err != nil {
						t.Errorf("COPY %s: %v", src, err)
					}
				}
				copied[dst] = from + ":" + src
			}
		}
	}
	if len(froms) < 2 || !slices.Equal(froms[0].args, []string{"golang:1.26", "AS", "build"}) {
		t.Errorf("want a golang:1.26 build stage named build and a runtime stage, got %v", froms)
	}
	wantBuilt := []string{"./cmd/gw", "./examples/files", "./examples/notes", "./examples/web"}
	if slices.Sort(built); !slices.Equal(built, wantBuilt) {
		t.Errorf("go build packages = %v, want %v", built, wantBuilt)
	}
	for _, pkg := range wantBuilt {
		if _, err := os.Stat(filepath.Join(root, pkg, "main.go")); err != nil {
			t.Errorf("package %s: %v", pkg, err)
		}
	}
	if got := copied["/usr/local/bin/"]; got != "build:/out/" {
		t.Errorf("/usr/local/bin/ comes from %q, want the build stage's /out/", got)
	}
	if got := copied["/srv/files/"]; got != ":examples/files/sample/" {
		t.Errorf("/srv/files/ comes from %q, want examples/files/sample/", got)
	}
	last := instrs[len(instrs)-1]
	var cmd []string
	if last.cmd == "CMD" {
		if err := json.Unmarshal([]byte(strings.Join(last.args, " ")), &cmd); err != nil {
			t.Errorf("CMD is not in exec form: %v", err)
		}
	}
	if !slices.Equal(cmd, gw.Command) {
		t.Errorf("image CMD = %v, want compose's command %v", cmd, gw.Command)
	}
	if _, err := os.Stat(filepath.Join(root, gw.Build.Dockerfile+".dockerignore")); err != nil {
		t.Errorf("no build-context filter: %v", err)
	}
}
