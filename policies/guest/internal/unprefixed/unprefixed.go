// Package unprefixed is the shared core of the collision policies that
// expose items under their own names (reject, first-come): the first server
// to list a name keeps it, later ones are rejected.
package unprefixed

import "github.com/gwmcp/gw/policies/guest/kit/collision"

// Resolve exposes every item under its own name, in configuration order.
// An item whose name is already taken by an earlier server is rejected with
// reason(owner, name); a server listing a name twice, and a name gw would
// refuse (the MCP rule ^[A-Za-z0-9_.-]{1,128}$), are rejected too, so one odd
// item never costs the whole catalog.
func Resolve(in *collision.Input, reason func(owner, name string) string) collision.Resolution {
	var res collision.Resolution
	owner := map[string]string{}
	for _, s := range in.Servers {
		for _, it := range s.Items {
			if !ValidName(it.Name) {
				res.Reject(s.Server, it.Name, "name breaks the MCP naming rule [A-Za-z0-9_.-]{1,128}")
				continue
			}
			if prev, taken := owner[it.Name]; taken {
				if prev == s.Server {
					res.Reject(s.Server, it.Name, "server lists this name twice")
				} else {
					res.Reject(s.Server, it.Name, reason(prev, it.Name))
				}
				continue
			}
			owner[it.Name] = s.Server
			res.Expose(s.Server, it.Name, it.Name)
		}
	}
	return res
}

// ValidName reports whether gw accepts name as an exposed name.
func ValidName(name string) bool {
	if len(name) == 0 || len(name) > 128 {
		return false
	}
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '.', c == '-':
		default:
			return false
		}
	}
	return true
}
