package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/gwmcp/gw/transport/jsonrpc"
)

// maxInputRounds bounds multi round-trip retries of one request, so a server
// that keeps asking cannot hold a caller forever.
const maxInputRounds = 8

// open detects the server's era and opens the session, following the stdio
// transport's dual-era rules: probe server/discover with the modern version
// in _meta; a DiscoverResult or a recognised modern error means modern; any
// other error or a timeout means legacy, so fall back to initialize.
func (s *session) open(ctx context.Context) error {
	err := s.discover(ctx, modernVersions[0], 0)
	if err == nil {
		return nil
	}
	var legacy *legacyHint
	switch {
	case errors.As(err, &legacy):
		return s.initialize(ctx, legacy.versions)
	case ctx.Err() != nil:
		return s.handshakeError(ctx.Err())
	case errors.Is(err, errProbeFailed):
		s.log.Debug("server/discover failed; falling back to initialize", "error", err)
		return s.initialize(ctx, nil)
	default:
		return err
	}
}

var errProbeFailed = errors.New("server/discover probe failed")

// legacyHint says the probe found a server that lists only legacy versions.
type legacyHint struct{ versions []string }

func (h *legacyHint) Error() string { return "server supports only legacy versions" }

// discover probes with version; round counts -32022 retries.
func (s *session) discover(ctx context.Context, version string, round int) error {
	pctx, cancel := context.WithTimeout(ctx, s.cfg.discoverTimeout)
	defer cancel()
	params, err := s.metaParams(nil, version)
	if err != nil {
		return err
	}
	res, err := s.call(pctx, methodDiscover, params, callOptions{noCancel: true})
	var rpcErr *jsonrpc.Error
	switch {
	case err == nil:
	case errors.As(err, &rpcErr) && rpcErr.Code == jsonrpc.CodeUnsupportedProtocolVersion && round == 0:
		supported := unsupportedVersions(rpcErr)
		if v, ok := pickVersion(modernVersions, supported); ok {
			return s.discover(ctx, v, round+1)
		}
		if _, ok := pickVersion(legacyVersions, supported); ok {
			return &legacyHint{versions: supported}
		}
		return fmt.Errorf("server %q: supports protocol versions %v; gw speaks %v", s.name, supported, allVersions())
	case errors.Is(err, ErrSessionClosed):
		return s.handshakeError(err)
	case ctx.Err() != nil:
		return s.handshakeError(ctx.Err())
	default:
		return fmt.Errorf("%w: %v", errProbeFailed, err)
	}
	var dr struct {
		SupportedVersions []string        `json:"supportedVersions"`
		Capabilities      json.RawMessage `json:"capabilities"`
		Instructions      string          `json:"instructions"`
	}
	if err := decodeStrictFields(res, &dr); err != nil {
		return fmt.Errorf("%w: bad DiscoverResult: %v", errProbeFailed, err)
	}
	if dr.SupportedVersions == nil {
		// Not a DiscoverResult: some legacy servers answer unknown methods
		// with an empty result.
		return fmt.Errorf("%w: result has no supportedVersions", errProbeFailed)
	}
	v, ok := pickVersion(modernVersions, dr.SupportedVersions)
	if !ok {
		if _, ok := pickVersion(legacyVersions, dr.SupportedVersions); ok {
			return &legacyHint{versions: dr.SupportedVersions}
		}
		return fmt.Errorf("server %q: supports protocol versions %v; gw speaks %v", s.name, dr.SupportedVersions, allVersions())
	}
	s.era, s.version, s.rawCaps, s.instructions = EraModern, v, dr.Capabilities, dr.Instructions
	if meta, ok := field(res, "_meta"); ok {
		if si, ok := field(meta, metaServerInfo); ok {
			_ = json.Unmarshal(si, &s.serverInfo)
		}
	}
	_ = json.Unmarshal(dr.Capabilities, &s.caps)
	return nil
}

// initialize runs the legacy handshake.
func (s *session) initialize(ctx context.Context, supported []string) error {
	want := legacyVersions[0]
	if len(supported) > 0 {
		if v, ok := pickVersion(legacyVersions, supported); ok {
			want = v
		}
	}
	params := mustJSON(map[string]any{
		"protocolVersion": want,
		"capabilities":    s.clientCapabilities(),
		"clientInfo":      s.cfg.clientInfo,
	})
	res, err := s.call(ctx, methodInitialize, params, callOptions{})
	if err != nil {
		if errors.Is(err, ErrSessionClosed) || ctx.Err() != nil {
			return s.handshakeError(err)
		}
		return fmt.Errorf("server %q: initialize: %w", s.name, err)
	}
	var ir struct {
		ProtocolVersion string          `json:"protocolVersion"`
		Capabilities    json.RawMessage `json:"capabilities"`
		ServerInfo      Implementation  `json:"serverInfo"`
		Instructions    string          `json:"instructions"`
	}
	if err := decodeStrictFields(res, &ir); err != nil {
		return fmt.Errorf("server %q: bad initialize result: %w", s.name, err)
	}
	if !slices.Contains(legacyVersions, ir.ProtocolVersion) {
		return fmt.Errorf("server %q: answered initialize with protocol version %q; gw speaks %v", s.name, ir.ProtocolVersion, allVersions())
	}
	s.era, s.version, s.rawCaps, s.serverInfo, s.instructions = EraLegacy, ir.ProtocolVersion, ir.Capabilities, ir.ServerInfo, ir.Instructions
	_ = json.Unmarshal(ir.Capabilities, &s.caps)
	if err := s.notify(ctx, methodInitialized, nil); err != nil {
		return fmt.Errorf("server %q: send initialized: %w", s.name, err)
	}
	return nil
}

