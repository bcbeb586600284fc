package mcpface

import (
	"bytes"
	"encoding/json"
	"errors"
	"maps"
	"slices"

	"github.com/gwmcp/gw/transport/jsonrpc"
)

// This file is the protocol half of the face: what a request means and what
// the answers look like, in both eras, free of byte streams. The Streamable
// HTTP face (transport/httpface) reuses it through its exported names.

// Protocol versions the face speaks, newest first.
const (
	// ModernVersion is the stateless revision: _meta on every request.
	ModernVersion = "2026-07-28"
	// LegacyVersion is the newest revision with the initialize handshake.
	LegacyVersion = "2025-11-25"
)

var (
	modernVersions = []string{ModernVersion}
	legacyVersions = []string{LegacyVersion, "2025-06-18", "2025-03-26", "2024-11-05"}
)

// Methods and notifications a face handles itself; the rest go to the
// Handler.
const (
	MethodInitialize  = "initialize"
	MethodPing        = "ping"
	MethodDiscover    = "server/discover"
	MethodListen      = "subscriptions/listen"
	MethodSubscribe   = "resources/subscribe"
	MethodUnsubscribe = "resources/unsubscribe"
	MethodSetLevel    = "logging/setLevel"

	NotifInitialized  = "notifications/initialized"
	NotifCancelled    = "notifications/cancelled"
	NotifProgress     = "notifications/progress"
	NotifAcknowledged = "notifications/subscriptions/acknowledged"
	NotifUpdated      = "notifications/resources/updated"
	NotifMessage      = "notifications/message"
)

// logLevels are the syslog severities of notifications/message, least
// severe first.
var logLevels = []string{"debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"}

// ValidLogLevel reports whether level is one of the syslog severities.
func ValidLogLevel(level string) bool { return slices.Contains(logLevels, level) }

// LogAllows reports whether a message of level passes a client's minimum
// level min ("" lets everything through; an unknown level passes).
func LogAllows(min, level string) bool {
	m, l := slices.Index(logLevels, min), slices.Index(logLevels, level)
	return m < 0 || l < 0 || l >= m
}

// _meta keys of the modern era.
const (
	metaProtocolVersion    = "io.modelcontextprotocol/protocolVersion"
	metaClientCapabilities = "io.modelcontextprotocol/clientCapabilities"
	metaClientInfo         = "io.modelcontextprotocol/clientInfo"
	metaServerInfo         = "io.modelcontextprotocol/serverInfo"
	metaSubscriptionID     = "io.modelcontextprotocol/subscriptionId"
)

// Era is the protocol generation a session speaks.
type Era int

