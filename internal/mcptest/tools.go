package mcptest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// tool is one entry of tools/list and its behaviour on tools/call.
type tool struct {
	name        string
	description string
	input       map[string]any // inputSchema
	output      map[string]any // outputSchema, or nil
	run         func(s *server, c *call, args object) (map[string]any, *rpcError)
}

func (t *tool) json() map[string]any {
	m := map[string]any{"name": t.name, "description": t.description, "inputSchema": t.input}
	if t.output != nil {
		m["outputSchema"] = t.output
	}
	return m
}

// schema is an object schema with the given properties, no others allowed.
func schema(props map[string]any, required ...string) map[string]any {
	m := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		m["required"] = required
	}
	return m
}

func noArgs() map[string]any {
	return map[string]any{"type": "object", "additionalProperties": false}
}

func prop(typ, description string) map[string]any {
	return map[string]any{"type": typ, "description": description}
}

func intProp(description string, max int64) map[string]any {
	return map[string]any{"type": "integer", "minimum": 0, "maximum": max, "description": description}
}

const (
	maxSlowMs     = int64(24 * time.Hour / time.Millisecond)
	maxHugeBytes  = int64(1 << 30)
	maxNotify     = int64(10000)
	unknownIDBase = "mcptest-unknown-"
)

// builtinTools are listed first, in this order. Their run functions must not
// refer to builtinTools (an initialisation cycle).
var builtinTools = []tool{
	*echoTool("echo", "Echoes its text argument as text content and as structuredContent {text}."),
	{
		name:        "slow",
		description: "Sleeps ms milliseconds, then replies. Honours notifications/cancelled: a cancelled call gets no reply.",
		input:       schema(map[string]any{"ms": intProp("How long to sleep, in milliseconds.", maxSlowMs)}, "ms"),
		run:         runSlow,
	},
	{
		name:        "never",
		description: "Never replies; it only ends when cancelled or when the input closes.",
		input:       noArgs(),
		run: func(_ *server, c *call, _ object) (map[string]any, *rpcError) {
			<-c.ctx.Done()
			return nil, errNoReply
		},
	},
	{
		name:        "stall_input",
		description: "Stops reading the input for ms milliseconds, as a server stuck in a long synchronous task would; replies at once.",
		input:       schema(map[string]any{"ms": intProp("How long to stop reading, in milliseconds.", maxSlowMs)}, "ms"),
		run: func(s *server, _ *call, args object) (map[string]any, *rpcError) {
			ms, bad := needInt(args, "ms", maxSlowMs)
			if bad != nil {
				return bad, nil
			}
			s.in.stallFor(time.Duration(ms) * time.Millisecond)
			return textResult(fmt.Sprintf("not reading for %dms", ms)), nil
		},
	},
	{
		name:        "crash",
		description: "Exits the server with status 3 without replying.",
		input:       noArgs(),
		run: func(s *server, _ *call, _ object) (map[string]any, *rpcError) {
			fmt.Fprintln(s.opts.Stderr, "mcptest: the crash tool was called; exiting with status 3")
			s.die(3)
			return nil, errNoReply
		},
	},
	{
		name:        "huge",
		description: "Replies with a text content of the given number of bytes ('x' repeated), as a tool error with error: true.",
		input: schema(map[string]any{
			"bytes": intProp("Size of the text, in bytes.", maxHugeBytes),
			"error": map[string]any{"type": "boolean", "description": "Reply with isError: true."},
		}, "bytes"),
		run: func(_ *server, _ *call, args object) (map[string]any, *rpcError) {
			n, bad := needInt(args, "bytes", maxHugeBytes)
			if bad != nil {
				return bad, nil
			}
			if string(args["error"]) == "true" {
				return toolError(strings.Repeat("x", int(n))), nil
			}
			return textResult(strings.Repeat("x", int(n))), nil
		},
	},
	{
		name:        "garbage",
		description: "Writes a line that is not JSON, then a response with an id nobody used, then the real reply.",
		input:       noArgs(),
		run:         runGarbage,
	},
	{
		name: "notify",
		description: "Sends n notifications/message (level info; modern: only if _meta set a log level) and, " +
			"if the request had _meta.progressToken, n notifications/progress, interleaved, before the reply.",
		input: schema(map[string]any{"n": intProp("How many of each notification.", maxNotify)}, "n"),
		run:   runNotify,
	},
	{
		name:        "add_tool",
		description: "Adds an echo-like tool and announces notifications/tools/list_changed.",
		input:       schema(map[string]any{"name": prop("string", "Name of the tool to add.")}, "name"),
		run:         runAddTool,
	},
	{
		name:        "remove_tool",
		description: "Removes a tool and announces notifications/tools/list_changed.",
		input:       schema(map[string]any{"name": prop("string", "Name of the tool to remove.")}, "name"),
		run:         runRemoveTool,
	},
	{
		name:        "describe_tool",
		description: "Gives a tool a new description and announces notifications/tools/list_changed (a rug pull).",
		input: schema(map[string]any{
			"name":        prop("string", "Name of the tool to describe."),
			"description": prop("string", "Its new description."),
		}, "name", "description"),
		run: runDescribeTool,
	},
	{
		name:        "touch_resource",
		description: "Announces notifications/resources/updated for a resource to its subscribers.",
		input:       schema(map[string]any{"uri": prop("string", "URI of the resource.")}, "uri"),
		run:         runTouchResource,
	},
	{
		name: "end_subscriptions",
		description: "Modern: ends every open subscriptions/listen stream as a server shutting down would: " +
			"a final result carrying the subscriptionId, then notifications/cancelled referencing it.",
		input: noArgs(),
		run:   runEndSubscriptions,
	},
	{
		name:        "sample",
		description: "Asks the client for sampling/createMessage with the prompt and replies with the sampled text.",
		input:       schema(map[string]any{"prompt": prop("string", "The user message to sample on.")}, "prompt"),
		run:         runSample,
	},
	{
		name:        "elicit",
		description: "Asks the client for elicitation/create (form with one string field, answer) and replies with the answer or the action.",
		input:       schema(map[string]any{"message": prop("string", "The message shown to the user.")}, "message"),
		run:         runElicit,
	},
	{
		name:        "roots",
		description: "Asks the client for roots/list and replies with the root URIs, one per line.",
		input:       noArgs(),
		run:         runRoots,
	},
	{
		name:        "ping_client",
		description: "Legacy: sends a ping request to the client and replies pong-ok once the empty result arrives.",
		input:       noArgs(),
		run:         runPingClient,
	},
	{
		name:        "flood_pings",
		description: "Writes count ping requests to the client without waiting for answers (ids \"flood-N\"), after, with stop_reading, it stops reading its input (for a day); replies once they are written.",
		input: schema(map[string]any{
			"count":        intProp("How many pings.", maxFloodPings),
			"stop_reading": prop("boolean", "Stop reading the input first."),
		}, "count"),
		run: runFloodPings,
	},
	{
		name:        "garbage_flood",
		description: "Writes lines lines of \"x\" on stdout (not JSON), then the reply.",
		input:       schema(map[string]any{"lines": intProp("How many lines.", maxGarbageLines)}, "lines"),
		run:         runGarbageFlood,
	},
	{
		name:        "bad_utf8",
		description: "Replies with a text content holding invalid UTF-8 bytes (0xff, a lone continuation byte and a cut sequence).",
		input:       noArgs(),
		run:         runBadUTF8,
	},
	{
		name:        "stderr_flood",
		description: "Writes bytes bytes to stderr in lines of line_bytes (newline included), then replies.",
		input: schema(map[string]any{
			"bytes":      intProp("How many bytes.", maxHugeBytes<<2),
			"line_bytes": intProp("Bytes per line, newline included (at least 1).", maxHugeBytes),
		}, "bytes", "line_bytes"),
		run: runStderrFlood,
	},
	{
		name:        "stats",
		description: "Replies with the server's counters as JSON text (and structuredContent).",
		input:       noArgs(),
		run:         runStats,
	},
	{
		name:        "error_tool",
		description: "Fails with JSON-RPC error -32603 carrying data.",
		input:       noArgs(),
		run: func(*server, *call, object) (map[string]any, *rpcError) {
			return nil, &rpcError{
				Code:    CodeInternalError,
				Message: "error_tool failed on purpose",
				Data:    map[string]any{"tool": "error_tool", "reason": "deliberate"},
			}
		},
	},
	{
		name:        "is_error",
		description: "Returns a tool result with isError: true.",
		input:       noArgs(),
		run: func(*server, *call, object) (map[string]any, *rpcError) {
			return toolError("is_error failed on purpose"), nil
		},
	},
	{
		name:        "echo_meta",
		description: "Echoes the request's params._meta as structuredContent {meta} (an empty object when absent) and as text.",
		input:       noArgs(),
		run: func(_ *server, c *call, _ object) (map[string]any, *rpcError) {
			meta := c.meta
			if meta == nil {
				meta = object{}
			}
			text, _ := json.Marshal(meta)
			res := textResult(string(text))
			res["structuredContent"] = map[string]any{"meta": meta}
			return res, nil
		},
	},
}

