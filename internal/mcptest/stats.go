package mcptest

import (
	"encoding/json"
	"slices"
)

// Stats is the JSON text the stats tool returns. Tests unmarshal it to check
// what the client sent. Counters include the stats call itself.
type Stats struct {
	Era string `json:"era"`

	// Initialize counts initialize requests (a second one is refused).
	Initialize int `json:"initialize"`
	// Initialized counts notifications/initialized.
	Initialized int `json:"initialized"`
	// Discover counts server/discover requests, answered or not.
	Discover int `json:"discover"`

	// Requests counts every request; Methods counts them by method.
	Requests int            `json:"requests"`
	Methods  map[string]int `json:"methods"`
	// ListCalls counts tools/list, prompts/list, resources/list and
	// resources/templates/list requests (each page is a call).
	ListCalls map[string]int `json:"listCalls"`

	// Cancelled holds the requestId of every notifications/cancelled received,
	// in order, whether or not the request was still in flight.
	Cancelled []json.RawMessage `json:"cancelled"`

	// WithoutMeta lists the methods of requests whose params._meta lacked
	// io.modelcontextprotocol/protocolVersion or clientCapabilities, in order.
	// Legacy clients are expected to appear here; modern ones never.
	WithoutMeta []string `json:"withoutMeta"`
	// LastMeta is the _meta of the most recent request that had one.
	LastMeta *MetaSeen `json:"lastMeta,omitempty"`

	// Legacy is what the client declared in initialize, if it sent one.
	Legacy *LegacyHello `json:"legacy,omitempty"`

	// UnexpectedResponses counts client responses whose id matched no
	// outstanding server-to-client request.
	UnexpectedResponses int `json:"unexpectedResponses"`
	// Subscriptions is the number of open subscriptions/listen streams.
	Subscriptions int `json:"subscriptions"`
}

// MetaSeen is a request's _meta as the server received it.
type MetaSeen struct {
	Method             string          `json:"method"`
	ProtocolVersion    string          `json:"protocolVersion,omitempty"`
	ClientInfo         json.RawMessage `json:"clientInfo,omitempty"`
	ClientCapabilities json.RawMessage `json:"clientCapabilities,omitempty"`
	Raw                json.RawMessage `json:"raw"`
}

// LegacyHello is the client's side of the initialize handshake.
type LegacyHello struct {
	ProtocolVersion string          `json:"protocolVersion"`
	ClientInfo      json.RawMessage `json:"clientInfo,omitempty"`
	Capabilities    json.RawMessage `json:"capabilities,omitempty"`
}

// clone returns a deep enough copy of st to marshal outside the lock.
func (st *Stats) clone() Stats {
	c := *st
	c.Methods = make(map[string]int, len(st.Methods))
	for k, v := range st.Methods {
		c.Methods[k] = v
	}
	c.ListCalls = make(map[string]int, len(st.ListCalls))
	for k, v := range st.ListCalls {
		c.ListCalls[k] = v
	}
	c.Cancelled = slices.Clone(st.Cancelled)
	c.WithoutMeta = slices.Clone(st.WithoutMeta)
	if st.LastMeta != nil {
		m := *st.LastMeta
		c.LastMeta = &m
	}
	if st.Legacy != nil {
		l := *st.Legacy
		c.Legacy = &l
	}
	if c.Cancelled == nil {
		c.Cancelled = []json.RawMessage{}
	}
	if c.WithoutMeta == nil {
		c.WithoutMeta = []string{}
	}
	return c
}