// Eras. A session's era is decided by its first request and never changes.
const (
	EraUnknown Era = iota // no request decided it yet
	EraLegacy             // initialize handshake (2025-11-25 and earlier)
	EraModern             // per-request _meta (2026-07-28)
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

// Kind is a list whose changes clients can be told of.
type Kind uint8

// Kinds, as bits so that pending changes coalesce.
const (
	KindTools Kind = 1 << iota
	KindPrompts
	KindResources
)

// kinds lists every Kind in announcement order.
var kinds = []Kind{KindTools, KindPrompts, KindResources}

// Method is the list_changed notification of k.
func (k Kind) Method() string {
	switch k {
	case KindTools:
		return "notifications/tools/list_changed"
	case KindPrompts:
		return "notifications/prompts/list_changed"
	default:
		return "notifications/resources/list_changed"
	}
}

// String names k as in the capabilities: tools, prompts, resources.
func (k Kind) String() string {
	switch k {
	case KindTools:
		return "tools"
	case KindPrompts:
		return "prompts"
	case KindResources:
		return "resources"
	}
	return "unknown"
}

// serverCapabilities is what gw serves, in both eras: everything a merged
// namespace has, with change notifications.
var serverCapabilities = map[string]any{
	"tools":     map[string]any{"listChanged": true},
	"prompts":   map[string]any{"listChanged": true},
	"resources": map[string]any{"subscribe": true, "listChanged": true},
}

// RequestMeta is what a face reads of a request's params: its _meta
// members, matched by exact key (params come from the client).
type RequestMeta struct {
	hasMeta       bool
	version       string // io.modelcontextprotocol/protocolVersion; "" when absent
	versionBad    bool   // present but not a string
	capabilities  json.RawMessage
	progressToken json.RawMessage // _meta.progressToken, nil when absent
}

// DecodeFailure is the answer to a message jsonrpc.Decode refused: a parse
// error (-32700) for bytes that are not JSON, else an invalid request
// (-32600) with the id when it could be read.
func DecodeFailure(err error) (jsonrpc.ID, *jsonrpc.Error) {
	var de *jsonrpc.DecodeError
	if !errors.As(err, &de) {
		return jsonrpc.ID{}, jsonrpc.NewError(jsonrpc.CodeInvalidRequest, "gw: %v", err)
	}
	if de.Syntax {
		return jsonrpc.ID{}, jsonrpc.NewError(jsonrpc.CodeParseError, "gw: invalid JSON")
	}
	return de.ID, jsonrpc.NewError(jsonrpc.CodeInvalidRequest, "gw: %v", err)
}

// ReadMeta reads params._meta. Params that are not an object, or have no
// _meta object, have none. params must be valid JSON (a decoded message's
// are): the members are found by scanning, whatever the size of the
// arguments beside them.
func ReadMeta(params json.RawMessage) RequestMeta {
	var rm RequestMeta
	meta := jsonrpc.Member(params, "_meta")
	if firstByte(meta) != '{' {
		return rm
	}
	rm.hasMeta = true
	if raw := jsonrpc.Member(meta, metaProtocolVersion); raw != nil {
		if json.Unmarshal(raw, &rm.version) != nil || rm.version == "" {
			rm.version, rm.versionBad = "", true
		}
	}
	rm.capabilities = jsonrpc.Member(meta, metaClientCapabilities)
	if raw := jsonrpc.Member(meta, "progressToken"); firstByte(raw) == '"' || isInteger(raw) {
		rm.progressToken = raw
	}
	return rm
}

// Version is the request's io.modelcontextprotocol/protocolVersion; "" when
// absent or not a string.
func (rm RequestMeta) Version() string { return rm.version }

// ProgressToken is _meta.progressToken (a string or an integer), nil when
// absent.
func (rm RequestMeta) ProgressToken() json.RawMessage { return rm.progressToken }

// IsModern reports whether a request declares a modern-era version in its
// _meta (supported or not): such a request is modern traffic.
func (rm RequestMeta) IsModern() bool { return rm.version != "" || rm.versionBad }

// CheckModern validates the _meta of a modern request: a supported version
// and client capabilities that are an object.
func (rm RequestMeta) CheckModern() *jsonrpc.Error {
	if rm.versionBad || rm.version == "" {
		return jsonrpc.NewError(jsonrpc.CodeInvalidParams, "gw: params._meta[%q] must be a protocol version string", metaProtocolVersion)
	}
	if !slices.Contains(modernVersions, rm.version) {
		return UnsupportedVersion(rm.version)
	}
	if firstByte(rm.capabilities) != '{' {
		return jsonrpc.NewError(jsonrpc.CodeInvalidParams, "gw: params._meta[%q] must be an object", metaClientCapabilities)
	}
	return nil
}

// UnsupportedVersion is the -32022 error naming the versions gw speaks.
func UnsupportedVersion(requested string) *jsonrpc.Error {
	return unsupported(requested, append(slices.Clone(modernVersions), legacyVersions...))
}

// UnsupportedModernVersion is -32022 listing only the versions
// server/discover lists: where no initialize fallback exists (a stateless
// HTTP request), the error must not offer what discover does not.
func UnsupportedModernVersion(requested string) *jsonrpc.Error {
	return unsupported(requested, modernVersions)
}

func unsupported(requested string, supported []string) *jsonrpc.Error {
	data, _ := json.Marshal(map[string]any{"supported": supported, "requested": requested})
	return &jsonrpc.Error{Code: jsonrpc.CodeUnsupportedProtocolVersion, Message: "Unsupported protocol version", Data: data}
}

// EraOf reports the era of a protocol version gw speaks; EraUnknown for one
// it does not.
func EraOf(version string) Era {
	switch {
	case slices.Contains(modernVersions, version):
		return EraModern
	case slices.Contains(legacyVersions, version):
		return EraLegacy
	}
	return EraUnknown
}

// Implementation names the server in serverInfo.
type Implementation struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// InitializeParams is what a face reads of initialize.
type InitializeParams struct {
	Version      string
	Capabilities map[string]json.RawMessage // the client's declared capabilities
}

var errBadInitialize = errors.New("initialize params need protocolVersion (a string) and capabilities (an object)")

// ReadInitialize reads initialize's params by exact keys.
func ReadInitialize(params json.RawMessage) (InitializeParams, error) {
	var ip InitializeParams
	var p map[string]json.RawMessage
	if json.Unmarshal(params, &p) != nil || p == nil {
		return ip, errBadInitialize
	}
	if json.Unmarshal(p["protocolVersion"], &ip.Version) != nil || ip.Version == "" {
		return ip, errBadInitialize
	}
	if json.Unmarshal(p["capabilities"], &ip.Capabilities) != nil || ip.Capabilities == nil {
		return ip, errBadInitialize
	}
	return ip, nil
}

// LegacyVersionFor answers a client's initialize version: its own when gw
// speaks it, else the newest legacy version.
func LegacyVersionFor(requested string) string {
	if slices.Contains(legacyVersions, requested) {
		return requested
	}
	return LegacyVersion
}

// InitializeResult is the legacy handshake's answer.
func InitializeResult(version string, info Implementation, instructions string) (json.RawMessage, error) {
	// A legacy session also gets the servers' log messages (Face.Log).
	caps := maps.Clone(serverCapabilities)
	caps["logging"] = map[string]any{}
	res := map[string]any{"protocolVersion": version, "capabilities": caps, "serverInfo": info}
	if instructions != "" {
		res["instructions"] = instructions
	}
	return json.Marshal(res)
}

// DiscoverResult is server/discover's answer.
func DiscoverResult(info Implementation, instructions string) (json.RawMessage, error) {
	res := map[string]any{
		"resultType":        "complete",
		"supportedVersions": modernVersions,
		"capabilities":      serverCapabilities,
		"_meta":             map[string]any{metaServerInfo: info},
		// What gw serves changes when its configuration does: no caching
		// of the discovery itself beyond the request.
		"ttlMs":      0,
		"cacheScope": "private",
	}
	if instructions != "" {
		res["instructions"] = instructions
	}
	return json.Marshal(res)
}

// ListenFilter is a subscriptions/listen request's notifications filter.
type ListenFilter struct {
	Kinds Kind
	URIs  []string
}

// ReadListen reads params.notifications by exact keys.
func ReadListen(params json.RawMessage) (ListenFilter, *jsonrpc.Error) {
	var f ListenFilter
	bad := jsonrpc.NewError(jsonrpc.CodeInvalidParams, "gw: subscriptions/listen needs params.notifications, an object of booleans and resourceSubscriptions (strings)")
	var p map[string]json.RawMessage
	var n map[string]json.RawMessage
	if json.Unmarshal(params, &p) != nil || json.Unmarshal(p["notifications"], &n) != nil || n == nil {
		return f, bad
	}
	for key, k := range map[string]Kind{"toolsListChanged": KindTools, "promptsListChanged": KindPrompts, "resourcesListChanged": KindResources} {
		raw, ok := n[key]
		if !ok {
			continue
		}
		var on bool
		if json.Unmarshal(raw, &on) != nil {
			return f, bad
		}
		if on {
			f.Kinds |= k
		}
	}
	if raw, ok := n["resourceSubscriptions"]; ok && !isNull(raw) {
		if json.Unmarshal(raw, &f.URIs) != nil {
			return f, bad
		}
	}
	return f, nil
}

// AckParams is the acknowledgment of a listen stream, with the filter gw
// agreed to.
func AckParams(id jsonrpc.ID, kinds Kind, uris []string) map[string]any {
	n := map[string]any{}
	if kinds&KindTools != 0 {
		n["toolsListChanged"] = true
	}
	if kinds&KindPrompts != 0 {
		n["promptsListChanged"] = true
	}
	if kinds&KindResources != 0 {
		n["resourcesListChanged"] = true
	}
	if len(uris) > 0 {
		n["resourceSubscriptions"] = uris
	}
	return map[string]any{"_meta": map[string]any{metaSubscriptionID: id}, "notifications": n}
}

// SubscriptionMeta is the _meta of a notification on a listen stream.
func SubscriptionMeta(id jsonrpc.ID) map[string]any {
	return map[string]any{metaSubscriptionID: id}
}

// WithResultType returns result with "resultType":"complete" when its top
// level lacks a resultType, splicing the bytes: the rest is not re-encoded.
// A result that is not an object is returned as is.
func WithResultType(result json.RawMessage) json.RawMessage {
	result = bytes.TrimSpace(result)
	if has, ok := hasTopLevelKey(result, "resultType"); !ok || has {
		return result
	}
	return prependMembers(result, `"resultType":"complete"`)
}

// prependMembers puts members (`"key":value` text) at the front of the JSON
// object obj, copying the rest as is. obj must be an object.
func prependMembers(obj json.RawMessage, members ...string) json.RawMessage {
	obj = bytes.TrimSpace(obj)
	if len(members) == 0 || len(obj) < 2 || obj[0] != '{' {
		return obj
	}
	n := len(obj) + len(members)
	for _, m := range members {
		n += len(m)
	}
	out := make([]byte, 0, n)
	out = append(out, '{')
	for i, m := range members {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, m...)
	}
	rest := bytes.TrimSpace(obj[1:])
	if rest[0] != '}' {
		out = append(out, ',')
	}
	return append(out, rest...)
}

