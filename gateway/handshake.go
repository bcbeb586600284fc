package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gwmcp/gw/internal/jsonscan"
	"github.com/gwmcp/gw/transport/jsonrpc"
)

// maxInputRounds bounds multi round-trip retries of one request, so a server
// that keeps asking cannot hold a caller forever.
const maxInputRounds = 8

// open detects the server's era and opens the session, following the stdio
// transport's dual-era rules: probe server/discover with the modern version
// in _meta; a DiscoverResult or a recognised modern error means modern; any
// other error, or no answer within the discover timeout, means legacy, so
// fall back to initialize.
//
// A slow modern server (npx fetching a package, a cold JVM) may answer the
// probe after the timeout: the probe stays pending while initialize runs,
// and whichever answers first decides.
func (s *session) open(ctx context.Context) error {
	version := modernVersions[0]
	for round := 0; ; round++ {
		params, err := s.metaParams(ctx, nil, mustJSON(version))
		if err != nil {
			return err
		}
		id, probe, err := s.send(ctx, methodDiscover, params, callOptions{})
		if err != nil {
			return s.handshakeError(err)
		}
		timer := time.NewTimer(s.cfg.discoverTimeout)
		var r callReply
		select {
		case r = <-probe.reply:
			timer.Stop()
		case <-timer.C:
			return s.raceInitialize(ctx, id, probe)
		case <-ctx.Done():
			timer.Stop()
			s.retire(id.String())
			return s.handshakeError(ctx.Err())
		}
		out := s.probeOutcome(r, round)
		switch {
		case out.err != nil:
			return out.err
		case out.modern:
			return nil
		case out.retry != "":
			version = out.retry
		default:
			return s.initialize(ctx, out.legacyVersions)
		}
	}
}

// probeOutcome is what one server/discover reply means.
type probeOutcome struct {
	modern         bool     // the session is open, modern
	retry          string   // -32022: probe again with this version
	legacyVersions []string // fall back to initialize (preferring these)
	err            error    // give up
}

func (s *session) probeOutcome(r callReply, round int) probeOutcome {
	var rpcErr *jsonrpc.Error
	switch {
	case r.err == nil:
	case errors.As(r.err, &rpcErr) && rpcErr.Code == jsonrpc.CodeUnsupportedProtocolVersion:
		supported := unsupportedVersions(rpcErr)
		if v, ok := pickVersion(modernVersions, supported); ok && round == 0 {
			return probeOutcome{retry: v}
		}
		if _, ok := pickVersion(legacyVersions, supported); ok {
			return probeOutcome{legacyVersions: supported}
		}
		return probeOutcome{err: fmt.Errorf("server %q: supports protocol versions %v; gw speaks %v", s.name, supported, allVersions())}
	case errors.Is(r.err, ErrSessionClosed):
		return probeOutcome{err: s.handshakeError(r.err)}
	default:
		s.log.Debug("server/discover failed; falling back to initialize", "error", r.err)
		return probeOutcome{}
	}
	var dr struct {
		SupportedVersions []string        `json:"supportedVersions"`
		Capabilities      json.RawMessage `json:"capabilities"`
		Instructions      string          `json:"instructions"`
	}
	if err := decodeStrictFields(r.result, &dr); err != nil || dr.SupportedVersions == nil {
		// Not a DiscoverResult: some legacy servers answer unknown methods
		// with an empty result.
		return probeOutcome{}
	}
	v, ok := pickVersion(modernVersions, dr.SupportedVersions)
	if !ok {
		if _, ok := pickVersion(legacyVersions, dr.SupportedVersions); ok {
			return probeOutcome{legacyVersions: dr.SupportedVersions}
		}
		return probeOutcome{err: fmt.Errorf("server %q: supports protocol versions %v; gw speaks %v", s.name, dr.SupportedVersions, allVersions())}
	}
	s.era, s.version, s.versionJSON, s.rawCaps, s.instructions = EraModern, v, mustJSON(v), dr.Capabilities, dr.Instructions
	if meta, ok := field(r.result, "_meta"); ok {
		if si, ok := field(meta, metaServerInfo); ok {
			_ = decodeExact(si, &s.serverInfo)
		}
	}
	_ = decodeExact(dr.Capabilities, &s.caps)
	return probeOutcome{modern: true}
}

