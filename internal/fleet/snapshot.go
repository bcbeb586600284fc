package fleet

import (
	"time"
)

// Snapshot is the fleet at one moment, ready to show: gateways by name,
// each gateway's servers in its configuration order, tools sorted. It is a
// copy: the caller may keep it.
type Snapshot struct {
	Time     time.Time `json:"time"`
	Prefix   string    `json:"prefix"`
	Gateways []Gateway `json:"gateways"`
	Audit    Audit     `json:"audit"`
}

// Gateway is one gateway of the prefix, as its events, catalog and micro
// stats describe it.
type Gateway struct {
	Name string `json:"name"`
	// State is the last gateway status it published ("ready", "stopped"),
	// or "unreachable" when it said ready but answered neither of the
	// last two $SRV.STATS polls (a gateway killed without a word), or ""
	// before any status.
	State string `json:"state"`
	// Reported is the state of its last gateway status, as published.
	Reported string `json:"reported,omitempty"`
	// StatusTime is when that status was sent.
	StatusTime time.Time `json:"statusTime,omitzero"`
	// Version is the micro service version it answers with.
	Version string `json:"version,omitempty"`
	// Started is when its micro service started.
	Started time.Time `json:"started,omitzero"`
	// LastSeen is when it last answered $SRV.STATS.
	LastSeen time.Time `json:"lastSeen,omitzero"`
	// Policies maps a policy kind (authorize, collision) to the digest
	// ("sha256:…") of the module its gateway status named; authorize's is
	// that of the latest audit decision since, if any (a hot swap).
	Policies map[string]string `json:"policies,omitempty"`
	// Servers in the gateway's configuration order; servers that appeared
	// later follow in the order they did.
	Servers []Server `json:"servers"`
	// Tools is how many tools its catalog lists.
	Tools int `json:"tools"`
	// Calls are its tools/call counters and rates (every hosted tool's
	// subject and at.{gw}.tools.call together).
	Calls Rates `json:"calls"`
	// Endpoints are the micro endpoints that served anything, by name.
	Endpoints []Endpoint `json:"endpoints,omitempty"`
}

// Server is one server of a gateway.
type Server struct {
	Name      string    `json:"name"`
	State     string    `json:"state"`
	PID       int       `json:"pid,omitempty"`
	Failures  int       `json:"failures"`
	Restarts  int       `json:"restarts"`
	LastError string    `json:"lastError,omitempty"`
	ListError string    `json:"listError,omitempty"`
	Since     time.Time `json:"since,omitzero"`
	// Tools are its tools' exposed names, sorted, from the gateway's
	// catalog.
	Tools []string `json:"tools"`
}

// Rates are an endpoint's totals since its gateway started and its rates
// over the last poll interval. Window is that interval in seconds; 0 until
// two polls were answered (the rates are then 0 too).
type Rates struct {
	Requests int64 `json:"requests"`
	Errors   int64 `json:"errors"`
	Shed     int64 `json:"shed"`
	InFlight int64 `json:"inFlight"`
	// Rate and ErrorRate are requests (answered with a result or an error)
	// and errors per second over Window.
	Rate      float64 `json:"rate"`
	ErrorRate float64 `json:"errorRate"`
	// LatencyMs is the mean time to answer a request over Window, in
	// milliseconds; AvgLatencyMs the same since the gateway started.
	LatencyMs    float64 `json:"latencyMs"`
	AvgLatencyMs float64 `json:"avgLatencyMs"`
	Window       float64 `json:"window"`
}

// Endpoint is one micro endpoint's counters.
type Endpoint struct {
	Name    string `json:"name"`
	Subject string `json:"subject"`
	Rates
}

// Audit is what the audit events said: how many were seen, and the latest
// denials, newest first.
type Audit struct {
	Events  int64    `json:"events"`
	Denials int64    `json:"denials"`
	Recent  []Denial `json:"recent"`
}

// Denial is one audit event whose decision was deny.
type Denial struct {
	Time      time.Time `json:"time"`
	Gateway   string    `json:"gateway"`
	Principal string    `json:"principal"`
	Server    string    `json:"server,omitempty"`
	Tool      string    `json:"tool"`
	Reason    string    `json:"reason,omitempty"`
	Policy    string    `json:"policy,omitempty"`
}
