package fleet

import (
	"testing"

	"github.com/gwmcp/gw/internal/importcheck"
)

// TestImports: the fleet view reads the bus, never a gateway's insides; it
// takes the protocol's definitions from natsface.
func TestImports(t *testing.T) {
	importcheck.Only(t,
		"github.com/nats-io/nats.go",
		"github.com/nats-io/nats.go/micro",
		"github.com/nats-io/nats.go/jetstream",
		"github.com/gwmcp/gw/transport/natsface",
	)
}