// raceInitialize sends initialize while the unanswered probe stays pending.
// A modern answer to the probe always wins: a slow server reads both
// requests together and answers both, often initialize first (a modern-only
// server refuses it at once, a dual-era one accepts it). So an initialize
// answer decides only once the probe has had its say: the probe's answer,
// if it is already there, is taken first. After a successful initialize a
// pending probe is given another discover timeout; after a failed one it
// has until the start deadline, since the probe is then the only way in
// (the initialize error is reported if it never answers). A legacy server
// answers the probe with an error as soon as it reads it, so only one that
// never answers unknown requests pays that wait, once per start.
func (s *session) raceInitialize(ctx context.Context, probeID jsonrpc.ID, probe *pendingCall) error {
	defer s.retire(probeID.String())
	initID, init, err := s.send(ctx, methodInitialize, s.initializeParams(ctx, nil), callOptions{})
	if err != nil {
		return s.handshakeError(err)
	}
	probeReply := probe.reply // nil once the probe said "not modern"
	modern := func(r callReply) bool {
		if s.probeOutcome(r, 1).modern {
			s.retire(initID.String())
			return true
		}
		probeReply = nil
		return false
	}
	for {
		select {
		case r := <-probeReply:
			if modern(r) {
				return nil
			}
		case r := <-init.reply:
			if probeReply == nil {
				return s.finishInitialize(ctx, r)
			}
			// Both may be ready: the probe's answer first, deterministically.
			select {
			case pr := <-probeReply:
				if modern(pr) {
					return nil
				}
				return s.finishInitialize(ctx, r)
			default:
			}
			var grace <-chan time.Time
			if r.err == nil {
				t := time.NewTimer(s.cfg.discoverTimeout)
				defer t.Stop()
				grace = t.C
			}
			select {
			case pr := <-probeReply:
				if modern(pr) {
					return nil
				}
			case <-grace:
			case <-ctx.Done():
				if r.err != nil {
					return fmt.Errorf("server %q: initialize: %w", s.name, r.err)
				}
				return s.handshakeError(ctx.Err())
			}
			return s.finishInitialize(ctx, r)
		case <-ctx.Done():
			s.retire(initID.String())
			return s.handshakeError(ctx.Err())
		}
	}
}

// initialize runs the legacy handshake.
func (s *session) initialize(ctx context.Context, supported []string) error {
	id, c, err := s.send(ctx, methodInitialize, s.initializeParams(ctx, supported), callOptions{})
	if err != nil {
		return s.handshakeError(err)
	}
	res, err := s.await(ctx, id, c, callOptions{noCancel: true})
	return s.finishInitialize(ctx, callReply{result: res, err: err})
}

func (s *session) initializeParams(ctx context.Context, supported []string) json.RawMessage {
	want := legacyVersions[0]
	if v, ok := pickVersion(legacyVersions, supported); ok {
		want = v
	}
	return mustJSON(map[string]any{
		"protocolVersion": want,
		"capabilities":    s.clientCapabilities(ctx),
		"clientInfo":      s.cfg.clientInfo,
	})
}

// finishInitialize checks the initialize result and completes the handshake.
func (s *session) finishInitialize(ctx context.Context, r callReply) error {
	if r.err != nil {
		if errors.Is(r.err, ErrSessionClosed) || ctx.Err() != nil {
			return s.handshakeError(r.err)
		}
		return fmt.Errorf("server %q: initialize: %w", s.name, r.err)
	}
	var ir struct {
		ProtocolVersion string          `json:"protocolVersion"`
		Capabilities    json.RawMessage `json:"capabilities"`
		ServerInfo      Implementation  `json:"serverInfo"`
		Instructions    string          `json:"instructions"`
	}
	if err := decodeStrictFields(r.result, &ir); err != nil {
		return fmt.Errorf("server %q: bad initialize result: %w", s.name, err)
	}
	if !slices.Contains(legacyVersions, ir.ProtocolVersion) {
		return fmt.Errorf("server %q: answered initialize with protocol version %q; gw speaks %v", s.name, ir.ProtocolVersion, allVersions())
	}
	s.era, s.version, s.rawCaps, s.serverInfo, s.instructions = EraLegacy, ir.ProtocolVersion, ir.Capabilities, ir.ServerInfo, ir.Instructions
	_ = decodeExact(ir.Capabilities, &s.caps)
	if err := s.notify(ctx, methodInitialized, nil); err != nil {
		return fmt.Errorf("server %q: send initialized: %w", s.name, err)
	}
	return nil
}

