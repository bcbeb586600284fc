package natsclient

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImports keeps the architecture rule: transport/ knows no gateway
// types. This package is the client half of natsface's protocol, so it may
// use natsface's definitions, and it serves the face contract.
func TestImports(t *testing.T) {
	allowed := map[string]bool{
		"github.com/nats-io/nats.go":             true,
		"github.com/nats-io/nats.go/micro":       true,
		"github.com/nats-io/nats.go/jetstream":   true,
		"github.com/gwmcp/gw/transport/jsonrpc":  true,
		"github.com/gwmcp/gw/transport/face":     true,
		"github.com/gwmcp/gw/transport/natsface": true,
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if first, _, _ := strings.Cut(path, "/"); !strings.Contains(first, ".") {
				continue // standard library
			}
			if !allowed[path] {
				t.Errorf("%s imports %s", name, path)
			}
		}
	}
}
