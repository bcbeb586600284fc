package natsface

import (
	"testing"

	"github.com/gwmcp/gw/internal/importcheck"
)

// TestImports keeps the architecture rule: transport/ knows no sessions and no gateway types, so
// this package imports only the standard library, nats.go, transport/jsonrpc and the JSON scanner it uses.
func TestImports(t *testing.T) {
	importcheck.Only(t,
		"github.com/nats-io/nats.go",
		"github.com/nats-io/nats.go/micro",
		"github.com/nats-io/nats.go/jetstream",
		"github.com/gwmcp/gw/transport/jsonrpc",
		"github.com/gwmcp/gw/internal/jsonscan",
		"github.com/gwmcp/gw/internal/workers",
	)
}
