//go:build wasip1

package authz

import "github.com/gwmcp/gw/policies/guest/kit/internal/abi"

// current is the Input every call reuses (one call at a time per instance).
var current Input

//go:wasmexport gw_authorize
func gwAuthorize(ptr, n uint32) uint64 {
	input, ok := abi.Input(ptr, n)
	if !ok {
		return abi.EmitString(`{"allow":false,"reason":"gw_authorize: input is not in the gw_alloc buffer"}`)
	}
	d := decide(input, &current)
	if d.Allow {
		return abi.EmitString(allowJSON)
	}
	return abi.Emit(appendDecision(abi.Buf(), d))
}
