// Package mcpface is gw's MCP face: an MCP server over one newline-delimited
// JSON-RPC connection (stdio: gw's stdin and stdout), serving a face.Handler
// — the router — so that desktop clients and SDK agents use gw as one MCP
// server. It knows no gateway types.
//
// # Eras
//
// A session speaks one era, decided by the client's first request:
//
//   - initialize → legacy (2025-11-25, and 2025-06-18, 2025-03-26,
//     2024-11-05 when the client asks for them). Requests before initialize
//     get -32600 (ping excepted). notifications/initialized opens the
//     list_changed notifications. Server-to-client requests (sampling,
//     elicitation, roots) go to the client as JSON-RPC requests with ids
//     "gw-1", "gw-2", … when it declared the capability (Face.Client, and
//     every request's face.Request.Input). Resource updates go to the
//     resources the client subscribed to.
//   - a request whose params._meta carries
//     io.modelcontextprotocol/protocolVersion, or server/discover → modern
//     (2026-07-28), stateless: every request must carry that _meta (an
//     unsupported version gets -32022 with data {supported, requested}, and
//     then the era is still open, so a client may fall back to initialize).
//     Every result carries resultType ("complete" is spliced into handler
//     results that lack it; the rest of the bytes pass untouched).
//     subscriptions/listen is acknowledged and then carries list changes and
//     resource updates with _meta io.modelcontextprotocol/subscriptionId
//     until the client cancels it; when gw stops, it ends with its result and
//     notifications/cancelled. Server-to-client requests are multi
//     round-trip requests (Rounds): a tools/call, prompts/get or
//     resources/read whose _meta declares sampling, elicitation or roots
//     gets a face.Request.Input for those; the gateway call runs on a
//     goroutine of its own, and when it asks, the request is answered with
//     an InputRequiredResult (inputRequests "gw-1", "gw-2", …; a
//     requestState of 256 random bits naming the parked call). The
//     client's retry (a new id, inputResponses, the echoed requestState)
//     hands the answers to the waiting asks and waits for the call's next
//     event: another InputRequiredResult (a fresh requestState; an ask left
//     unanswered is asked again) or the final result. A state is spent by
//     its retry; an unknown, spent, expired (Options.InputTTL) or
//     mismatched one (another method or name) gets -32602. A call that
//     waits longer than InputTTL is cancelled; at most Options.MaxParked
//     wait. Cancelling the waiting request cancels the call. Face.Client,
//     the fallback for a legacy server that asks on its own (naming no
//     request), asks through the oldest call in flight whose client
//     declared the capability.
//
// # Connection
//
// One reader goroutine decodes lines (over Options.MaxMessageSize: -32600
// and the line is dropped; not JSON: -32700 with id null; not JSON-RPC:
// -32600) and starts one goroutine per request (at most
// Options.MaxInFlight; more are refused at once with "gw: busy") and per
// listen stream. notifications/cancelled cancels a request's context, and it
// gets no answer. A request whose params._meta has a progressToken gets a
// face.Request.Progress that writes notifications/progress while it is
// unanswered. Writes are serialised, one message a line.
//
// The face is split in two: protocol.go knows what requests mean and what
// answers look like; face.go binds that to a byte stream.
package mcpface
