package httpface

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImports keeps the architecture rule: a face knows no gateway types,
// so this package imports only the standard library and gw's transport
// packages it builds on.
func TestImports(t *testing.T) {
	allowed := map[string]bool{
		"github.com/gwmcp/gw/transport/face":    true,
		"github.com/gwmcp/gw/transport/jsonrpc": true,
		"github.com/gwmcp/gw/transport/mcpface": true,
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
