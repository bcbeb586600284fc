// Allow-all is the gw authorize policy that allows every call. It is the
// smallest possible authorizer: gw's behaviour without a policy, as a module
// (useful as a template and for measuring the cost of the Wasm boundary).
package main

import "github.com/gwmcp/gw/policies/guest/kit/authz"

func init() {
	authz.Handle(func(*authz.Input) authz.Decision { return authz.Allow() })
}

func main() {}
