package plugins

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// ABIVersion is the policy ABI major version this host implements (docs/POLICY_ABI.md).
const ABIVersion = 1

// Names of the exports and imports of ABI v1.
const (
	exportMemory     = "memory"
	exportInitialize = "_initialize"
	exportStart      = "_start"
	exportVersion    = "gw_abi_version"
	exportAlloc      = "gw_alloc"
	exportInit       = "gw_init"

	// ExportAuthorize is the decision export for call authorization.
	ExportAuthorize = "gw_authorize"
	// ExportCollision is the decision export for name collision resolution.
	ExportCollision = "gw_collision"

	wasiModule = "wasi_snapshot_preview1"
)

// exportID indexes the decision exports.
type exportID int

const (
	exportAuthorize exportID = iota
	exportCollision
	numDecisions
)

// decisionNames is indexed by exportID.
var decisionNames = [numDecisions]string{ExportAuthorize, ExportCollision}

// decisionID returns the exportID of a decision export name.
func decisionID(name string) (exportID, bool) {
	for i, n := range decisionNames {
		if n == name {
			return exportID(i), true
		}
	}
	return 0, false
}

var (
	sigNone     = signature{}
	sigVersion  = signature{results: []api.ValueType{api.ValueTypeI32}}
	sigAlloc    = signature{params: []api.ValueType{api.ValueTypeI32}, results: []api.ValueType{api.ValueTypeI32}}
	sigDecision = signature{params: []api.ValueType{api.ValueTypeI32, api.ValueTypeI32}, results: []api.ValueType{api.ValueTypeI64}}
)

// signature is a function type.
type signature struct{ params, results []api.ValueType }

func (s signature) matches(def api.FunctionDefinition) bool {
	return slices.Equal(s.params, def.ParamTypes()) && slices.Equal(s.results, def.ResultTypes())
}

func (s signature) String() string {
	return "(" + valueTypes(s.params) + ") -> (" + valueTypes(s.results) + ")"
}

func sigOf(def api.FunctionDefinition) signature {
	return signature{params: def.ParamTypes(), results: def.ResultTypes()}
}

func valueTypes(ts []api.ValueType) string {
	names := make([]string, len(ts))
	for i, t := range ts {
		names[i] = api.ValueTypeName(t)
	}
	return strings.Join(names, ", ")
}

// shape is what the ABI check learned about a compiled module.
type shape struct {
	decisions   [numDecisions]bool
	hasInit     bool // gw_init
	hasInitFunc bool // _initialize
}

// checkShape checks a compiled module against ABI v1 without running it: imports, the memory
// export, and the presence and signature of each function export. It returns the first problem
// as an *Error for module name.
func checkShape(name string, c wazero.CompiledModule, wasi map[string]api.FunctionDefinition) (shape, error) {
	var sh shape
	fail := func(kind error, export, detail string) (shape, error) {
		return shape{}, &Error{Module: name, Export: export, Kind: kind, Detail: detail}
	}

	for _, def := range c.ImportedFunctions() {
		mod, field, _ := def.Import()
		if mod == checkpointModule && field == checkpointName {
			continue // added by Load; the original module may not import from checkpointModule
		}
		if mod != wasiModule {
			return fail(ErrImport, "", "imports function "+mod+"."+field+": only "+wasiModule+" may be imported")
		}
		host, ok := wasi[field]
		if !ok {
			return fail(ErrImport, "", "imports function "+mod+"."+field+", which the host does not provide")
		}
		if !sigOf(host).matches(def) {
			return fail(ErrImport, "", "imports function "+mod+"."+field+" with signature "+sigOf(def).String()+
				", the host's is "+sigOf(host).String())
		}
	}
	for _, def := range c.ImportedMemories() {
		mod, field, _ := def.Import()
		return fail(ErrImport, "", "imports memory "+mod+"."+field+": the module must define its own memory")
	}

	fns := c.ExportedFunctions()
	if _, ok := fns[exportStart]; ok {
		return fail(ErrNotReactor, "", "exports _start: a WASI command cannot be a policy, build a reactor "+
			"(Go: -buildmode=c-shared; wasi-libc: -mexec-model=reactor)")
	}
	if _, ok := c.ExportedMemories()[exportMemory]; !ok {
		if _, isFn := fns[exportMemory]; isFn {
			return fail(ErrBadSignature, exportMemory, "is a function, want a memory")
		}
		return fail(ErrMissingExport, exportMemory, "not exported")
	}

	check := func(export string, want signature, required bool) (present bool, err error) {
		def, ok := fns[export]
		if !ok {
			if required {
				return false, &Error{Module: name, Export: export, Kind: ErrMissingExport, Detail: "not exported"}
			}
			return false, nil
		}
		if !want.matches(def) {
			return false, &Error{Module: name, Export: export, Kind: ErrBadSignature,
				Detail: "signature " + sigOf(def).String() + ", want " + want.String()}
		}
		return true, nil
	}
	var err error
	if sh.hasInitFunc, err = check(exportInitialize, sigNone, false); err != nil {
		return shape{}, err
	}
	if _, err = check(exportVersion, sigVersion, true); err != nil {
		return shape{}, err
	}
	if _, err = check(exportAlloc, sigAlloc, true); err != nil {
		return shape{}, err
	}
	if sh.hasInit, err = check(exportInit, sigDecision, false); err != nil {
		return shape{}, err
	}
	anyDecision := false
	for i, n := range decisionNames {
		if sh.decisions[i], err = check(n, sigDecision, false); err != nil {
			return shape{}, err
		}
		anyDecision = anyDecision || sh.decisions[i]
	}
	if !anyDecision {
		return fail(ErrMissingExport, "", "exports no decision function: want "+
			strings.Join(decisionNames[:], " or ")+" "+sigDecision.String())
	}
	return sh, nil
}

// initAnswer interprets gw_init's output: ok for {"ok":true} (or no output, 0), otherwise the
// reason to refuse the load. Members are matched case-sensitively; unknown members are ignored.
func initAnswer(out []byte) (reason string, ok bool) {
	if len(out) == 0 {
		return "", true
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(out, &m); err != nil || m == nil {
		return "gw_init answered something other than a JSON object", false
	}
	if raw, has := m["error"]; has {
		var why string
		if json.Unmarshal(raw, &why) != nil {
			why = string(raw)
		}
		return "refused the configuration: " + why, false
	}
	if raw, has := m["ok"]; has && bytes.Equal(bytes.TrimSpace(raw), []byte("true")) {
		return "", true
	}
	return `gw_init answered neither {"ok":true} nor {"error":"..."}`, false
}
