// Package mcptest is a deliberately configurable, and on request misbehaving,
// MCP server speaking the stdio transport, for testing gw's client.
//
// Tests run it in process with Serve over io.Pipe, or as a real child process:
// TestMain calls MainIfChild, and a test re-executes its own binary
// (os.Args[0]) with Options.Environ() in the environment. The binary in
// cmd/mcptest runs the same server for manual tests.
//
// # Eras
//
// Options.Era (MCPTEST_ERA) selects the protocol generation:
//
//   - legacy (default): 2025-11-25 (or the older revision a client asks
//     for: 2025-06-18, 2025-03-26, 2024-11-05). initialize must come first, then
//     notifications/initialized; any other request before that (ping
//     excepted) gets an error whose code is Options.PreinitError (-32601 by
//     default; -32600 is the other common choice). server/discover before the
//     handshake follows Options.Discover. Results carry no resultType.
//     Sampling, elicitation, roots and ping_client send real JSON-RPC requests
//     to the client (ids "s-1", "s-2", …) and wait for the response.
//   - modern: the stateless revisions in Options.SupportedVersions
//     (2026-07-28 by default). initialize is refused with -32601 whose message
//     and data name the supported versions. Every request needs params._meta
//     with io.modelcontextprotocol/protocolVersion (a string) and
//     io.modelcontextprotocol/clientCapabilities (an object), else -32602; an
//     unsupported version gets -32022 with data {supported, requested}. Every
//     result carries resultType ("complete" or "input_required") and
//     _meta["io.modelcontextprotocol/serverInfo"]. Server-to-client requests
//     use multi round-trip requests (input_required, then a retry).
//   - dual: both. A request whose _meta carries protocolVersion or
//     clientCapabilities is served as modern; anything else as legacy.
//
// ping is answered in every era and state ({} in legacy; with resultType in
// modern, without checking _meta, although 2026-07-28 removed ping).
//
// # Methods
//
// Both eras: tools/list, tools/call, prompts/list, prompts/get,
// resources/list, resources/templates/list, resources/read, ping.
// Legacy only: initialize, resources/subscribe, resources/unsubscribe,
// logging/setLevel. Modern only: server/discover, subscriptions/listen.
// Anything else is -32601.
//
// Capabilities: tools {listChanged}, prompts {listChanged}, resources
// {subscribe, listChanged}, logging {}. Prompts: greet (argument name,
// required) and summarize (argument text). Resources: test://static/a (text),
// test://static/b (blob), and the template test://item/{id}. An unknown
// resource is -32002 in legacy and -32602 in modern.
//
// The four list methods paginate when Options.PageSize is set; modern list
// results, resources/read and server/discover carry ttlMs (Options.TTLMs) and
// cacheScope "public".
//
// subscriptions/listen sends notifications/subscriptions/acknowledged (with
// the agreed subset of the filter) and then keeps the stream open until
// notifications/cancelled names it or the input ends, after which nothing more
// is sent for it. Legacy list changes are plain notifications, sent once the
// handshake is complete.
//
// # Tools
//
//   - echo {text}: text content and structuredContent {text}. The names in
//     Options.Tools (MCPTEST_TOOLS) behave the same.
//   - slow {ms}: replies after ms milliseconds; a cancelled call gets no reply.
//   - never: never replies; ends when cancelled or when the input ends.
//   - crash: exits with status 3 without replying (see Options.Exit).
//   - huge {bytes}: a text content of that many bytes.
//   - garbage: writes a non-JSON line, then a response with an id the client
//     never used, then the real reply.
//   - echo_meta: the request's params._meta as structuredContent {meta}
//     and as text (W3C trace context passed on in _meta, for one).
//   - notify {n}: n notifications/message (level info; modern requests only
//     when their _meta set io.modelcontextprotocol/logLevel) and, when the
//     request had _meta.progressToken, n notifications/progress, interleaved,
//     before the reply.
//   - add_tool {name}, remove_tool {name}: change the tool list and announce
//     notifications/tools/list_changed (legacy: plain; modern: on each listen
//     stream that asked for toolsListChanged, with its subscriptionId).
//   - describe_tool {name, description}: give a tool a new description and
//     announce notifications/tools/list_changed, as a server that rewrites
//     a tool after it was approved would (a rug pull). The description of
//     the tools in Options.Tools is Options.ToolDescription
//     (MCPTEST_TOOL_DESCRIPTION).
//   - touch_resource {uri}: announce notifications/resources/updated to legacy
//     resources/subscribe subscribers and to modern streams listing the uri.
//   - end_subscriptions: end every listen stream as a server shutting down:
//     its final result with the subscriptionId, then notifications/cancelled.
//   - sample {prompt}, elicit {message}, roots: need sampling/createMessage,
//     elicitation/create (form, one string field "answer") or roots/list from
//     the client, and reply with the sampled text, the answer (or the action
//     when declined or cancelled), or the root URIs one per line. Legacy: a
//     request to the client; a JSON-RPC error from the client becomes an
//     isError result. Modern: the first call returns input_required with
//     inputRequests {"q1": …} and a requestState; the retry must have a new
//     id, the same arguments, the requestState echoed and inputResponses
//     {"q1": …}, else -32602. An undeclared client capability is an isError
//     result in legacy and -32021 in modern.
//   - ping_client: legacy: pings the client, replies "pong-ok".
//   - stall_input {ms}: replies at once, then reads no more input for ms
//     milliseconds (a read already under way finishes first).
//   - flood_pings {count, stop_reading}: writes count ping requests to the
//     client without waiting for the answers (with stop_reading, after it
//     stopped reading its input), then replies.
//   - garbage_flood {lines}: writes lines lines of "x" on stdout, then replies.
//   - bad_utf8: a text content with invalid UTF-8 bytes in it (the reply is
//     written by hand: encoding/json would replace them).
//   - stderr_flood {bytes, line_bytes}: writes bytes bytes to stderr in lines
//     of line_bytes (newline included), then replies.
//   - stats: the counters as JSON text and structuredContent (see Stats).
//   - error_tool: JSON-RPC error -32603 with data.
//   - is_error: a result with isError true.
//
// Bad tool arguments give isError results; an unknown tool is -32602.
//
// # Wire
//
// One JSON message per line in both directions. Client messages are decoded
// case-sensitively ("Method" is not "method"); ids are strings or integers
// and are echoed exactly. A line that is not JSON gets -32700 with id null;
// a batch, a non-object, or a message without jsonrpc "2.0" gets -32600;
// a request id already in flight gets -32600. Each request is handled in its
// own goroutine and writes are serialised, so replies to concurrent requests
// come in completion order.
//
// # Start and end
//
// MCPTEST_STDERR_SPAM (KiB of stderr), MCPTEST_CRASH_ON_START (exit 2),
// MCPTEST_GARBAGE_ON_START (a non-JSON line and a non-JSON-RPC line on stdout),
// MCPTEST_EXIT_AFTER_MS (exit 1 later); see Options.
//
// When stdin ends, requests in flight get MCPTEST_EOF_GRACE_MS (default
// 250ms; negative: none) to finish and reply, then everything is cancelled
// and the server exits 0. In process, Serve closes in and out before it
// returns, as a process exit would.
package mcptest