// echoTool is a tool named name that behaves like echo.
func echoTool(name, description string) *tool {
	return &tool{
		name:        name,
		description: description,
		input:       schema(map[string]any{"text": prop("string", "The text to echo.")}, "text"),
		output:      schema(map[string]any{"text": prop("string", "The echoed text.")}, "text"),
		run: func(_ *server, _ *call, args object) (map[string]any, *rpcError) {
			text, bad := needString(args, "text")
			if bad != nil {
				return bad, nil
			}
			res := textResult(text)
			res["structuredContent"] = map[string]any{"text": text}
			return res, nil
		},
	}
}

func textResult(text string) map[string]any {
	return map[string]any{"content": []any{map[string]any{"type": "text", "text": text}}}
}

// toolError is a tool execution error: a result with isError set.
func toolError(text string) map[string]any {
	res := textResult(text)
	res["isError"] = true
	return res
}

// needString returns args[key] as a string, or a tool error to reply with.
func needString(args object, key string) (string, map[string]any) {
	s, present, ok := str(args, key)
	if !present || !ok {
		return "", toolError(fmt.Sprintf("argument %q must be a string", key))
	}
	return s, nil
}

// needInt returns args[key] as an integer in [0, max], or a tool error.
func needInt(args object, key string, max int64) (int64, map[string]any) {
	n, present, ok := integer(args, key)
	if !present || !ok || n < 0 || n > max {
		return 0, toolError(fmt.Sprintf("argument %q must be an integer from 0 to %d", key, max))
	}
	return n, nil
}

