// Package policies holds the policy modules gw ships, built from guest/ (Go,
// with the policy kit) and c/ (C, with wasi-libc) and embedded in the gw
// binary. Each is a WebAssembly module implementing gw's policy ABI v1
// (docs/POLICY_ABI.md):
//
//	allow-all         authorize: allow every call
//	allowlist         authorize: allow callers and tools listed by rules
//	read-only         authorize: allow only tools with readOnlyHint true
//	deny-destructive  authorize: deny tools with destructiveHint true (C)
//	prefix            collision: server + separator + name, like gw's default
//	reject            collision: own names; a name taken earlier is rejected
//	first-come        collision: own names; the first server keeps a name
//
// The .wasm files are committed; `make -C policies check` proves they match
// their sources.
package policies

import (
	"embed"
	"io/fs"
	"slices"
	"strings"
)

//go:embed *.wasm
var modules embed.FS

// Builtin returns a copy of the named module's bytes ("prefix", not
// "prefix.wasm"), and false when gw ships no such module.
func Builtin(name string) ([]byte, bool) {
	if name == "" || strings.ContainsAny(name, `/\.`) {
		return nil, false
	}
	b, err := modules.ReadFile(name + ".wasm")
	if err != nil {
		return nil, false
	}
	return b, true
}

// Names returns the names of the shipped modules, sorted.
func Names() []string {
	entries, err := fs.ReadDir(modules, ".")
	if err != nil {
		return nil
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, strings.TrimSuffix(e.Name(), ".wasm"))
	}
	slices.Sort(names)
	return names
}
