package natsface

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImports keeps the architecture rule: transport/ knows no sessions and no gateway types, so
// this package imports only the standard library, nats.go and transport/jsonrpc.
func TestImports(t *testing.T) {
	allowed := map[string]bool{
		"github.com/nats-io/nats.go":            true,
		"github.com/nats-io/nats.go/micro":      true,
		"github.com/nats-io/nats.go/jetstream":  true,
		"github.com/gwmcp/gw/transport/jsonrpc": true,
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
