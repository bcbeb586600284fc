package natsface

import (
	"testing"

	"github.com/gwmcp/gw/internal/importcheck"
)

// TestImports keeps the architecture rule: transport/ knows no sessions and no gateway types, so
// this package imports only the standard library, nats.go and transport/jsonrpc.
func TestImports(t *testing.T) {
	importcheck.Only(t,
		"github.com/nats-io/nats.go",
		"github.com/nats-io/nats.go/micro",
		"github.com/nats-io/nats.go/jetstream",
		"github.com/gwmcp/gw/transport/jsonrpc",
	)
}