// callTool answers tools/call.
func (s *server) callTool(c *call) (map[string]any, *rpcError) {
	name, present, ok := str(c.params, "name")
	if !present || !ok {
		return nil, invalidParams("Invalid params: tools/call needs a string name")
	}
	args, present, ok := obj(c.params, "arguments")
	if !ok {
		return nil, invalidParams("Invalid params: arguments must be an object")
	}
	if !present {
		args = object{}
	}
	s.mu.Lock()
	t := s.findToolLocked(name)
	s.mu.Unlock()
	if t == nil {
		return nil, invalidParams("Unknown tool: %s", name)
	}
	return t.run(s, c, args)
}

func (s *server) findToolLocked(name string) *tool {
	for _, t := range s.tools {
		if t.name == name {
			return t
		}
	}
	return nil
}

func runSlow(_ *server, c *call, args object) (map[string]any, *rpcError) {
	ms, bad := needInt(args, "ms", maxSlowMs)
	if bad != nil {
		return bad, nil
	}
	t := time.NewTimer(time.Duration(ms) * time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
		return textResult(fmt.Sprintf("slept %dms", ms)), nil
	case <-c.ctx.Done():
		return nil, errNoReply
	}
}

func runGarbage(s *server, c *call, _ object) (map[string]any, *rpcError) {
	s.writeLine(c.ctx, []byte("mcptest garbage: this line is not JSON {{{"))
	s.mu.Lock()
	s.nextOutID++
	unknown, _ := json.Marshal(fmt.Sprintf("%s%d", unknownIDBase, s.nextOutID))
	s.mu.Unlock()
	s.send(c.ctx, resultMsg{JSONRPC: "2.0", ID: unknown, Result: s.decorate(c, textResult("reply to nobody"))})
	return textResult("garbage sent"), nil
}

