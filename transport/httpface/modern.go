package httpface

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gwmcp/gw/transport/face"
	"github.com/gwmcp/gw/transport/jsonrpc"
	"github.com/gwmcp/gw/transport/mcpface"
)

func jsonRaw(b []byte) json.RawMessage { return json.RawMessage(b) }

// nameKey is the params member that Mcp-Name mirrors for method, or "".
func nameKey(method string) string {
	switch method {
	case "tools/call", "prompts/get":
		return "name"
	case "resources/read":
		return "uri"
	}
	return ""
}

// decodeHeaderValue undoes the =?base64?…?= form of Mcp-Name; a plain
// value must be visible ASCII, space or tab.
func decodeHeaderValue(v string) (string, bool) {
	if enc, ok := strings.CutPrefix(v, "=?base64?"); ok {
		if enc, ok = strings.CutSuffix(enc, "?="); ok {
			b, err := base64.StdEncoding.DecodeString(enc)
			return string(b), err == nil
		}
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < 0x20 || c > 0x7e) && c != '\t' {
			return "", false
		}
	}
	return v, true
}

// modern serves a stateless 2026-07-28 request: its headers are checked
// against its body first.
func (f *Face) modern(w http.ResponseWriter, r *http.Request, c *caller, msg *jsonrpc.Message, meta mcpface.RequestMeta) {
	mismatch := func(format string, args ...any) {
		writeError(w, http.StatusBadRequest, msg.ID, jsonrpc.NewError(jsonrpc.CodeHeaderMismatch, "Header mismatch: "+format, args...))
	}
	hv := r.Header.Get(hdrProtocolVersion)
	switch {
	case hv == "":
		mismatch("the %s header is required", hdrProtocolVersion)
		return
	case meta.Version() != "" && meta.Version() != hv:
		mismatch("%s header value %q does not match body value %q", hdrProtocolVersion, hv, meta.Version())
		return
	case mcpface.EraOf(hv) != mcpface.EraModern:
		writeError(w, http.StatusBadRequest, msg.ID, mcpface.UnsupportedModernVersion(hv))
		return
	}
	if e := meta.CheckModern(); e != nil {
		writeError(w, http.StatusBadRequest, msg.ID, e)
		return
	}
	switch m := r.Header.Get(hdrMethod); {
	case m == "":
		mismatch("the %s header is required", hdrMethod)
		return
	case m != msg.Method:
		mismatch("%s header value %q does not match body value %q", hdrMethod, m, msg.Method)
		return
	}
	if key := nameKey(msg.Method); key != "" {
		raw := r.Header.Get(hdrName)
		if raw == "" {
			mismatch("the %s header is required for %s", hdrName, msg.Method)
			return
		}
		name, ok := decodeHeaderValue(raw)
		if !ok {
			mismatch("%s header value is not valid", hdrName)
			return
		}
		if body, _ := jsonrpc.StringMember(msg.Params, key); name != body {
			mismatch("%s header value %q does not match body value %q", hdrName, name, body)
			return
		}
	}
	if msg.Method == "tools/call" {
		if th, ok := c.h.(face.ToolHeaders); ok {
			name, _ := jsonrpc.StringMember(msg.Params, "name")
			if err := checkParamHeaders(r.Header, msg.Params, th.ParamHeaders(name)); err != "" {
				mismatch("%s", err)
				return
			}
		}
	}

	switch msg.Method {
	case mcpface.MethodDiscover:
		res, err := mcpface.DiscoverResult(f.opts.Info, f.opts.Instructions)
		if err != nil {
			writeError(w, http.StatusInternalServerError, msg.ID, jsonrpc.AsError(err))
			return
		}
		writeResult(w, msg.ID, res)
	case mcpface.MethodPing, mcpface.MethodSetLevel, mcpface.MethodInitialize:
		// Removed in 2026-07-28: a stateless server does not know them.
		writeError(w, http.StatusNotFound, msg.ID, jsonrpc.NewError(jsonrpc.CodeMethodNotFound, "gw: %s is not a method of %s", msg.Method, mcpface.ModernVersion))
	case mcpface.MethodSubscribe, mcpface.MethodUnsubscribe:
		writeError(w, http.StatusNotFound, msg.ID, jsonrpc.NewError(jsonrpc.CodeMethodNotFound, "gw: %s is not a method of %s; use subscriptions/listen", msg.Method, mcpface.ModernVersion))
	case mcpface.MethodListen:
		f.listen(w, r, c, msg)
	default:
		if !f.acquire(w, msg.ID) {
			return
		}
		defer f.release()
		// The client closing its response (disconnecting) cancels.
		ctx, cancel := f.withBase(r.Context())
		defer cancel()
		rep := newReply(w, r)
		req := &face.Request{Method: msg.Method, Params: msg.Params, Principal: c.principal, Trace: traceOf(r, msg.ID, "", meta.Version())}
		if meta.ProgressToken() != nil && rep.canSSE {
			req.Progress = progressTo(rep)
		}
		if mcpface.TakesInput(msg.Method) {
			// A round trip's retry must come from the same caller on
			// the same path.
			res, err := f.rounds.Serve(ctx, c.h, req, c.principal+"\x00"+c.view)
			f.answer(rep, msg.ID, msg.Method, mcpface.EraModern, res, err)
			return
		}
		f.serve(ctx, rep, c.h, req, msg.ID, mcpface.EraModern)
	}
}

