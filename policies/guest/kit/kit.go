// Package kit is the Go side of gw's policy ABI v1 (docs/POLICY_ABI.md). It
// hides the ABI: importing it (directly or through kit/authz or
// kit/collision) gives a module the gw_abi_version, gw_alloc and gw_init
// exports, a pinned input buffer and packed outputs. A policy registers its
// handlers in an init function:
//
//	package main
//
//	import "github.com/gwmcp/gw/policies/guest/kit/authz"
//
//	func init() {
//		authz.Handle(func(in *authz.Input) authz.Decision {
//			if in.Caller.ID == "" {
//				return authz.Deny("anonymous callers may not call tools")
//			}
//			return authz.Allow()
//		})
//	}
//
//	func main() {}
//
// built as a reactor:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o my.wasm .
//
// Registration belongs in init: a reactor's _initialize runs package
// initialisers, never main. A module exports only the decisions it imports:
// kit/authz adds gw_authorize, kit/collision adds gw_collision.
//
// The kit also offers what its own decoders use: Scanner, an allocation-light
// JSON pull scanner, and AppendString, a JSON string writer. In a wasip1
// guest under wazero, encoding/json takes about 18 µs to decode a 90-byte
// authorize input; authz.Parse, built on Scanner, about 2.5 µs for a
// 160-byte one, without allocating.
//
// Everything except the wasm exports is plain Go, so policies are unit-tested
// natively with go test (see authz.Eval and collision.Eval).
package kit

import "github.com/gwmcp/gw/policies/guest/kit/internal/abi"

// Version is the policy ABI major version this kit implements.
const Version = abi.Version

// Init registers the policy's config handler. gw calls it once per instance,
// before any decision, with the config JSON from gw's configuration ({} when
// there is none); an error fails the load and its text is shown to the
// operator. Without a handler, any config other than {} is refused. Call Init
// at most once, from an init function.
func Init(f func(config []byte) error) { abi.SetInit(f) }

// AppendString appends s to dst as a JSON string, escaped as encoding/json
// escapes it (HTML escaping off); invalid UTF-8 becomes U+FFFD.
func AppendString(dst []byte, s string) []byte { return abi.AppendString(dst, s) }