// handshakeError explains a failed handshake in one line, naming the likely
// cause: the process died, or it printed something that is not MCP.
func (s *session) handshakeError(err error) error {
	detail := err.Error()
	if errors.Is(err, context.DeadlineExceeded) {
		detail = "no answer to server/discover or initialize before the start timeout"
	}
	if n := s.garbageLines.Load(); n > 0 {
		first := ""
		if p := s.firstGarbage.Load(); p != nil {
			first = *p
		}
		return fmt.Errorf("server %q: %w: %s; stdout had %d non-JSON-RPC line(s), first: %q", s.name, ErrNotMCP, detail, n, first)
	}
	if c := s.cause(); c != nil && !strings.Contains(detail, c.Error()) {
		detail += ": " + c.Error()
	}
	return fmt.Errorf("server %q: handshake failed: %s", s.name, detail)
}

func unsupportedVersions(e *jsonrpc.Error) []string {
	var d struct {
		Supported []string `json:"supported"`
	}
	_ = json.Unmarshal(e.Data, &d)
	return d.Supported
}

func allVersions() []string { return append(slices.Clone(modernVersions), legacyVersions...) }

// clientCapabilities declares what the client handler offers.
func (s *session) clientCapabilities() map[string]any {
	caps := map[string]any{}
	if h := s.cfg.handler; h != nil {
		if h.Supports(MethodSampling) {
			caps["sampling"] = map[string]any{}
		}
		if h.Supports(MethodElicitation) {
			caps["elicitation"] = map[string]any{"form": map[string]any{}}
		}
		if h.Supports(MethodRoots) {
			caps["roots"] = map[string]any{}
		}
	}
	return caps
}

// metaParams adds the per-request _meta of the modern era.
func (s *session) metaParams(params json.RawMessage, version string) (json.RawMessage, error) {
	return withMeta(params, map[string]json.RawMessage{
		metaProtocolVersion:    mustJSON(version),
		metaClientInfo:         mustJSON(s.cfg.clientInfo),
		metaClientCapabilities: mustJSON(s.clientCapabilities()),
	})
}

// request sends a request in the session's era. Modern requests carry _meta;
// a modern input_required result is answered through the client handler and
// the request retried, so callers only ever see a complete result.
func (s *session) request(ctx context.Context, method string, params json.RawMessage, opts callOptions) (json.RawMessage, error) {
	if s.era != EraModern {
		return s.call(ctx, method, params, opts)
	}
	base := params
	for round := 0; ; round++ {
		p, err := s.metaParams(base, s.version)
		if err != nil {
			return nil, fmt.Errorf("server %q: %s: %w", s.name, method, err)
		}
		res, err := s.call(ctx, method, p, opts)
		if err != nil {
			return nil, err
		}
		switch rt := resultType(res); rt {
		case "complete":
			return res, nil
		case "input_required":
			if round >= maxInputRounds {
				return nil, fmt.Errorf("server %q: %s: still asking for input after %d rounds", s.name, method, round)
			}
			if base, err = s.answerInput(ctx, method, params, res); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("server %q: %s: unknown resultType %q", s.name, method, rt)
		}
	}
}

// answerInput serves an InputRequiredResult's requests through the client
// handler and returns the original params plus inputResponses and the
// server's requestState, echoed exactly.
func (s *session) answerInput(ctx context.Context, method string, original, res json.RawMessage) (json.RawMessage, error) {
	var ir struct {
		InputRequests map[string]struct {
			Method string          `json:"method"`
			Params json.RawMessage `json:"params"`
		} `json:"inputRequests"`
	}
	if err := json.Unmarshal(res, &ir); err != nil {
		return nil, fmt.Errorf("server %q: %s: bad InputRequiredResult: %w", s.name, method, err)
	}
	state, hasState := field(res, "requestState")
	out := original
	var err error
	if len(ir.InputRequests) > 0 {
		responses := make(map[string]json.RawMessage, len(ir.InputRequests))
		for key, req := range ir.InputRequests {
			h := s.cfg.handler
			if h == nil || !h.Supports(req.Method) {
				return nil, fmt.Errorf("server %q: %s: server asked for %s, which this gateway does not offer", s.name, method, req.Method)
			}
			r, err := h.HandleClientRequest(ctx, ClientRequest{Server: s.name, Method: req.Method, Params: req.Params, Related: method})
			if err != nil {
				return nil, fmt.Errorf("server %q: %s: answering %s: %w", s.name, method, req.Method, err)
			}
			responses[key] = r
		}
		if out, err = setField(out, "inputResponses", mustJSON(responses)); err != nil {
			return nil, err
		}
	} else if out, err = setField(out, "inputResponses", nil); err != nil {
		return nil, err
	}
	if hasState {
		out, err = setField(out, "requestState", state)
	} else {
		out, err = setField(out, "requestState", nil)
	}
	return out, err
}

// decodeStrictFields decodes a JSON object into v after checking that every
// member v names is spelled exactly, so "Tools" never stands in for "tools".
func decodeStrictFields(raw json.RawMessage, v any) error {
	m, err := objectFields(raw)
	if err != nil {
		return err
	}
	exact := make(map[string]json.RawMessage, len(m))
	for k, val := range m {
		exact[k] = val
	}
	// Re-marshal only the members whose keys are canonical for v: Go's
	// decoder would otherwise fold case.
	b, err := json.Marshal(exactKeysFor(v, exact))
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}