func runNotify(s *server, c *call, args object) (map[string]any, *rpcError) {
	n, bad := needInt(args, "n", maxNotify)
	if bad != nil {
		return bad, nil
	}
	token, hasToken := requestID(c.meta[metaProgressToken]) // a string or an integer, like an id
	logs := s.logs(c, "info")
	for i := int64(1); i <= n; i++ {
		if logs {
			s.notify(c.ctx, "notifications/message", map[string]any{
				"level": "info", "logger": "mcptest", "data": fmt.Sprintf("notify %d/%d", i, n),
			})
		}
		if hasToken {
			s.notify(c.ctx, "notifications/progress", map[string]any{
				"progressToken": token, "progress": i, "total": n, "message": fmt.Sprintf("step %d of %d", i, n),
			})
		}
	}
	if c.ctx.Err() != nil {
		return nil, errNoReply
	}
	return textResult(fmt.Sprintf("sent %d notifications", n)), nil
}

func runAddTool(s *server, _ *call, args object) (map[string]any, *rpcError) {
	name, bad := needString(args, "name")
	if bad != nil {
		return bad, nil
	}
	if name == "" {
		return toolError("a tool name cannot be empty"), nil
	}
	s.mu.Lock()
	exists := s.findToolLocked(name) != nil
	if !exists {
		s.tools = append(s.tools, echoTool(name, "Tool added at run time by add_tool; behaves like echo."))
	}
	s.mu.Unlock()
	if exists {
		return toolError(fmt.Sprintf("tool %q already exists", name)), nil
	}
	s.broadcast(listChangedTools, "")
	return textResult("added tool " + name), nil
}

func runDescribeTool(s *server, _ *call, args object) (map[string]any, *rpcError) {
	name, bad := needString(args, "name")
	if bad != nil {
		return bad, nil
	}
	desc, bad := needString(args, "description")
	if bad != nil {
		return bad, nil
	}
	s.mu.Lock()
	i := slices.IndexFunc(s.tools, func(t *tool) bool { return t.name == name })
	if i >= 0 {
		t := *s.tools[i] // built-in tools are shared: change a copy
		t.description = desc
		s.tools[i] = &t
	}
	s.mu.Unlock()
	if i < 0 {
		return toolError(fmt.Sprintf("no tool %q", name)), nil
	}
	s.broadcast(listChangedTools, "")
	return textResult("described tool " + name), nil
}

func runRemoveTool(s *server, _ *call, args object) (map[string]any, *rpcError) {
	name, bad := needString(args, "name")
	if bad != nil {
		return bad, nil
	}
	s.mu.Lock()
	i := slices.IndexFunc(s.tools, func(t *tool) bool { return t.name == name })
	if i >= 0 {
		s.tools = slices.Delete(s.tools, i, i+1)
	}
	s.mu.Unlock()
	if i < 0 {
		return toolError(fmt.Sprintf("no tool %q", name)), nil
	}
	s.broadcast(listChangedTools, "")
	return textResult("removed tool " + name), nil
}

func runTouchResource(s *server, _ *call, args object) (map[string]any, *rpcError) {
	uri, bad := needString(args, "uri")
	if bad != nil {
		return bad, nil
	}
	if !knownResource(uri) {
		return toolError(fmt.Sprintf("no resource %q", uri)), nil
	}
	s.broadcast(resourceUpdated, uri)
	return textResult("touched " + uri), nil
}

func runEndSubscriptions(s *server, _ *call, _ object) (map[string]any, *rpcError) {
	n := s.endSubscriptions()
	return textResult(fmt.Sprintf("ended %d subscriptions", n)), nil
}

func runPingClient(s *server, c *call, _ object) (map[string]any, *rpcError) {
	if c.modern {
		return toolError("ping_client needs the legacy era: a modern server sends no requests to the client"), nil
	}
	r, ok := s.ask(c, "ping", nil)
	if !ok {
		return nil, errNoReply
	}
	if r.err != nil {
		return toolError(fmt.Sprintf("client answered ping with error %d: %s", r.err.Code, r.err.Message)), nil
	}
	if _, ok := decodeObject(r.result); !ok {
		return toolError("client answered ping with a result that is not an object"), nil
	}
	return textResult("pong-ok"), nil
}