// progressTo writes notifications/progress on rep while it is unanswered.
func progressTo(rep *reply) func(json.RawMessage) {
	return func(params json.RawMessage) {
		line, err := jsonrpc.EncodeNotification(mcpface.NotifProgress, params)
		if err == nil {
			_ = rep.event(line)
		}
	}
}

// stream is one open notification stream: a modern subscriptions/listen,
// or a legacy session's GET. Its filter and queue are guarded by Face.mu.
type stream struct {
	kinds mcpface.Kind    // the lists it carries
	uris  map[string]bool // modern: the resources it carries
	sess  *session        // legacy: its session's subscriptions decide
	id    jsonrpc.ID      // modern: the listen request's id
	wake  chan struct{}   // buffered 1

	changed mcpface.Kind
	updates []string
	logs    []json.RawMessage // legacy: servers' log messages for the session
}

func (st *stream) kick() {
	select {
	case st.wake <- struct{}{}:
	default:
	}
}

func (st *stream) wantsLocked(uri string) bool {
	if st.sess != nil {
		return st.sess.subscribed[uri]
	}
	return st.uris[uri]
}

// addStream registers st, unless MaxListens are open or the face stops.
func (f *Face) addStream(st *stream) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed || len(f.streams) >= f.opts.MaxListens {
		return false
	}
	f.streams[st] = struct{}{}
	return true
}

func (f *Face) removeStream(st *stream) {
	f.mu.Lock()
	delete(f.streams, st)
	f.mu.Unlock()
}

// listen serves subscriptions/listen: an SSE stream that starts with the
// acknowledgment and carries what it asked for until the client closes it
// (nothing more is sent) or the face shuts down (the listen result ends it).
func (f *Face) listen(w http.ResponseWriter, r *http.Request, c *caller, msg *jsonrpc.Message) {
	filter, e := mcpface.ReadListen(msg.Params)
	if e != nil {
		writeError(w, http.StatusBadRequest, msg.ID, e)
		return
	}
	if !acceptsSSE(r) {
		writeError(w, http.StatusNotAcceptable, msg.ID, jsonrpc.NewError(jsonrpc.CodeInvalidRequest, "gw: subscriptions/listen answers text/event-stream, which the Accept header leaves out"))
		return
	}
	st := &stream{kinds: filter.Kinds, uris: map[string]bool{}, id: msg.ID, wake: make(chan struct{}, 1)}
	if !f.addStream(st) {
		f.shed.Add(1)
		writeError(w, http.StatusServiceUnavailable, msg.ID, jsonrpc.NewError(jsonrpc.CodeInternalError, "gw: busy: %d streams open", f.opts.MaxListens))
		return
	}
	defer f.removeStream(st)
	ctx, cancel := f.withBase(r.Context())
	defer cancel()

	var agreed []string
	for _, uri := range filter.URIs {
		if st.uris[uri] {
			continue
		}
		if err := f.subscribe(ctx, c, uri); err != nil {
			f.log.Debug("listen: resource subscription refused", "uri", uri, "error", err)
			continue
		}
		f.mu.Lock()
		st.uris[uri] = true
		f.mu.Unlock()
		agreed = append(agreed, uri)
	}
	defer func() {
		for _, uri := range agreed {
			f.unsubscribe(c, uri)
		}
	}()
	// Changes while it was set up are not announced: the client lists
	// after the ack.
	f.mu.Lock()
	st.changed, st.updates = 0, nil
	f.mu.Unlock()

	rc := http.NewResponseController(w)
	startSSE(w)
	ack, err := jsonrpc.EncodeNotification(mcpface.NotifAcknowledged, mcpface.AckParams(msg.ID, filter.Kinds, agreed))
	if err != nil || writeEvent(w, rc, ack) != nil {
		return
	}
	meta := mcpface.SubscriptionMeta(msg.ID)
	if f.pump(ctx, w, rc, st, func(k mcpface.Kind) any { return map[string]any{"_meta": meta} },
		func(uri string) any { return map[string]any{"_meta": meta, "uri": uri} }) {
		res, _ := json.Marshal(map[string]any{"resultType": "complete", "_meta": meta})
		if line, err := jsonrpc.EncodeResult(msg.ID, json.RawMessage(res)); err == nil {
			_ = writeEvent(w, rc, line)
		}
	}
}