// cacheable are the methods whose complete results carry caching hints in
// 2026-07-28 (server/utilities/caching.mdx).
var cacheable = map[string]bool{
	"tools/list": true, "prompts/list": true, "resources/list": true,
	"resources/templates/list": true, "resources/read": true,
}

// ModernResult makes a handler's result a 2026-07-28 result of method:
// "resultType":"complete" when it names none, and for the cacheable
// methods the caching hints the spec requires when the result has none
// (a merged list, or a legacy server's answer). gw's hints are the safe
// ones: ttlMs 0 (gw tells listeners of changes on subscriptions/listen, and
// a merged list has no one server's lifetime) and cacheScope "private"
// (an authorizer may treat callers differently). Hints a server gave pass
// through, as does everything else, byte for byte.
func ModernResult(method string, result json.RawMessage) json.RawMessage {
	result = bytes.TrimSpace(result)
	// One validation, then one scan per key the method wants (one for a
	// tools/call): every modern answer passes here, whatever its size.
	if firstByte(result) != '{' || !json.Valid(result) {
		return result
	}
	var add []string
	for _, m := range []struct {
		key, member string
		want        bool
	}{
		{"resultType", `"resultType":"complete"`, true},
		{"ttlMs", `"ttlMs":0`, cacheable[method]},
		{"cacheScope", `"cacheScope":"private"`, cacheable[method]},
	} {
		if m.want && !topLevelKey(result, m.key) {
			add = append(add, m.member)
		}
	}
	return prependMembers(result, add...)
}

