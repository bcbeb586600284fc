//go:build wasip1

package collision

import "github.com/gwmcp/gw/policies/guest/kit/internal/abi"

//go:wasmexport gw_collision
func gwCollision(ptr, n uint32) uint64 {
	input, ok := abi.Input(ptr, n)
	if !ok {
		println("gw policy: gw_collision: input is not in the gw_alloc buffer")
		return 0
	}
	out, err := eval(input, abi.Buf())
	if err != nil {
		println("gw policy:", err.Error())
		return 0
	}
	return abi.Emit(out)
}