func runStats(s *server, _ *call, _ object) (map[string]any, *rpcError) {
	s.subMu.Lock()
	subs := len(s.subs)
	s.subMu.Unlock()
	s.mu.Lock()
	st := s.stats.clone()
	s.mu.Unlock()
	st.Subscriptions = subs
	b, err := json.Marshal(st)
	if err != nil {
		return nil, newError(CodeInternalError, "encoding stats: %v", err)
	}
	res := textResult(string(b))
	res["structuredContent"] = st
	return res, nil
}

// maxFloodPings bounds flood_pings.
const maxFloodPings = 10_000_000

func runFloodPings(s *server, c *call, args object) (map[string]any, *rpcError) {
	n, bad := needInt(args, "count", maxFloodPings)
	if bad != nil {
		return bad, nil
	}
	if string(args["stop_reading"]) == "true" {
		s.in.stallFor(time.Duration(maxSlowMs) * time.Millisecond)
	}
	for i := range n {
		if !s.writeLine(c.ctx, []byte(fmt.Sprintf(`{"jsonrpc":"2.0","id":"flood-%d","method":"ping"}`, i))) {
			return nil, errNoReply
		}
	}
	return textResult(fmt.Sprintf("sent %d pings", n)), nil
}

// maxGarbageLines bounds garbage_flood.
const maxGarbageLines = 100_000_000

func runGarbageFlood(s *server, c *call, args object) (map[string]any, *rpcError) {
	n, bad := needInt(args, "lines", maxGarbageLines)
	if bad != nil {
		return bad, nil
	}
	chunk := []byte(strings.Repeat("x\n", 32<<10))
	for n > 0 {
		k := min(n, int64(len(chunk)/2))
		if !s.writeRaw(c.ctx, chunk[:2*k]) {
			return nil, errNoReply
		}
		n -= k
	}
	return textResult("garbage sent"), nil
}

// runBadUTF8 writes its reply itself: encoding/json would replace the
// invalid bytes that are the point of it.
func runBadUTF8(s *server, c *call, _ object) (map[string]any, *rpcError) {
	const marker = "BAD-UTF8-HERE"
	line, err := json.Marshal(resultMsg{JSONRPC: "2.0", ID: c.id, Result: s.decorate(c, textResult("a"+marker+"z"))})
	if err != nil {
		return nil, newError(CodeInternalError, "%v", err)
	}
	line = bytes.Replace(line, []byte(marker), []byte("\xff-\x80-\xe2\x82"), 1)
	s.writeLine(c.ctx, line)
	return nil, errNoReply
}

func runStderrFlood(s *server, _ *call, args object) (map[string]any, *rpcError) {
	total, bad := needInt(args, "bytes", maxHugeBytes<<2)
	if bad != nil {
		return bad, nil
	}
	lineBytes, bad := needInt(args, "line_bytes", maxHugeBytes)
	if bad != nil {
		return bad, nil
	}
	lineBytes = max(lineBytes, 1)
	fill := []byte(strings.Repeat("e", int(min(lineBytes, 1<<20))))
	write := func(b []byte) bool { _, err := s.opts.Stderr.Write(b); return err == nil }
	for left := total; left > 0; {
		n := min(lineBytes, left) // this line, its newline included
		if n <= int64(len(fill)) {
			fill[n-1] = '\n'
			ok := write(fill[:n])
			fill[n-1] = 'e'
			if !ok {
				return nil, errNoReply
			}
		} else {
			for body := n - 1; body > 0; {
				k := min(body, int64(len(fill)))
				if !write(fill[:k]) {
					return nil, errNoReply
				}
				body -= k
			}
			if !write([]byte("\n")) {
				return nil, errNoReply
			}
		}
		left -= n
	}
	return textResult(fmt.Sprintf("wrote %d bytes to stderr", total)), nil
}
