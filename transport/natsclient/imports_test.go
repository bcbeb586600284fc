package natsclient

import (
	"testing"

	"github.com/gwmcp/gw/internal/importcheck"
)

// TestImports keeps the architecture rule: transport/ knows no gateway
// types. This package is the client half of natsface's protocol, so it may
// use natsface's definitions, and it serves the face contract.
func TestImports(t *testing.T) {
	importcheck.Only(t,
		"github.com/nats-io/nats.go",
		"github.com/nats-io/nats.go/micro",
		"github.com/nats-io/nats.go/jetstream",
		"github.com/gwmcp/gw/transport/jsonrpc",
		"github.com/gwmcp/gw/transport/face",
		"github.com/gwmcp/gw/transport/natsface",
	)
}