// hasTopLevelKey reports whether the JSON object obj has the member key at
// its top level, scanning without decoding values. ok is false when obj is
// not a well-formed object.
func hasTopLevelKey(obj []byte, key string) (has, ok bool) {
	if !json.Valid(obj) {
		return false, false
	}
	return topLevelKey(obj, key), true
}

// topLevelKey is hasTopLevelKey for obj known to be valid JSON.
func topLevelKey(obj []byte, key string) bool { return jsonrpc.Member(obj, key) != nil }

// CancelledID reads notifications/cancelled's requestId.
func CancelledID(params json.RawMessage) (jsonrpc.ID, bool) {
	var p map[string]json.RawMessage
	var id jsonrpc.ID
	if json.Unmarshal(params, &p) != nil || id.UnmarshalJSON(p["requestId"]) != nil {
		return id, false
	}
	return id, true
}

// URIOf reads params.uri.
func URIOf(params json.RawMessage) string {
	var p map[string]json.RawMessage
	var uri string
	if json.Unmarshal(params, &p) != nil || json.Unmarshal(p["uri"], &uri) != nil {
		return ""
	}
	return uri
}

func firstByte(raw []byte) byte {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return 0
	}
	return raw[0]
}

func isNull(raw []byte) bool { return string(bytes.TrimSpace(raw)) == "null" }

func isInteger(raw []byte) bool {
	var n json.Number
	if json.Unmarshal(raw, &n) != nil {
		return false
	}
	_, err := n.Int64()
	return err == nil
}
