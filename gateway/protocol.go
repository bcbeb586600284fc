package gateway

import (
	"encoding/json"
	"slices"

	"github.com/gwmcp/gw/internal/jsonscan"
)

// Protocol revisions gw speaks, newest first within each era.
const (
	// ModernVersion is the 2026-07-28 revision: no initialize, _meta on every
	// request, multi round-trip requests, subscriptions/listen.
	ModernVersion = "2026-07-28"
	// LegacyVersion is the 2025-11-25 revision: initialize handshake.
	LegacyVersion = "2025-11-25"
)

// modernVersions and legacyVersions are what gw accepts, in preference order.
var (
	modernVersions = []string{ModernVersion}
	legacyVersions = []string{LegacyVersion, "2025-06-18", "2025-03-26", "2024-11-05"}
)

// Era is how a server opens its session.
type Era int

// Eras.
const (
	EraUnknown Era = iota
	EraLegacy      // initialize + notifications/initialized
	EraModern      // server/discover, per-request _meta
)

func (e Era) String() string {
	switch e {
	case EraLegacy:
		return "legacy"
	case EraModern:
		return "modern"
	}
	return "unknown"
}

// Method names gw sends or handles.
const (
	methodDiscover       = "server/discover"
	methodInitialize     = "initialize"
	methodInitialized    = "notifications/initialized"
	methodPing           = "ping"
	methodCancelled      = "notifications/cancelled"
	methodProgress       = "notifications/progress"
	methodListen         = "subscriptions/listen"
	methodListenAck      = "notifications/subscriptions/acknowledged"
	methodToolsList      = "tools/list"
	methodToolsCall      = "tools/call"
	methodPromptsList    = "prompts/list"
	methodPromptsGet     = "prompts/get"
	methodResourcesList  = "resources/list"
	methodTemplatesList  = "resources/templates/list"
	methodResourcesRead  = "resources/read"
	methodResourcesSub   = "resources/subscribe"
	methodResourcesUnsub = "resources/unsubscribe"
	methodToolsChanged   = "notifications/tools/list_changed"
	methodPromptsChanged = "notifications/prompts/list_changed"
	methodResChanged     = "notifications/resources/list_changed"
	methodResUpdated     = "notifications/resources/updated"
	methodLogMessage     = "notifications/message"
	methodSetLevel       = "logging/setLevel"

	// Client features a server may ask for.
	MethodSampling    = "sampling/createMessage"
	MethodElicitation = "elicitation/create"
	MethodRoots       = "roots/list"
)

// _meta keys of 2026-07-28.
const (
	metaProtocolVersion    = "io.modelcontextprotocol/protocolVersion"
	metaClientInfo         = "io.modelcontextprotocol/clientInfo"
	metaClientCapabilities = "io.modelcontextprotocol/clientCapabilities"
	metaServerInfo         = "io.modelcontextprotocol/serverInfo"
	metaSubscriptionID     = "io.modelcontextprotocol/subscriptionId"
	metaProgressToken      = "progressToken"
)

// Implementation names a client or server.
type Implementation struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// serverCapabilities is the part of a server's capabilities gw acts on; the
// raw object is kept too.
type serverCapabilities struct {
	Tools *struct {
		ListChanged bool `json:"listChanged"`
	} `json:"tools"`
	Prompts *struct {
		ListChanged bool `json:"listChanged"`
	} `json:"prompts"`
	Resources *struct {
		Subscribe   bool `json:"subscribe"`
		ListChanged bool `json:"listChanged"`
	} `json:"resources"`
	Logging *struct{} `json:"logging"`
}

// pickVersion returns the first of ours that theirs contains.
func pickVersion(ours, theirs []string) (string, bool) {
	for _, v := range ours {
		if slices.Contains(theirs, v) {
			return v, true
		}
	}
	return "", false
}

// resultType reads a result's resultType, by exact key; absent (or null, or
// not a string) means "complete". It runs on every modern reply, so it
// scans instead of decoding, and allocates only for an unusual value.
func resultType(result json.RawMessage) string {
	start, end, n := jsonscan.Member(result, "resultType")
	if n == 0 {
		return "complete"
	}
	switch v := result[start:end]; string(v) {
	case `null`, `"complete"`:
		return "complete"
	case `"input_required"`:
		return "input_required"
	default:
		var s string
		if json.Unmarshal(v, &s) != nil {
			return "complete"
		}
		return s
	}
}
