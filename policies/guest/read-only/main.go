// Read-only is the gw authorize policy that allows only tools whose
// annotations say readOnlyHint: true. A tool that leaves the hint out is
// denied: MCP's default for readOnlyHint is false.
package main

import "github.com/gwmcp/gw/policies/guest/kit/authz"

func init() { authz.Handle(decide) }

func decide(in *authz.Input) authz.Decision {
	if in.Annotations.ReadOnlyHint.Or(false) {
		return authz.Allow()
	}
	return authz.Deny(`read-only policy: tool "` + in.Name + `" is not read-only`)
}

func main() {}