// handshakeError explains a failed handshake in one line, naming the likely
// cause: the process died, or it printed something that is not MCP.
func (s *session) handshakeError(err error) error {
	detail := strings.TrimPrefix(err.Error(), fmt.Sprintf("server %q: ", s.name))
	if errors.Is(err, context.DeadlineExceeded) {
		detail = "no answer to server/discover or initialize before the start timeout"
	}
	if n := s.garbageLines.Load(); n > 0 {
		first := ""
		if p := s.firstGarbage.Load(); p != nil {
			first = *p
		}
		public := &detailedError{
			msg: fmt.Sprintf("server %q: %v: %s; stdout had %d non-JSON-RPC line(s)", s.name, ErrNotMCP, detail, n),
			err: []error{ErrNotMCP, err},
		}
		return &operatorError{err: public, full: fmt.Sprintf("%s, first: %q", public.msg, first)}
	}
	if c := s.cause(); c != nil && !strings.Contains(detail, c.Error()) {
		detail += ": " + c.Error()
	}
	return &detailedError{msg: fmt.Sprintf("server %q: handshake failed: %s", s.name, detail), err: []error{err}}
}

// detailedError has a message of its own and keeps its causes for
// errors.Is and errors.As.
type detailedError struct {
	msg string
	err []error
}

func (e *detailedError) Error() string   { return e.msg }
func (e *detailedError) Unwrap() []error { return e.err }

func unsupportedVersions(e *jsonrpc.Error) []string {
	var d struct {
		Supported []string `json:"supported"`
	}
	_ = decodeExact(e.Data, &d)
	return d.Supported
}

func allVersions() []string { return append(slices.Clone(modernVersions), legacyVersions...) }

// clientCapabilities is the capabilities object gw declares to a modern
// server for one request: what the caller behind it can answer (sampling,
// elicitation, roots), as the client handler says. One of eight fixed texts:
// nothing is built per request.
func (s *session) clientCapabilities(ctx context.Context) json.RawMessage {
	i := 0
	if h := s.cfg.handler; h != nil {
		if h.Supports(ctx, MethodSampling) {
			i |= 1
		}
		if h.Supports(ctx, MethodElicitation) {
			i |= 2
		}
		if h.Supports(ctx, MethodRoots) {
			i |= 4
		}
	}
	return capabilityTexts[i]
}

// capabilityTexts are the eight capabilities objects, by the bits
// sampling (1), elicitation (2) and roots (4).
var capabilityTexts = func() (texts [8]json.RawMessage) {
	for i := range texts {
		caps := map[string]any{}
		if i&1 != 0 {
			caps["sampling"] = map[string]any{}
		}
		if i&2 != 0 {
			caps["elicitation"] = map[string]any{"form": map[string]any{}}
		}
		if i&4 != 0 {
			caps["roots"] = map[string]any{}
		}
		texts[i] = mustJSON(caps)
	}
	return texts
}()

// metaParams adds the per-request _meta of the modern era; version is the
// protocol version as JSON text (s.versionJSON once the session is open).
func (s *session) metaParams(ctx context.Context, params json.RawMessage, version json.RawMessage, extra ...member) (json.RawMessage, error) {
	own := [...]member{
		{metaProtocolVersion, version},
		{metaClientInfo, s.cfg.clientInfoText()},
		{metaClientCapabilities, s.clientCapabilities(ctx)},
	}
	return withMeta(params, append(own[:], extra...)...)
}