// pump writes st's notifications until ctx ends (false) or the face shuts
// down (true), with a keep-alive comment when quiet.
func (f *Face) pump(ctx context.Context, w http.ResponseWriter, rc *http.ResponseController, st *stream, changedParams func(mcpface.Kind) any, updatedParams func(string) any) bool {
	t := time.NewTicker(f.opts.KeepAlive)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-f.closing:
			return true
		case <-t.C:
			if _, err := w.Write([]byte(":\n\n")); err != nil || rc.Flush() != nil {
				return false
			}
		case <-st.wake:
			f.mu.Lock()
			changed, updates, logs := st.changed, st.updates, st.logs
			st.changed, st.updates, st.logs = 0, nil, nil
			f.mu.Unlock()
			for _, k := range []mcpface.Kind{mcpface.KindTools, mcpface.KindPrompts, mcpface.KindResources} {
				if changed&k == 0 {
					continue
				}
				if line, err := jsonrpc.EncodeNotification(k.Method(), changedParams(k)); err == nil && writeEvent(w, rc, line) != nil {
					return false
				}
			}
			for _, uri := range updates {
				if line, err := jsonrpc.EncodeNotification(mcpface.NotifUpdated, updatedParams(uri)); err == nil && writeEvent(w, rc, line) != nil {
					return false
				}
			}
			for _, params := range logs {
				if line, err := jsonrpc.EncodeNotification(mcpface.NotifMessage, params); err == nil && writeEvent(w, rc, line) != nil {
					return false
				}
			}
		}
	}
}

// checkParamHeaders checks the Mcp-Param-{Name} headers of a tools/call
// against its arguments, for the tool's x-mcp-header annotations (name to
// property path): a header must be there exactly when its argument is,
// carry only valid characters, and, decoded, equal the argument's string
// form. It returns what is wrong, or "". Headers the tool does not
// annotate are ignored, as the spec asks of servers that do not know them.
func checkParamHeaders(h http.Header, params json.RawMessage, annotated map[string][]string) string {
	if len(annotated) == 0 {
		return ""
	}
	args := jsonrpc.Member(params, "arguments")
	for name, path := range annotated {
		header := "Mcp-Param-" + name
		raw, present := h[http.CanonicalHeaderKey(header)]
		arg, has := argumentAt(args, path)
		switch {
		case !has && !present:
			continue
		case !has:
			return header + " header is present but the argument it mirrors is not"
		case !present:
			return "the " + header + " header is required: the tool mirrors " + strings.Join(path, ".") + " into it"
		}
		value, ok := decodeHeaderValue(raw[0])
		if !ok {
			return header + " header value contains invalid characters"
		}
		if want, ok := headerForm(arg); !ok || value != want {
			return header + " header value does not match the body"
		}
	}
	return ""
}

// ParamHeaderValues returns the values of the Mcp-Param-{Name} headers a
// client sends with a tools/call whose arguments object is args (valid
// JSON), for the tool's x-mcp-header annotations (Name to property path),
// keyed by Name: what the face's check accepts. An argument that is absent
// or null, or has no header form (an object, a fraction), gets no header.
func ParamHeaderValues(args json.RawMessage, annotated map[string][]string) map[string]string {
	out := make(map[string]string, len(annotated))
	for name, path := range annotated {
		arg, ok := argumentAt(args, path)
		if !ok {
			continue
		}
		if v, ok := headerForm(arg); ok {
			out[name] = encodeHeaderValue(v)
		}
	}
	return out
}

// encodeHeaderValue is v as a header carries it: as is when it is visible
// ASCII with no space at either end (HTTP trims those) and cannot be taken
// for the encoded form; else =?base64?…?=, which decodeHeaderValue undoes.
func encodeHeaderValue(v string) string {
	plain := v == strings.TrimSpace(v) && !strings.HasPrefix(v, "=?base64?")
	for i := 0; plain && i < len(v); i++ {
		if c := v[i]; c < 0x20 || c > 0x7e {
			plain = false
		}
	}
	if plain {
		return v
	}
	return "=?base64?" + base64.StdEncoding.EncodeToString([]byte(v)) + "?="
}

// argumentAt reads the argument at path (properties keys) of the call's
// arguments object (valid JSON, as a decoded message's params are).
func argumentAt(args json.RawMessage, path []string) (json.RawMessage, bool) {
	cur := args
	for _, key := range path {
		v := jsonrpc.Member(cur, key)
		if v == nil || string(v) == "null" {
			return nil, false
		}
		cur = v
	}
	return cur, true
}

// headerForm is an argument's string form in a header: a string as is, an
// integer in decimal, a boolean as true or false.
func headerForm(v json.RawMessage) (string, bool) {
	var s string
	if json.Unmarshal(v, &s) == nil {
		return s, true
	}
	var b bool
	if json.Unmarshal(v, &b) == nil {
		return strconv.FormatBool(b), true
	}
	var n json.Number
	if json.Unmarshal(v, &n) == nil {
		if i, err := n.Int64(); err == nil {
			return strconv.FormatInt(i, 10), true
		}
	}
	return "", false
}
