// Reject is the gw collision policy that exposes items under their own,
// unprefixed names and rejects an item whose name an earlier server (in
// configuration order) already uses, with the reason
// "name collides with <server>/<name>". Use it when a collision is a
// configuration mistake to fix, not something to paper over.
package main

import (
	"github.com/gwmcp/gw/policies/guest/internal/unprefixed"
	"github.com/gwmcp/gw/policies/guest/kit/collision"
)

func init() {
	collision.Handle(func(in *collision.Input) collision.Resolution {
		return unprefixed.Resolve(in, func(owner, name string) string {
			return "name collides with " + owner + "/" + name
		})
	})
}

func main() {}