// request sends a request in the session's era. Modern requests carry _meta;
// a modern input_required result is answered through the client handler and
// the request retried, so callers only ever see a complete result.
func (s *session) request(ctx context.Context, method string, params json.RawMessage, opts callOptions) (json.RawMessage, error) {
	if s.era != EraModern {
		return s.call(ctx, method, params, opts)
	}
	base := params
	sent := opts
	sent.meta = nil // set with the era's own _meta, in one pass
	for round := 0; ; round++ {
		p, err := s.metaParams(ctx, base, s.versionJSON, opts.meta...)
		if err != nil {
			return nil, fmt.Errorf("server %q: %s: %w", s.name, method, err)
		}
		res, err := s.call(ctx, method, p, sent)
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
			var asked bool
			if base, asked, err = s.answerInput(ctx, method, params, res); err != nil {
				return nil, err
			}
			if !asked {
				// No questions, only state: the server is shedding load.
				// Retry after a short, growing pause.
				select {
				case <-time.After(time.Duration(round+1) * 50 * time.Millisecond):
				case <-ctx.Done():
					return nil, fmt.Errorf("server %q: %s: %w", s.name, method, ctx.Err())
				}
			}
		default:
			return nil, fmt.Errorf("server %q: %s: unknown resultType %q", s.name, method, rt)
		}
	}
}

// answerInput serves an InputRequiredResult's requests through the client
// handler and returns the original params plus inputResponses and the
// server's requestState, echoed exactly, and whether the server asked
// anything at all (a result with only state is load shedding).
func (s *session) answerInput(ctx context.Context, method string, original, res json.RawMessage) (json.RawMessage, bool, error) {
	var ir struct {
		InputRequests map[string]struct {
			Method string          `json:"method"`
			Params json.RawMessage `json:"params"`
		} `json:"inputRequests"`
	}
	if err := decodeStrictFields(res, &ir); err != nil {
		return nil, false, fmt.Errorf("server %q: %s: bad InputRequiredResult: %w", s.name, method, err)
	}
	asked := len(ir.InputRequests) > 0
	state, hasState := field(res, "requestState")
	out := original
	var err error
	if asked {
		h := s.cfg.handler
		for _, req := range ir.InputRequests {
			if h == nil || !h.Supports(ctx, req.Method) {
				return nil, false, fmt.Errorf("server %q: %s: server asked for %s, which this gateway does not offer", s.name, method, req.Method)
			}
		}
		// Asked together, so a client behind a face that batches (a modern
		// client's InputRequiredResult) gets them in one round, as the
		// server asked them.
		responses := make(map[string]json.RawMessage, len(ir.InputRequests))
		var mu sync.Mutex
		var firstErr error
		var wg sync.WaitGroup
		actx, cancel := context.WithCancel(ctx)
		defer cancel()
		for key, req := range ir.InputRequests {
			wg.Go(func() {
				r, err := h.HandleClientRequest(actx, ClientRequest{Server: s.name, Method: req.Method, Params: req.Params, Related: method, Key: key})
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					if firstErr == nil {
						firstErr = fmt.Errorf("server %q: %s: answering %s: %w", s.name, method, req.Method, err)
						cancel() // one failed: the round is lost anyway
					}
					return
				}
				responses[key] = r
			})
		}
		wg.Wait()
		if firstErr != nil {
			return nil, false, firstErr
		}
		if out, err = setField(out, "inputResponses", mustJSON(responses)); err != nil {
			return nil, false, err
		}
	} else if out, err = setField(out, "inputResponses", nil); err != nil {
		return nil, false, err
	}
	if hasState {
		out, err = setField(out, "requestState", state)
	} else {
		out, err = setField(out, "requestState", nil)
	}
	return out, asked, err
}

// decodeStrictFields decodes a JSON object (empty input or null: nothing)
// into v by exact key at every depth, so "Tools" never stands in for "tools",
// nor "ListChanged" for "listChanged"; see decodeExact.
func decodeStrictFields(raw json.RawMessage, v any) error {
	i := jsonscan.SkipSpace(raw, 0)
	if i == len(raw) {
		return nil
	}
	if !json.Valid(raw) || raw[i] != '{' && raw[i] != 'n' {
		return errNotObject
	}
	return decodeExact(raw, v)
}
