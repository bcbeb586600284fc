//go:build wasip1

package abi

// The exports every policy module has. The decision exports (gw_authorize,
// gw_collision) live in kit/authz and kit/collision, so a module exports
// only the decisions it imports.

//go:wasmexport gw_abi_version
func gwABIVersion() int32 { return Version }

//go:wasmexport gw_alloc
func gwAlloc(size int32) uint32 { return uint32(Alloc(size)) }

//go:wasmexport gw_init
func gwInit(ptr, n uint32) uint64 {
	config, ok := Input(ptr, n)
	if !ok {
		return EmitString(`{"error":"gw_init: input is not in the gw_alloc buffer"}`)
	}
	return Emit(Init(config, Buf()))
}
