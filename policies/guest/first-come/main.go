// First-come is the gw collision policy that exposes items under their own,
// unprefixed names; when servers share a name, the first in configuration
// order keeps it and later ones are reported as rejected with the reason
// "shadowed by <server>".
package main

import (
	"github.com/gwmcp/gw/policies/guest/internal/unprefixed"
	"github.com/gwmcp/gw/policies/guest/kit/collision"
)

func init() {
	collision.Handle(func(in *collision.Input) collision.Resolution {
		return unprefixed.Resolve(in, func(owner, _ string) string { return "shadowed by " + owner })
	})
}

func main() {}
