package httpface

import (
	"testing"

	"github.com/gwmcp/gw/internal/importcheck"
)

// TestImports keeps the architecture rule: a face knows no gateway types,
// so this package imports only the standard library and gw's transport
// packages it builds on.
func TestImports(t *testing.T) {
	importcheck.Only(t,
		"github.com/gwmcp/gw/transport/face",
		"github.com/gwmcp/gw/transport/jsonrpc",
		"github.com/gwmcp/gw/transport/mcpface",
	)
}
