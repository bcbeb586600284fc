package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gwmcp/gw/gateway"
	"github.com/gwmcp/gw/internal/mcptest"
)

// These tests run gw against MCP servers nobody here wrote: the official Go
// SDK (our examples) and the npm reference servers.

// buildExamples compiles the Go SDK example servers once per test binary.
func buildExamples(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-o", dir+"/", "./examples/notes", "./examples/files", "./examples/web")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build examples: %v\n%s", err, out)
	}
	return dir
}

func TestGoSDKServersBothEras(t *testing.T) {
	bin := buildExamples(t)
	sample, _ := filepath.Abs("../examples/files/sample")
	g := start(t, gateway.Options{Servers: []gateway.ServerSpec{
		{Name: "notes", Command: bin + "/notes"},
		{Name: "files", Command: bin + "/files", Args: []string{"-root", sample}},
		{Name: "web", Command: bin + "/web", Args: []string{"-legacy"}},
	}})
	for name, era := range map[string]string{"notes": "modern", "files": "modern", "web": "legacy"} {
		if st := status(g, name); st.Era != era || st.ServerInfo.Name != name {
			t.Errorf("%s: era %q serverInfo %+v; want %q", name, st.Era, st.ServerInfo, era)
		}
	}
	var names []string
	for _, e := range g.ListTools(context.Background()) {
		names = append(names, e.Name)
	}
	want := "files__list_files files__read_file notes__add_note notes__list_notes notes__search web__fetch web__search"
	if strings.Join(names, " ") != want {
		t.Fatalf("catalog %v\nwant %s", names, want)
	}
	mustCall(t, g, "notes__add_note", map[string]any{"title": "interop", "text": "written through gw"})
	if got := text(t, mustCall(t, g, "notes__search", map[string]any{"query": "through gw"})); !strings.Contains(got, "interop") {
		t.Errorf("notes__search: %s", got)
	}
	if got := text(t, mustCall(t, g, "files__read_file", map[string]any{"path": "hello.txt"})); got == "" {
		t.Error("files__read_file returned nothing")
	}
	res, err := call(context.Background(), g, "files__read_file", map[string]any{"path": "../../go.mod"})
	if err == nil && !strings.Contains(string(res), `"isError":true`) {
		t.Errorf("escaping the root was not refused: %s", res)
	}
	if got := text(t, mustCall(t, g, "web__search", map[string]any{"query": "mcp"})); got == "" {
		t.Error("web__search returned nothing")
	}
}

func TestNPMReferenceServers(t *testing.T) {
	everything := mcptest.NPMServer(t, "mcp-server-everything")
	memory := mcptest.NPMServer(t, "mcp-server-memory")
	filesystem := mcptest.NPMServer(t, "mcp-server-filesystem")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "hello.txt"), []byte("hello from gw"), 0o644); err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	h := &handler{root: "file://" + dir} // filesystem adopts the roots it is given
	g := start(t, gateway.Options{Events: rec, Handler: h, StartTimeout: 60 * time.Second, Servers: []gateway.ServerSpec{
		{Name: "everything", Command: everything, Args: []string{"stdio"}},
		{Name: "memory", Command: memory, Env: map[string]string{"MEMORY_FILE_PATH": filepath.Join(dir, "memory.jsonl")}},
		{Name: "fs", Command: filesystem, Args: []string{dir}},
	}})
	for _, name := range []string{"everything", "memory", "fs"} {
		if st := status(g, name); st.Era != "legacy" || st.Version != gateway.LegacyVersion {
			t.Errorf("%s: era %q version %q; want legacy %s", name, st.Era, st.Version, gateway.LegacyVersion)
		}
	}
	// everything registers more tools after initialized and says so with
	// list_changed: the catalog must catch up.
	rec.waitFor(t, "catalog with everything's late tool", catalogWith("everything__simulate-research-query"))

	res := mustCall(t, g, "everything__echo", map[string]any{"message": "through gw"})
	if got := text(t, res); !strings.Contains(got, "through gw") {
		t.Errorf("everything__echo: %s", got)
	}
	res = mustCall(t, g, "everything__get-sum", map[string]any{"a": 2, "b": 40})
	if got := text(t, res); !strings.Contains(got, "42") {
		t.Errorf("everything__get-sum: %s", got)
	}
	// A server-to-client request answered through the handler.
	res = mustCall(t, g, "everything__trigger-sampling-request", map[string]any{"prompt": "capital of France?", "maxTokens": 10})
	if !strings.Contains(string(res), "sampled answer") {
		t.Errorf("sampling through gw: %s", res)
	}

	// Completion, routed by the ref's owner: the exposed prompt name is
	// rewritten to everything's own.
	comp, err := g.Complete(context.Background(), json.RawMessage(`{"ref":{"type":"ref/prompt","name":"everything__completable-prompt"},"argument":{"name":"department","value":"Eng"}}`))
	if err != nil || !strings.Contains(string(comp), "Engineering") {
		t.Errorf("completion/complete of a prompt argument: %s, %v", comp, err)
	}
	if _, err := g.Complete(context.Background(), json.RawMessage(`{"ref":{"type":"ref/prompt","name":"completable-prompt"},"argument":{"name":"department","value":"E"}}`)); !errors.Is(err, gateway.ErrUnknownPrompt) {
		t.Errorf("completion of an unexposed name: %v; want an unknown prompt", err)
	}

	mustCall(t, g, "memory__create_entities", map[string]any{"entities": []map[string]any{
		{"name": "gw", "entityType": "gateway", "observations": []string{"routes MCP calls"}},
	}})
	if got := string(mustCall(t, g, "memory__search_nodes", map[string]any{"query": "gateway"})); !strings.Contains(got, "routes MCP calls") {
		t.Errorf("memory__search_nodes: %s", got)
	}

	res = mustCall(t, g, "fs__read_text_file", map[string]any{"path": filepath.Join(dir, "hello.txt")})
	if got := text(t, res); !strings.Contains(got, "hello from gw") {
		t.Errorf("fs__read_text_file: %s", got)
	}
	res, err = call(context.Background(), g, "fs__read_text_file", map[string]any{"path": "/etc/passwd"})
	if err == nil && !strings.Contains(string(res), `"isError":true`) {
		t.Errorf("filesystem outside its root: %s", res)
	}
}
