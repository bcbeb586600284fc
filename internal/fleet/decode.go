package fleet

import (
	"encoding/json"
	"errors"
	"time"
)

// What gateways publish is read by exact key at every depth, as everywhere
// in gw: encoding/json's struct decoding would take "State" for "state".

// members decodes a JSON object into its members.
func members(data []byte) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, errors.New("not an object")
	}
	return m, nil
}

// field decodes member key of m into dst, if present and of dst's type;
// dst is left alone otherwise. dst must be a scalar, a slice of scalars or
// a map with scalar values, whose decoding involves no struct field names.
func field[T any](m map[string]json.RawMessage, key string, dst *T) {
	raw, ok := m[key]
	if !ok {
		return
	}
	var v T
	if json.Unmarshal(raw, &v) == nil {
		*dst = v
	}
}

// decodeServer reads one server status object (docs/SUBJECTS.md).
func decodeServer(data []byte) (Server, bool) {
	m, err := members(data)
	if err != nil {
		return Server{}, false
	}
	var s Server
	field(m, "name", &s.Name)
	field(m, "state", &s.State)
	field(m, "pid", &s.PID)
	field(m, "failures", &s.Failures)
	field(m, "restarts", &s.Restarts)
	field(m, "lastError", &s.LastError)
	field(m, "listError", &s.ListError)
	field(m, "since", &s.Since)
	return s, s.Name != ""
}

// gatewayStatus is a gateway status event's body.
type gatewayStatus struct {
	state    string
	time     time.Time
	servers  []Server
	policies map[string]string
}

func decodeGatewayStatus(data []byte) (gatewayStatus, bool) {
	m, err := members(data)
	if err != nil {
		return gatewayStatus{}, false
	}
	var st gatewayStatus
	field(m, "state", &st.state)
	field(m, "time", &st.time)
	field(m, "policies", &st.policies)
	var servers []json.RawMessage
	field(m, "servers", &servers)
	for _, raw := range servers {
		if s, ok := decodeServer(raw); ok {
			st.servers = append(st.servers, s)
		}
	}
	return st, st.state != ""
}

// catalogTools reads a gateway's catalog: its tools' names, and which
// server each belongs to (toolsByServer; absent from older gateways).
func catalogTools(data []byte) (names []string, byServer map[string][]string, err error) {
	m, err := members(data)
	if err != nil {
		return nil, nil, err
	}
	var tools []json.RawMessage
	field(m, "tools", &tools)
	for _, raw := range tools {
		t, err := members(raw)
		if err != nil {
			continue
		}
		var name string
		field(t, "name", &name)
		if name != "" {
			names = append(names, name)
		}
	}
	field(m, "toolsByServer", &byServer)
	return names, byServer, nil
}

// auditEvent is an audit event's body (docs/OBSERVABILITY.md).
type auditEvent struct {
	Denial
	decision string
}

func decodeAudit(data []byte) (auditEvent, bool) {
	m, err := members(data)
	if err != nil {
		return auditEvent{}, false
	}
	var e auditEvent
	field(m, "time", &e.Time)
	field(m, "gateway", &e.Gateway)
	field(m, "principal", &e.Principal)
	field(m, "server", &e.Server)
	field(m, "tool", &e.Tool)
	field(m, "reason", &e.Reason)
	field(m, "policy", &e.Policy)
	field(m, "decision", &e.decision)
	return e, e.decision != ""
}
